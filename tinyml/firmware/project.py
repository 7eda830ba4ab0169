"""Firmware projects: a compiled model + the C runtime + files rendered from the board, built by make alone.

    PROJECT/
      Makefile            build | size | flash | stop | clean   (rendered: board flags, QEMU/pyocd command)
      link.ld             linker script from the board's memory map
      tinyml_board.h      board macros (UART, clock, timer, icount)
      tinyml_config.h     model name and sha256 (what INFO reports)
      board.toml          the board file it was rendered from
      runtime/            firmware/src: startup, fault handler, UART + timer + SoC drivers, protocol, main
      model/              `tinyml compile` output (model.h, model.c, weights, kernels)

Files are only rewritten when their content changes, so re-exporting into the same directory keeps make's
incremental build (the sweep and the tests rely on it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyml.errors import TinymlError
from tinyml.firmware.boards import DRIVER_KEYS, FIRMWARE_SRC, Board
from tinyml.firmware.stack import STACK_LD, StackReport, derive, stack_ld
from tinyml.util import template_env, write_bytes_atomic

UF2_TOOL = Path(__file__).parent / "uf2.py"  # copied into projects for boards with a UF2 drive (RP2040)
SELFTEST_MODEL = Path(__file__).parent / "selftest"  # a hand-written contract model (doctor, protocol tests)
COMPILE_MANIFEST = "tinyml_compile.json"  # written by `tinyml compile` into every output directory
EXPORT_MANIFEST = "tinyml_export.json"
DEFAULT_OPT = "-O2"
DUMP_DEFINE = "TINYML_DEBUG"  # layer dumps: the generated model's per-layer hook (model.h.j2) and DUMP
# The runtime's own share, for the budget check before building. Measured on the emulated boards (-O2): the
# runtime's static RAM (the serial frame, profile marks) is about 1.1 KiB (+0.5 KiB profiled); the derived
# stack reservation is 0.9-1.3 KiB; flash beyond the model's const arrays is about 11-15 KiB of runtime and
# kernels on cores without the DSP extension and up to 27 KiB with it (issue 16's unrolled asm kernels;
# --patch adds its band code), plus ~100 B per layer (call, params). Rounded up. (Fast kernels keep compact
# const arrays: 9 bytes a channel, int8 depthwise weights.)
RUNTIME_RAM_BYTES = 1152
PROFILE_RAM_PER_LAYER = 16  # a profiled build's timer marks and counts (two u64 per layer)
STACK_ESTIMATE_BYTES = 1280  # before the first link; the link then reserves the derived worst case
PROVISIONAL_STACK_BYTES = 2048  # what stack.ld holds until tinyml derives the reservation after a link
RUNTIME_FLASH_BYTES = 16 * 1024
RUNTIME_FLASH_DSP_BYTES = 28 * 1024
FLASH_PER_LAYER_BYTES = 96


@dataclass(frozen=True)
class ModelInfo:
    """What the firmware needs to know about a compiled model (read from the compile manifest)."""

    name: str
    sha256: str
    arena_bytes: int
    const_bytes: int
    layers: int
    input_bytes: int
    output_bytes: int
    layer_kernels: tuple[dict, ...] = ()  # {index, op, kernel, macs} per layer (compile manifest)
    peak_layer: str = ""  # where the arena peaks, e.g. "layer 3 (DEPTHWISE_CONV_2D 24x24x16)"
    patch: dict | None = None  # the compiler's patch choice (compile.patch.report), None for older outputs


@dataclass(frozen=True)
class Footprint:
    """Flash and RAM of a firmware: RAM = .data + .bss (the arena included) + the stack reservation."""

    flash_bytes: int
    ram_bytes: int
    exact: bool  # from the linked image (else an estimate made before building)
    arena_bytes: int = 0
    stack_bytes: int = 0

    @property
    def other_ram_bytes(self) -> int:
        """RAM beyond the arena and the stack: the runtime's serial frame, timer and profile state."""
        return self.ram_bytes - self.arena_bytes - self.stack_bytes

    def ram_breakdown(self) -> str:
        return (f"arena {self.arena_bytes:,} B + stack {self.stack_bytes:,} B + runtime "
                f"{self.other_ram_bytes:,} B")


@dataclass(frozen=True)
class Project:
    dir: Path
    board: Board
    model: ModelInfo
    profile: bool

    @property
    def elf(self) -> Path:
        return self.dir / "build" / "firmware.elf"



