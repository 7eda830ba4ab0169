"""Sweep results: results.json (full records), results.csv (flat columns), results.md (table + plots), PNGs.

Columns are lists, not code: a later stage that adds fields appends to the column lists and `PLOTS`, and its
numbers appear in every output. Device columns (int8 accuracy, flash, RAM, latency) and their charts appear
once any point has them, so a host-only sweep keeps its narrower table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tinyml.report import format_table, write_csv_atomic
from tinyml.sweep.plots import plot_accuracy
from tinyml.util import write_json_atomic, write_text_atomic

# Machine-readable columns first in results.csv; any other scalar field of a record follows them.
CSV_COLUMNS = ["id", "method", "series", "cut", "head", "tail", "sparsity", "val_acc", "d_acc_pts",
               "params_bn_stats", "params_folded", "params_trainable", "nonzero_params", "weight_sparsity",
               "params_ratio", "macs", "macs_ratio", "act_peak_bytes", "train_s", "epochs", "best_epoch",
               "checkpoint"]
DEVICE_CSV_COLUMNS = ["int8_acc", "int8_drop_pts", "d_int8_acc_pts", "tflite_bytes", "board", "fits",
                      "flash_bytes", "ram_bytes", "flash_size", "ram_size", "latency_unit", "latency_mean",
                      "latency_p90", "latency_ms", "latency_p90_ms", "est_cycles_mean", "est_cycles_ms",
                      "cycle_rules", "clock_hz", "bit_exact", "tflite"]
# (header, field) of the human table (results.md and the terminal).
TABLE_COLUMNS = [
    ("point", "id"), ("val acc", "val_acc"), ("Δacc pts", "d_acc_pts"), ("params (+BN)", "params_bn_stats"),
    ("params (folded)", "params_folded"), ("nonzero", "nonzero_params"), ("params vs base", "params_ratio"),
    ("MACs", "macs"), ("MACs vs base", "macs_ratio"), ("act peak B", "act_peak_bytes"),
    ("train s", "train_s"),
]
# The table of a device sweep: what the model costs and does on the board. {unit} and {clock} are filled in.
DEVICE_TABLE_COLUMNS = [
    ("point", "id"), ("val acc", "val_acc"), ("int8 acc", "int8_acc"), ("int8 drop pts", "int8_drop_pts"),
    ("Δint8 pts", "d_int8_acc_pts"), ("params", "nonzero_params"), ("MACs", "macs"),
    (".tflite B", "tflite_bytes"), ("flash B", "flash_bytes"), ("RAM B", "ram_bytes"), ("fits", "fits"),
    ("{unit} mean", "latency_mean"), ("{unit} p90", "latency_p90"), ("ms @{clock}", "latency_ms"),
    ("est. cycles", "est_cycles_mean"), ("est. ms", "est_cycles_ms"), ("bit-exact", "bit_exact"),
]
# (x field, x label, file, y field, y label): one accuracy chart each, skipped when no row has both values.
FLOAT_ACC = ("val_acc", "float validation accuracy")
INT8_ACC = ("int8_acc", "int8 validation accuracy (TFLM)")
PLOTS = [
    ("params_folded", "parameters (BN folded; magnitude: nonzero)", "acc_vs_params.png", *FLOAT_ACC),
    ("macs", "MACs per inference", "acc_vs_macs.png", *FLOAT_ACC),
    # latency axes say what the number is (see latency_axis): emulated instructions, or ms on the board
    ("latency_mean", "", "acc_vs_latency.png", *INT8_ACC),
    ("est_cycles_mean", "est. cycles per inference (an estimate, {rules} cost rules)",
     "acc_vs_est_cycles.png", *INT8_ACC),
    ("ram_bytes", "linked firmware RAM (bytes: .data + .bss + stack)", "acc_vs_ram.png", *INT8_ACC),
    ("flash_bytes", "flash of the firmware (bytes)", "acc_vs_flash.png", *INT8_ACC),
]
BUDGETS = {"ram_bytes": ("ram_size", "board RAM"), "flash_bytes": ("flash_size", "board flash")}
METHOD_ORDER = {"base": 0, "depth": 1, "magnitude": 2}


def sort_key(r: dict[str, Any]) -> tuple:
    """Base first, then depth points by cut (heads side by side), then magnitude by sparsity."""
    return (METHOD_ORDER.get(r.get("method"), 9), r.get("cut") or 0, r.get("series") or "",
            r.get("sparsity") or 0)


def with_derived(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add accuracy change (percentage points) and size/compute as a fraction of the base row's."""
    base = next((r for r in rows if r.get("method") == "base"), None)
    out = []
    for r in rows:
        r = dict(r)
        if base and r.get("val_acc") is not None and base.get("val_acc") is not None:
            r["d_acc_pts"] = round((r["val_acc"] - base["val_acc"]) * 100, 2)
        if base and base.get("params_folded") and r.get("nonzero_params") is not None:
            r["params_ratio"] = round(r["nonzero_params"] / base["params_folded"], 4)
        if base and base.get("macs") and r.get("macs") is not None:
            r["macs_ratio"] = round(r["macs"] / base["macs"], 4)
        if base and r.get("int8_acc") is not None and base.get("int8_acc") is not None:
            r["d_int8_acc_pts"] = round((r["int8_acc"] - base["int8_acc"]) * 100, 2)
        out.append(r)
    return out


