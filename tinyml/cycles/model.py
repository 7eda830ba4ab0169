"""Cycle estimates: exact per-address execution counts x ARM TRM cost rules, one rule table per core.

    est = estimate(profile.insns, counts, rules_for("cortex-m4"))
    est.cycles, est.band, est.per_pc

Everything is linear in the counts: cost(pc) = count x base cost + taken branches x P + (executions reached
sequentially from the previous address) x pair correction. `counts` per address are (executions,
fall-throughs, flash data reads): taken = executions - fall-throughs; "reached sequentially" = the previous
address's fall-throughs. P, the pipeline refill after a taken branch, is 1 to 3 cycles on the M3/M4 (TRM);
estimates use P = 2 and report the P = 1 and P = 3 figures as a band.
docs/cycle-model.md lists the rules and their sources.
These are estimates for an ideal memory system (zero wait states), not measurements.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

P_DEFAULT, P_LOW, P_HIGH = 2, 1, 3
_COND = "eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al"
_REGS = {f"r{i}": i for i in range(16)} | {
    "sb": 9,
    "sl": 10,
    "fp": 11,
    "ip": 12,
    "sp": 13,
    "lr": 14,
    "pc": 15,
}
_BRANCH = re.compile(rf"(blx|bx|bl|b)({_COND})?")
_LOAD = re.compile(rf"ldr(b|h|sb|sh|ex|exb|exh|t|bt|ht|sbt|sht)?({_COND})?")
_STORE = re.compile(rf"str(b|h|t|bt|ht)?({_COND})?")
_STREX = re.compile(rf"strex(b|h)?({_COND})?")
_PAIR = re.compile(rf"(ldrd|strd|ldrexd|strexd)({_COND})?")
_LDM = re.compile(rf"(ldm|ldmia|ldmfd|ldmdb|ldmea|pop)({_COND})?")
_STM = re.compile(rf"(stm|stmia|stmea|stmdb|stmfd|push)({_COND})?")
_LONG_MUL = re.compile(
    rf"(smull|umull|smlal|umlal|umaal|smlald|smlaldx|smlsld|smlsldx|smlalbb|smlalbt|smlaltb|smlaltt)s?({_COND})?"
)
_NO_DEST = (
    "cmp",
    "cmn",
    "tst",
    "teq",
    "it",
    "nop",
    "dmb",
    "dsb",
    "isb",
    "msr",
    "cpsid",
    "cpsie",
    "bkpt",
    "svc",
    "sev",
    "wfi",
    "wfe",
    "yield",
    "udf",
)


@dataclass(frozen=True)
class Op:
    """One decoded instruction: what the rules need to know about it."""

    kind: str  # load, store, store_reg, strex, pair, ldm, stm, branch, call, cbranch, pcwrite, tb, div, isb,
    #            barrier, mul, mla, lmul, dp, vldr, vldm, vmov2, vmac, vdiv, vfp, mve, le, sys
    nregs: int = 0  # register-list length (PC included)
    double: bool = False  # FP load/store of a double register
    writes: frozenset[int] = frozenset()  # core registers written (data processing, loads)
    reads: frozenset[int] = frozenset()
    addr: frozenset[int] = frozenset()  # registers forming a load/store address
    to_pc: bool = False  # loads or writes the PC


def _regs(text: str) -> list[int]:
    return [_REGS[t] for t in re.findall(r"\b(r1[0-5]|r[0-9]|sb|sl|fp|ip|sp|lr|pc)\b", text)]


def _reglist(text: str) -> tuple[int, bool, bool]:
    """(count, has pc, doubles) of the {...} list; ranges like r4-r7 or d8-d15 count every register."""
    m = re.search(r"\{([^}]*)\}", text)
    if not m:
        return 0, False, False
    n, pc, dbl = 0, False, False
    for item in m.group(1).split(","):
        item = item.strip()
        rng = re.fullmatch(r"([a-z]+)(\d+)-[a-z]+(\d+)", item)
        n += int(rng.group(3)) - int(rng.group(2)) + 1 if rng else 1
        pc |= item == "pc"
        dbl |= item.startswith("d")
    return n, pc, dbl


@cache
def decode(disas: str) -> Op:
    """Classify one disassembled Thumb instruction (QEMU's capstone syntax, e.g. `ldr.w r1, [r2, #4]`)."""
    mn, _, ops = disas.strip().lower().partition(" ")
    base = mn.split(".")[0]
    mem = re.search(r"\[([^\]]*)\]", ops)
    addr = frozenset(_regs(mem.group(1))) if mem else frozenset()
    operands = _regs(ops.split("[")[0])
    first = operands[:1]
    if base.startswith("v") or base in ("dls", "dlstp", "wls", "wlstp", "le", "letp", "lctp"):
        return _decode_vector(base, ops, addr, operands)
    if _LOAD.fullmatch(base) and not base.startswith("ldrd"):
        return Op("load", writes=frozenset(first), addr=addr, to_pc=first == [15])
    if _PAIR.fullmatch(base):
        return Op(
            "pair", writes=frozenset(operands[:2]) if base.startswith("ldr") else frozenset(), addr=addr
        )
    if _STREX.fullmatch(base):
        return Op("strex", writes=frozenset(first), addr=addr, reads=frozenset(operands[1:]))
    if _STORE.fullmatch(base):
        reg_offset = mem is not None and len(_regs(mem.group(1))) > 1
        return Op("store_reg" if reg_offset else "store", addr=addr, reads=frozenset(operands))
    if _LDM.fullmatch(base) or _STM.fullmatch(base):
        n, pc, _ = _reglist(ops)
        sp = base in ("push", "pop") or base.startswith(("pop", "push"))
        return Op(
            "ldm" if _LDM.fullmatch(base) else "stm",
            nregs=n,
            to_pc=pc,
            addr=frozenset([13]) if sp else frozenset(first),
        )
    if base in ("cbz", "cbnz"):
        return Op("cbranch", reads=frozenset(first))
    if base in ("tbb", "tbh"):
        return Op("tb", addr=addr)
    m = _BRANCH.fullmatch(base)
    if m:
        cond = m.group(2) is not None and m.group(2) != "al"
        kind = "cbranch" if cond else "call" if m.group(1) in ("bl", "blx") else "branch"
        return Op(kind, reads=frozenset(operands))
    if re.fullmatch(rf"[su]div({_COND})?", base):
        return Op("div", writes=frozenset(first), reads=frozenset(operands[1:]))
    if base == "isb":
        return Op("isb")
    if base in ("dmb", "dsb", "mrs", "msr", "cpsid", "cpsie"):
        return Op("sys", writes=frozenset(first) if base == "mrs" else frozenset())
    if base.startswith(_NO_DEST):
        return Op("dp", reads=frozenset(operands))
    if _LONG_MUL.fullmatch(base):
        return Op("lmul", writes=frozenset(operands[:2]), reads=frozenset(operands))
    if re.fullmatch(rf"(mla|mls)({_COND})?", base):
        return Op("mla", writes=frozenset(first), reads=frozenset(operands[1:]))
    if re.fullmatch(rf"muls?({_COND})?", base):
        return Op("mul", writes=frozenset(first), reads=frozenset(operands[1:]))
    if first == [15]:
        return Op("pcwrite", reads=frozenset(operands[1:]))
    return Op("dp", writes=frozenset(first), reads=frozenset(operands[1:]))


_COPROC = ("ldc", "ldc2", "stc", "stc2", "cdp", "cdp2", "mcr", "mcr2", "mrc", "mrc2", "mcrr", "mcrr2", "mrrc")


def decode_insn(ins: object) -> Op:
    """Like decode, but reads the raw bytes where QEMU's disassembler (capstone) does not know ARMv8.1-M:
    low-overhead loops print as `.byte`, Helium (MVE) loads/stores and data processing as coprocessor ops."""
    disas, raw = ins.disas, ins.raw  # type: ignore[attr-defined]
    mn = disas.split(" ", 1)[0].split(".")[0]
    if mn != "" and mn not in _COPROC and not disas.startswith(".byte"):
        return decode(disas)
    hw1 = int(raw[2:4] + raw[0:2], 16) if len(raw) >= 4 else 0
    if hw1 in (0xF00F, 0xF01F, 0xF02F):  # LE, LETP (and LE with LR): loop end, cached by the M55
        return Op("le", writes=frozenset([14]))
    if hw1 & 0xFF80 == 0xF000 and len(raw) == 8:  # DLS, DLSTP, WLS, WLSTP: set up the loop count
        return Op("dp", writes=frozenset([14]))
    return Op("mve")


def _decode_vector(base: str, ops: str, addr: frozenset[int], operands: list[int]) -> Op:
    if base in ("le", "letp", "lctp", "dls", "dlstp", "wls", "wlstp"):
        return Op("le" if base.startswith("le") else "dp", writes=frozenset([14]))
    if re.search(r"\bq\d", ops):
        return Op("mve", addr=addr, writes=frozenset(r for r in operands[:1]), reads=frozenset(operands))
    if base in ("vldr", "vstr"):
        return Op("vldr", double=bool(re.match(r"\s*d", ops)), addr=addr)
    if base.startswith(("vldm", "vstm", "vpush", "vpop")):
        n, _, dbl = _reglist(ops)
        sp = base.startswith(("vpush", "vpop"))
        return Op("vldm", nregs=n, double=dbl, addr=frozenset([13]) if sp else frozenset(operands[:1]))
    if base == "vmov" and len(operands) == 2:
        return Op("vmov2", writes=frozenset(operands) if ops.lstrip().startswith("r") else frozenset())
    if base in ("vmla", "vmls", "vnmla", "vnmls", "vfma", "vfms", "vfnma", "vfnms"):
        return Op("vmac")
    if base in ("vdiv", "vsqrt"):
        return Op("vdiv")
    # one core register written by a move from the FPU (vmov r0, s1; vmrs): counts as data processing
    dest = ops.split(",")[0].strip()
    return Op("vfp", writes=frozenset([_REGS[dest]]) if dest in _REGS else frozenset())


# ---- rule tables ----
@dataclass(frozen=True)
class Rules:
    """One core's cost table (cycles at zero wait states) and which adjacent-pair rules apply."""

    core: str
    name: str  # the rule set, as reported
    source: str
    base: Mapping[str, int]  # kind -> cycles per execution, before the rules below
    taken_p: bool = True  # taken branches add P (else `taken_fixed` cycles)
    taken_fixed: int = 0
    load_pipelining: bool = True  # M3/M4 3.3.2: a load or store right after a single load saves a cycle
    address_stall: bool = True  # an address register written by the directly preceding data processing: +1
    load_to_pc: int = 3  # refill after a load to the PC
    ldm_extra: int = 1  # LDM/STM = ldm_extra + N
    pop_pc_extra: int = 3  # LDM/POP with PC: + this
    approximated: tuple[str, ...] = ()  # what is not from a TRM table, said in reports
    dual_issue: bool = False  # M7 approximation: see _dual_issue_savings


_M4_BASE = {
    "dp": 1,
    "mul": 1,
    "mla": 1,
    "lmul": 1,
    "load": 2,
    "store": 1,
    "store_reg": 2,
    "strex": 2,
    "pair": 3,
    "branch": 1,
    "call": 1,
    "cbranch": 1,
    "pcwrite": 1,
    "tb": 6,
    "div": 7,
    "isb": 1,
    "sys": 1,
    "vfp": 1,
    "vmov2": 2,
    "vmac": 3,
    "vdiv": 14,
    "vldr": 2,
    "vldm": 1,
    "mve": 2,
    "le": 1,
    "ldm": 1,
    "stm": 1,
}
_TRM_M4 = "Cortex-M4 TRM r0p1 3.3.1 Table 3-1, 3.3.2, FPU instruction table"

RULES: dict[str, Rules] = {
    "cortex-m4": Rules(
        "cortex-m4",
        "cortex-m4/trm-r0p1",
        _TRM_M4,
        _M4_BASE,
        approximated=("SDIV/UDIV 2-12 cycles: a fixed 7", "P = 1-3: 2 (band reported)"),
    ),
    "cortex-m3": Rules(
        "cortex-m3",
        "cortex-m3/trm-r2p1",
        "Cortex-M3 TRM r2p1 18.2 Table 18-1, 18.3 (load/store timings)",
        _M4_BASE | {"mla": 2, "lmul": 5},
        approximated=(
            "SMULL/UMULL 3-5 and SMLAL/UMLAL 4-7 cycles (early termination): a fixed 5",
            "SDIV/UDIV 2-12: a fixed 7",
            "P = 1-3: 2 (band reported)",
        ),
    ),
    "cortex-m0plus": Rules(
        "cortex-m0plus",
        "cortex-m0plus/trm-r0p1",
        "Cortex-M0+ TRM r0p1 3.3 Table 3-1",
        {
            "dp": 1,
            "mul": 1,
            "mla": 1,
            "lmul": 1,
            "load": 2,
            "store": 2,
            "store_reg": 2,
            "strex": 2,
            "pair": 2,
            "branch": 1,
            "call": 2,
            "cbranch": 1,
            "pcwrite": 1,
            "tb": 6,
            "div": 7,
            "isb": 3,
            "sys": 3,
            "vfp": 1,
            "vmov2": 1,
            "vmac": 1,
            "vdiv": 1,
            "vldr": 2,
            "vldm": 1,
            "mve": 1,
            "le": 1,
            "ldm": 1,
            "stm": 1,
        },
        taken_p=False,
        taken_fixed=1,
        load_pipelining=False,
        address_stall=False,
        load_to_pc=0,
        pop_pc_extra=2,
        approximated=("MULS with the fast (single-cycle) multiplier",),
    ),
    "cortex-m33": Rules(
        "cortex-m33",
        "cortex-m33/m4-table",
        _TRM_M4,
        _M4_BASE,
        approximated=(
            "the Cortex-M33 TRM gives no per-instruction timing table: the Cortex-M4 table is applied "
            "(same 3-stage in-order pipeline class)",
            "P = 1-3: 2 (band reported)",
        ),
    ),
    "cortex-m55": Rules(
        "cortex-m55",
        "cortex-m55/m4-table+2-beat-mve",
        _TRM_M4,
        _M4_BASE,
        approximated=(
            "scalar code: the Cortex-M4 table (the M55 TRM gives no per-instruction timing)",
            "Helium (MVE): every vector instruction 2 cycles (4 beats, 2 beats per cycle), no overlap "
            "of consecutive vector instructions credited",
            "LE/LETP: 1 cycle, no refill (loop cache)",
            "P = 1-3: 2 (band reported)",
        ),
    ),
    "cortex-m7": Rules(
        "cortex-m7",
        "cortex-m7/dual-issue-approx",
        "Cortex-M4 table, loads single-cycle, dual-issue pairing",
        _M4_BASE | {"load": 1, "store_reg": 1, "strex": 1, "pair": 2, "div": 7},
        load_pipelining=False,
        address_stall=False,
        dual_issue=True,
        approximated=(
            "the Cortex-M7 TRM gives no per-instruction timing table",
            "loads 1 cycle (64-bit TCM/AXI, forwarding); no load-use or address stalls modelled",
            "dual issue approximated: in straight-line code two adjacent instructions with at most one "
            "load/store, at most one multiply, no branch first and no register dependency issue together "
            "(greedy pairing from each block start)",
            "P = 1-3: 2 (band reported; no branch predictor modelled)",
        ),
    ),
}
ALIASES = {"cortex-m0": "cortex-m0plus", "cortex-m0+": "cortex-m0plus", "cortex-m4f": "cortex-m4"}


def rules_for(mcpu: str) -> Rules:
    """The rule table for a board's `cpu.mcpu` (an M0 board runs the same ARMv6-M stream as an M0+)."""
    from tinyml.errors import TinymlError

    key = ALIASES.get(mcpu, mcpu)
    if key not in RULES:
        raise TinymlError(f"no cycle model for mcpu '{mcpu}' (known: {', '.join(sorted(RULES))})")
    return RULES[key]


# ---- pricing ----
@dataclass
class Estimate:
    """Cycles = fixed + P x taken; per address the same split, for per-function tables."""

    rules: Rules
    fixed: float = 0.0
    taken: float = 0.0  # taken-branch refills, each costing P
    instructions: float = 0.0
    flash_reads: float = 0.0
    per_pc: dict[int, tuple[float, float, float]] = field(default_factory=dict)  # fixed, taken, count
    counts: Mapping[int, tuple] = field(default_factory=dict)  # what was priced

    def cycles(self, p: int = P_DEFAULT) -> float:
        return self.fixed + (p if self.rules.taken_p else self.rules.taken_fixed) * self.taken

    @property
    def band(self) -> tuple[float, float]:
        return self.cycles(P_LOW), self.cycles(P_HIGH)

    def with_wait_states(self, wait_states: int, p: int = P_DEFAULT) -> float:
        """Upper bound: every data read from flash pays the wait states (instruction fetches cached)."""
        return self.cycles(p) + wait_states * self.flash_reads


def estimate(
    insns: Mapping[int, object], counts: Mapping[int, tuple], rules: Rules, skip: frozenset[int] = frozenset()
) -> Estimate:
    """Price per-address counts (executions, fall-throughs, flash reads) with `rules`; `skip` leaves out
    addresses (e.g. the SysTick handler, which silicon timed by DWT never runs)."""
    est = Estimate(rules, counts=counts)
    by_end = {pc + ins.size: pc for pc, ins in insns.items()}  # type: ignore[attr-defined]
    pairs = _dual_issue_savings(insns, counts, by_end) if rules.dual_issue else {}
    for pc, (c, f, fl) in counts.items():
        if pc in skip or not c:
            continue
        op = decode_insn(insns[pc])
        prev_pc = by_end.get(pc)
        prev = decode_insn(insns[prev_pc]) if prev_pc is not None else None
        pc_prev = counts.get(prev_pc, (0, 0, 0)) if prev_pc is not None else (0, 0, 0)
        seq = pc_prev[1] if pc_prev[0] else 0  # a pair needs both inside the counted span
        fixed, taken = _price(op, prev, c, f, seq, rules)
        fixed -= pairs.get(pc, 0)
        est.per_pc[pc] = (fixed, taken, c)
        est.fixed += fixed
        est.taken += taken
        est.instructions += c
        est.flash_reads += fl
    return est


def _price(op: Op, prev: Op | None, c: float, f: float, seq: float, r: Rules) -> tuple[float, float]:
    """(cycles not depending on P, taken-branch refills) of `c` executions of `op`."""
    k = op.kind
    fixed = r.base[k] * c
    taken = 0.0
    if k in ("ldm", "stm"):
        fixed = (r.ldm_extra + op.nregs) * c + (r.pop_pc_extra * c if op.to_pc else 0)
    elif k == "vldm":
        fixed = (1 + op.nregs * (2 if op.double and r.core != "cortex-m0plus" else 1)) * c
    elif k == "vldr" and op.double:
        fixed += c
    elif k in ("branch", "call", "pcwrite", "isb"):
        taken = c
    elif k == "cbranch":
        taken = c - f
    elif k == "load" and op.to_pc:
        fixed += r.load_to_pc * c
    if not r.taken_p:
        fixed += r.taken_fixed * (0 if k == "isb" else taken)
    if prev is not None and seq:
        fixed += _pair_correction(op, prev, seq, r)
    return fixed, (taken if r.taken_p else 0.0)


def _pair_correction(op: Op, prev: Op, seq: float, r: Rules) -> float:
    k = op.kind
    if (
        r.load_pipelining
        and k in ("load", "store_reg", "strex")
        and prev.kind in ("load", "strex")
        and not prev.to_pc
        and not (op.addr & prev.writes)
    ):
        return -seq
    if (
        r.address_stall
        and k in ("load", "store", "store_reg", "strex", "pair", "ldm", "stm", "vldr", "vldm", "tb")
        and prev.kind in ("dp", "mul", "mla", "lmul", "div", "vfp", "vmov2")
        and op.addr & prev.writes
    ):
        return seq
    return 0.0


_DUAL_MEM = ("load", "store", "store_reg", "pair", "strex")
_DUAL_MUL = ("mul", "mla", "lmul")
_DUAL_OK = ("dp", "mul", "mla", "lmul", "load", "store", "store_reg", "branch", "cbranch", "call")


def _dual_issue_savings(
    insns: Mapping[int, object], counts: Mapping[int, tuple], by_end: Mapping[int, int]
) -> dict[int, float]:
    """M7 approximation: greedy pairing of adjacent instructions within straight-line runs; the second of a
    pair costs nothing for the executions that reached it sequentially from the first."""
    save: dict[int, float] = {}
    paired_prev: set[int] = set()  # addresses that are the second of a pair (cannot start another)
    for pc in sorted(counts):
        prev_pc = by_end.get(pc)
        if prev_pc is None or not counts.get(prev_pc, (0,))[0] or prev_pc in paired_prev:
            continue
        c, seq = counts[pc][0], counts[prev_pc][1]
        if not c or seq < c:  # also reached by a branch: a block start, never the second of a pair
            continue
        a, b = decode_insn(insns[prev_pc]), decode_insn(insns[pc])
        if a.kind not in _DUAL_OK or b.kind not in _DUAL_OK or a.kind in ("branch", "cbranch", "call"):
            continue
        if (a.kind in _DUAL_MEM and b.kind in _DUAL_MEM) or (a.kind in _DUAL_MUL and b.kind in _DUAL_MUL):
            continue
        if a.writes & (b.reads | b.addr | b.writes):
            continue
        save[pc] = float(seq)
        paired_prev.add(pc)
    return save
