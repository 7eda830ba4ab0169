"""Keras mirror -> full-int8 .tflite, and the checks that the flatbuffer is what a microcontroller can run.

The converter calibrates activation ranges on a representative dataset. Our int8 input convention is
`int8 = uint8 - 128` (scale 1/255, zero point -128), which the converter only produces when the calibration
inputs span exactly [0, 1]; we pin that range with two pixels of the first sample and verify it afterwards.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from tinyml.errors import TinymlError

# Ops a full-int8 MobileNetV1 or pruned model may contain; anything else means the conversion went wrong
# (PAD/TRANSPOSE from layout mismatches, SHAPE/STRIDED_SLICE from a free batch, (DE)QUANTIZE from float
# edges).
ALLOWED_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MEAN", "FULLY_CONNECTED",
                         "RESHAPE", "SOFTMAX"})
INPUT_SCALE, INPUT_ZERO_POINT = 1.0 / 255.0, -128
OUTPUT_SCALE, OUTPUT_ZERO_POINT = 1.0 / 256.0, -128


@dataclass(frozen=True)
class Calibration:
    """Which training images calibrate the activation ranges (indices into the training split)."""

    indices: np.ndarray
    per_class: tuple[int, ...]


def pick_calibration(labels: np.ndarray, n: int, num_classes: int, seed: int) -> Calibration:
    """Up to `n` training indices, as equal per class as the data allows (short classes topped up by others).

    Balanced because the MLPerf reference calibrated on ~11 person-only images, which leaves the ranges the
    non-person images reach uncalibrated.
    """
    if n <= 0:
        raise TinymlError(f"calibration set is empty: --calibration-samples {n}, need at least 1")
    if len(labels) == 0:
        raise TinymlError("calibration set is empty: the training split has no images")
    rng = np.random.default_rng(seed)
    pools = [rng.permutation(np.flatnonzero(labels == c)) for c in range(num_classes)]
    take = [0] * num_classes
    left = min(n, len(labels))
    while left:  # round-robin over classes that still have images: balanced, then topped up
        for c in range(num_classes):
            if left and take[c] < len(pools[c]):
                take[c] += 1
                left -= 1
    idx = np.sort(np.concatenate([p[:t] for p, t in zip(pools, take)])).astype(np.int64)
    return Calibration(indices=idx, per_class=tuple(take))


def calibration_inputs(images_u8: np.ndarray) -> np.ndarray:
    """Float NHWC inputs in [0, 1] with the range pinned to exactly 0..1 (two pixels of the first image)."""
    x = images_u8.astype(np.float32) / 255.0
    if len(x):
        x[0, 0, 0, :] = 0.0
        x[0, 0, min(1, x.shape[2] - 1), :] = 1.0
    return x


@contextmanager
def _captured_output() -> Iterator[list[str]]:
    """Send fds 1 and 2 to a temp file (the converter prints saved-model paths, TensorSpecs and C++ logs);
    the yielded list receives the captured text, for error messages."""
    log: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        try:
            os.dup2(tmp.fileno(), 1)
            os.dup2(tmp.fileno(), 2)
            yield log
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            tmp.seek(0)
            log.append(tmp.read().decode(errors="replace"))


def _first_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if "error" in ln.lower():
            return ln
    return lines[0] if lines else ""


def convert_int8(keras_model, calib_x: np.ndarray) -> bytes:
    """Full-integer conversion: int8 in/out, int8 per-channel weights, int32 bias, TFLITE_BUILTINS_INT8."""
    import tensorflow as tf

    if len(calib_x) == 0:
        raise TinymlError("calibration set is empty")

    def representative():
        for i in range(len(calib_x)):
            yield [calib_x[i:i + 1]]

    conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    import warnings

    try:
        with _captured_output() as log, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Statistics for quantized inputs were expected": we calibrate
            return bytes(conv.convert())
    except Exception as e:  # the converter raises ConverterError with a multi-line MLIR log
        first = _first_error_line(str(e)) or _first_error_line("".join(log)) or type(e).__name__
        raise TinymlError(f"TFLite converter failed: {first}") from None


@dataclass(frozen=True)
class TensorQuant:
    """Quantization of a graph input/output: real = scale * (q - zero_point)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int


