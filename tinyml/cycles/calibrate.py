"""Run a bare assembly program on an emulated board under the profiler and price its marked spans.

The micro-benchmarks in tests/data/cycle_bench*.S mark each span with `b_NAME` / `b_NAME_end` labels; their
cycles are worked out on paper from the TRM tables and must come out exactly (tests/test_cycles.py).
That checks the counting and the arithmetic of the rules, not the rules themselves: only a cycle counter on
silicon can.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from tinyml.cycles.model import Estimate, Rules, estimate
from tinyml.cycles.plugin import plugin_args
from tinyml.cycles.profile import read_profile
from tinyml.errors import TinymlError
from tinyml.firmware.boards import Board


def build_asm(src: Path, board: Board, out: Path) -> Path:
    """Link a vector-table-first assembly file at the board's flash, data in its RAM."""
    stack_top = board.ram_base + min(board.ram_size, 0x10000)
    cmd = [
        "arm-none-eabi-gcc",
        f"-mcpu={board.mcpu}",
        "-mthumb",
        "-nostdlib",
        "-nostartfiles",
        f"-Wl,-Ttext={board.flash_base:#x}",
        f"-Wl,-Tdata={board.ram_base:#x}",
        "-Wl,-e,reset",
        f"-Wl,--defsym=__stack_top={stack_top:#x}",
        "-o",
        str(out),
        str(src),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise TinymlError(f"assembling {src.name} for {board.name} failed: {r.stderr.strip()[:300]}")
    return out


def span_marks(elf: Path) -> tuple[list[str], list[tuple[str, int, int]]]:
    """Names and plugin marks of every `b_NAME` .. `b_NAME_end` span, in address order."""
    out = subprocess.run(["arm-none-eabi-nm", "-n", str(elf)], capture_output=True, text=True, timeout=60)
    labels = {
        ln.split()[2]: int(ln.split()[0], 16) & ~1 for ln in out.stdout.splitlines() if len(ln.split()) == 3
    }
    names = [n[2:] for n in sorted(labels, key=labels.get) if n.startswith("b_") and not n.endswith("_end")]
    marks = []
    for n in names:
        marks += [("open", 0, labels[f"b_{n}"]), ("close", 0, labels[f"b_{n}_end"])]
    return names, marks


def run_spans(src: Path, board: Board, rules: Rules, timeout: float = 30.0) -> dict[str, Estimate]:
    """Assemble, run on the board's QEMU machine with the profiler, and price each span with `rules`."""
    with tempfile.TemporaryDirectory(prefix="tinyml-calib-") as tmp:
        elf = build_asm(src, board, Path(tmp) / "bench.elf")
        names, marks = span_marks(elf)
        prof = Path(tmp) / "profile.txt"
        cmd = [
            "qemu-system-arm",
            "-M",
            board.qemu_machine,
            "-display",
            "none",
            "-monitor",
            "none",
            "-icount",
            f"shift={board.icount_shift},align=off,sleep=off",
            "-semihosting-config",
            "enable=on,target=native",
            *board.qemu_args,
            "-kernel",
            str(elf),
            *plugin_args(prof, marks, (board.flash_base, board.flash_base + board.flash_size)),
        ]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TinymlError(
                f"{src.name} on {board.qemu_machine} did not exit within {timeout:.0f} s"
            ) from None
        if r.returncode != 0:
            raise TinymlError(
                f"{src.name} on {board.qemu_machine} exited {r.returncode}: {r.stderr.strip()[:300]}"
            )
        profile = read_profile(prof)
    spans = profile.channel(0)
    if len(spans) != len(names):
        raise TinymlError(f"{src.name}: {len(spans)} spans recorded, {len(names)} marked")
    return {n: estimate(profile.insns, iv.counts, rules) for n, iv in zip(names, spans)}
