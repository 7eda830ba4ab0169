"""Sweep results: results.json (full records), results.csv (flat columns), results.md (table + plots), PNGs.

Columns are lists, not code: a later stage that adds fields (int8 accuracy, flash, RAM, latency) appends to
`CSV_COLUMNS`, `TABLE_COLUMNS` and `PLOTS`, and its numbers appear in every output.
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
# (header, field) of the human table (results.md and the terminal).
TABLE_COLUMNS = [
    ("point", "id"), ("val acc", "val_acc"), ("Δacc pts", "d_acc_pts"), ("params (+BN)", "params_bn_stats"),
    ("params (folded)", "params_folded"), ("nonzero", "nonzero_params"), ("params vs base", "params_ratio"),
    ("MACs", "macs"), ("MACs vs base", "macs_ratio"), ("act peak B", "act_peak_bytes"),
    ("train s", "train_s"),
]
# (x field, x label, file): one accuracy chart each; a chart whose field no row has is skipped.
PLOTS = [
    ("params_folded", "parameters (BN folded; magnitude: nonzero)", "acc_vs_params.png"),
    ("macs", "MACs per inference", "acc_vs_macs.png"),
]
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


def _scalar_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    extra = [k for r in rows for k, v in r.items() if isinstance(v, (str, int, float, bool)) or v is None]
    return list(dict.fromkeys([*CSV_COLUMNS, *extra]))


def table_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for the human table: accuracies as percentages, ratios as changes (-93.7%), the rest as is."""
    def cell(key: str, v: Any) -> Any:
        if key.endswith("acc") and isinstance(v, float):
            return f"{v:.2%}"
        if key.endswith("_ratio") and isinstance(v, (int, float)):
            return f"{(v - 1) * 100:+.1f}%"
        return v

    return [{h: cell(k, r.get(k)) for h, k in TABLE_COLUMNS} for r in rows]


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
    if any(r.get("method") == "magnitude" for r in rows):
        lines += ["Magnitude-pruned points list their nonzero parameters. Unstructured sparsity does not "
                  "shrink a dense int8 flatbuffer or speed up dense kernels: their .tflite size and MACs are "
                  "the base model's.", ""]
    if failed:
        lines += ["Failed points (rerun the sweep to retry them):", ""]
        lines += [f"- `{r['id']}`: {r['error']}" for r in failed] + [""]
    lines += [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def write_results(sweep_dir: str | Path, rows: list[dict[str, Any]], failed: list[dict[str, Any]],
                  settings: dict[str, Any]) -> dict[str, Path]:
    """Write results.{json,csv,md} and the PNG charts; return the paths written."""
    d = Path(sweep_dir)
    written = {"json": d / "results.json", "csv": d / "results.csv", "md": d / "results.md"}
    write_json_atomic(written["json"], {"settings": settings, "points": rows, "failed": failed})
    write_csv_atomic(written["csv"], rows, _scalar_columns(rows))
    plots = []
    for key, label, name in PLOTS:
        title = f"Pruning sweep: accuracy vs {label.split(' (')[0]}"
        if plot_accuracy(rows, key, label, d / name, title=title):
            plots.append(name)
            written[name] = d / name
    write_text_atomic(written["md"], markdown(rows, failed, settings, plots))
    return written


def terminal_table(rows: Sequence[dict[str, Any]]) -> str:
    return format_table(table_rows(rows))
