"""Tiny single-op (and a few multi-op) Keras models with awkward shapes, converted to full-int8 .tflite.

Shared by the compiler tests: every case is converted once per test session (TF's converter, ~1 s each).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


@dataclass(frozen=True)
class Case:
    name: str
    input_shape: tuple[int, ...]  # without batch
    build: Callable  # (keras, tf, x) -> y
    lo: float = -1.0  # representative data range: shifts the input zero point
    hi: float = 1.0
    expect_ops: tuple[str, ...] = ()  # ops the converted model must contain


def _conv(k, s, pad, ch, act=None, d=1):
    return lambda keras, tf, x: keras.layers.Conv2D(
        ch, k, strides=s, padding=pad, dilation_rate=d, activation=act
    )(x)


def _dw(k, s, pad, dm=1, act=None, d=1):
    return lambda keras, tf, x: keras.layers.DepthwiseConv2D(
        k, strides=s, padding=pad, depth_multiplier=dm, dilation_rate=d, activation=act
    )(x)


def _mobilenet(keras, tf, x):
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = keras.layers.Conv2D(12, 1, activation="relu6")(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6")(x)
    x = keras.layers.Conv2D(16, 1, activation="relu6")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.layers.Dense(3, activation="softmax")(x)


def _residual(keras, tf, x):
    a = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(x)
    b = keras.layers.Conv2D(6, 1)(x)
    y = keras.layers.Add()([a, b])
    return keras.layers.Conv2D(4, 3, padding="same", activation="relu")(y)


def _add_broadcast(keras, tf, x):
    x = keras.layers.Conv2D(5, 1)(x)
    return keras.layers.Lambda(lambda t: tf.nn.relu(t + tf.reduce_mean(t, axis=[1, 2], keepdims=True)))(x)


def _pad_conv(keras, tf, x):
    x = keras.layers.ZeroPadding2D(((1, 2), (2, 0)))(x)
    return keras.layers.Conv2D(4, 3, padding="valid")(x)


def _padv2(keras, tf, x):
    x = keras.layers.Lambda(lambda t: tf.pad(t, [[0, 0], [1, 1], [0, 2], [0, 0]], constant_values=0.5))(x)
    return keras.layers.Conv2D(3, 2, padding="valid")(x)


def _dense(units, act=None):
    def f(keras, tf, x):
        return keras.layers.Dense(units, activation=act)(keras.layers.Flatten()(x))

    return f


CASES: tuple[Case, ...] = (
    Case(
        "conv3x3_s1_same_relu6",
        (11, 13, 3),
        _conv(3, 1, "same", 5, "relu6"),
        lo=-0.3,
        hi=1.7,
        expect_ops=("CONV_2D",),
    ),
    Case("conv3x3_s2_same_odd", (15, 15, 5), _conv(3, 2, "same", 7, "relu"), lo=0.0, hi=2.0),
    Case("conv5x3_s2_valid", (16, 11, 4), _conv((5, 3), 2, "valid", 6)),
    # RGB 3x3 ReLU, even out_c (as vww's first layer): 27-value patches padded to 28, three at a time
    Case("conv3x3_rgb_relu_s2", (13, 14, 3), _conv(3, 2, "same", 8, "relu"), lo=0.0, hi=1.0),
    # the first-layer engine (DSP cores, tinyml_first_s8.c): no activation (sign-corrected requantization),
    # stride 1 and 2 VALID, 6 and 2 channels, pixel counts ending in a block of 2 or 1
    Case("conv3x3_rgb_linear_s1_valid", (9, 10, 3), _conv(3, 1, "valid", 6)),
    Case("conv3x3_rgb_relu6_s2_valid_c2", (12, 11, 3), _conv(3, 2, "valid", 2, "relu6"), lo=0.0, hi=2.0),
    # exactly 8 channels with ReLU (tinyml_first14_relu8 / tinyml_first5_relu8: two pairs a loop, fixed output
    # offsets): 80 pixels, a call of 48 then 10 blocks and a last block of 2; 49, a last block of 1
    Case("conv3x3_rgb_relu_s1_valid_c8", (10, 12, 3), _conv(3, 1, "valid", 8, "relu"), lo=0.0, hi=1.0),
    Case("conv3x3_dil2_same", (13, 12, 3), _conv(3, 1, "same", 4, d=2)),
    Case("conv1x1_pointwise", (9, 7, 10), _conv(1, 1, "valid", 13, "relu6"), lo=-0.2, hi=3.0),
    Case("conv1x1_s2", (9, 9, 6), _conv(1, 2, "same", 5)),
    # depth % 8 == 0: three pixels at a time (tinyml_mat3_s8), with tails of 2 and 1 pixels and every
    # requantization mode (bounded, ReLU with out_zp -128, none)
    Case("conv1x1_deep_relu6", (5, 7, 32), _conv(1, 1, "valid", 10, "relu6"), lo=-0.2, hi=3.0),
    # 88: 22 groups, four blocks of four pixels (tinyml_mat4_run_s8) entered 10 groups late
    Case("conv1x1_deep_relu", (4, 4, 88), _conv(1, 1, "valid", 6, "relu"), lo=0.0, hi=1.0),
    # 264: 66 groups: three passes of pw3x2_relu's 31 groups, the first entered 28 groups late
    Case("conv1x1_deeper_relu", (3, 3, 264), _conv(1, 1, "valid", 4, "relu"), lo=0.0, hi=1.0),
    Case("conv1x1_deep_linear", (3, 5, 24), _conv(1, 1, "valid", 4)),  # 6 groups: dot3x2_half
    # depth 8 (tinyml_thin_run_s8 on DSP cores): blocks of 128 / out_c pixels, then threes and a pair
    Case("conv1x1_d8_relu_c16", (5, 7, 8), _conv(1, 1, "valid", 16, "relu"), lo=0.0, hi=1.0),  # 4 blocks + 3
    Case("conv1x1_d8_relu6_c64", (3, 3, 8), _conv(1, 1, "valid", 64, "relu6"), lo=-0.2, hi=3.0),  # pairs + 1
    Case("conv1x1_d8_relu_c8", (9, 8, 8), _conv(1, 1, "valid", 8, "relu"), lo=0.0, hi=1.0),  # 4 x 16 + 8
    Case("conv1x1_d8_relu_c12", (4, 5, 8), _conv(1, 1, "valid", 12, "relu"), lo=0.0, hi=1.0),  # 64 % 12: not
    # depth 16 and 32 with ReLU: pw3x2_relu4 / pw3x2_relu8 (no entry jump), three pixels at a time and a pair
    Case("conv1x1_d16_relu_c6", (4, 5, 16), _conv(1, 1, "valid", 6, "relu"), lo=0.0, hi=1.0),
    # ReLU, stride 1, depth <= 128 on DSP cores: blocks of four pixels first (tinyml_mat4_run_s8, entered
    # 32 - depth / 4 groups late), the rest in threes (4n + 1 pixels: the last nine, 4n + 2: six)
    Case("conv1x1_d128_relu_p4", (2, 2, 128), _conv(1, 1, "valid", 8, "relu"), lo=0.0, hi=1.0),
    Case("conv1x1_d64_relu_p8", (2, 4, 64), _conv(1, 1, "valid", 10, "relu"), lo=-0.2, hi=1.0),
    Case("conv1x1_d128_relu_p13", (1, 13, 128), _conv(1, 1, "valid", 4, "relu"), lo=0.0, hi=1.0),
    Case("conv1x1_d128_relu_p10", (2, 5, 128), _conv(1, 1, "valid", 6, "relu"), lo=0.0, hi=1.0),
    Case("conv1x1_d64_relu_p7", (1, 7, 64), _conv(1, 1, "valid", 12, "relu"), lo=0.0, hi=1.0),
    Case("conv1x1_d256_relu_p8", (2, 4, 256), _conv(1, 1, "valid", 4, "relu"), lo=0.0, hi=1.0),  # threes
    Case(
        "dw3x3_s1_same_relu6",
        (12, 10, 6),
        _dw(3, 1, "same", act="relu6"),
        lo=-0.4,
        hi=1.1,
        expect_ops=("DEPTHWISE_CONV_2D",),
    ),
    Case("dw3x3_s2_same_odd", (13, 11, 5), _dw(3, 2, "same"), lo=0.0, hi=1.0),
    # stride 2, ReLU: border pixels with only the window's right column or bottom row outside (edge_run; the
    # bottom row in one call), the corner through the tap table; in_c % 4 != 0: the last channels plain
    Case("dw3x3_s2_relu_even_c8", (10, 8, 8), _dw(3, 2, "same", act="relu"), lo=0.0, hi=1.0),
    Case("dw3x3_s2_relu_odd_c6", (9, 12, 6), _dw(3, 2, "same", act="relu"), lo=-0.2, hi=1.0),
    Case("dw3x3_relu_c10", (7, 6, 10), _dw(3, 1, "same", act="relu"), lo=0.0, hi=1.0),  # border patches
    # stride 1, in_c % 4 == 0, ReLU: width 7, a quad and three pixels through a quad into scratch (window_s1)
    Case("dw3x3_relu_c12_pairs", (6, 7, 12), _dw(3, 1, "same", act="relu"), lo=0.0, hi=1.0),
    # the window path (window_s1): rows of 6 and 3 or 4 (one quad a channel), 1, 8 and 3
    Case("dw3x3_relu_w6_c16", (5, 6, 16), _dw(3, 1, "same", act="relu"), lo=-0.5, hi=1.0),
    Case("dw3x3_relu_w3_c4", (3, 3, 4), _dw(3, 1, "same", act="relu"), lo=-0.3, hi=1.0),
    Case("dw3x3_relu_w4_c8", (5, 4, 8), _dw(3, 1, "same", act="relu"), lo=-0.1, hi=1.0),
    Case("dw3x3_relu_w1_c8", (4, 1, 8), _dw(3, 1, "same", act="relu"), lo=0.0, hi=1.0),
    Case("dw3x3_valid_relu_c20", (9, 10, 20), _dw(3, 1, "valid", act="relu"), lo=-0.2, hi=1.0),
    Case("dw3x3_valid_relu_w5_c4", (4, 5, 4), _dw(3, 1, "valid", act="relu"), lo=0.0, hi=1.0),
    Case("dw5x5_valid_dm2", (11, 9, 3), _dw(5, 1, "valid", dm=2)),
    Case("dw3x3_s2_dm8_1ch", (17, 17, 1), _dw(3, 2, "same", dm=8, act="relu6")),
    # one channel, stride 1, ReLU: rows of interior pixels in one run (run_full_relu), the last row's 4-byte
    # loads stopping one pixel early
    Case("conv3x3_1ch_relu_s1", (9, 11, 1), _conv(3, 1, "same", 6, "relu"), lo=0.0, hi=1.0),
    Case("conv3x3_1ch_linear_s2_valid", (10, 12, 1), _conv(3, 2, "valid", 4)),
    Case("conv3x3_1ch_relu_s2_c8", (13, 14, 1), _conv(3, 2, "same", 8, "relu"), lo=0.0, hi=1.0),
    Case("dw3x3_1ch_dm2_s1", (7, 8, 1), _dw(3, 1, "same", dm=2)),
    Case("dw3x3_dil2", (12, 12, 4), _dw(3, 1, "same", d=2)),
    Case(
        "avgpool3x3_s2_same",
        (11, 9, 5),
        lambda k, tf, x: k.layers.AveragePooling2D(3, 2, "same")(x),
        expect_ops=("AVERAGE_POOL_2D",),
    ),
    Case(
        "maxpool2x2_valid_3x3_same",
        (9, 9, 3),
        lambda k, tf, x: k.layers.MaxPooling2D(3, 1, "same")(k.layers.MaxPooling2D(2, 2, "valid")(x)),
        expect_ops=("MAX_POOL_2D",),
    ),
    Case(
        "mean_gap",
        (7, 5, 6),
        lambda k, tf, x: k.layers.GlobalAveragePooling2D()(x),
        lo=-0.5,
        hi=2.0,
        expect_ops=("MEAN",),
    ),
    Case("fc_per_channel_relu", (5, 5, 3), _dense(10, "relu"), expect_ops=("FULLY_CONNECTED", "RESHAPE")),
    Case("softmax7", (3, 3, 2), _dense(7, "softmax"), expect_ops=("SOFTMAX",)),
    Case("add_residual", (8, 7, 3), _residual, expect_ops=("ADD",)),
    Case("add_broadcast", (6, 5, 4), _add_broadcast, expect_ops=("ADD", "MEAN")),
    Case("pad_zero", (7, 6, 3), _pad_conv, lo=0.2, hi=1.0, expect_ops=("PAD",)),
    Case("padv2_value", (6, 6, 2), _padv2, expect_ops=("PADV2",)),
    Case("mini_mobilenet", (24, 20, 3), _mobilenet, lo=0.0, hi=1.0),
)
PER_TENSOR_FC = Case("fc_per_tensor", (4, 4, 5), _dense(6), expect_ops=("FULLY_CONNECTED",))


def convert(case: Case, out: Path, per_tensor: bool = False, seed: int = 0) -> Path:
    """Build the case's Keras model with seeded random weights and convert it to full int8."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    x = keras.Input(case.input_shape, batch_size=1)
    model = keras.Model(x, case.build(keras, tf, x))
    for w in model.weights:  # bias too, so folded-bias paths see non-zero values
        if "bias" in w.path:
            w.assign(np.random.default_rng(seed).uniform(-0.3, 0.3, w.shape).astype("float32"))
    rng = np.random.default_rng(seed + 1)

    def rep():
        for _ in range(32):
            yield [rng.uniform(case.lo, case.hi, (1, *case.input_shape)).astype("float32")]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    if per_tensor:
        conv._experimental_disable_per_channel_quantization_for_dense_layers = True
    path = out / f"{case.name}.tflite"
    path.write_bytes(conv.convert())
    return path


