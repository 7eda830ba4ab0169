"""Each supported op alone (awkward shapes, made with TF's converter) compiled to C: bit-exact with TFLM."""

from __future__ import annotations

import numpy as np
import pytest
from compile_cases import CASES, PER_TENSOR_FC, case_models  # noqa: F401 (fixture)

from tinyml.compile import compile_tflite, host
from tinyml.tflm import TflmReference

ALL_CASES = {c.name: c for c in (*CASES, PER_TENSOR_FC)}
pytestmark = pytest.mark.slow  # converting the ~22 models with TF takes ~30 s once per session


@pytest.mark.parametrize("name", ALL_CASES)
def test_op_bit_exact(case_models, tmp_path, name):  # noqa: F811
    path = case_models[name]
    c = compile_tflite(path, tmp_path / "m")
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