def read_model_info(model_dir: Path, name: str | None = None) -> ModelInfo:
    """ModelInfo of a `tinyml compile` output directory (its manifest plus the sizes in model.h)."""
    manifest = model_dir / COMPILE_MANIFEST
    if not manifest.exists():
        raise TinymlError(f"{model_dir} is not a `tinyml compile` output (no {COMPILE_MANIFEST})")
    meta = json.loads(manifest.read_text())
    if meta.get("name", "model") != "model":
        raise TinymlError(
            f"{model_dir} was compiled with --name {meta['name']}; the firmware needs the default "
            f"name 'model'"
        )
    header = (model_dir / "model.h").read_text()

    def define(macro: str) -> int:
        m = re.search(rf"#define {macro} (\d+)", header)
        if not m:
            raise TinymlError(f"{model_dir}/model.h does not define {macro}")
        return int(m.group(1))

    source = meta.get("source", "model.tflite")
    return ModelInfo(
        name=name or Path(source).stem,
        sha256=meta.get("sha256", ""),
        arena_bytes=define("MODEL_ARENA_BYTES"),
        const_bytes=int(meta.get("const_bytes", 0)),
        layers=define("MODEL_NUM_LAYERS"),
        input_bytes=define("MODEL_INPUT_BYTES"),
        output_bytes=define("MODEL_OUTPUT_BYTES"),
        layer_kernels=tuple(meta.get("layer_kernels", ())),
        peak_layer=str(meta.get("arena_peak_layer", "")),
        patch=meta.get("patch"),
    )


def dsp_fallback_warnings(layers: Sequence[dict], board: Board, min_share: float = 0.01) -> list[str]:
    """One line per layer that a DSP core runs with a plain-C multiply-accumulate kernel.

    A silent fallback to slow kernels is what users of other tools find only by profiling; layers under
    `min_share` of the model's MACs are not worth a line.
    """
    from tinyml.compile.ops import PLAIN_C_MAC_KERNELS

    if not board.dsp:
        return []
    total = sum(la["macs"] for la in layers) or 1
    return [
        f"layer {la['index']} ({la['op']}, {la['macs']:,} MACs, {la['macs'] / total:.0%} of the model) runs "
        f"the plain-C kernel {la['kernel']} on {board.name}'s DSP core: its geometry or requantization has "
        "no SIMD path"
        for la in layers
        if la["kernel"] in PLAIN_C_MAC_KERNELS and la["macs"] >= min_share * total
    ]


def selftest_expected(x: np.ndarray) -> np.ndarray:
    """What SELFTEST_MODEL computes: output[j] = ((sum of input[4j..4j+3]) >> 2) ^ 0x55, as int8."""
    sums = np.asarray(x, dtype=np.int8).astype(np.int32).reshape(4, 4).sum(axis=1)
    return (((sums >> 2) ^ 0x55) & 0xFF).astype(np.uint8).view(np.int8)


def estimate_footprint(model: ModelInfo, board: Board, profile: bool = False) -> Footprint:
    """Flash and RAM the firmware will need, before building: RAM is exact up to the runtime's few KB.

    The arena holds the model's input and output too, so it is the model's whole share."""
    marks = PROFILE_RAM_PER_LAYER * (model.layers + 1) if profile else 0
    ram = model.arena_bytes + RUNTIME_RAM_BYTES + marks + STACK_ESTIMATE_BYTES
    runtime = RUNTIME_FLASH_DSP_BYTES if board.dsp else RUNTIME_FLASH_BYTES
    flash = model.const_bytes + runtime + FLASH_PER_LAYER_BYTES * model.layers
    return Footprint(flash_bytes=flash, ram_bytes=ram, exact=False, arena_bytes=model.arena_bytes,
                     stack_bytes=STACK_ESTIMATE_BYTES)


class BudgetExceeded(TinymlError):
    """A model that does not fit a board's flash or RAM, with the numbers (a sweep records them)."""

    def __init__(self, model: str, board: str, needs: Footprint, flash_size: int, ram_size: int,
                 peak_layer: str = ""):
        self.model, self.board, self.needs = model, board, needs
        self.flash_size, self.ram_size = flash_size, ram_size
        what = "" if needs.exact else "about "
        problems = []
        if needs.ram_bytes > ram_size:
            where = f" (arena {needs.arena_bytes:,} B, peak at {peak_layer})" if peak_layer else ""
            problems.append(f"needs {what}{needs.ram_bytes:,} B RAM{where}, board {board} has {ram_size:,} B")
        if needs.flash_bytes > flash_size:
            problems.append(f"needs {what}{needs.flash_bytes:,} B flash, board {board} has {flash_size:,} B")
        super().__init__(f"model {model} does not fit: " + "; ".join(problems))


