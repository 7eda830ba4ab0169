"""What the QEMU plugin wrote (per-address counts, intervals) and where addresses belong in the ELF.

A profile has, per executed instruction address, its bytes, its disassembly and exact counts over the whole
run, plus "intervals": the counts between an open mark and a close mark (one model_invoke() call, one layer).
"""

from __future__ import annotations

import bisect
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tinyml.errors import TinymlError

# per address: executions, fall-throughs (followed by the next address), data reads from flash
Counts = dict[int, tuple[int, int, int]]


@dataclass(frozen=True)
class Insn:
    pc: int
    size: int
    raw: str  # instruction bytes, hex, as in memory
    disas: str


@dataclass(frozen=True)
class Interval:
    channel: int
    open_pc: int
    close_pc: int
    counts: Counts


@dataclass
class Profile:
    insns: dict[int, Insn]
    totals: Counts
    intervals: list[Interval] = field(default_factory=list)

    def channel(self, ch: int) -> list[Interval]:
        return [iv for iv in self.intervals if iv.channel == ch]


def read_profile(path: Path) -> Profile:
    """Parse the plugin's text file; an incomplete file (QEMU killed before exit) is an error naming it."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError as e:
        raise TinymlError(f"no cycle profile at {path}: {e.strerror}") from None
    if not lines or lines[-1] != "END":
        raise TinymlError(f"cycle profile {path} is incomplete (QEMU did not exit normally)")
    insns: dict[int, Insn] = {}
    totals: Counts = {}
    intervals: list[Interval] = []
    cur: Counts | None = None
    head: tuple[int, int, int] = (0, 0, 0)
    for ln in lines[:-1]:
        if ln.startswith("P "):
            _, pc, size, raw, c, f, fl, disas = (ln.split(" ", 7) + [""])[:8]
            a = int(pc, 16)
            insns[a] = Insn(a, int(size), raw, disas.strip())
            totals[a] = (int(c), int(f), int(fl))
        elif ln.startswith("I "):
            _, ch, op, cl = ln.split()
            head, cur = (int(ch), int(op, 16), int(cl, 16)), {}
        elif ln == "E":
            intervals.append(Interval(*head, cur or {}))
            cur = None
        elif cur is not None:
            pc, c, f, fl = ln.split()
            cur[int(pc, 16)] = (int(c), int(f), int(fl))
    return Profile(insns, totals, intervals)


def mean_counts(intervals: list[Interval]) -> Counts:
    """Per-address counts averaged over intervals (floats kept exact as sums / n by the caller's pricing)."""
    acc: dict[int, list[int]] = {}
    for iv in intervals:
        for pc, v in iv.counts.items():
            a = acc.setdefault(pc, [0, 0, 0])
            for i in range(3):
                a[i] += v[i]
    n = max(len(intervals), 1)
    return {pc: (a[0] / n, a[1] / n, a[2] / n) for pc, a in acc.items()}  # type: ignore[misc]


# ---- the ELF: function symbols and call sites ----
@dataclass(frozen=True)
class Symbols:
    starts: list[int]
    ends: list[int]
    names: list[str]

    def function(self, pc: int) -> str:
        i = bisect.bisect_right(self.starts, pc) - 1
        if i >= 0 and pc < self.ends[i]:
            return self.names[i]
        return "?"

    def address(self, name: str) -> int:
        try:
            return self.starts[self.names.index(name)]
        except ValueError:
            raise TinymlError(f"symbol {name} not found in the firmware") from None

    def range(self, name: str) -> tuple[int, int]:
        i = self.names.index(name)
        return self.starts[i], self.ends[i]


def _tool(args: list[str]) -> str:
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise TinymlError(f"{args[0]} not found: apt-get install gcc-arm-none-eabi") from None
    except subprocess.TimeoutExpired:
        raise TinymlError(f"{args[0]} timed out on {args[-1]}") from None
    if r.returncode != 0:
        raise TinymlError(f"{args[0]} failed on {args[-1]}: {r.stderr.strip()[:200]}")
    return r.stdout


def elf_symbols(elf: Path) -> Symbols:
    """Function symbols (Thumb bit cleared) sorted by address, with their sizes."""
    rows = []
    for ln in _tool(["arm-none-eabi-nm", "-S", "-n", "--defined-only", str(elf)]).splitlines():
        parts = ln.split()
        if len(parts) == 4 and parts[2] in "tTwW":
            start = int(parts[0], 16) & ~1
            rows.append((start, start + int(parts[1], 16), parts[3]))
    rows.sort()
    return Symbols([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


def call_sites(elf: Path, callee: str, within: tuple[int, int] | None = None) -> list[int]:
    """Return addresses (the instruction after each `bl callee`), optionally only inside an address range."""
    pat = re.compile(
        r"^\s*([0-9a-f]+):\s+(?:[0-9a-f]{4}\s+){1,2}\s*blx?\s+[0-9a-f]+ <" + re.escape(callee) + ">"
    )
    out = []
    for ln in _tool(["arm-none-eabi-objdump", "-d", str(elf)]).splitlines():
        m = pat.match(ln)
        if m:
            a = int(m.group(1), 16)
            if within is None or within[0] <= a < within[1]:
                out.append(a + 4)
    return out
