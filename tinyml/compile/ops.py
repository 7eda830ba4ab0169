"""One class per supported TFLite op: each checks its tensors, knows its cost and fills its C kernel's params.

An op becomes a `Layer`: the kernel to call, the const arrays it needs (weights, folded bias, per-channel
multipliers/shifts), the params struct initializer, and its MACs/weight bytes for the profile. The emitter
only renders what a Layer says; the arithmetic decisions (INT8.md) all live here and in quant.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinyml.compile import quant
from tinyml.compile.tflite import Operator, Tensor, TfliteModel
from tinyml.errors import TinymlError

SAME, VALID = 0, 1


@dataclass(frozen=True)
class Ref:
    """A params field that points at one of the layer's const arrays (by its short name)."""

    name: str


@dataclass(frozen=True)
class ConstArray:
    name: str  # short name, e.g. "weights"; emitted as <prefix>_l<i>_<name>
    ctype: str  # "int8_t", "int16_t", "int32_t", or a struct type (values then [rows, fields], or `rows`)
    values: np.ndarray  # flat, or one row per struct
    comment: str = ""
    rows: tuple[str, ...] = ()  # pre-rendered C initializers of nested structs (then values is unused)
    nbytes: int = 0  # bytes, when rows are given


@dataclass(frozen=True)
class Scratch:
    """A params field that points at the layer's scratch bytes in the arena (placed by the planner)."""


Params = tuple[tuple[str, "int | Ref | Scratch | Params"], ...]


@dataclass(frozen=True)
class Layer:
    index: int  # operator index in the .tflite
    op: str  # TFLite op name
    kernel: str  # C function ("" for a RESHAPE that aliases its input)
    params_type: str  # C struct type of the params
    params: Params
    consts: tuple[ConstArray, ...]
    inputs: tuple[int | Ref, ...]  # kernel's data arguments: activation tensor index or const array
    output: int  # output tensor index
    out_shape: tuple[int, ...]
    macs: int
    weight_bytes: (
        int  # bytes of the model's constant tensors this op reads (weights + bias as in the .tflite)
    )
    summary: str  # one line for the generated comment: shapes, kernel geometry, activation, quantization
    alias: bool = False  # RESHAPE: output shares its input's memory when the plan allows
    inplace: dict[int, int] = field(default_factory=dict)  # input position -> min byte gap (see planner)
    scratch_bytes: int = 0  # arena bytes the kernel needs while it runs

    @property
    def sources(self) -> tuple[str, ...]:
        return (f"{self.kernel}.c",) if self.kernel else ()


def shape_str(shape: tuple[int, ...]) -> str:
    dims = list(shape[1:]) if len(shape) > 1 and shape[0] == 1 else list(shape)
    return "x".join(str(d) for d in dims) or "scalar"


class OpContext:
    """Helpers to read one operator's tensors with errors that name the op and its index."""

    def __init__(self, op: Operator, model: TfliteModel):
        self.op = op
        self.model = model
        self.where = f"{model.path}: op {op.index} ({op.op})"

    def fail(self, msg: str) -> TinymlError:
        return TinymlError(f"{self.where}: {msg}")

    def tensor(self, pos: int, optional: bool = False) -> Tensor | None:
        ids = self.op.inputs
        if pos >= len(ids) or ids[pos] < 0:
            if optional:
                return None
            raise self.fail(f"missing input {pos}")
        return self.model.tensors[ids[pos]]

    def act(self, pos: int) -> Tensor:
        t = self.tensor(pos)
        self.check_int8(t, f"input {pos}")
        return t

    def out(self) -> Tensor:
        if len(self.op.outputs) != 1:
            raise self.fail(f"{len(self.op.outputs)} outputs, expected 1")
        t = self.model.tensors[self.op.outputs[0]]
        self.check_int8(t, "output")
        if t.is_const:
            raise self.fail("output tensor is a constant")
        return t

    def check_int8(self, t: Tensor, what: str) -> None:
        if t.dtype != "int8":
            kind = "float or hybrid model" if t.dtype.startswith("float") else "unsupported type"
            raise self.fail(
                f"{what} (tensor {t.index} '{t.name}') is {t.dtype}: only full-int8 models are "
                f"supported ({kind})"
            )
        if t.quant is None:
            raise self.fail(f"{what} (tensor {t.index} '{t.name}') has no quantization parameters")
        if not (np.isfinite(t.scale) and t.scale > 0) or not -128 <= t.zero_point <= 127:
            raise self.fail(
                f"{what} (tensor {t.index} '{t.name}') has invalid quantization "
                f"(scale {t.scale}, zero point {t.zero_point})"
            )

    def const(self, pos: int, dtype: str, what: str, optional: bool = False) -> Tensor | None:
        t = self.tensor(pos, optional)
        if t is None:
            return None
        if not t.is_const:
            raise self.fail(f"{what} (tensor {t.index}) is not a constant; only constant {what} is supported")
        if t.dtype != dtype:
            kind = " (hybrid or float model)" if t.dtype.startswith("float") else ""
            raise self.fail(f"{what} (tensor {t.index}) is {t.dtype}, expected {dtype}{kind}")
        return t

    def opt(self, i: int, fmt: str, default: int | float = 0) -> int | float:
        return self.op.options.scalar(i, fmt, default) if self.op.options is not None else default


