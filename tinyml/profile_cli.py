"""`tinyml profile MODEL`: per-layer output shapes, parameters, MACs and int8 activation bytes, with totals.

tinyml profile runs/demo/train/best.pt
tinyml profile model.tflite --json profile.json
tinyml profile runs/demo/train/best.pt --per-layer     # every torch module instead of fused ops
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tinyml.cliargs import add_model, add_out
from tinyml.errors import TinymlError


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p, "a tinyml checkpoint (.pt) or a .tflite file", type=Path)
    add_out(p, "PATH.json", "also write rows and totals as JSON", dest="json", aliases=("--json",), type=Path)
    p.add_argument(
        "--per-layer",
        action="store_true",
        help="one row per torch module (pad, conv, bn, relu) instead of per fused op",
    )
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")


def profile_checkpoint(path: Path, per_layer: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from tinyml.models import load_checkpoint
    from tinyml.models.profile import input_shape_of, profile_model

    model, ck = load_checkpoint(path)
    rows, totals = profile_model(model, input_shape_of(ck.model_config), per_leaf=per_layer)
    totals["model_config"] = ck.model_config.to_dict()
    return rows, totals


def _is_tflite(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(8)
    return path.suffix == ".tflite" or head[4:8] == b"TFL3"


def _print_checkpoint_profile(path: Path, rows: list[dict], totals: dict, markdown: bool) -> None:
    from tinyml.models.profile import HEADERS
    from tinyml.report import format_table

    cols = list(HEADERS)
    shown = [{HEADERS[k]: r.get(k) for k in cols} for r in rows]
    shown.append(
        {
            HEADERS["layer"]: "total",
            HEADERS["params_trainable"]: totals["params_trainable"],
            HEADERS["params_bn_stats"]: totals["params_bn_stats"],
            HEADERS["params_folded"]: totals["params_folded"],
            HEADERS["macs"]: totals["macs"],
        }
    )
    cfg = totals.get("model_config", {})
    print(
        f"{path}: {cfg.get('arch', 'model')} alpha {cfg.get('alpha')} input "
        f"{cfg.get('resolution')}x{cfg.get('resolution')}x{cfg.get('channels')}"
        + (f", cut after block {cfg['cut']} + head {cfg['head']}" if cfg.get("cut") is not None else "")
    )
    print(
        "params: trainable = torch parameters; +BN stats = Keras count (adds BN moving mean/var); "
        "BN folded = stored in an int8 model after folding BN into conv. MACs: conv + dense only."
    )
    print(format_table(shown, [HEADERS[k] for k in cols], markdown=markdown))
    print(
        f"totals: {totals['macs']:,} MACs; params {totals['params_trainable']:,} trainable, "
        f"{totals['params_bn_stats']:,} with BN statistics, {totals['params_folded']:,} BN folded; "
        f"activation peak {totals['act_peak_bytes']:,} B int8 (input+output of {totals['act_peak_layer']})"
    )


def _print_generic(path: Path, rows: list[dict], totals: dict, markdown: bool) -> None:
    from tinyml.report import format_table

    print(f"{path}:")
    print(format_table(rows, markdown=markdown))
    print(
        "totals: " + ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in totals.items())
    )


def run(args: argparse.Namespace) -> int:
    from tinyml.util import write_json_atomic

    path: Path = args.model
    if not path.is_file():
        raise TinymlError(f"model {path} not found")
    if _is_tflite(path):
        try:
            from tinyml.compile.profile import profile_tflite
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("tinyml.compile"):
                raise TinymlError(
                    "profiling a .tflite needs the compiler stage (tinyml.compile.profile), "
                    "which is not installed"
                ) from None
            raise
        rows, totals = profile_tflite(path)
        _print_generic(path, rows, totals, args.markdown)
    else:
        rows, totals = profile_checkpoint(path, args.per_layer)
        _print_checkpoint_profile(path, rows, totals, args.markdown)
    if args.json:
        write_json_atomic(args.json, {"model": str(path), "rows": rows, "totals": totals})
        print(f"wrote {args.json}")
    return 0
