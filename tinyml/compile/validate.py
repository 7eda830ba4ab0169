"""Check a parsed .tflite before anything is compiled: every tensor, buffer and operator, the way TFLM's
interpreter checks them when it loads a model and prepares its ops, plus what the kernels and the emitted C
assume. A model that passes compiles to C whose every index and sum fits its C type.

Each problem is one line, `FILE: op N (NAME): tensor T: what is wrong` (`FILE: tensor T: ...` for a
tensor no op uses); the first one found is raised as an InvalidModel (a TinymlError: exit code non-zero, no
traceback). Rules mirror TFLM's Prepare functions (micro/kernels/*_common.cc, kernel_util.cc, INT8.md);
where we are stricter than TFLM (zero-sized dimensions, sizes beyond MCU memory) the rule says so.

Bounds that make the kernels' int32 arithmetic overflow-free (see also tinyml_kernels.h):
- every tensor holds at most MAX_TENSOR_BYTES = 2^23 bytes, so any element index, any sum of up to 2^23 int8
  values (MEAN: |S - z*n| <= 255 * 2^23 < 2^31; pools likewise) and any product of two dimensions fits int32;
- convolution geometry fits int16 (the params structs), activation dimensions fit uint16 (the layer table);
- conv / depthwise / FC accumulators wrap modulo 2^32 exactly as TFLM's int32 accumulator does (the reference
  kernels accumulate in uint32); the fast kernels are only chosen when |acc| < 2^30 (ops.Requant.fast).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from tinyml.compile.tflite import TENSOR_TYPES, Operator, Tensor, TfliteModel
from tinyml.errors import TinymlError

MAX_TENSOR_BYTES = 1 << 23  # 8 MiB: more than any microcontroller's RAM or flash
MAX_ACTIVATION_BYTES = 1 << 26  # all activation tensors together (before the planner shares memory)
MAX_DIM = 0xFFFF  # the layer table stores output dimensions as uint16
MAX_GEOMETRY = 0x7FFF  # conv / depthwise geometry is int16 in the params structs
MAX_RANK = 6

SAME, VALID = 0, 1
ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}  # what TFLM's int8 kernels take

# op -> (allowed input counts, builtin options type it must carry (0: none), options required)
OPS: dict[str, tuple[tuple[int, ...], int, bool]] = {
    "CONV_2D": ((2, 3), 1, True),
    "DEPTHWISE_CONV_2D": ((2, 3), 2, True),
    "AVERAGE_POOL_2D": ((1,), 5, True),
    "MAX_POOL_2D": ((1,), 5, True),
    "FULLY_CONNECTED": ((2, 3), 8, False),
    "SOFTMAX": ((1,), 9, True),
    "MEAN": ((2,), 27, False),
    "ADD": ((2,), 11, False),
    "RESHAPE": ((1, 2), 17, False),
    "PAD": ((2,), 22, False),
    "PADV2": ((2, 3), 43, False),
}


class InvalidModel(TinymlError):
    """The model breaks a rule TFLM or the generated code relies on."""


def check(model: TfliteModel) -> None:
    """Raise InvalidModel with the first problem found (one line), or return if the model is valid."""
    for problem in problems(model):
        raise InvalidModel(problem)


def problems(model: TfliteModel) -> Iterator[str]:
    """Every problem, in model order: the file's structure, tensors, then each operator."""
    bad = _structure(model.data)
    if bad:
        yield f"{model.path}: malformed .tflite: {bad}"
        return
    used = set(model.inputs) | set(model.outputs)
    for op in model.operators:
        used |= {i for i in op.inputs + op.outputs if i >= 0}
    owner = _owners(model)
    for t in model.tensors:
        for msg in _tensor(t, t.index in used):
            yield _where(model, owner.get(t.index), t, msg)
    total = sum(model.tensors[i].nbytes for i in used if not model.tensors[i].is_const)
    if total > MAX_ACTIVATION_BYTES:
        yield f"{model.path}: activation tensors need {total:,} bytes in all (limit {MAX_ACTIVATION_BYTES:,})"
    for i in model.inputs + model.outputs:
        if model.tensors[i].is_const:
            yield f"{model.path}: tensor {i}: the model's input/output is a constant"
    for i in set(model.inputs) & set(model.outputs):
        yield f"{model.path}: tensor {i}: the model's output is its input (no op computes it)"
    for op in model.operators:
        for tensor, msg in _op(model, op):
            yield _where(model, op, tensor, msg)


