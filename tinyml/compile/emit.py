"""Render a compiled model (layers + memory plan) into a self-contained directory of C sources.

The directory is written atomically: rendered into a temporary sibling, then renamed into place, so a failed
compile never leaves a partial directory and a re-compile replaces the previous output as a whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from tinyml.compile.ops import ConstArray, Layer, Params, Ref, Scratch, shape_str
from tinyml.compile.patch import DEFAULT_OVERHEAD, PatchPlan
from tinyml.compile.patch import report as patch_report
from tinyml.compile.planner import MemoryPlan
from tinyml.compile.tflite import TfliteModel
from tinyml.errors import TinymlError
from tinyml.util import template_env

CTYPE_BYTES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "int32_t": 4, "tinyml_channel_t": 4}  # per value
MARKER = "tinyml_compile.json"  # written into every output dir; also what allows replacing an existing dir
KERNEL_HEADER = "tinyml_kernels.h"
# the matrix engine of the fast convolutions: one file for ARMv6-M (Cortex-M0/M0+), one for the other cores
MAT_ENGINE = ("tinyml_mat_s8", "tinyml_mat_v6m_s8")
KERNEL_DEPS = {
    "conv2d_1x1_s8": MAT_ENGINE,
    "conv2d_im2col_s8": (*MAT_ENGINE, "tinyml_first_s8"),
    "depthwise_conv2d_3x3_s8": ("depthwise_conv2d_3x3_v6m_s8",),
    "conv2d_3x3_1ch_s8": ("conv2d_3x3_1ch_v6m_s8", "tinyml_first_s8"),
}


@dataclass(frozen=True)
class Compiled:
    """Everything known about one compiled model (the CLI, verify and profile read it)."""

    model: TfliteModel
    layers: tuple[Layer, ...]
    plan: MemoryPlan
    name: str
    patch: PatchPlan | None = None  # the leading layers run in row bands (None: layer by layer)
    plan_off: MemoryPlan | None = None  # the plan without patches (for the report), when patched
    patch_setting: str | int = "off"  # what was asked for (auto, off or a band count)
    patch_overhead: float = DEFAULT_OVERHEAD  # auto's budget of extra instructions

    def plan_pos(self, i: int) -> int:
        """Position in the planned layer list of layer position i (the patch stage is one planned layer)."""
        return i - self.patch.stage + 1 if self.patch and i >= self.patch.stage - 1 else i

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def weight_bytes(self) -> int:
        return sum(layer.weight_bytes for layer in self.layers)

    @property
    def const_bytes(self) -> int:
        """Bytes of the const arrays the generated code carries (weights, folded biases, multipliers...)."""
        return sum(
            c.nbytes if c.rows else c.values.size * CTYPE_BYTES[c.ctype]
            for la in self.layers
            for c in la.consts
        )

    @property
    def kernels(self) -> tuple[str, ...]:
        return tuple(sorted({la.kernel for la in self.layers if la.kernel}))


def check_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise TinymlError(f"--name {name!r} is not a C identifier (letters, digits, underscore)")
    reserved = {"tinyml_kernels"} | {s[:-2] for s in kernel_sources()}
    if name in reserved or name.startswith("tinyml_"):
        raise TinymlError(f"--name {name!r} clashes with a kernel file name; choose another")


def kernel_sources() -> list[str]:
    return sorted(
        p.name
        for p in resources.files("tinyml.compile").joinpath("kernels").iterdir()
        if p.name.endswith(".c")
    )



def _c_float(x: float) -> str:
    """A float literal that reads back as exactly the model's float32 value."""
    return f"{float(np.float32(x))!r}f"


def _c_value(v: int | Ref | Scratch | tuple, var: str, scratch: str) -> str:
    if isinstance(v, Ref):
        return f"{var}_{v.name}"
    if isinstance(v, Scratch):
        return scratch
    if isinstance(v, tuple) and v and isinstance(v[0], tuple):
        return _c_struct(v, var, scratch)
    if isinstance(v, tuple):
        return "{" + ", ".join(str(int(x)) for x in v) + "}"
    return str(int(v))


def _c_struct(params: Params, var: str, scratch: str = "0") -> str:
    return "{" + ", ".join(f".{k} = {_c_value(v, var, scratch)}" for k, v in params) + "}"


def _c_struct_lines(params: Params, var: str, scratch: str, width: int = 100) -> str:
    """The layer's params initializer, its top-level fields wrapped to lines of about `width` characters."""
    items = [f".{k} = {_c_value(v, var, scratch)}" for k, v in params]
    lines, cur = [], ""
    for item in items:
        if cur and len(cur) + len(item) + 2 > width:
            lines.append(cur + ",")
            cur = ""
        cur = f"{cur}, {item}" if cur else item
    lines.append(cur + ",")
    return "{\n" + "\n".join("    " + line for line in lines) + "\n}"


