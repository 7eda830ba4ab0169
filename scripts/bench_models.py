"""Reproduce the issue-8 targets table with one command: `make bench-models` (or this script).

Both reference models (examples/models) run through `tinyml bench` (the same code as the CLI verb) on the
emulated Cortex-M4 (`cortex-m`, QEMU mps2-an386, -icount: counts are exact instructions), once as shipped
(instructions, flash, RAM, arena, stack peak) and once with per-layer marks (instructions and instructions/MAC
per layer), both with `--cycles`: estimated core cycles from the TRM rules (docs/cycle-model.md), and the
upper bound with the flash wait states of the MLPerf Tiny board (STM32L4R5 at 120 MHz: 5). The
compiler's memory plan gives the arena against its lower bound max over layers of (inputs + output). TFLM's
figures are the ones measured once by hand and recorded here (TFLM built with its own flags on the same
emulated board).

Writes OUT/results.json, OUT/results.csv, OUT/per_layer.csv and OUT/results.md, and prints the Markdown.

    .venv/bin/python scripts/bench_models.py [--models DIR] [--out DIR] [--board cortex-m] [--no-per-layer]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

# TFLM on the emulated Cortex-M4 (FACTS.md): instructions per Invoke(), arena, firmware flash
TFLM: dict[str, dict[str, int]] = {
    "person_detect": {
        "ref_instructions": 95_592_387,
        "cmsis_instructions": 22_928_866,
        "arena_bytes": 82_292,
        "flash_ref": 382_508,
        "flash_cmsis": 397_100,
    },
    "vww_96_int8": {
        "ref_instructions": 100_176_934,
        "cmsis_instructions": 24_102_368,
        "arena_bytes": 100_660,
        "flash_ref": 452_076,
        "flash_cmsis": 466_668,
    },
}
# Published real-silicon cycles per inference, VWW on the STM32L4R5 (Cortex-M4 @ 120 MHz), MLPerf Tiny
PUBLISHED_CYCLES = {"vww_96_int8": {"X-CUBE-AI": 10_670_000, "Plumerai": 11_850_000}}
L4R5_WAIT_STATES = 5
# targets: instructions and flash (issue 8), linked firmware RAM with --patch off (issue 17)
TARGETS: dict[str, dict[str, int | None]] = {
    "person_detect": {"instructions": 11_500_000, "ram": 49_152, "flash": 250_000},
    "vww_96_int8": {"instructions": 12_000_000, "ram": 65_536, "flash": None},
}
DEFAULT_MODELS = Path(__file__).resolve().parent.parent / "examples" / "models"


def run_bench(
    model: Path, board: str, per_layer: bool, json_path: Path, cycles: bool = True
) -> dict[str, Any]:
    """`tinyml bench --model M --board B --random 2 --runs 1 [--per-layer] [--cycles] --json PATH`, in
    process."""
    from tinyml.device import cli

    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    argv = ["--model", str(model), "--board", board, "--random", "2", "--runs", "1", "--json", str(json_path)]
    argv += ["--cycles", "--flash-wait-states", str(L4R5_WAIT_STATES)] if cycles else []
    args = p.parse_args(argv + (["--per-layer"] if per_layer else []))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli.run(args)
    if rc:
        sys.stdout.write(out.getvalue())
        raise SystemExit(f"tinyml bench failed for {model} (exit {rc})")
    return json.loads(json_path.read_text())


def plan(model: Path) -> dict[str, int]:
    """The compiler's memory plan: arena, lower bound (max over layers of inputs + output) and its layer."""
    from tinyml.compile import compile_tflite

    with tempfile.TemporaryDirectory() as d:
        c = compile_tflite(model, Path(d) / "m", "model")
    tensors = c.model.tensors
    in_out = [
        (
            sum(tensors[t].nbytes for t in la.inputs if isinstance(t, int)) + tensors[la.output].nbytes,
            la.index,
        )
        for la in c.layers
    ]
    naive, naive_layer = max(in_out)
    return {
        "arena_bytes": c.plan.arena_bytes,
        # the planner's bound: arena-resident inputs + output + scratch of a layer, an in-place pair counted
        # as its overlapped span; the plain max over layers of (inputs + output) ignores in-place overlap
        "lower_bound_bytes": c.plan.lower_bound,
        "lower_bound_layer": c.plan.lower_bound_layer,
        "max_in_out_bytes": naive,
        "max_in_out_layer": naive_layer,
        "live_peak_bytes": c.plan.live_peak,
    }