def float_model(out: Path) -> Path:
    """A float32 .tflite (no quantization) for the refusal test."""
    import keras
    import tensorflow as tf

    x = keras.Input((4, 4, 2), batch_size=1)
    model = keras.Model(x, keras.layers.Conv2D(2, 1)(x))
    path = out / "float.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def unsupported_op_model(out: Path) -> Path:
    """A full-int8 model with a TANH after a conv: an op the compiler does not support."""
    case = Case("tanh", (5, 5, 2), lambda k, tf, x: k.layers.Activation("tanh")(k.layers.Conv2D(3, 1)(x)))
    return convert(case, out)


def two_input_model(out: Path) -> Path:
    """A full-int8 model with two inputs (refused: the generated API takes one input)."""
    import keras
    import tensorflow as tf

    a, b = keras.Input((4, 4, 2), batch_size=1), keras.Input((4, 4, 2), batch_size=1)
    model = keras.Model([a, b], keras.layers.Add()([a, b]))
    rng = np.random.default_rng(0)

    def rep():
        for _ in range(8):
            yield [rng.uniform(-1, 1, (1, 4, 4, 2)).astype("float32") for _ in range(2)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    path = out / "two_inputs.tflite"
    path.write_bytes(conv.convert())
    return path


_made: dict[str, dict[str, Path]] = {}


@pytest.fixture(scope="session")
def case_models(artifacts) -> dict[str, Path]:
    """Every case converted once per process (both compile test modules share the result)."""
    if "cases" not in _made:
        out = artifacts / "compile_cases"
        out.mkdir(parents=True, exist_ok=True)
        cases = {c.name: convert(c, out) for c in CASES}
        cases[PER_TENSOR_FC.name] = convert(PER_TENSOR_FC, out, per_tensor=True)
        _made["cases"] = cases
    return _made["cases"]


@pytest.fixture(scope="session")
def refusal_models(artifacts) -> dict[str, Path]:
    """Models the compiler must refuse: float, an unsupported op, two inputs."""
    if "refusals" not in _made:
        out = artifacts / "compile_refusals"
        out.mkdir(parents=True, exist_ok=True)
        _made["refusals"] = {
            "float": float_model(out),
            "tanh": unsupported_op_model(out),
            "two_inputs": two_input_model(out),
        }
    return _made["refusals"]
