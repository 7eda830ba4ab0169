"""Worst-case stack of a linked firmware, derived from evidence instead of configured.

Every function's frame comes from GCC's `-fstack-usage` (.su files beside the objects) and, for code without
one (newlib, naked asm, inline asm that pushes), from its disassembly: the sum of every SP decrement in the
function (push, vpush, stmdb sp!, sub sp), an upper bound. The call graph is the ELF's: `bl` targets and
branches to another function's start (tail calls). The worst case is the deepest path from Reset_Handler plus,
for every exception handler, its deepest path and the frame the core stacks on entry (all nested, a bound).

An indirect call (`blx rN`, `bx rN`) is resolved only to the function addresses its own function loads
from its literal pool (e.g. a kernel choosing between two static helpers); a register jump in a function that
loads no function address but takes addresses inside itself (`adr`) is a computed jump within it. Otherwise,
or with recursion, or a dynamically sized frame, the derivation refuses rather than guess.
"""

from __future__ import annotations

import bisect
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tinyml.errors import TinymlError

MARGIN_BYTES = 256  # reserved beyond the derived worst case (stated in every report)
EXC_FRAME_BYTES = 32 + 4  # basic exception frame (8 words) + alignment padding
EXC_FRAME_FPU_BYTES = 104 + 4  # extended frame with the FP context (26 words) + alignment padding
STACK_LD = "stack.ld"  # the project file that carries the reservation into the link

_FUNC = re.compile(r"^([0-9a-f]+) <([^>]+)>:$")
_INSN = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")
_BRANCH = re.compile(r"b(?:eq|ne|cs|cc|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)?(\.[wn])?$")
_TARGET = re.compile(r"^[0-9a-f]+ <([^>+]+)(\+0x[0-9a-f]+)?>$")


@dataclass(frozen=True)
class StackReport:
    worst_bytes: int  # deepest main path + nested exception handlers, bytes
    reserved_bytes: int  # worst_bytes rounded up to 8 + MARGIN_BYTES
    path: tuple[str, ...]  # the deepest main-thread call chain
    handlers: dict[str, int]  # exception handler -> its depth including the stacked frame
    resolved: dict[str, tuple[str, ...]]  # function with an indirect call -> the targets it was resolved to

    def describe(self) -> str:
        chain = " > ".join(self.path)
        isr = ", ".join(f"{k} {v} B" for k, v in sorted(self.handlers.items()))
        return (
            f"stack {self.reserved_bytes:,} B reserved = worst case {self.worst_bytes:,} B "
            f"(-fstack-usage + call graph: {chain}; handlers {isr or 'none'}) + {MARGIN_BYTES} B margin"
        )


def read_su(build_dir: Path) -> dict[str, tuple[int, str]]:
    """function -> (frame bytes, qualifier) from the .su files under build_dir (the larger on a clash)."""
    frames: dict[str, tuple[int, str]] = {}
    for su in sorted(build_dir.rglob("*.su")):
        for line in su.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) != 3:
                continue
            name = parts[0].rsplit(":", 1)[-1]
            size, qual = int(parts[1]), parts[2]
            if name not in frames or frames[name][0] < size:
                frames[name] = (size, qual)
    return frames