def _structure(data: bytes) -> str:
    """Walk the whole flatbuffer with the TFLite schema's generated reader, as TFLM's Python loader does: a
    table, vector or string anywhere in the file (metadata, signatures, fields we never read) that points
    outside it makes TFLM refuse the model, so we refuse it too. "" when the file is well-formed."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    try:
        schema.ModelT.InitFromPackedBuf(data, 0)
    except Exception as e:  # struct.error, IndexError, UnicodeDecodeError, ...: all mean a corrupt file
        return f"the file's structure is corrupt ({type(e).__name__}: {str(e)[:80]})"
    return ""


def _owners(model: TfliteModel) -> dict[int, Operator]:
    """tensor -> the first op that reads or writes it (errors about a tensor name that op)."""
    owner: dict[int, Operator] = {}
    for op in model.operators:
        for i in op.inputs + op.outputs:
            owner.setdefault(i, op)
    return owner


def _where(model: TfliteModel, op: Operator | None, t: Tensor | None, msg: str) -> str:
    parts = [model.path]
    if op is not None:
        parts.append(f"op {op.index} ({op.op})")
    if t is not None:
        parts.append(f"tensor {t.index}")
    return ": ".join(parts + [msg])


# ---- tensors ----


def _tensor(t: Tensor, used: bool) -> Iterator[str]:
    if len(t.shape) > MAX_RANK:
        yield f"rank {len(t.shape)} (at most {MAX_RANK})"
        return
    np_dtype = TENSOR_TYPES.get(_type_code(t.dtype), ("", None))[1]
    if np_dtype is None:
        if used:
            yield f"type {t.dtype} is not supported"
        return
    if any(d == 0 for d in t.shape):
        yield f"shape {list(t.shape)} has a zero-sized dimension"  # stricter than TFLM: nothing to compute
        return
    if t.nbytes > MAX_TENSOR_BYTES:
        yield f"shape {list(t.shape)} {t.dtype} needs {t.nbytes:,} bytes (limit {MAX_TENSOR_BYTES:,})"
        return
    if t.is_const and len(t.data) != t.nbytes:
        yield f"its buffer holds {len(t.data):,} bytes, shape {list(t.shape)} {t.dtype} needs {t.nbytes:,}"
    if used and not t.is_const and any(d > MAX_DIM for d in t.shape):
        yield f"dimension above {MAX_DIM} in shape {list(t.shape)}"
    if t.quant is not None:
        yield from _quant(t)


def _type_code(name: str) -> int:
    return next((k for k, (n, _) in TENSOR_TYPES.items() if n == name), -1)


def _quant(t: Tensor) -> Iterator[str]:
    q = t.quant
    n = q.scale.size
    if q.zero_point.size != n:
        yield f"{n} quantization scales but {q.zero_point.size} zero points"  # TFLM: not quantized then
        return
    if not np.all(np.isfinite(q.scale)) or np.any(q.scale < 0):
        yield f"quantization scale not finite or negative: {q.scale[:4].tolist()}"
        return
    if n > 1 and t.dtype != "int32":  # int32 biases: their scales are never used (person_detect's say dim 3)
        if not 0 <= q.dim < len(t.shape):
            yield f"per-channel quantized dimension {q.dim} out of range for shape {list(t.shape)}"
            return
        if t.shape[q.dim] != n:
            yield f"{n} scales along dimension {q.dim} of shape {list(t.shape)}"
            return
    if t.dtype == "int8" and (np.any(q.zero_point < -128) or np.any(q.zero_point > 127)):
        yield f"int8 zero point out of range: {q.zero_point[:4].tolist()}"


# ---- operators ----

Problem = tuple[Tensor | None, str]


def _op(model: TfliteModel, op: Operator) -> Iterator[Problem]:
    spec = OPS.get(op.op)
    if spec is None:
        return  # ops.build_layers names the unsupported op
    counts, opt_type, opt_required = spec
    n_in = len(op.inputs)  # an absent optional input is -1 and still counts (TFLM checks the count)
    if n_in not in counts:
        yield None, f"{len(op.inputs)} inputs, expected {' or '.join(map(str, counts))}"
        return
    if len(op.outputs) != 1 or op.outputs[0] < 0:
        yield None, f"{len(op.outputs)} outputs, expected 1"
        return
    for i in op.inputs[: min(counts)]:
        if i < 0:
            yield None, "a required input is absent (-1)"
            return
    if op.options is not None and op.options_type != opt_type:
        yield None, f"builtin options of type {op.options_type}, expected {opt_type} (corrupt operator)"
        return
    if op.options is None and opt_required:
        yield None, "builtin options are missing (TFLM would run it with zero strides/filters)"
        return
    tensors = [model.tensors[i] if i >= 0 else None for i in op.inputs[:n_in]]
    y = model.tensors[op.outputs[0]]
    if op.options is not None and not _options_readable(op):
        yield None, "builtin options table is corrupt"
        return
    check = CHECKS.get(op.op)
    if check is not None:
        yield from check(op, tensors, y)


def _options_readable(op: Operator) -> bool:
    from tinyml.compile.flatbuf import Malformed

    try:
        for i in range(8):
            op.options._field(i)
    except Malformed:
        return False
    return True


def _opt(op: Operator, i: int, fmt: str, default: int | float = 0) -> int | float:
    """Option field i with the schema's default (what TFLM reads when a writer left the field out)."""
    from tinyml.compile.flatbuf import Malformed

    if op.options is None:
        return default
    try:
        return op.options.scalar(i, fmt, default)
    except Malformed:
        return default


