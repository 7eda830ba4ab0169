"""Each supported op alone (awkward shapes, made with TF's converter) compiled to C: bit-exact with TFLM."""

from __future__ import annotations

import numpy as np
import pytest
from compile_cases import CASES, PER_TENSOR_FC, case_models  # noqa: F401 (fixture)

from tinyml.compile import compile_tflite, host
from tinyml.tflm import TflmReference

ALL_CASES = {c.name: c for c in (*CASES, PER_TENSOR_FC)}
pytestmark = pytest.mark.slow  # converting the ~22 models with TF takes ~30 s once per session


@pytest.mark.parametrize("kernels", ["fast", "reference"])
@pytest.mark.parametrize("name", ALL_CASES)
def test_op_bit_exact(case_models, tmp_path, name, kernels):  # noqa: F811
    """Both kernel sets: the fast ones the compiler picks, and the reference ones (any parameters)."""
    path = case_models[name]
    c = compile_tflite(path, tmp_path / "m", reference=kernels == "reference")
    if kernels == "reference":
        assert {la.kernel for la in c.layers} <= {
            "",
            "conv2d_s8",
            "depthwise_conv2d_s8",
            "fully_connected_s8",
            "avg_pool2d_s8",
            "max_pool2d_s8",
            "mean_s8",
            "softmax_s8",
            "add_s8",
            "pad_s8",
        }
    assert set(ALL_CASES[name].expect_ops) <= {la.op for la in c.layers}
    exe = host.build(tmp_path / "m", "model", tmp_path / "exe")
    t_in, t_out = c.model.tensors[c.model.inputs[0]], c.model.tensors[c.model.outputs[0]]
    xs = np.random.default_rng(1).integers(-128, 128, (30, t_in.nbytes), np.int8)
    xs[0], xs[1] = -128, 127  # saturating extremes
    ref = TflmReference(path.read_bytes())
    want = np.stack([ref.invoke(x).reshape(-1).view(np.int8) for x in xs])
    np.testing.assert_array_equal(host.run(exe, xs, t_out.nbytes), want)


def test_per_tensor_fc_is_per_tensor(case_models):  # noqa: F811
    from tinyml.compile import tflite

    m = tflite.load(case_models["fc_per_tensor"])
    fc = next(op for op in m.operators if op.op == "FULLY_CONNECTED")
    assert m.tensors[fc.inputs[1]].quant.scale.size == 1


def test_fast_kernels_are_selected(case_models):  # noqa: F811
    """The op cases exercise every fast kernel (so the bit-exact test above covers them)."""
    from tinyml.compile import analyze

    kernels = {la.kernel for p in case_models.values() for la in analyze(p).layers}
    assert {"conv2d_1x1_s8", "conv2d_im2col_s8", "conv2d_3x3_1ch_s8", "depthwise_conv2d_3x3_s8"} <= kernels