def _disassemble(elf: Path) -> str:
    try:
        return subprocess.run(
            ["arm-none-eabi-objdump", "-d", "--no-show-raw-insn", str(elf)],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise TinymlError(f"cannot disassemble {elf} with arm-none-eabi-objdump: {e}") from None


def _sp_bytes(mnem: str, ops: str) -> int | None:
    """Bytes an instruction takes off SP (0 if none; None: by a register amount, not knowable)."""
    regs = re.search(r"\{([^}]*)\}", ops)
    if mnem.startswith("push") or (mnem.startswith("stmdb") and ops.startswith("sp!")):
        return 4 * _count_regs(regs.group(1) if regs else "")
    if mnem.startswith("vpush"):
        body = regs.group(1) if regs else ""
        return (8 if "d" in body else 4) * _count_regs(body)
    if re.match(r"subs?(\.w)?$", mnem) and re.match(r"sp,\s*(sp,\s*)?", ops):
        m = re.match(r"sp,\s*(?:sp,\s*)?#(\d+)", ops)
        return int(m.group(1)) if m else None
    if re.match(r"str(\.w)?$", mnem) and re.search(r"\[sp,\s*#-(\d+)\]!", ops):
        return int(re.search(r"\[sp,\s*#-(\d+)\]!", ops).group(1))
    return 0


def _count_regs(body: str) -> int:
    n = 0
    for part in filter(None, (p.strip() for p in body.split(","))):
        if "-" in part:
            a, b = (int(re.sub(r"\D", "", x)) for x in part.split("-"))
            n += b - a + 1
        else:
            n += 1
    return n


@dataclass
class _Func:
    start: int
    pushes: int = 0
    dynamic: bool = False
    calls: set[str] | None = None
    indirect: bool = False  # a call through a register (blx rN)
    jumps: bool = False  # a jump through a register (bx rN, mov/ldr pc): a tail call, or a computed jump
    local_adr: bool = False  # takes an address inside itself (adr): what a computed jump within it uses
    adr_targets: set[int] | None = None  # addresses its adr instructions take (checked against its extent)
    loaded: set[int] | None = None  # words in the function's literal pool


def parse_elf(elf: Path) -> dict[str, _Func]:
    """Per function of the ELF: its SP decrements, direct calls, indirect calls and literal-pool words."""
    funcs: dict[str, _Func] = {}
    cur: _Func | None = None
    cur_name = ""
    for line in _disassemble(elf).splitlines():
        m = _FUNC.match(line)
        if m:
            cur_name = m.group(2)
            cur = _Func(int(m.group(1), 16), calls=set(), loaded=set(), adr_targets=set())
            funcs[cur_name] = cur
            continue
        m = _INSN.match(line)
        if not m or cur is None:
            continue
        mnem, ops = m.group(2), m.group(3).split("@")[0].strip()
        adr = re.search(r"\badr(?:\.w)?\s+\w+,\s*([0-9a-f]+)\b", line)
        if adr:  # objdump names it after the nearest symbol (maybe an absolute one): the address decides
            cur.adr_targets.add(int(adr.group(1), 16))
        if mnem == ".word":
            cur.loaded.add(int(ops, 16) & ~1)
            continue
        sp = _sp_bytes(mnem, ops)
        if sp is None:
            cur.dynamic = True
        else:
            cur.pushes += sp
        if re.match(r"blx?$", mnem) or _BRANCH.match(mnem):
            t = _TARGET.match(ops)
            if t:
                if mnem in ("bl", "blx") or t.group(1) != cur_name:  # a call, or a tail call elsewhere
                    cur.calls.add(t.group(1))
            elif mnem == "blx":
                cur.indirect = True
        elif (mnem == "bx" and ops != "lr") or (re.match(r"(ldr|mov)(\.w)?$", mnem) and ops[:3] == "pc,"):
            cur.jumps = True
    starts = sorted(f.start for f in funcs.values())
    for f in funcs.values():
        i = bisect.bisect_right(starts, f.start)  # the next function's start ends this one
        end = starts[i] if i < len(starts) else None
        f.local_adr = any(f.start <= a and (end is None or a < end) for a in f.adr_targets)
    return funcs


def derive(elf: Path, build_dir: Path, fpu: bool) -> StackReport:
    """The worst-case stack of `elf` (objects and .su files under build_dir); TinymlError if unknowable."""
    su = read_su(build_dir)
    if not su:
        raise TinymlError(f"no -fstack-usage (.su) files under {build_dir}: rebuild the project")
    funcs = parse_elf(elf)
    by_addr = {f.start: n for n, f in funcs.items()}
    resolved: dict[str, tuple[str, ...]] = {}
    for name, f in funcs.items():
        targets = tuple(sorted(by_addr[a] for a in f.loaded if a in by_addr))
        if f.jumps and not f.indirect and not targets and f.local_adr:
            continue  # a computed jump inside the function (a jump table into its own code): no call
        if f.indirect or f.jumps:
            if not targets:
                raise TinymlError(
                    f"stack: {name} calls through a function pointer whose targets it does not load itself; "
                    "refusing to guess the worst-case stack"
                )
            resolved[name] = targets
            f.calls |= set(targets)

    def frame(name: str) -> int:
        size, qual = su.get(name, (0, "static"))
        if "dynamic" in qual and "bounded" not in qual:
            raise TinymlError(f"stack: {name} has a dynamically sized frame ({qual}); refusing to guess")
        if funcs[name].dynamic and name not in su:
            raise TinymlError(f"stack: {name} moves SP by a register amount; refusing to guess")
        return max(size, funcs[name].pushes)

    memo: dict[str, tuple[int, tuple[str, ...]]] = {}

    def deepest(name: str, chain: tuple[str, ...]) -> tuple[int, tuple[str, ...]]:
        if name in chain:
            raise TinymlError(f"stack: recursion {' > '.join((*chain[chain.index(name):], name))}; "
                              "refusing to guess the worst-case stack")
        if name not in memo:
            best = (0, ())
            for callee in sorted(funcs[name].calls):
                if callee in funcs:
                    best = max(best, deepest(callee, (*chain, name)))
            memo[name] = (frame(name) + best[0], (name, *best[1]))
        return memo[name]

    if "Reset_Handler" not in funcs:
        raise TinymlError(f"stack: {elf} has no Reset_Handler")
    main_bytes, path = deepest("Reset_Handler", ())
    exc = EXC_FRAME_FPU_BYTES if fpu else EXC_FRAME_BYTES
    handlers = {n: deepest(n, ())[0] + exc for n in funcs if n.endswith("_Handler") and n != "Reset_Handler"}
    worst = main_bytes + sum(handlers.values())
    return StackReport(worst, (worst + 7) // 8 * 8 + MARGIN_BYTES, path, handlers, resolved)


def stack_ld(reserved: int) -> str:
    """The linker-script fragment link.ld includes: the stack reservation."""
    return (
        "/* Generated by tinyml after the first link: the worst-case stack derived from -fstack-usage\n"
        " * and the call graph, plus its margin (tinyml/firmware/stack.py). tinyml rebuilds update it. */\n"
        f"__tinyml_stack_bytes = {reserved};\n"
    )