def _act(op: Operator, i: int) -> Iterator[Problem]:
    a = int(_opt(op, i, "<b"))
    if a not in ACTIVATIONS:
        yield None, f"fused activation {a} is not supported (supported: NONE, RELU, RELU_N1_TO_1, RELU6)"


def _int8_act(t: Tensor, what: str) -> Iterator[Problem]:
    if t.dtype != "int8":
        return  # ops.py explains float / hybrid models
    if t.quant is None or t.quant.scale.size == 0:
        yield t, f"{what} has no quantization parameters"
    elif t.quant.scale.size != 1:
        yield t, f"{what} has {t.quant.scale.size} scales; activations are quantized per tensor"
    elif not t.quant.scale[0] > 0:
        yield t, f"{what} has quantization scale {t.quant.scale[0]} (must be > 0)"


def _out_size(i: int, k: int, s: int, d: int, padding: int) -> int:
    keff = (k - 1) * d + 1
    return (i + s - 1) // s if padding == SAME else (i + s - keff) // s


def _window(op: Operator, x: Tensor, y: Tensor, k: tuple[int, int], s, d) -> Iterator[Problem]:
    """Strides, dilations, padding and the output size of a 2-D window op (INT8.md §4)."""
    padding = int(_opt(op, 0, "<b"))
    if padding not in (SAME, VALID):
        yield None, f"padding mode {padding} (expected SAME or VALID)"
        return
    for name, v in (("stride", s), ("dilation", d), ("filter size", k)):
        if min(v) < 1:
            yield None, f"{name} {v[0]}x{v[1]} (must be >= 1)"
            return
        if max(v) > MAX_GEOMETRY:
            yield None, f"{name} {v[0]}x{v[1]} does not fit the kernels' int16 geometry"
            return
    for t, what in ((x, "input"), (y, "output")):
        if len(t.shape) != 4:
            yield t, f"{what} has shape {list(t.shape)}, expected 4-D NHWC"
            return
    if x.shape[0] != y.shape[0]:
        yield y, f"output batch {y.shape[0]} differs from input batch {x.shape[0]}"
        return
    expect = [_out_size(x.shape[1 + a], k[a], s[a], d[a], padding) for a in (0, 1)]
    if min(expect) < 1:
        yield y, (f"a {k[0]}x{k[1]} window (dilation {d[0]}x{d[1]}) does not fit the {x.shape[1]}x"
                  f"{x.shape[2]} input with VALID padding")
    elif list(y.shape[1:3]) != expect:
        yield y, f"output {y.shape[1]}x{y.shape[2]}, the geometry gives {expect[0]}x{expect[1]}"


def _filter(w: Tensor | None, rank: int, what: str) -> Iterator[Problem]:
    if w is None:
        return
    if not w.is_const:
        yield w, f"{what} is not a constant"
    elif len(w.shape) != rank:
        yield w, f"{what} has shape {list(w.shape)}, expected {rank}-D"
    elif w.dtype == "int8" and (w.quant is None or w.quant.scale.size == 0):
        yield w, f"{what} has no quantization parameters (TFLM requires affine quantization)"


def _per_channel(w: Tensor, n: int, qdim: int, what: str) -> Iterator[Problem]:
    """TFLM: one scale, or one per output channel along the op's quantized dimension."""
    q = w.quant
    if q is None or q.scale.size in (0, 1):
        return
    if q.scale.size != n or q.dim != qdim:
        yield w, f"{what} has {q.scale.size} scales along dimension {q.dim}; expected 1 or {n} along {qdim}"