def _nhwc(ctx: OpContext, t: Tensor, what: str) -> tuple[int, int, int]:
    if len(t.shape) != 4:
        raise ctx.fail(f"{what} has shape {list(t.shape)}, expected 4-D NHWC")
    if t.shape[0] != 1:
        raise ctx.fail(f"{what} has batch {t.shape[0]}; only batch 1 is supported")
    return t.shape[1], t.shape[2], t.shape[3]


def _padding(i: int, k: int, s: int, d: int, padding: int) -> tuple[int, int]:
    """(output size, leading pad) of one spatial axis, as TFLM's padding.h computes them (INT8.md §4)."""
    keff = (k - 1) * d + 1
    o = (i + s - 1) // s if padding == SAME else (i + s - keff) // s
    total = max(0, (o - 1) * s + keff - i)
    return o, total // 2


def _channel_scales(ctx: OpContext, w: Tensor, n: int, what: str) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        scales = w.quant.scale.astype(np.float64) if w.quant is not None else np.zeros(0)
    if not np.all(np.isfinite(scales) & (scales >= 0)):
        raise ctx.fail(f"{what} has invalid (negative or non-finite) scales")
    if scales.size == 1:
        return np.full(n, scales[0])
    if scales.size != n:
        raise ctx.fail(f"{what} has {scales.size} scales for {n} output channels")
    return scales


@dataclass(frozen=True)
class Requant:
    """Per-output-channel requantization of conv, depthwise and FC, and whether the fast path is exact."""

    table: np.ndarray  # [n, 4] int64 for the reference kernels: folded bias, M, rshift (= -e), 0
    fast_table: np.ndarray | None  # for the fast kernels (radd filled in), None when they would not be exact
    params: Params  # the tinyml_requant_t initializer

    @property
    def fast(self) -> bool:
        """Each channel: |acc| < 2^30 and 1 <= rshift <= 22, or a constant output; the fast path is exact."""
        return self.fast_table is not None


def _requant(
    ctx: OpContext, x: Tensor, w: Tensor, y: Tensor, bias: Tensor | None, w_rows: np.ndarray, act: int
) -> Requant:
    """w_rows: the weights as [n output channels, taps] (taps = everything one output accumulates)."""
    n = w_rows.shape[0]
    s_w = _channel_scales(ctx, w, n, "filter")
    r = float(x.scale) * s_w / float(y.scale)
    mult, shift = quant.quantize_multipliers(r)
    lo, hi = quant.activation_range(act, y.scale, y.zero_point, ctx.where)
    w64 = w_rows.astype(np.int64)
    folded = _folded_bias(ctx, bias, w64.sum(axis=1), x.zero_point, n)
    rshift = -np.array(shift, np.int64)
    mult = np.array(mult, np.int64)
    k = np.clip(rshift, 1, 22)
    radd = (1 << (k - 1)) + y.zero_point * (1 << k)
    reach = 128 * np.abs(w64).sum(axis=1)  # inputs and padding are int8: |acc - bias| <= reach
    ok = (rshift >= 1) & (rshift <= 22) & (np.abs(folded) + reach < 2**30)
    table = np.stack([folded, mult, rshift, np.zeros_like(folded)], axis=1)
    fast_table = np.stack([folded, mult, rshift, radd], axis=1)
    for c in np.flatnonzero(~ok):  # e.g. dead channels (zero weights, tiny scale): maybe a constant output
        ys = [
            int(np.clip(quant.requantize(int(a), int(mult[c]), -int(rshift[c])) + y.zero_point, lo, hi))
            for a in (folded[c] - reach[c], folded[c] + reach[c])
        ]
        if ys[0] == ys[1]:  # requantization is monotonic: constant. The fast path with M = 0 gives radd >> 1
            fast_table[c] = (0, 0, 1, 2 * ys[0] + 1)
            ok[c] = True
    q = (
        ("in_zp", x.zero_point),
        ("out_zp", y.zero_point),
        ("act_min", lo),
        ("act_max", hi),
        ("ch", Ref("ch")),
    )
    return Requant(table, fast_table if np.all(ok) else None, q)


def _channel_array(rq: Requant) -> ConstArray:
    """The reference kernels' per-channel table (tinyml_channel_t)."""
    return ConstArray("ch", "tinyml_channel_t", rq.table, "per output channel: {folded bias, M, rshift, -}")


def _channel_pack(rq: Requant) -> tuple[ConstArray, ConstArray]:
    """The fast kernels' per-channel parameters as kept in flash (tinyml_chpack_t, 9 bytes a channel):
    {2 x folded bias, M} and rshift. The kernels accumulate 2 * acc (doubled inputs or weights), so the bias
    is doubled; they derive radd from rshift and out_zp. A constant channel (M = 0) keeps its radd as bias."""
    assert rq.fast_table is not None
    t = rq.fast_table
    const = t[:, 1] == 0
    bm = np.stack([np.where(const, t[:, 3], 2 * t[:, 0]), t[:, 1]], axis=1)
    return (
        ConstArray(
            "bm", "int32_t", bm.reshape(-1), "per output channel: {2 x folded bias (radd if M = 0), M}"
        ),
        ConstArray("rshift", "uint8_t", t[:, 2], "per output channel: rshift"),
    )


def _pack_params(packed: bool) -> Params:
    return (("bm", Ref("bm") if packed else 0), ("rshift", Ref("rshift") if packed else 0))


def _int16_geometry(ctx: OpContext, geometry: Params) -> Params:
    """Convolution geometry is stored as int16 (flash); dimensions beyond that are refused."""
    for name, v in geometry:
        if not isinstance(v, int) or not -(2**15) <= v < 2**15:
            raise ctx.fail(f"{name} = {v} does not fit the kernels' int16 geometry")
    return geometry