def check_budget(fp: Footprint, board: Board, model_name: str, peak_layer: str = "") -> None:
    """Refuse a model that does not fit, with the numbers (and the layer where the arena peaks)."""
    if fp.ram_bytes > board.ram_size or fp.flash_bytes > board.flash_size:
        raise BudgetExceeded(model_name, board.name, fp, board.flash_size, board.ram_size, peak_layer)


def runtime_sources(board: Board) -> list[Path]:
    """The firmware/src files this board's firmware is built from: every header, every C file that is not a
    driver, and the drivers the board file selects (uart_<kind>.c, timer_<kind>.c, soc_<family>.c)."""
    prefixes = tuple(f"{prefix}_" for _, prefix in DRIVER_KEYS)
    common = [
        p for p in sorted(FIRMWARE_SRC.iterdir())
        if p.suffix == ".h" or (p.suffix == ".c" and not p.name.startswith(prefixes))
    ]
    return common + board.driver_sources()


def _soc_macros(board: Board) -> list[tuple[str, str]]:
    """soc.* keys of the board file as TINYML_SOC_* macros: pins "PG7" (STM32) -> PORT 6 / PIN 7, "P1.03"
    (nRF) -> PORT 1 / PIN 3, "REG:bit" pairs."""
    out: list[tuple[str, str]] = []
    for key, value in sorted(board.soc.items()):
        k = key.upper()
        if isinstance(value, str) and re.fullmatch(r"P[A-K]\d{1,2}", value):
            out += [(f"{k}_PORT", f"{ord(value[1]) - ord('A')}u"), (f"{k}_PIN", f"{value[2:]}u")]
        elif isinstance(value, str) and (m := re.fullmatch(r"P(\d)\.(\d{1,2})", value)):
            out += [(f"{k}_PORT", f"{m.group(1)}u"), (f"{k}_PIN", f"{int(m.group(2))}u")]
        elif isinstance(value, str) and re.fullmatch(r"[A-Z0-9_]+:\d{1,2}", value):
            reg, bit = value.split(":")
            out += [(f"{k}_REG", f"RCC_{reg}"), (f"{k}_BIT", f"{bit}u")]
        elif isinstance(value, bool):
            out.append((k, "1" if value else "0"))
        elif isinstance(value, int):
            out.append((k, f"{value}u"))
        else:
            raise TinymlError(
                f"board file {board.path}: soc.{key} = {value!r} is neither a pin (PA0, P1.03), "
                f"a REGISTER:bit pair nor a number"
            )
    return out


def _makefile_tools() -> dict[str, Any]:
    """Tool paths and messages for the Makefile: found as tinyml finds them (PATH, else this venv's bin/)."""
    from tinyml.tools import TOOLS, tool_for_makefile

    def shell_safe(text: str) -> str:  # echoed inside double quotes: no backticks, no $
        return text.replace("`", "'").replace("$", "$$")

    return {
        "pyocd": tool_for_makefile("pyocd"),
        "bossac": tool_for_makefile("bossac"),
        "qemu": tool_for_makefile("qemu-system-arm"),
        "check": {name: shell_safe(t.check) for name, t in TOOLS.items()},
        "install": {name: shell_safe(t.install) for name, t in TOOLS.items()},
    }


def render_files(board: Board, model: ModelInfo, profile: bool, opt: str = DEFAULT_OPT,
                 defines: Sequence[str] = ()) -> dict[str, str]:
    """The generated files of a project (name -> text)."""
    env = template_env("tinyml.firmware")
    defs = (["-DTINYML_PROFILE"] if profile else []) + [f"-D{d}" for d in defines]
    qemu = board.qemu_command(Path("ELF"))
    qemu_args = " ".join(qemu[1 : qemu.index("-chardev")] + qemu[qemu.index("-serial") + 2 : -2])
    ctx = {
        "b": board,
        "model_name": model.name,
        "model_sha256": model.sha256,
        "arch_flags": " ".join(board.arch_flags),
        "opt": opt,
        "defs": " ".join(defs),
        "qemu_args": qemu_args,
        "soc_macros": _soc_macros(board),
        "tools": _makefile_tools(),
    }
    return {
        "Makefile": env.get_template("Makefile.j2").render(ctx),
        "link.ld": env.get_template("link.ld.j2").render(ctx),
        "tinyml_board.h": env.get_template("tinyml_board.h.j2").render(ctx),
        "tinyml_config.h": env.get_template("tinyml_config.h.j2").render(ctx),
    }


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    write_bytes_atomic(path, data)