def _bias(b: Tensor | None, n: int) -> Iterator[Problem]:
    if b is None:
        return
    if not b.is_const:
        yield b, "bias is not a constant"
    elif b.dtype == "int32" and b.size != n:
        yield b, f"bias has {b.size} values for {n} output channels"


def _weighted(op: Operator, ins: list, y: Tensor, act_field: int, dil_field: int):
    """What CONV_2D and DEPTHWISE_CONV_2D share; returns (x, filter, bias, strides, dilations)."""
    x, w, b = ins[0], ins[1], ins[2] if len(ins) > 2 else None
    yield from _int8_act(x, "input")
    yield from _int8_act(y, "output")
    yield from _filter(w, 4, "filter")
    yield from _act(op, act_field)
    s = (int(_opt(op, 2, "<i")), int(_opt(op, 1, "<i")))
    d = (int(_opt(op, dil_field + 1, "<i", 1)), int(_opt(op, dil_field, "<i", 1)))
    return x, w, b, s, d


def _conv(op: Operator, ins: list, y: Tensor) -> Iterator[Problem]:
    x, w, b, s, d = yield from _weighted(op, ins, y, 3, 4)
    if len(w.shape) != 4:
        return
    yield from _window(op, x, y, (w.shape[1], w.shape[2]), s, d)
    if len(x.shape) == 4 and len(y.shape) == 4:
        if w.shape[0] != y.shape[3]:
            yield w, f"filter has {w.shape[0]} output channels, the output {y.shape[3]}"
        elif x.shape[3] % w.shape[3] or y.shape[3] % (x.shape[3] // w.shape[3]):
            yield w, f"filter depth {w.shape[3]} does not divide input depth {x.shape[3]} into groups"
    yield from _per_channel(w, w.shape[0], 0, "filter")
    yield from _bias(b, w.shape[0])
    yield from _geometry_fits(x, y)


def _geometry_fits(x: Tensor, y: Tensor) -> Iterator[Problem]:
    for t in (x, y):
        if len(t.shape) == 4 and max(t.shape[1:]) > MAX_GEOMETRY:
            yield t, f"shape {list(t.shape)} does not fit the kernels' int16 geometry"


def _depthwise(op: Operator, ins: list, y: Tensor) -> Iterator[Problem]:
    x, w, b, s, d = yield from _weighted(op, ins, y, 4, 5)
    if len(w.shape) != 4:
        return
    if w.shape[0] != 1:
        yield w, f"filter has shape {list(w.shape)}, expected [1, h, w, out channels]"
        return
    yield from _window(op, x, y, (w.shape[1], w.shape[2]), s, d)
    if len(x.shape) != 4 or len(y.shape) != 4:
        return
    ic, oc = x.shape[3], y.shape[3]
    dm = int(_opt(op, 3, "<i"))
    if w.shape[3] != oc:
        yield w, f"filter has {w.shape[3]} channels, the output {oc}"
    elif dm < 1 or ic * dm != oc:
        # TFLM's kernel loops over in_c * depth_multiplier channels: any other figure reads or writes wrong
        yield None, f"depth multiplier {dm} with {ic} input and {oc} output channels (needs in * dm == out)"
    yield from _per_channel(w, w.shape[3], 3, "filter")
    yield from _bias(b, w.shape[3])
    yield from _geometry_fits(x, y)


def _pool(op: Operator, ins: list, y: Tensor) -> Iterator[Problem]:
    x = ins[0]
    yield from _int8_act(x, "input")
    yield from _int8_act(y, "output")
    yield from _act(op, 5)
    s = (int(_opt(op, 2, "<i")), int(_opt(op, 1, "<i")))
    k = (int(_opt(op, 4, "<i")), int(_opt(op, 3, "<i")))
    yield from _window(op, x, y, k, s, (1, 1))
    if len(x.shape) == 4 and len(y.shape) == 4 and x.shape[3] != y.shape[3]:
        yield y, f"output depth {y.shape[3]} differs from input depth {x.shape[3]}"


def _fully_connected(op: Operator, ins: list, y: Tensor) -> Iterator[Problem]:
    x, w, b = ins[0], ins[1], ins[2] if len(ins) > 2 else None
    yield from _int8_act(x, "input")
    yield from _int8_act(y, "output")
    yield from _filter(w, 2, "weights")
    yield from _act(op, 0)
    if len(w.shape) != 2:
        return
    n, depth = w.shape
    if x.size % depth:
        yield x, f"input of {x.size} values is not a multiple of the weights depth {depth}"
    elif y.size != x.size // depth * n:
        yield y, f"output of {y.size} values, expected {x.size // depth}x{n}"
    elif not y.shape or y.shape[-1] != n:
        # TFLM takes its batches from the output's other dimensions: [1, 6, 1] would read 6 input rows
        yield y, f"output shape {list(y.shape)}: its last dimension must be the {n} output channels"
    yield from _per_channel(w, n, 0, "weights")
    yield from _bias(b, n)
    yield from _bias_scale(x, w, b, y)


def _bias_scale(x: Tensor, w: Tensor, b: Tensor | None, y: Tensor) -> Iterator[Problem]:
    """TFLM's FULLY_CONNECTED Prepare: |s_in * s_w - s_bias| / s_out <= 0.02 (s_bias 0 if absent)."""
    if b is None or not (x.scale > 0 and y.scale > 0 and w.quant is not None and w.quant.scale.size):
        return
    s_b = b.scale if b.quant is not None else 0.0
    prod = float(x.scale) * float(w.quant.scale[0])
    if not abs(prod - s_b) / float(y.scale) <= 0.02:
        yield b, f"bias scale {s_b:g} does not match input x weights scale {prod:g} (TFLM requires it)"


def _softmax(op: Operator, ins: list, y: Tensor) -> Iterator[Problem]:
    x = ins[0]
    yield from _int8_act(x, "input")
    yield from _int8_act(y, "output")
    beta = float(_opt(op, 0, "<f", 0.0))
    if not (math.isfinite(beta) and beta > 0):
        yield None, f"beta {beta} (must be finite and > 0)"
    if tuple(x.shape) != tuple(y.shape):
        yield y, f"output shape {list(y.shape)} differs from input shape {list(x.shape)}"


def _mean(op: Operator, ins: list, y: Tensor) -> Iterator[Problem]:
    x, axes = ins
    yield from _int8_act(x, "input")
    yield from _int8_act(y, "output")
    if not axes.is_const or axes.dtype != "int32":
        yield axes, "axes must be a constant int32 tensor"
        return
    a = np.frombuffer(axes.data, np.int32) if len(axes.data) % 4 == 0 else np.zeros(0, np.int32)
    if a.size == 0:
        yield axes, "no axes"
    elif np.any((a < -len(x.shape)) | (a >= len(x.shape))):
        yield axes, f"axes {a.tolist()} out of range for a {len(x.shape)}-D input"


def _add(op: Operator, ins: list, y: Tensor) -> Iterator[Problem]:
    yield from _act(op, 0)
    for t, what in ((ins[0], "input 0"), (ins[1], "input 1"), (y, "output")):
        yield from _int8_act(t, what)
        if len(t.shape) > 4:
            yield t, f"{what} has {len(t.shape)} dimensions (at most 4)"


def _pad(op: Operator, ins: list, y: Tensor) -> Iterator[Problem]:
    x, p = ins[0], ins[1]
    v = ins[2] if len(ins) > 2 else None
    yield from _int8_act(x, "input")
    yield from _int8_act(y, "output")
    if not p.is_const or p.dtype != "int32" or p.size != 2 * len(x.shape) or len(p.data) != 4 * p.size:
        yield p, f"paddings must be a constant int32 [{len(x.shape)}, 2] tensor"
        return
    pads = np.frombuffer(p.data, np.int32).reshape(-1, 2).astype(np.int64)
    if np.any(pads < 0):
        yield p, f"negative paddings {pads.tolist()}"
        return
    expect = [int(d + a + b) for d, (a, b) in zip(x.shape, pads, strict=True)]
    if list(y.shape) != expect:
        yield y, f"output shape {list(y.shape)}, the paddings give {expect}"
    if v is not None and (not v.is_const or v.dtype != "int8" or v.size != 1):
        yield v, "constant_values must be one constant int8 value"
    elif v is not None and (v.quant is None or v.scale != y.scale or v.zero_point != y.zero_point):
        # TFLM's PadPrepare: the fill value is quantized like the output
        yield v, f"constant_values quantization (s={v.scale:g}, z={v.zero_point}) differs from the output's"


def _reshape(op: Operator, ins: list, y: Tensor) -> Iterator[Problem]:
    x = ins[0]
    if x.size != y.size:
        yield y, f"reshape of {x.size} values into {list(y.shape)} ({y.size} values)"


CHECKS = {
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _depthwise,
    "AVERAGE_POOL_2D": _pool,
    "MAX_POOL_2D": _pool,
    "FULLY_CONNECTED": _fully_connected,
    "SOFTMAX": _softmax,
    "MEAN": _mean,
    "ADD": _add,
    "PAD": _pad,
    "PADV2": _pad,
    "RESHAPE": _reshape,
}