@dataclass(frozen=True)
class FlatbufferSummary:
    ops: tuple[str, ...]  # builtin op name per operator, in execution order
    input: TensorQuant
    output: TensorQuant
    tensor_types: dict[str, int]  # tensor type name -> count
    per_channel_weights: bool  # every CONV/DW/FC weight has one scale per output channel


def _enum_names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def read_flatbuffer(model_bytes: bytes) -> FlatbufferSummary:
    """Op list and tensor quantization straight from the .tflite (TF's generated schema reader)."""
    from tensorflow.lite.python import schema_py_generated as schema

    op_names = _enum_names(schema.BuiltinOperator)
    type_names = _enum_names(schema.TensorType)
    model = schema.Model.GetRootAs(model_bytes, 0)
    if model.SubgraphsLength() != 1:
        raise TinymlError(f"model has {model.SubgraphsLength()} subgraphs; one is expected")
    g = model.Subgraphs(0)
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())  # old files only fill the deprecated field
        codes.append(op_names.get(code, f"OP_{code}"))

    def tensor_quant(ti: int) -> TensorQuant:
        t = g.Tensors(ti)
        q = t.Quantization()
        scale = float(q.Scale(0)) if q is not None and q.ScaleLength() else 0.0
        zp = int(q.ZeroPoint(0)) if q is not None and q.ZeroPointLength() else 0
        return TensorQuant(name=t.Name().decode(), shape=tuple(int(d) for d in t.ShapeAsNumpy()),
                           dtype=type_names[t.Type()].lower(), scale=scale, zero_point=zp)

    ops, per_channel = [], True
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        name = codes[op.OpcodeIndex()]
        ops.append(name)
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w = g.Tensors(op.Inputs(1))
            q = w.Quantization()
            out_ch = int(w.ShapeAsNumpy()[3 if name == "DEPTHWISE_CONV_2D" else 0])
            per_channel &= q is not None and q.ScaleLength() == out_ch
    types: dict[str, int] = {}
    for i in range(g.TensorsLength()):
        tn = type_names[g.Tensors(i).Type()]
        types[tn] = types.get(tn, 0) + 1
    if g.InputsLength() != 1 or g.OutputsLength() != 1:
        raise TinymlError(f"model has {g.InputsLength()} inputs and {g.OutputsLength()} outputs; "
                          "1 and 1 expected")
    return FlatbufferSummary(ops=tuple(ops), input=tensor_quant(g.Inputs(0)),
                             output=tensor_quant(g.Outputs(0)), tensor_types=types,
                             per_channel_weights=per_channel)


def check_int8_model(fb: FlatbufferSummary) -> None:
    """Refuse anything a full-int8 microcontroller model must not contain, naming the offending ops."""
    bad = [f"{op} (op {i})" for i, op in enumerate(fb.ops) if op not in ALLOWED_OPS]
    if bad:
        raise TinymlError(f"converted model contains ops outside the int8 MCU set: {', '.join(bad)}; "
                          f"allowed: {', '.join(sorted(ALLOWED_OPS))}")
    extra = {t: n for t, n in fb.tensor_types.items() if t not in ("INT8", "INT32")}
    if extra:
        raise TinymlError(f"converted model is not full-integer: it has {extra} tensors")
    for label, tq in (("input", fb.input), ("output", fb.output)):
        if tq.dtype != "int8":
            raise TinymlError(f"converted model's {label} is {tq.dtype}, not int8")
    if not fb.per_channel_weights:
        raise TinymlError("converted model has per-tensor weights; per-channel int8 weights expected")
    if not (np.isclose(fb.input.scale, INPUT_SCALE, rtol=1e-6, atol=0)
            and fb.input.zero_point == INPUT_ZERO_POINT):
        raise TinymlError(f"converted input quantization is scale {fb.input.scale} zero point "
                          f"{fb.input.zero_point}, not 1/255 and -128 (int8 = uint8 - 128)")
    if not (np.isclose(fb.output.scale, OUTPUT_SCALE, rtol=1e-6, atol=0)
            and fb.output.zero_point == OUTPUT_ZERO_POINT):
        raise TinymlError(f"converted output quantization is scale {fb.output.scale} zero point "
                          f"{fb.output.zero_point}, not the softmax's 1/256 and -128")
