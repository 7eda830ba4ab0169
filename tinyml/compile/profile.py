"""Per-op profile of a .tflite as the compiler sees it: MACs, weight bytes, activation bytes, memory totals.

Rows and totals are plain dicts (JSON-ready) because `tinyml profile` prints and saves them generically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def profile_tflite(
    path: str | os.PathLike, with_tflm: bool = True
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One row per op (index, op, output shape, MACs, weight bytes, activation bytes) and the totals.

    activation_bytes is input(s) + output of the op; totals compare our static arena (layer by layer, and with
    the default `--patch auto`) with TFLM's.
    """
    from tinyml.compile import analyze

    c = analyze(path, patch_setting="auto")
    off = c.plan_off or c.plan
    model = c.model
    rows = []
    for la in c.layers:
        act_in = sum(model.tensors[a].nbytes for a in la.inputs if isinstance(a, int))
        rows.append(
            {
                "index": la.index,
                "op": la.op,
                "kernel": la.kernel or "-",
                "output": list(la.out_shape),
                "macs": la.macs,
                "weight_bytes": la.weight_bytes,
                "activation_bytes": act_in + model.tensors[la.output].nbytes,
            }
        )
    totals: dict[str, Any] = {
        "macs": c.macs,
        "weight_bytes": c.weight_bytes,
        "arena_bytes": off.arena_bytes,
        "arena_lower_bound": off.lower_bound,
        "arena_bytes_patched": c.plan.arena_bytes,  # what `tinyml compile` gives by default (--patch auto)
        "tflm_arena_bytes": None,
        "model_bytes": Path(path).stat().st_size,
    }
    if with_tflm:
        from tinyml.tflm import tflm_arena_bytes

        totals["tflm_arena_bytes"] = tflm_arena_bytes(model.data)
    return rows, totals