def _folded_bias(ctx: OpContext, bias: Tensor | None, w_sums: np.ndarray, z_in: int, n: int) -> np.ndarray:
    """bias - z_in * sum(w) per channel, wrapped to int32 like TFLM's int32 accumulator (INT8.md §5)."""
    b = bias.array().astype(np.int64).reshape(-1) if bias is not None else np.zeros(n, np.int64)
    if b.size != n:
        raise ctx.fail(f"bias has {b.size} values for {n} channels")
    v = (b - z_in * w_sums.astype(np.int64)) & 0xFFFFFFFF
    return np.where(v >= 2**31, v - 2**32, v)


def _relu_full(rq: Requant) -> bool:
    """The asm engines' TINYML_FULL_RELU mode: full int8 range and out_zp -128 (ReLU's usual quantization)."""
    q = dict(rq.params)
    return (q["act_min"], q["act_max"], q["out_zp"]) == (-128, 127, -128)


def _pair_blocked(w_rows: np.ndarray, depth_pad: int) -> np.ndarray:
    """[n, depth] -> the pointwise engine's layout (tinyml_mat_s8.c): rows zero-padded to depth_pad, then for
    each pair of output channels c0, c1 and group of 4 depth values d0..d3 the 8 bytes c0d0 c1d0 c0d2 c1d2
    c0d1 c1d1 c0d3 c1d3 (SXTB16 of either word gives one channel's (d0, d2) or (d1, d3)); a last odd row
    alone."""
    n, depth = w_rows.shape
    pad = depth_pad - depth
    w = np.concatenate([w_rows, np.zeros((n, pad), w_rows.dtype)], axis=1)
    groups = w.shape[1] // 4
    pairs = w[: n - n % 2].reshape(n // 2, 2, groups, 2, 2).transpose(0, 2, 4, 3, 1).reshape(-1)
    return np.concatenate([pairs, w[n - n % 2 :].reshape(-1)])


def inplace_gap(
    in_hw: tuple[int, int],
    ci: int,
    out_hw: tuple[int, int],
    co: int,
    k: tuple[int, int],
    stride: tuple[int, int],
    pad: tuple[int, int],
    block: int,
) -> int:
    """Least in_offset - out_offset for which a kernel that walks output pixels in order, `block` at a time,
    never overwrites input it still has to read (the windows of its block and of every later pixel)."""
    (ih, iw), (oh, ow) = in_hw, out_hw
    oy, ox = np.divmod(np.arange(oh * ow), ow)
    y0 = np.clip(oy * stride[0] - pad[0], 0, ih - 1)
    x0 = np.clip(ox * stride[1] - pad[1], 0, iw - 1)
    first_read = y0 * iw + x0  # lowest input pixel in each window
    need = np.minimum.accumulate(first_read[::-1])[::-1]  # lowest still needed from pixel p on
    block_start = (np.arange(oh * ow) // block) * block
    need = need[block_start]
    return int(np.max((np.arange(oh * ow) + 1) * co - need * ci))


def _quant_desc(x: Tensor, w: Tensor | None, y: Tensor) -> str:
    per = ""
    if w is not None and w.quant is not None:
        per = ", per-channel" if w.quant.scale.size > 1 else ", per-tensor"
    return f"in s={x.scale:.6g} z={x.zero_point}, out s={y.scale:.6g} z={y.zero_point}{per}"


def _act_name(act: int) -> str:
    return "" if act == 0 else f", {quant.ACTIVATIONS.get(act, act)}"


def _geometry(kh, kw, sh, sw, dh, dw, padding) -> str:
    g = f"{kh}x{kw} s{sh}" if sh == sw else f"{kh}x{kw} s{sh}x{sw}"
    return g + (f" d{dh}" if dh > 1 or dw > 1 else "") + (" SAME" if padding == SAME else " VALID")


@dataclass(frozen=True)
class ConvSpec:
    """A convolution after parsing: depthwise with one input channel is handled as a conv (CONV_2D form)."""

    x: Tensor
    y: Tensor
    w_rows: np.ndarray  # [out_c, k_h * k_w * filter_c] in OHWI order
    k: tuple[int, int]
    stride: tuple[int, int]
    dil: tuple[int, int]
    pad: tuple[int, int]
    filter_c: int


def _first_scratch(oc: int, k: int, blocks: int) -> int:
    """Scratch bytes of the first-layer engine (tinyml_first_s8.c) after the channel table: a record per pair
    of channels (TINYML_FIRST_REC: 2 biases, k weight words of each channel, 6 requantization parameters),
    `blocks` blocks of 3 patches widened into k words (C1_BLOCKS, RGB_BLOCKS in the kernels), a last block's
    3 * oc output bytes."""
    return oc // 2 * 4 * (8 + 2 * k) + blocks * 3 * k * 4 + (3 * oc + 3) // 4 * 4


def _conv_layer(
    ctx: OpContext, spec: ConvSpec, rq: Requant, reference: bool, summary: str, macs: int, weight_bytes: int
) -> Layer:
    x, y = spec.x, spec.y
    ih, iw, ic = x.shape[1:]
    oh, ow, oc = y.shape[1:]
    (kh, kw), (sh, sw), (dh, dw), (pt, pl) = spec.k, spec.stride, spec.dil, spec.pad
    geometry = (
        ("in_h", ih),
        ("in_w", iw),
        ("in_c", ic),
        ("out_h", oh),
        ("out_w", ow),
        ("out_c", oc),
        ("k_h", kh),
        ("k_w", kw),
        ("filter_c", spec.filter_c),
        ("stride_h", sh),
        ("stride_w", sw),
        ("dil_h", dh),
        ("dil_w", dw),
        ("pad_top", pt),
        ("pad_left", pl),
    )
    fast = rq.fast and not reference and spec.filter_c == ic
    if fast and (ic, kh, kw, dh, dw) != (1, 3, 3, 1, 1) and int(spec.w_rows.min(initial=0)) == -128:
        fast = False  # the ARMv6-M engine (tinyml_mat_v6m_s8.c) sums two products per 16-bit lane: |w| <= 127
    weights16 = None
    dsp_block = thin_scratch = 0  # blocks of pixels the DSP cores' thin kernel takes, and its scratch
    quad_block = 0  # blocks of 4 pixels the DSP cores' deep pointwise kernel takes (tinyml_mat4_run_s8)
    if fast and ic == 1 and (kh, kw, dh, dw) == (3, 3, 1, 1):
        kernel, depth, scratch, block = "conv2d_3x3_1ch_s8", 0, 0, 1
        if oc % 2 == 0:  # DSP cores: tinyml_first_s8.c's records, 16 blocks of 3 widened patches, a last
            # block (the in-place gap stays per pixel: a chunk's windows are all in scratch before it writes)
            scratch = _first_scratch(oc, 5, 16)
        rows = spec.w_rows.reshape(oc, 3, 3).astype(np.int64) * 2  # doubled: the kernel accumulates 2 * acc
        pairs = np.stack([rows[:, :, 0], rows[:, :, 2], rows[:, :, 1], np.zeros_like(rows[:, :, 0])], axis=2)
        weights16 = ConstArray(
            "weights16", "int16_t", pairs.reshape(-1), f"[{oc}][3 rows][(w0, w2), (w1, 0)] int16, doubled"
        )
    elif fast and kh == kw == 1 and ic % 4 == 0:
        kernel, depth = "conv2d_1x1_s8", ic
        # blocks of three pixels (tinyml_mat3_s8) where the kernel takes them, else two (tinyml_mat2_s8)
        block = 3 if ic % 8 == 0 and oc % 2 == 0 else 2
        scratch = 2 * block * ic
        if block == 3 and (sh, sw) == (1, 1) and ic <= 128 and _relu_full(rq):
            quad_block = 4  # DSP cores: blocks of four first, widened on the kernel's stack
        if ic == 8 and (sh, sw) == (1, 1) and oc % 8 == 0 and 64 % oc == 0 and _relu_full(rq):
            # DSP cores first run blocks of 128 / oc pixels (tinyml_thin_run_s8) on 32 B channel records, in
            # the scratch the channel table takes after them
            dsp_block, thin_scratch = 128 // oc, 32 * oc
    elif fast:
        # three patches at a time (tinyml_mat3_s8: the patch padded to a multiple of 8, or of 4 where the
        # requantization is TINYML_FULL_RELU: its asm engine takes any number of groups of 4) when out_c is
        # even
        q = dict(rq.params)
        relu_full = (q["act_min"], q["act_max"], q["out_zp"]) == (-128, 127, -128)
        block = 3 if oc % 2 == 0 else 2
        align = 8 if block == 3 and not relu_full else 4
        kernel, depth = "conv2d_im2col_s8", (kh * kw * ic + align - 1) // align * align
        scratch = 9 * depth if block == 3 else 6 * depth
        if (kh, kw, ic, dh, dw) == (3, 3, 3, 1, 1) and oc % 2 == 0:
            # DSP cores, 3x3 RGB: tinyml_first_s8.c's records, 16 blocks of 3 widened patches, a last block
            scratch = max(scratch, _first_scratch(oc, 14, 16))
    if fast:
        scratch = max(scratch + 16 * oc, thin_scratch)  # the channel table, unpacked from flash at the start
    else:
        kernel, depth, scratch, block = "conv2d_s8", 0, 0, 1
    if weights16 is not None:
        weights = weights16
    elif depth:
        weights = ConstArray(
            "weights",
            "int8_t",
            _pair_blocked(spec.w_rows, depth),
            f"[{oc}][{kh}][{kw}][{ic}] OHWI, pairs of output channels interleaved (c0d0 c1d0 c0d2 c1d2 ...)",
        )
    else:
        weights = ConstArray(
            "weights", "int8_t", spec.w_rows.reshape(-1), f"[{oc}][{kh}][{kw}][{spec.filter_c}] OHWI"
        )
    refs = (("weights", 0), ("weights16", Ref("weights16"))) if weights16 else (("weights", Ref("weights")),)
    params_q = tuple((k, 0 if k == "ch" else v) for k, v in rq.params) if fast else rq.params
    params = (
        *_int16_geometry(ctx, geometry),
        *refs,
        ("q", params_q),
        ("pack", _pack_params(fast)),
        ("scratch", Scratch() if scratch else 0),
    )
    gap = (
        max(
            inplace_gap((ih, iw), ic, (oh, ow), oc, spec.k, spec.stride, spec.pad, b)
            for b in {block, dsp_block or block, quad_block or block}
        )
        if dh == dw == 1
        else None
    )
    chan = _channel_pack(rq) if fast else (_channel_array(rq),)
    return Layer(
        ctx.op.index,
        ctx.op.op,
        kernel,
        "conv2d_params_t",
        params,
        (weights, *chan),
        (x.index,),
        y.index,
        y.shape,
        macs,
        weight_bytes,
        summary,
        scratch_bytes=scratch,
        inplace={} if gap is None else {0: gap},
    )


def conv2d(ctx: OpContext, reference: bool = False) -> Layer:
    x, y = ctx.act(0), ctx.out()
    w = ctx.const(1, "int8", "filter")
    bias = ctx.const(2, "int32", "bias", optional=True)
    ih, iw, ic = _nhwc(ctx, x, "input")
    oh, ow, oc = _nhwc(ctx, y, "output")
    if len(w.shape) != 4 or w.shape[0] != oc:
        raise ctx.fail(f"filter shape {list(w.shape)} does not match {oc} output channels")
    _, kh, kw, fc = w.shape
    if fc == 0 or ic % fc or oc % (ic // fc):
        raise ctx.fail(f"filter depth {fc} does not divide input depth {ic} into groups")
    padding, sw, sh = int(ctx.opt(0, "<b")), int(ctx.opt(1, "<i")), int(ctx.opt(2, "<i"))
    act, dw, dh = int(ctx.opt(3, "<b")), int(ctx.opt(4, "<i", 1)), int(ctx.opt(5, "<i", 1))
    if min(sh, sw, dh, dw) < 1:
        raise ctx.fail(f"invalid strides {sh}x{sw} or dilations {dh}x{dw}")
    (eh, pt), (ew, pl) = _padding(ih, kh, sh, dh, padding), _padding(iw, kw, sw, dw, padding)
    if (eh, ew) != (oh, ow):
        raise ctx.fail(f"output {oh}x{ow} does not match the geometry (expected {eh}x{ew})")
    w_rows = w.array().reshape(oc, -1)
    rq = _requant(ctx, x, w, y, bias, w_rows, act)
    summary = (
        f"{shape_str(x.shape)} -> {shape_str(y.shape)}, {_geometry(kh, kw, sh, sw, dh, dw, padding)}"
        f"{_act_name(act)}; {_quant_desc(x, w, y)}"
    )
    spec = ConvSpec(x, y, w_rows, (kh, kw), (sh, sw), (dh, dw), (pt, pl), fc)
    return _conv_layer(
        ctx,
        spec,
        rq,
        reference,
        summary,
        oh * ow * oc * kh * kw * fc,
        w.nbytes + (bias.nbytes if bias else 0),
    )


def depthwise_conv2d(ctx: OpContext, reference: bool = False) -> Layer:
    x, y = ctx.act(0), ctx.out()
    w = ctx.const(1, "int8", "filter")
    bias = ctx.const(2, "int32", "bias", optional=True)
    ih, iw, ic = _nhwc(ctx, x, "input")
    oh, ow, oc = _nhwc(ctx, y, "output")
    if len(w.shape) != 4 or w.shape[0] != 1 or w.shape[3] != oc:
        raise ctx.fail(f"filter shape {list(w.shape)} does not match {oc} output channels")
    _, kh, kw, _ = w.shape
    padding, sw, sh = int(ctx.opt(0, "<b")), int(ctx.opt(1, "<i")), int(ctx.opt(2, "<i"))
    dm, act = oc // ic if ic else 0, int(ctx.opt(4, "<b"))
    dw, dh = int(ctx.opt(5, "<i", 1)), int(ctx.opt(6, "<i", 1))
    if dm * ic != oc or dm == 0:
        raise ctx.fail(f"{oc} output channels is not a multiple of {ic} input channels")
    if min(sh, sw, dh, dw) < 1:
        raise ctx.fail(f"invalid strides {sh}x{sw} or dilations {dh}x{dw}")
    (eh, pt), (ew, pl) = _padding(ih, kh, sh, dh, padding), _padding(iw, kw, sw, dw, padding)
    if (eh, ew) != (oh, ow):
        raise ctx.fail(f"output {oh}x{ow} does not match the geometry (expected {eh}x{ew})")
    wa = w.array().reshape(kh * kw, oc)
    rq = _requant(ctx, x, w, y, bias, wa.T, act)
    geo = _geometry(kh, kw, sh, sw, dh, dw, padding) + (f" dm{dm}" if dm > 1 else "")
    summary = f"{shape_str(x.shape)} -> {shape_str(y.shape)}, {geo}{_act_name(act)}; {_quant_desc(x, w, y)}"
    macs, wbytes = oh * ow * oc * kh * kw, w.nbytes + (bias.nbytes if bias else 0)
    if ic == 1 and rq.fast and not reference:  # one input channel: a convolution with oc filters of depth 1
        spec = ConvSpec(x, y, wa.T.copy(), (kh, kw), (sh, sw), (dh, dw), (pt, pl), 1)
        return _conv_layer(ctx, spec, rq, reference, summary, macs, wbytes)
    geometry = (
        ("in_h", ih),
        ("in_w", iw),
        ("in_c", ic),
        ("out_h", oh),
        ("out_w", ow),
        ("out_c", oc),
        ("k_h", kh),
        ("k_w", kw),
        ("depth_mult", dm),
        ("stride_h", sh),
        ("stride_w", sw),
        ("dil_h", dh),
        ("dil_w", dw),
        ("pad_top", pt),
        ("pad_left", pl),
    )
    weights = ConstArray("weights", "int8_t", wa.reshape(-1), f"[{kh}][{kw}][{oc}] HWC")
    fast = rq.fast and not reference and (kh, kw, dm, dh, dw) == (3, 3, 1, 1, 1)
    if fast:
        kernel = "depthwise_conv2d_3x3_s8"
        # tinyml_dw_group_t records built from flash when the layer starts (136 bytes per 4 channels), a row
        # of in_zp, then a border pixel's 3x3 window
        scratch = 136 * ((ic + 3) // 4) + (ic + 3) // 4 * 4 + 9 * (ic // 4 * 4)
        if (sh, sw) == (1, 1) and ic % 4 == 0:
            # DSP cores, ReLU: 40-byte channel records, a row of in_zp, four pixels' outputs, and the window
            # of three rows of (out_w + 1) // 2 + 1 column pairs (window_s1)
            scratch = max(scratch, 45 * ic + 6 * ((ow + 1) // 2 + 1) * ic)
        params_q = tuple((k, 0 if k == "ch" else v) for k, v in rq.params)
        # pixels in order (window_s1 writes an output row once the input rows up to the next one are in its
        # window: that needs less)
        gap = inplace_gap((ih, iw), ic, (oh, ow), oc, (kh, kw), (sh, sw), (pt, pl), 1)
        consts = (weights, *_channel_pack(rq))
    else:
        kernel = "depthwise_conv2d_s8"
        gap, scratch, params_q = None, 0, rq.params
        consts = (weights, _channel_array(rq))
    params = (
        *_int16_geometry(ctx, geometry),
        ("weights", Ref("weights")),
        ("q", params_q),
        ("pack", _pack_params(fast)),
        ("scratch", Scratch() if scratch else 0),
    )
    return Layer(
        ctx.op.index,
        ctx.op.op,
        kernel,
        "depthwise_conv2d_params_t",
        params,
        consts,
        (x.index,),
        y.index,
        y.shape,
        macs,
        wbytes,
        summary,
        inplace={} if gap is None else {0: gap},
        scratch_bytes=scratch,
    )


def fully_connected(ctx: OpContext, reference: bool = False) -> Layer:
    x, y = ctx.act(0), ctx.out()
    w = ctx.const(1, "int8", "weights")
    bias = ctx.const(2, "int32", "bias", optional=True)
    if len(w.shape) != 2:
        raise ctx.fail(f"weights shape {list(w.shape)}, expected 2-D")
    n, d = w.shape
    if d == 0 or x.size % d:
        raise ctx.fail(f"input of {x.size} values is not a multiple of the weights depth {d}")
    if int(ctx.opt(1, "<b")) != 0:
        raise ctx.fail("shuffled weights format is not supported")
    if w.quant is not None and np.any(w.quant.zero_point != 0):
        raise ctx.fail("weights zero point must be 0 (TFLM requires it)")
    batches = x.size // d
    if y.size != batches * n:
        raise ctx.fail(f"output of {y.size} values, expected {batches}x{n}")
    act = int(ctx.opt(0, "<b"))
    wa = w.array()
    rq = _requant(ctx, x, w, y, bias, wa, act)
    params = (
        ("batches", batches),
        ("in_depth", d),
        ("out_depth", n),
        ("weights", Ref("weights")),
        ("q", rq.params),
    )
    weights = ConstArray("weights", "int8_t", wa.reshape(-1), f"[{n}][{d}]")
    return Layer(
        ctx.op.index,
        ctx.op.op,
        "fully_connected_s8",
        "fully_connected_params_t",
        params,
        (weights, _channel_array(rq)),
        (x.index,),
        y.index,
        y.shape,
        batches * n * d,
        w.nbytes + (bias.nbytes if bias else 0),
        f"{shape_str(x.shape)} -> {shape_str(y.shape)}{_act_name(act)}; {_quant_desc(x, w, y)}",
    )


def pool2d(ctx: OpContext) -> Layer:
    x, y = ctx.act(0), ctx.out()
    ih, iw, c = _nhwc(ctx, x, "input")
    oh, ow, oc = _nhwc(ctx, y, "output")
    if oc != c:
        raise ctx.fail(f"output depth {oc} differs from input depth {c}")
    if abs(x.scale - y.scale) > 1e-6 or x.zero_point != y.zero_point:
        raise ctx.fail("input and output quantization differ (TFLM requires them equal)")
    padding, sw, sh = int(ctx.opt(0, "<b")), int(ctx.opt(1, "<i")), int(ctx.opt(2, "<i"))
    fw, fh, act = int(ctx.opt(3, "<i")), int(ctx.opt(4, "<i")), int(ctx.opt(5, "<b"))
    (eh, pt), (ew, pl) = _padding(ih, fh, sh, 1, padding), _padding(iw, fw, sw, 1, padding)
    if (eh, ew) != (oh, ow):
        raise ctx.fail(f"output {oh}x{ow} does not match the geometry (expected {eh}x{ew})")
    lo, hi = quant.activation_range(act, y.scale, y.zero_point, ctx.where)
    avg = ctx.op.op == "AVERAGE_POOL_2D"
    params = (
        ("in_h", ih),
        ("in_w", iw),
        ("ch", c),
        ("out_h", oh),
        ("out_w", ow),
        ("k_h", fh),
        ("k_w", fw),
        ("stride_h", sh),
        ("stride_w", sw),
        ("pad_top", pt),
        ("pad_left", pl),
        ("act_min", lo),
        ("act_max", hi),
    )
    geo = f"{fh}x{fw} s{sh}" + (" SAME" if padding == SAME else " VALID")
    return Layer(
        ctx.op.index,
        ctx.op.op,
        "avg_pool2d_s8" if avg else "max_pool2d_s8",
        "pool2d_params_t",
        params,
        (),
        (x.index,),
        y.index,
        y.shape,
        0,
        0,
        f"{shape_str(x.shape)} -> {shape_str(y.shape)}, {geo}{_act_name(act)}",
    )


def mean(ctx: OpContext) -> Layer:
    x, y = ctx.act(0), ctx.out()
    axes_t = ctx.const(1, "int32", "axes")
    nd = len(x.shape)
    axes = sorted({int(a) % nd for a in axes_t.array().reshape(-1)})
    if not axes or axes != list(range(axes[0], axes[-1] + 1)):
        raise ctx.fail(f"MEAN over axes {axes} of a {nd}-D tensor: only contiguous axes are supported")
    outer = int(np.prod(x.shape[: axes[0]], dtype=np.int64))
    n = int(np.prod(x.shape[axes[0] : axes[-1] + 1], dtype=np.int64))
    inner = int(np.prod(x.shape[axes[-1] + 1 :], dtype=np.int64))
    if y.size != outer * inner:
        raise ctx.fail(f"output of {y.size} values, expected {outer * inner}")
    m, e = quant.mean_multiplier(x.scale, y.scale, n)
    params = (
        ("outer", outer),
        ("n", n),
        ("inner", inner),
        ("in_zp", x.zero_point),
        ("out_zp", y.zero_point),
        ("mult", m),
        ("shift", e),
    )
    return Layer(
        ctx.op.index,
        ctx.op.op,
        "mean_s8",
        "mean_params_t",
        params,
        (),
        (x.index,),
        y.index,
        y.shape,
        0,
        0,
        f"{shape_str(x.shape)} -> {shape_str(y.shape)}, axes {axes}; {_quant_desc(x, None, y)}",
    )


def softmax(ctx: OpContext) -> Layer:
    x, y = ctx.act(0), ctx.out()
    if y.zero_point != -128 or float(y.scale) != 1.0 / 256:
        raise ctx.fail(f"output quantization s={y.scale} z={y.zero_point}; TFLM requires s=1/256, z=-128")
    beta = float(ctx.opt(0, "<f", 0.0))
    depth = x.shape[-1] if x.shape else 1
    m, left, diff_min = quant.softmax_params(beta, x.scale)
    if left < 0 or m == 0:
        raise ctx.fail(f"input scale {x.scale} x beta {beta} is too small for int8 softmax")
    params = (
        ("rows", x.size // depth),
        ("depth", depth),
        ("mult", m),
        ("left_shift", left),
        ("diff_min", diff_min),
    )
    return Layer(
        ctx.op.index,
        ctx.op.op,
        "softmax_s8",
        "softmax_params_t",
        params,
        (),
        (x.index,),
        y.index,
        y.shape,
        0,
        0,
        f"{shape_str(x.shape)} -> {shape_str(y.shape)}, beta {beta:g}; {_quant_desc(x, None, y)}",
    )


def add(ctx: OpContext) -> Layer:
    y = ctx.out()
    a, b = ctx.tensor(0), ctx.tensor(1)
    for pos, t in ((0, a), (1, b)):
        ctx.check_int8(t, f"input {pos}")
    (m1, e1), (m2, e2), (mo, eo) = quant.add_params(a.scale, b.scale, y.scale)
    act = int(ctx.opt(0, "<b"))
    lo, hi = quant.activation_range(act, y.scale, y.zero_point, ctx.where)
    out4 = (1,) * (4 - len(y.shape)) + tuple(y.shape)
    if len(y.shape) > 4:
        raise ctx.fail(f"output has {len(y.shape)} dims; at most 4 are supported")

    def strides(t: Tensor) -> list[int]:
        s4 = (1,) * (4 - len(t.shape)) + tuple(t.shape)
        if any(d not in (1, o) for d, o in zip(s4, out4, strict=True)):
            raise ctx.fail(f"cannot broadcast {list(t.shape)} to {list(y.shape)}")
        st, acc = [0] * 4, 1
        for i in range(3, -1, -1):
            st[i] = acc if s4[i] == out4[i] and s4[i] > 1 else 0
            acc *= s4[i]
        return st

    consts, args = [], []
    for pos, t in ((0, a), (1, b)):
        if t.is_const:
            consts.append(
                ConstArray(
                    f"in{pos}", "int8_t", t.array().reshape(-1).astype(np.int64), f"constant input {pos}"
                )
            )
            args.append(Ref(f"in{pos}"))
        else:
            args.append(t.index)
    broadcast = tuple(a.shape) != tuple(y.shape) or tuple(b.shape) != tuple(y.shape)
    params = (
        ("size", y.size),
        ("broadcast", int(broadcast)),
        ("out_dims", tuple(out4)),
        ("in1_strides", tuple(strides(a))),
        ("in2_strides", tuple(strides(b))),
        ("in1_zp", a.zero_point),
        ("in2_zp", b.zero_point),
        ("out_zp", y.zero_point),
        ("in1_mult", m1),
        ("in1_shift", e1),
        ("in2_mult", m2),
        ("in2_shift", e2),
        ("out_mult", mo),
        ("out_shift", eo),
        ("act_min", lo),
        ("act_max", hi),
    )
    return Layer(
        ctx.op.index,
        ctx.op.op,
        "add_s8",
        "add_params_t",
        params,
        tuple(consts),
        tuple(args),
        y.index,
        y.shape,
        0,
        sum(c.values.size for c in consts),
        f"{shape_str(a.shape)} + {shape_str(b.shape)} -> {shape_str(y.shape)}{_act_name(act)}; "
        f"in s={a.scale:.6g}/{b.scale:.6g} z={a.zero_point}/{b.zero_point}, "
        f"out s={y.scale:.6g} z={y.zero_point}",
    )


def pad(ctx: OpContext) -> Layer:
    x, y = ctx.act(0), ctx.out()
    pads = ctx.const(1, "int32", "paddings")
    if pads is None or pads.dtype not in ("int32",):
        raise ctx.fail("paddings must be a constant int32 tensor")
    p = pads.array().reshape(-1, 2)
    nd = len(x.shape)
    if p.shape[0] != nd or nd > 4:
        raise ctx.fail(f"paddings {p.tolist()} for a {nd}-D input: at most 4-D is supported")
    if np.any(p < 0):
        raise ctx.fail("negative paddings are not supported")
    if x.zero_point != y.zero_point or abs(x.scale - y.scale) > 1e-6:
        raise ctx.fail("input and output quantization differ")
    value = y.zero_point
    if ctx.op.op == "PADV2" and ctx.tensor(2, optional=True) is not None:
        v = ctx.const(2, "int8", "constant_values")
        value = int(v.array().reshape(-1)[0])
    lead = 4 - nd
    in4 = (1,) * lead + tuple(x.shape)
    pre = (0,) * lead + tuple(int(v) for v in p[:, 0])
    out4 = tuple(i + int(a) + int(b) for i, (a, b) in zip(in4, [(0, 0)] * lead + p.tolist(), strict=True))
    if int(np.prod(out4)) != y.size:
        raise ctx.fail(f"output of {y.size} values, expected {list(out4)}")
    params = (("in_dims", in4), ("out_dims", out4), ("pre", pre), ("value", value))
    return Layer(
        ctx.op.index,
        ctx.op.op,
        "pad_s8",
        "pad_params_t",
        params,
        (),
        (x.index,),
        y.index,
        y.shape,
        0,
        0,
        f"{shape_str(x.shape)} -> {shape_str(y.shape)}, pads {p.tolist()}, fill {value}",
    )


def reshape(ctx: OpContext) -> Layer:
    x, y = ctx.act(0), ctx.out()
    if x.size != y.size:
        raise ctx.fail(f"reshape of {x.size} values into {y.size}")
    return Layer(
        ctx.op.index,
        ctx.op.op,
        "",
        "",
        (),
        (),
        (x.index,),
        y.index,
        y.shape,
        0,
        0,
        f"{shape_str(x.shape)} -> {shape_str(y.shape)}",
        alias=True,
    )


BUILDERS = {
    "CONV_2D": conv2d,
    "DEPTHWISE_CONV_2D": depthwise_conv2d,
    "FULLY_CONNECTED": fully_connected,
    "AVERAGE_POOL_2D": pool2d,
    "MAX_POOL_2D": pool2d,
    "MEAN": mean,
    "SOFTMAX": softmax,
    "ADD": add,
    "PAD": pad,
    "PADV2": pad,
    "RESHAPE": reshape,
}


# Multiply-accumulate kernels with no SIMD path: on a DSP core they are the slow fallback (the compiler takes
# them where the fast requantization would not be exact, or for geometries the fast kernels do not cover).
PLAIN_C_MAC_KERNELS = frozenset({"conv2d_s8", "depthwise_conv2d_s8", "fully_connected_s8"})
FAST_BUILDERS = (conv2d, depthwise_conv2d, fully_connected)  # take `reference` (force the reference kernels)


def build_layers(model: TfliteModel, reference: bool = False) -> list[Layer]:
    """Check the model is something we compile (one int8 input/output, supported ops) and make its layers."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise TinymlError(
            f"{model.path}: {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
            f"only single-input, single-output models are supported"
        )
    for what, idx in (("input", model.inputs[0]), ("output", model.outputs[0])):
        t = model.tensors[idx]
        if t.dtype != "int8":
            kind = "a float model" if t.dtype.startswith("float") else f"a {t.dtype} model"
            raise TinymlError(
                f"{model.path}: the model {what} is {t.dtype} ({kind}); only full-int8 models "
                f"are supported (quantize with int8 input and output)"
            )
    if not model.operators:
        raise TinymlError(f"{model.path}: the model has no operators")
    layers: list[Layer] = []
    produced = {model.inputs[0]}
    for op in model.operators:
        builder = BUILDERS.get(op.op)
        if builder is None:
            raise TinymlError(
                f"{model.path}: op {op.index} ({op.op}) is not supported; "
                f"supported ops: {', '.join(sorted(BUILDERS))}"
            )
        ctx = OpContext(op, model)
        layer = builder(ctx, reference) if builder in FAST_BUILDERS else builder(ctx)
        for a in layer.inputs:
            if isinstance(a, int) and a not in produced:
                raise TinymlError(
                    f"{model.path}: op {op.index} ({op.op}): tensor {a}: read before any op produces it"
                )
        if layer.output in produced:
            raise TinymlError(
                f"{model.path}: op {op.index} ({op.op}): tensor {layer.output}: already written"
            )
        produced.add(layer.output)
        layers.append(layer)
    if model.outputs[0] not in produced:
        raise TinymlError(f"{model.path}: no op produces the model output (tensor {model.outputs[0]})")
    return layers