def _cycles(b: dict[str, Any]) -> dict[str, Any]:
    """Estimated cycles of one bench JSON: mean (P = 2), the P = 1..3 band, the flash-wait-state bound."""
    est = b.get("est_cycles")
    if not est:
        return {}
    return {
        "est_cycles": round(est["mean"]),
        "est_cycles_p1": round(est["p_band"]["p1"]),
        "est_cycles_p3": round(est["p_band"]["p3"]),
        "est_cycles_flash_ws_bound": round(est["with_flash_wait_states"]["mean"]),
        "cycle_rules": b["cycle_model"]["rules"],
    }


def cycles_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """Estimated cycles beside instructions and the published real-silicon figures."""
    if not any("est_cycles" in r for r in rows):
        return []
    lines = [
        "",
        f"Estimated cycles ({rows[0].get('cycle_rules')} rules, zero wait states, P = 2; band P = 1..3): an "
        "estimate from exact per-instruction counts, not a measurement. Bound: + "
        f"{L4R5_WAIT_STATES} wait states on every data read from flash (STM32L4R5 at 120 MHz). Published: "
        "real STM32L4R5 silicon (MLPerf Tiny).",
        "",
        "| model | instructions | est. cycles | band P = 1..3 | cycles / instruction | with 5 WS (bound) "
        "| published (cycles) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if "est_cycles" not in r:
            continue
        pub = ", ".join(f"{k} {mega(v)}" for k, v in PUBLISHED_CYCLES.get(r["model"], {}).items()) or "-"
        lines.append(
            f"| `{r['model']}` | {mega(r['instructions'])} | **{mega(r['est_cycles'])}** "
            f"| {mega(r['est_cycles_p1'])} .. {mega(r['est_cycles_p3'])} "
            f"| {r['est_cycles'] / r['instructions']:.2f} | {mega(r['est_cycles_flash_ws_bound'])} | {pub} |"
        )
    return lines


def mega(n: float) -> str:
    return f"{n / 1e6:.2f} M"


def verdict(value: int, target: int | None) -> str:
    if target is None:
        return "-"
    return "met" if value <= target else "not met"


def markdown(rows: list[dict[str, Any]], board: str) -> str:
    lines = [
        f"Emulated instruction counts (QEMU `-icount`, board `{board}`; TFLM figures: TFLM built with its own "
        "flags, measured the same way on the same board). RAM = the linked firmware's RAM (.data + .bss + the "
        "stack reservation, from the ELF), broken down into arena (input and output included) + stack + runtime; "
        "TFLM's figure beside it is its arena alone. Arena lower bound: max "
        "over layers of the arena bytes a layer needs (inputs + output + scratch, an in-place input/output "
        "pair as its overlapped span); max(in + out): the same without in-place overlap or scratch.",
        "",
        "| model | TFLM ref | TFLM + CMSIS-NN | tinyml | target | speed-up vs CMSIS-NN | arena (TFLM) "
        "| linked RAM (target) | = arena + stack + runtime | arena lower bound | max(in + out) | flash (TFLM+CMSIS-NN) | flash target "
        "| bit-exact |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        t, g = TFLM[r["model"]], TARGETS[r["model"]]
        ram_t = f"{g['ram']:,} B" if g["ram"] else "-"
        flash_t = f"{g['flash']:,} B ({verdict(r['flash_bytes'], g['flash'])})" if g["flash"] else "-"
        lines.append(
            f"| `{r['model']}` | {mega(t['ref_instructions'])} | {mega(t['cmsis_instructions'])} "
            f"| **{mega(r['instructions'])}** | {mega(g['instructions'] or 0)} "
            f"({verdict(r['instructions'], g['instructions'])}) "
            f"| {t['cmsis_instructions'] / r['instructions']:.2f}x "
            f"| {r['arena_bytes']:,} B ({t['arena_bytes']:,} B) "
            f"| {r['ram_bytes']:,} B ({ram_t}, {verdict(r['ram_bytes'], g['ram'])}) "
            f"| {r['arena_bytes']:,} + {r['stack_bytes']:,} + {r['runtime_bytes']:,} B "
            f"| {r['lower_bound_bytes']:,} B (layer {r['lower_bound_layer']}) "
            f"| {r['max_in_out_bytes']:,} B (layer {r['max_in_out_layer']}) "
            f"| {r['flash_bytes']:,} B ({t['flash_cmsis']:,} B) | {flash_t} "
            f"| {'yes' if r['bit_exact'] else 'NO'} |"
        )
    lines += cycles_markdown(rows)
    for r in rows:
        if not r.get("per_layer"):
            continue
        lines += ["", f"`{r['model']}` per layer (profiling build):", ""]
        lines += [
            "| # | op | kernel | MACs | instructions | instr/MAC | est. cycles | cycles/MAC | % |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        total = sum(la["count"] for la in r["per_layer"]) or 1
        for la in r["per_layer"]:
            pm = f"{la['per_mac']:.2f}" if la["per_mac"] else "-"
            ec = f"{la['est_cycles']:,.0f}" if la.get("est_cycles") is not None else "-"
            cm = f"{la['est_cycles_per_mac']:.2f}" if la.get("est_cycles_per_mac") else "-"
            lines.append(
                f"| {la['index']} | {la['op']} | {la['kernel'] or '-'} | {la['macs']:,} "
                f"| {la['count']:,} | {pm} | {ec} | {cm} | {100 * la['count'] / total:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--models", type=Path, default=DEFAULT_MODELS,
        help="directory of the reference .tflite files (default: the repo's examples/models)",
    )
    ap.add_argument("--out", type=Path, default=Path("runs/bench-models"), help="where the results go")
    ap.add_argument("--board", default="cortex-m")
    ap.add_argument("--no-per-layer", action="store_true", help="skip the per-layer profiling runs")
    ap.add_argument("--no-cycles", action="store_true", help="skip the cycle estimates (no QEMU plugin)")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for name in TFLM:
        model = a.models / f"{name}.tflite"
        b = run_bench(model, a.board, False, a.out / f"{name}.bench.json", not a.no_cycles)
        row: dict[str, Any] = {
            "model": name,
            "board": a.board,
            "instructions": int(b["max"]),
            "bit_exact": bool(b["bit_exact"]),
            "flash_bytes": int(b["flash_bytes"]),
            "stack_peak_bytes": int(b["stack_peak_bytes"]),
            "ram_bytes": int(b["ram_bytes"]),
            "stack_bytes": int(b["stack_bytes"]),
            "runtime_bytes": int(b["ram_bytes"]) - int(b["arena_bytes"]) - int(b["stack_bytes"]),
            **_cycles(b),
            **plan(model),
            **{f"tflm_{k}": v for k, v in TFLM[name].items()},
            **{f"target_{k}": v for k, v in TARGETS[name].items()},
        }
        if not a.no_per_layer:
            pl = run_bench(model, a.board, True, a.out / f"{name}.per_layer.json", not a.no_cycles)
            row["per_layer"] = pl["per_layer"]
        rows.append(row)
    (a.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    scalar = [k for k in rows[0] if k != "per_layer"]
    with open(a.out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=scalar, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    with open(a.out / "per_layer.csv", "w", newline="") as f:
        w = csv.writer(f)
        keys = ("index", "op", "kernel", "macs", "count", "per_mac", "est_cycles", "est_cycles_per_mac")
        w.writerow(["model", "index", "op", "kernel", "macs", "instructions", "per_mac", "est_cycles",
                    "est_cycles_per_mac"])
        for r in rows:
            for la in r.get("per_layer") or ():
                w.writerow([r["model"], *(la.get(k) for k in keys)])
    md = markdown(rows, a.board)
    (a.out / "results.md").write_text(md)
    print(md)
    print(f"written: {a.out}/results.json, results.csv, per_layer.csv, results.md")
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