def _numbers(values: np.ndarray, per_line: int) -> str:
    if values.ndim == 2:  # a table of structs: one row per line
        return "\n".join("    {" + ", ".join(str(int(v)) for v in row) + "}," for row in values)
    vals = [str(int(v)) for v in values.reshape(-1)]
    return "\n".join("    " + ", ".join(vals[i : i + per_line]) + "," for i in range(0, len(vals), per_line))


def _hex_bytes(data: bytes) -> str:
    h = data.hex()
    lines = []
    for i in range(0, len(data), 16):
        chunk = h[2 * i : 2 * i + 32]
        lines.append("    " + ", ".join("0x" + chunk[j : j + 2] for j in range(0, len(chunk), 2)) + ",")
    return "\n".join(lines)


def render(c: Compiled, source: str) -> dict[str, str]:
    """File name -> contents of the whole output directory."""
    env = template_env("tinyml.compile")
    name, p_up = c.name, c.name.upper()
    model, plan = c.model, c.plan
    t_in, t_out = model.tensors[model.inputs[0]], model.tensors[model.outputs[0]]
    io = {
        "input": {
            "bytes": t_in.nbytes,
            "scale": _c_float(t_in.scale),
            "zero_point": t_in.zero_point,
            "shape": list(t_in.shape),
        },
        "output": {
            "bytes": t_out.nbytes,
            "scale": _c_float(t_out.scale),
            "zero_point": t_out.zero_point,
            "shape": list(t_out.shape),
        },
    }
    layers, arrays = [], []
    stage = c.patch.stage if c.patch else 0
    for i, la in enumerate(c.layers):
        var = f"{name}_l{la.index}"
        out_t = model.tensors[la.output]
        out_expr = plan.expr(la.output, "arena") if i >= stage - 1 else ""
        bands: list[tuple[str, str]] = []
        if i < stage:
            call = "/* in the patch stage below */" if i < stage - 1 else _stage_call(c)
            bands = _band_params(c, i, var)
        elif la.alias:
            if la.index in plan.copies:
                call = f"memcpy({out_expr}, {plan.expr(la.inputs[0], 'arena')}, {out_t.nbytes}u);"
            else:
                call = "/* aliases its input: no code */"
        else:
            args = [f"{var}_{a.name}" if isinstance(a, Ref) else plan.expr(a, "arena") for a in la.inputs]
            call = f"{la.kernel}(&{var}, {', '.join(args)}, {out_expr});"
        layers.append(
            {
                "index": la.index,
                "op": la.op,
                "kernel": la.kernel,
                "macs": la.macs,
                "out_bytes": out_t.nbytes,
                "out_shape": (list(la.out_shape) + [0] * 4)[:4],
                "out_rank": min(4, len(la.out_shape)),
                "params_type": la.params_type,
                "var": var,
                "params": _c_struct_lines(la.params, var, _scratch_expr(c, i))
                if la.params and i >= stage else "",
                "bands": bands,
                "summary": la.summary,
                "call": call,
                "out_expr": out_expr,
            }
        )
        for k, a in enumerate(la.consts):
            arrays.append(_array(a, var, la, k == 0))
    ctx = {
        "name": name,
        "P": p_up,
        "source": source,
        **io,
        "arena_bytes": plan.arena_bytes,
        "lower_bound": plan.lower_bound,
        "input_offset": plan.input_offset,
        "output_offset": plan.output_offset,
        "input_preserved": plan.input_preserved,
        "macs": c.macs,
        "layers": layers,
        "arrays": arrays,
        "weight_bytes": c.const_bytes,
    }
    files = {
        f"{name}.h": env.get_template("model.h.j2").render(ctx),
        f"{name}.c": env.get_template("model.c.j2").render(ctx),
        f"{name}_weights.h": env.get_template("model_weights.h.j2").render(ctx),
        f"{name}_weights.c": env.get_template("model_weights.c.j2").render(ctx),
        f"{name}_tflite.c": env.get_template("model_tflite.c.j2").render(
            name=name, source=source, length=len(model.data), body=_hex_bytes(model.data)
        ),
    }
    kdir = resources.files("tinyml.compile").joinpath("kernels")
    files[KERNEL_HEADER] = kdir.joinpath(KERNEL_HEADER).read_text()
    for src in sorted({d for k in c.kernels for d in (k, *KERNEL_DEPS.get(k, ()))}):
        files[f"{src}.c"] = kdir.joinpath(f"{src}.c").read_text()
    return files


def _scratch_expr(c: Compiled, layer_pos: int) -> str:
    off = c.plan.scratch.get(c.plan_pos(layer_pos))
    return "0" if off is None else f"{c.name}_arena + {off}"


def _stage_regions(c: Compiled) -> tuple[int, int, int]:
    """Arena offsets of the stage's two band buffers and its kernel scratch."""
    off = c.plan.scratch.get(0, 0)  # no scratch at all: a one-layer stage of a reference kernel
    a, b = c.patch.buf_bytes
    return off, off + a, off + a + b


