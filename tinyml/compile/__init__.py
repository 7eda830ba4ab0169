"""`.tflite` -> C compiler: parse (tflite.py) -> layers (ops.py) -> memory plan (planner.py) -> C (emit.py).

The generated code is bit-exact with the TFLM interpreter; the kernels it copies in live in kernels/.
"""

from __future__ import annotations

import os
from pathlib import Path

from tinyml.compile import emit, ops, patch, planner, tflite, validate
from tinyml.compile.emit import Compiled
from tinyml.compile.patch import DEFAULT_OVERHEAD


def analyze(
    path: str | os.PathLike,
    name: str = "model",
    reference: bool = False,
    patch_setting: str | int | None = "off",
    overhead: float = DEFAULT_OVERHEAD,
) -> Compiled:
    """Parse, check and plan a model without writing anything (raises TinymlError on anything unsupported).

    reference=True uses only the reference kernels (plain loops, exact for any parameters): tests use it to
    check the fast kernels against them. patch_setting: "off", "auto" or a band count (see patch.py)."""
    emit.check_name(name)
    model = tflite.load(path)
    validate.check(model)  # every tensor, buffer and op as TFLM checks them, before anything is built
    layers = ops.build_layers(model, reference)
    plan_off = planner.plan(layers, model)
    planner.check_bounds(layers, plan_off, model)  # the kernels' extents, on the layer-by-layer plan
    plans = {}

    def arena_of(p):  # candidates are compared on quick plans; the chosen one gets the full planner
        if p is None:
            return plan_off.arena_bytes
        key = (p.stage, p.n)
        if key not in plans:
            plans[key] = planner.plan(patch.planning_layers(layers, model, p), model, tries=10)
        return plans[key].arena_bytes

    chosen = patch.choose(layers, model, patch_setting, overhead, arena_of)
    setting = patch.parse_setting(patch_setting)
    unpatched = Compiled(model, tuple(layers), plan_off, name, patch_setting=setting, patch_overhead=overhead)
    if chosen is None:
        return unpatched
    final = planner.plan(patch.planning_layers(layers, model, chosen), model)
    if final.arena_bytes >= plan_off.arena_bytes and setting == "auto":
        return unpatched
    patch.check_plan(layers, model, chosen, final)  # band rows, buffers and the stage's place, as for layers
    return Compiled(model, tuple(layers), final, name, chosen, plan_off, setting, overhead)


def compile_tflite(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    name: str = "model",
    reference: bool = False,
    patch_setting: str | int | None = "off",
    overhead: float = DEFAULT_OVERHEAD,
) -> Compiled:
    """Compile `path` into `out_dir` (replaced atomically) and return what was compiled."""
    c = analyze(path, name, reference, patch_setting, overhead)
    source = Path(path).name
    emit.write_dir(out_dir, emit.render(c, source), emit.manifest(c, source))
    return c
