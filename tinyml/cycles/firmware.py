"""Estimated cycles of the benchmark firmware: where to put the plugin's marks, and what its intervals mean.

Channel 0 spans every model_invoke() call (open at its entry, close at each return address after `bl
model_invoke`): exactly the model's instructions. In a --per-layer build, channel 1 spans each layer (open
after each `bl tinyml_profile_mark` inside model_invoke, close at tinyml_profile_mark's entry), so the marks'
own work is outside. The SysTick wrap handler (the emulated timer; silicon timed by DWT never runs it) is
left out.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tinyml.cycles.model import P_DEFAULT, Estimate, Rules, estimate
from tinyml.cycles.profile import Interval, Profile, Symbols, call_sites, elf_symbols, mean_counts
from tinyml.errors import TinymlError

INVOKE = "model_invoke"
MARK = "tinyml_profile_mark"
SKIP_FUNCTIONS = ("SysTick_Handler",)


def handler_ranges(elf: Path) -> list[tuple[int, int]]:
    """Address ranges of the timer's interrupt handler(s), left out of the estimate."""
    syms = elf_symbols(elf)
    return [syms.range(n) for n in SKIP_FUNCTIONS if n in syms.names]


def firmware_marks(elf: Path, per_layer: bool) -> list[tuple[str, int, int]]:
    """The plugin's open/close marks for the firmware ELF (see the module docstring)."""
    syms = elf_symbols(elf)
    marks = [("open", 0, syms.address(INVOKE))]
    marks += [("close", 0, a) for a in call_sites(elf, INVOKE)]
    if per_layer:
        inside = syms.range(INVOKE)
        marks += [("open", 1, a) for a in call_sites(elf, MARK, within=inside)]
        marks.append(("close", 1, syms.address(MARK)))
    return marks


@dataclass(frozen=True)
class CycleReport:
    """Per timed run: estimated core cycles (P = 2), the P = 1..3 band, the flash-wait-state upper bound."""

    rules: Rules
    runs: tuple[float, ...]  # est. cycles per timed run, same order as the instruction counts
    band: tuple[float, float]  # mean over runs at P = 1 and P = 3
    instructions: tuple[float, ...]  # the plugin's own instruction count per run (cross-check)
    flash_reads: float  # mean data reads from flash per run
    wait_states: int | None  # from the board file (or --flash-wait-states); None: no memory figure
    functions: tuple[tuple[str, float, float], ...]  # (function, est. cycles, instructions), mean per run
    layers: tuple[float, ...] | None  # est. cycles per layer of the profiled run
    listing: str = field(default="", repr=False, compare=False)  # annotated per-address listing (mean run)

    @property
    def mean(self) -> float:
        return sum(self.runs) / len(self.runs)

    def upper_bound(self, cycles: float) -> float | None:
        return None if self.wait_states is None else cycles + self.wait_states * self.flash_reads

    def to_json(self) -> dict:
        stats = {"mean": self.mean, "min": min(self.runs), "max": max(self.runs)}
        doc = {
            **stats,
            "runs": list(self.runs),
            "p_band": {"p1": self.band[0], "p3": self.band[1]},
            "flash_data_reads": self.flash_reads,
            "functions": [{"name": n, "est_cycles": c, "instructions": i} for n, c, i in self.functions],
        }
        if self.wait_states is not None:
            doc["with_flash_wait_states"] = {
                "wait_states": self.wait_states,
                **{k: self.upper_bound(v) for k, v in stats.items()},
                "note": "upper bound: every data read from flash pays the wait states; instruction fetches "
                "assumed served by the flash cache/prefetch",
            }
        return doc

    def model_json(self) -> dict:
        r = self.rules
        return {
            "core": r.core,
            "rules": r.name,
            "source": r.source,
            "p": P_DEFAULT,
            "approximated": list(r.approximated),
            "how": "per-address execution counts from a QEMU TCG plugin x TRM cost rules; zero wait states; "
            "an estimate, not a measurement",
        }


def analyse(
    profile: Profile,
    elf: Path,
    rules: Rules,
    *,
    inputs: int,
    warmup: int,
    runs: int,
    layers: int | None,
    wait_states: int | None,
) -> CycleReport:
    """Split the intervals into runs (per input: warm-up, then timed) and price them."""
    syms = elf_symbols(elf)
    skip = frozenset(pc for pc in profile.insns if syms.function(pc) in SKIP_FUNCTIONS)
    calls = profile.channel(0)
    per_input = warmup + runs if warmup else runs
    expect = inputs * per_input + (1 if layers is not None else 0)
    if len(calls) != expect:
        raise TinymlError(f"cycle profile: {len(calls)} model_invoke calls recorded, expected {expect}")
    timed: list[Interval] = []
    for i in range(inputs):
        group = calls[i * per_input : (i + 1) * per_input]
        timed += group[len(group) - runs :]
    ests = [estimate(profile.insns, iv.counts, rules, skip) for iv in timed]
    mean = estimate(profile.insns, mean_counts(timed), rules, skip)
    layer_cycles = None
    if layers is not None:
        spans = profile.channel(1)
        if len(spans) < layers:
            raise TinymlError(
                f"cycle profile: {len(spans)} layer spans recorded, the model has {layers} layers"
            )
        layer_cycles = tuple(
            estimate(profile.insns, iv.counts, rules, skip).cycles() for iv in spans[-layers:]
        )
    return CycleReport(
        rules=rules,
        runs=tuple(e.cycles() for e in ests),
        band=mean.band,
        instructions=tuple(e.instructions for e in ests),
        flash_reads=mean.flash_reads,
        wait_states=wait_states,
        functions=_by_function(mean, profile, syms),
        listing=_listing(mean, profile, syms),
        layers=layer_cycles,
    )


def _by_function(est: Estimate, profile: Profile, syms: Symbols) -> tuple[tuple[str, float, float], ...]:
    cyc: dict[str, float] = defaultdict(float)
    ins: dict[str, float] = defaultdict(float)
    p = P_DEFAULT if est.rules.taken_p else est.rules.taken_fixed
    for pc, (fixed, taken, count) in est.per_pc.items():
        name = syms.function(pc)
        cyc[name] += fixed + p * taken
        ins[name] += count
    rows = sorted(((n, cyc[n], ins[n]) for n in cyc), key=lambda r: -r[1])
    return tuple(rows)


def _listing(est: Estimate, profile: Profile, syms: Symbols) -> str:
    """Every executed address of a mean run, by function: count, taken branches, est. cycles, disassembly."""
    p = P_DEFAULT if est.rules.taken_p else est.rules.taken_fixed
    lines = [f"# est. cycles per address, mean per run ({est.rules.name}, P = {P_DEFAULT}); columns: "
             "address, executions, taken (executions - fall-throughs), flash data reads, est. cycles, "
             "instruction"]
    current = None
    for pc in sorted(est.per_pc):
        fixed, taken, count = est.per_pc[pc]
        name = syms.function(pc)
        if name != current:
            lines.append(f"\n{name}:")
            current = name
        _, fall, flash = est.counts.get(pc, (0.0, 0.0, 0.0))
        cycles = fixed + p * taken
        lines.append(f"  {pc:08x} {count:12.1f} {count - fall:10.1f} {flash:10.1f} {cycles:12.1f}  "
                     f"{profile.insns[pc].disas}")
    return "\n".join(lines) + "\n"