def _sync_dir(src_files: dict[str, bytes], dst: Path) -> None:
    """Make dst hold exactly src_files, touching only what differs."""
    dst.mkdir(parents=True, exist_ok=True)
    for name, data in src_files.items():
        _write_if_changed(dst / name, data)
    for p in dst.iterdir():
        if p.name not in src_files:
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def _check_out_dir(out: Path) -> None:
    if out.exists() and any(out.iterdir()) and not (out / EXPORT_MANIFEST).exists():
        raise TinymlError(
            f"{out} exists and is not a `tinyml export` project; choose another -o or remove it"
        )


def export_project(
    model: str | os.PathLike,
    board: Board,
    out_dir: str | os.PathLike,
    *,
    profile: bool = False,
    opt: str = DEFAULT_OPT,
    name: str | None = None,
    patch: str | int | None = None,
    patch_overhead: float | None = None,
    defines: Sequence[str] = (),
) -> Project:
    """Render a project for `model` (a .tflite, or a `tinyml compile` output directory) on `board`.

    `defines` are extra C macros (NAME or NAME=VALUE) for the whole firmware: TINYML_DEBUG builds the layer
    dumps `tinyml bench --find-layer` reads; a normal build has none.

    The model is compiled into a temporary directory first, so one whose flash or RAM estimate exceeds the
    board's is refused (BudgetExceeded) before anything is written or built.
    """
    model, out = Path(model), Path(out_dir)
    _check_out_dir(out)
    if not model.exists():
        raise TinymlError(f"{model}: no such file")
    for d in defines:
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*(=[A-Za-z0-9_]+)?", d):
            raise TinymlError(f"C macro {d!r}: expected NAME or NAME=VALUE (letters, digits, underscore)")
    with tempfile.TemporaryDirectory(prefix="tinyml-export-") as tmp:
        if model.is_dir():
            compiled = model
        else:
            from tinyml.compile import compile_tflite
            from tinyml.compile.patch import DEFAULT_OVERHEAD, DEFAULT_SETTING

            compiled = Path(tmp) / "model"
            compile_tflite(model, compiled, patch_setting=DEFAULT_SETTING if patch is None else patch,
                           overhead=DEFAULT_OVERHEAD if patch_overhead is None else patch_overhead)
        info = read_model_info(compiled, name or (None if model.is_dir() else model.stem))
        check_budget(estimate_footprint(info, board, profile), board, info.name, info.peak_layer)
        # The manifest first: it is what marks the directory as ours if anything below fails.
        manifest = {
            "tool": "tinyml export",
            "board": board.name,
            "model": info.name,
            "model_sha256": info.sha256,
            "profile": profile,
            "opt": opt,
            **({"defines": list(defines)} if defines else {}),
        }
        _write_if_changed(out / EXPORT_MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
        _sync_dir({p.name: p.read_bytes() for p in compiled.iterdir() if p.is_file()}, out / "model")
    _sync_dir({p.name: p.read_bytes() for p in runtime_sources(board)}, out / "runtime")
    if board.uf2_family:  # the Makefile's UF2, boot2 CRC and flash steps
        _write_if_changed(out / "uf2.py", UF2_TOOL.read_bytes())
    for fname, text in render_files(board, info, profile, opt, defines).items():
        _write_if_changed(out / fname, text.encode())
    _write_if_changed(out / "board.toml", board.path.read_bytes())
    if not (out / STACK_LD).exists():  # provisional: build_project derives the real reservation
        _write_if_changed(out / STACK_LD, stack_ld(PROVISIONAL_STACK_BYTES).encode())
    return Project(dir=out, board=board, model=info, profile=profile)


# ---- building ----


@dataclass(frozen=True)
class BuildResult:
    elf: Path
    footprint: Footprint
    stack: StackReport


def _make(project_dir: Path, *targets: str, timeout: float = 600) -> subprocess.CompletedProcess:
    jobs = str(max(1, min(4, os.cpu_count() or 1)))
    try:
        return subprocess.run(
            ["make", "-C", str(project_dir), f"-j{jobs}", *targets],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except FileNotFoundError:
        raise TinymlError("`make` is not installed (apt-get install make)") from None
    except subprocess.TimeoutExpired:
        raise TinymlError(f"building {project_dir} took more than {timeout:.0f} s") from None


def build_project(project: Project) -> BuildResult:
    """`make build` in the project, then the stack reservation derived from the linked image (relinked when
    it changes); turns a memory overflow at link time into the budget error."""
    if shutil.which("arm-none-eabi-gcc") is None:
        raise TinymlError(
            "arm-none-eabi-gcc not found: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
            "(or run `tinyml doctor`)"
        )
    _link(project)
    report = derive(project.elf, project.dir / "build", project.board.fpu != "none")
    text = stack_ld(report.reserved_bytes).encode()
    if (project.dir / STACK_LD).read_bytes() != text:
        _write_if_changed(project.dir / STACK_LD, text)
        _link(project)
    return BuildResult(elf=project.elf, footprint=image_footprint(project.elf), stack=report)


def _link(project: Project) -> None:
    targets = ["build/firmware.elf", "build/firmware.bin"]
    if project.board.uf2_family:
        targets.append("build/firmware.uf2")
    r = _make(project.dir, *targets)
    if r.returncode != 0:
        log = (r.stdout + r.stderr).strip()
        over = dict(re.findall(r"region `(\w+)' overflowed by (\d+) bytes", log))
        if over:
            sizes = _linker_regions(project.dir / "link.ld")
            flash, ram = sizes.get("FLASH", 0), sizes.get("RAM", 0)
            needs = Footprint(flash_bytes=flash + int(over["FLASH"]) if "FLASH" in over else 0,
                              ram_bytes=ram + int(over["RAM"]) if "RAM" in over else 0, exact=True)
            raise BudgetExceeded(project.model.name, project.board.name, needs, flash, ram)
        tail = "\n".join(log.splitlines()[-25:])
        raise TinymlError(f"firmware build failed in {project.dir} (`make build`):\n{tail}")


def _linker_regions(link_ld: Path) -> dict[str, int]:
    """LENGTH of every MEMORY region of a linker script (what the link was checked against)."""
    text = link_ld.read_text() if link_ld.exists() else ""
    return {
        m.group(1): int(m.group(2), 0)
        for m in re.finditer(r"^\s*(\w+)\s*\([rwx]+\)\s*:.*LENGTH\s*=\s*(\w+)", text, re.M)
    }


def image_footprint(elf: Path) -> Footprint:
    """Flash and RAM of a linked image, from the symbols link.ld defines (and the arena's symbol size)."""
    try:
        out = subprocess.run(
            ["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise TinymlError(f"cannot read {elf} with arm-none-eabi-nm: {e}") from None
    syms = {
        m.group(2): int(m.group(1), 16)
        for m in re.finditer(r"^([0-9a-fA-F]+) (?:[0-9a-fA-F]+ )?[A-Za-z] __tinyml_(\w+)$", out, re.M)
    }
    if "flash_used" not in syms or "ram_used" not in syms:
        raise TinymlError(f"{elf} was not linked with a tinyml linker script (no __tinyml_flash_used)")
    arena = re.search(r"^[0-9a-fA-F]+ ([0-9a-fA-F]+) [bBdD] (?:model_)?arena$", out, re.M)
    return Footprint(flash_bytes=syms["flash_used"], ram_bytes=syms["ram_used"], exact=True,
                     arena_bytes=int(arena.group(1), 16) if arena else 0,
                     stack_bytes=syms.get("stack_bytes", 0))


# ---- flashing a real board ----

FLASH_TIMEOUT = 300.0  # s for all of `make flash`; each tool in it is stopped after TOOL_TIMEOUT (120 s)


def flash_project(project_dir: Path, timeout: float = FLASH_TIMEOUT) -> None:
    """`make flash` in an exported project for a real board, bounded in time; errors carry make's last lines
    (which name the tool and what to check)."""
    from tinyml.tools import run_tool

    r = run_tool(["make", "-C", str(project_dir), "flash"], timeout, f"`make -C {project_dir} flash`")
    if r.returncode != 0:
        tail = " | ".join(ln for ln in r.stdout.strip().splitlines()[-3:] if not ln.startswith("make"))
        raise TinymlError(f"`make -C {project_dir} flash` failed: {tail}")