def collect(sweep_dir: str | Path, settings: dict[str, Any], stages: Sequence[str]) -> tuple[list, list]:
    """(finished rows, failed rows) of every point under SWEEP_DIR/points made with `settings`."""
    done, failed = [], []
    for path in sorted(Path(sweep_dir).glob("points/*/record.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if rec.get("settings") != settings:
            continue
        if rec.get("error"):
            failed.append(rec)
        elif all(s in rec.get("stages_done", ()) for s in stages):
            done.append(rec)
    return with_derived(sorted(done, key=sort_key)), sorted(failed, key=sort_key)


def is_device(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether any point went through the device stages (then the device columns and charts are shown)."""
    return any("tflite_bytes" in r for r in rows)


def _scalar_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    extra = [k for r in rows for k, v in r.items() if isinstance(v, (str, int, float, bool)) or v is None]
    return list(dict.fromkeys([*CSV_COLUMNS, *(DEVICE_CSV_COLUMNS if is_device(rows) else ()), *extra]))


def table_columns(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """(header, field) pairs: the device table names the count unit and the clock of the ms column."""
    if not is_device(rows):
        return TABLE_COLUMNS
    measured = next((r for r in rows if r.get("latency_unit")), {})
    unit = {"instructions": "instr", "cycles": "cycles"}.get(measured.get("latency_unit"), "count")
    clock = f"{measured['clock_hz'] / 1e6:g} MHz" if measured.get("clock_hz") else "clock"
    return [(h.format(unit=unit, clock=clock), k) for h, k in DEVICE_TABLE_COLUMNS]


def table_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for the human table: accuracies as percentages, ratios as changes (-93.7%), the rest as is."""
    def cell(key: str, v: Any) -> Any:
        if key.endswith("acc") and isinstance(v, float):
            return f"{v:.2%}"
        if key.endswith("_ratio") and isinstance(v, (int, float)):
            return f"{(v - 1) * 100:+.1f}%"
        if key in ("latency_mean", "latency_p90", "est_cycles_mean"):
            return None if v is None else round(v)
        return v

    return [{h: cell(k, r.get(k)) for h, k in table_columns(rows)} for r in rows]


def markdown(rows: Sequence[dict[str, Any]], failed: Sequence[dict[str, Any]], settings: dict[str, Any],
             plots: Sequence[str]) -> str:
    lines = [
        "# Pruning sweep",
        "",
        f"Base `{rows[0].get('checkpoint') if rows else '?'}`, data `{settings.get('data')}`, "
        f"{settings.get('epochs')} epochs per point, seed {settings.get('seed')}. Accuracy is float top-1 on "
        "the validation split; params are BN-folded (what an int8 model stores); `Δacc pts` is percentage "
        "points vs the base model.",
        "",
        format_table(table_rows(rows), markdown=True),
        "",
    ]
    if is_device(rows):
        lines += device_notes(rows)
    if any(r.get("method") == "magnitude" for r in rows):
        lines += ["Magnitude-pruned points list their nonzero parameters. Unstructured sparsity does not "
                  "shrink a dense int8 flatbuffer or speed up dense kernels: their .tflite size and MACs are "
                  "the base model's.", ""]
    if failed:
        lines += ["Failed points (rerun the sweep to retry them):", ""]
        lines += [f"- `{r['id']}`: {r['error']}" for r in failed] + [""]
    lines += [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def device_notes(rows: Sequence[dict[str, Any]]) -> list[str]:
    """What the device columns mean, on which board, and which points did not fit or did not match TFLM."""
    m = next((r for r in rows if r.get("latency_unit")), {})
    board = next((r.get("board") for r in rows if r.get("board")), "?")
    unit = m.get("latency_unit", "counts")
    how = ("exact emulated instructions (identical run after run); ms = instructions at the board clock"
           if unit == "instructions" else "core cycles (DWT); ms at the board clock")
    lines = [f"Device columns: int8 model (`.tflite`, accuracy measured in the TFLM interpreter on the same "
             f"validation split; `int8 drop pts` = float - int8, `Δint8 pts` vs the base's int8 accuracy), "
             f"compiled to C and built for board `{board}`: flash and RAM of the linked firmware (RAM = "
             f".data + .bss + the derived stack: the arena with the input and output, runtime, stack), "
             f"latency in {how}. `bit-exact`: every output read "
             "back over serial equals TFLM's byte for byte.", ""]
    rules = next((r.get("cycle_rules") for r in rows if r.get("cycle_rules")), None)
    if rules:
        lines += [f"`est. cycles`: an estimate, not a measurement: exact per-instruction counts (QEMU "
                  f"plugin) x the `{rules}` cost rules (docs/cycle-model.md), zero wait states; `est. ms`: "
                  "est. cycles at the board clock.", ""]
    no_fit = [r for r in rows if r.get("fits") is False]
    if no_fit:
        lines += ["Points that do not fit the board (not built or not run; flash/RAM are what they would "
                  "need):", ""] + [f"- `{r['id']}`: {r.get('fit_error', '')}" for r in no_fit] + [""]
    bad = [r for r in rows if r.get("bit_exact") is False]
    if bad:
        lines += ["**Device output differs from TFLM** on:", ""]
        lines += [f"- `{r['id']}`: {r.get('mismatch')}" for r in bad] + [""]
    return lines


def latency_axis(rows: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """(x key, label) of the latency chart: exact instructions on an emulated board (its "ms" would only be
    instructions at a nominal clock), milliseconds measured in core cycles on a real one."""
    r = next((r for r in rows if r.get("latency_unit")), {})
    board = r.get("board", "the board")
    if r.get("latency_unit") == "instructions":
        return "latency_mean", f"instructions per inference (emulated on {board}, exact)"
    return "latency_ms", f"ms on {board} (DWT cycles at its clock)"


def write_plots(sweep_dir: str | Path, rows: Sequence[dict[str, Any]],
                chosen: str | None = None) -> list[str]:
    """The PNG charts (file names written); `chosen` (a point id) is marked and labelled on each."""
    d = Path(sweep_dir)
    plots = []
    board = next((r.get("board") for r in rows if r.get("board")), None)
    rules = next((r.get("cycle_rules") for r in rows if r.get("cycle_rules")), "TRM").split("/")[0]
    for key, label, name, y_key, y_label in PLOTS:
        if key == "latency_mean":
            key, label = latency_axis(rows)
        label = label.format(rules=rules)
        title = f"Pruning sweep: {y_label.split(' (')[0]} vs {label.split(' (')[0]}"
        if board and key in ("est_cycles_mean", "ram_bytes", "flash_bytes"):
            title += f" on {board}"
        budget = None
        if key in BUDGETS:
            size_key, budget_label = BUDGETS[key]
            size = next((r.get(size_key) for r in rows if r.get(size_key)), None)
            budget = (size, f"{budget_label} ({size:,} B)") if size else None
        if plot_accuracy(rows, key, label, d / name, y_key=y_key, y_label=y_label, title=title,
                         budget=budget, chosen=chosen):
            plots.append(name)
    return plots


def write_results(sweep_dir: str | Path, rows: list[dict[str, Any]], failed: list[dict[str, Any]],
                  settings: dict[str, Any]) -> dict[str, Path]:
    """Write results.{json,csv,md} and the PNG charts; return the paths written."""
    d = Path(sweep_dir)
    written = {"json": d / "results.json", "csv": d / "results.csv", "md": d / "results.md"}
    write_json_atomic(written["json"], {"settings": settings, "points": rows, "failed": failed})
    write_csv_atomic(written["csv"], rows, _scalar_columns(rows))
    plots = write_plots(d, rows)
    written.update({name: d / name for name in plots})
    write_text_atomic(written["md"], markdown(rows, failed, settings, plots))
    return written


def terminal_table(rows: Sequence[dict[str, Any]]) -> str:
    return format_table(table_rows(rows))
