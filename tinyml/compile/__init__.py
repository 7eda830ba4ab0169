"""`.tflite` -> C compiler: parse (tflite.py) -> layers (ops.py) -> memory plan (planner.py) -> C (emit.py).

The generated code is bit-exact with the TFLM interpreter; the kernels it copies in live in kernels/.
"""

from __future__ import annotations

import os
from pathlib import Path

from tinyml.compile import emit, ops, planner, tflite, validate
from tinyml.compile.emit import Compiled


def analyze(path: str | os.PathLike, name: str = "model", reference: bool = False) -> Compiled:
    """Parse, check and plan a model without writing anything (raises TinymlError on anything unsupported).

    reference=True uses only the reference kernels (plain loops, exact for any parameters): tests use it to
    check the fast kernels against them."""
    emit.check_name(name)
    model = tflite.load(path)
    validate.check(model)  # every tensor, buffer and op as TFLM checks them, before anything is built
    layers = ops.build_layers(model, reference)
    plan = planner.plan(layers, model)
    planner.check_bounds(layers, plan, model)
    return Compiled(model, tuple(layers), plan, name)


def compile_tflite(
    path: str | os.PathLike, out_dir: str | os.PathLike, name: str = "model", reference: bool = False
) -> Compiled:
    """Compile `path` into `out_dir` (replaced atomically) and return what was compiled."""
    c = analyze(path, name, reference)
    source = Path(path).name
    emit.write_dir(out_dir, emit.render(c, source), emit.manifest(c, source))
    return c