def _band_params(c: Compiled, j: int, var: str) -> list[tuple[str, str]]:
    """(C name, initializer) of layer j's params for every band: its rows in and out, its top padding."""
    la = c.layers[j]
    kscratch = f"{c.name}_arena + {_stage_regions(c)[2]}"
    out = []
    for k, band in enumerate(c.patch.bands):
        bl = band[j]
        rows = {"in_h": bl.in_rows[1] - bl.in_rows[0], "out_h": bl.out_rows[1] - bl.out_rows[0],
                "pad_top": bl.pad_top}
        params = tuple((key, rows.get(key, v)) for key, v in la.params)
        out.append((f"{var}_b{k}", _c_struct_lines(params, var, kscratch)))
    return out


def _stage_call(c: Compiled) -> str:
    """The patch stage: for every band, each stage layer from its input rows into the next buffer."""
    p, model = c.patch, c.model
    bufs = [f"arena + {o}" for o in _stage_regions(c)[:2]]
    lines = []
    for k, band in enumerate(p.bands):
        for j, bl in enumerate(band):
            la = c.layers[j]
            d = dict(la.params)
            if j == 0:
                src = f"{c.plan.expr(model.inputs[0], 'arena')} + {bl.in_rows[0] * d['in_w'] * d['in_c']}"
            else:
                src = bufs[(j - 1) % 2]
            if j == p.stage - 1:
                dst = f"{c.plan.expr(la.output, 'arena')} + {bl.out_rows[0] * d['out_w'] * d['out_c']}"
            else:
                dst = bufs[j % 2]
            consts = ", ".join(f"{c.name}_l{la.index}_{a.name}" for a in la.inputs if isinstance(a, Ref))
            args = ", ".join(x for x in (f"&{c.name}_l{la.index}_b{k}", consts, src, dst) if x)
            lines.append(f"{la.kernel}({args}); /* band {k}: rows {bl.out_rows[0]}-{bl.out_rows[1] - 1} */")
    return "\n    ".join(lines)


def _array(a: ConstArray, var: str, la: Layer, first: bool) -> dict:
    per_line = {"int8_t": 16, "uint8_t": 16, "int16_t": 12}.get(a.ctype, 8)
    return {
        "var": f"{var}_{a.name}",
        "ctype": a.ctype,
        "count": len(a.rows) if a.rows else a.values.shape[0] if a.values.ndim == 2 else a.values.size,
        "comment": a.comment,
        "body": "\n".join(f"    {r}," for r in a.rows) if a.rows else _numbers(a.values, per_line),
        "layer": la.index,
        "layer_header": f"{la.op} {shape_str(la.out_shape)}" if first else "",
    }


def manifest(c: Compiled, source: str) -> dict:
    model = c.model
    return {
        "tool": "tinyml compile",
        "source": source,
        "sha256": hashlib.sha256(model.data).hexdigest(),
        "name": c.name,
        "input_shape": list(model.tensors[model.inputs[0]].shape),
        "output_shape": list(model.tensors[model.outputs[0]].shape),
        "layers": len(c.layers),
        "macs": c.macs,
        "arena_bytes": c.plan.arena_bytes,
        "arena_lower_bound": c.plan.lower_bound,
        "arena_peak_layer": _layer_name(c, c.plan.peak_layer),
        "const_bytes": c.const_bytes,
        "kernels": list(c.kernels),
        "patch": patch_report(c),
        # per layer: what runs it, so the firmware stage can say which layers miss the SIMD kernels
        "layer_kernels": [{"index": la.index, "op": la.op, "kernel": la.kernel, "macs": la.macs}
                          for la in c.layers],
    }


def _layer_name(c: Compiled, pos: int) -> str:
    """The layer at planned position pos (a patch stage is position 0 of a patched plan)."""
    if c.patch is not None:
        from tinyml.compile.patch import stage_name

        if pos == 0:
            return stage_name(list(c.layers), c.patch)
        pos += c.patch.stage - 1
    la = c.layers[pos] if c.layers else None
    return f"layer {la.index} ({la.op} {shape_str(la.out_shape)})" if la else "no layer"


def write_dir(out_dir: str | os.PathLike, files: dict[str, str], meta: dict) -> None:
    """Write all files into a temporary sibling directory, then swap it in for out_dir."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise TinymlError(
            f"{out} exists and is not a `tinyml compile` output; choose another -o or remove it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    old = None
    try:
        for fname, text in files.items():
            (tmp / fname).write_text(text)
        (tmp / MARKER).write_text(json.dumps(meta, indent=2) + "\n")
        os.chmod(tmp, 0o755)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.rmdir(old)
            os.replace(out, old)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists():
            shutil.rmtree(old, ignore_errors=True)
