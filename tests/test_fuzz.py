"""Bad models: every defect class of issue 19 as a regression test, a bounded fuzz slice of the front-end
and of compiled models under ASan/UBSan compared with TFLM, and the replay of the fuzz corpus (`make fuzz`
fills it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fuzzing import (
    Mutator,
    SanitizedRunner,
    TflmWorker,
    check_compiled,
    front_end,
    pack,
    unpack,
)

from tinyml.cli import main

HERE = Path(__file__).parent
SEEDS = sorted((HERE / "fuzz_seeds").glob("*.tflite"))
CORPUS = sorted((HERE / "fuzz_corpus").glob("*.tflite"))


def seed(name: str) -> bytes:
    return (HERE / "fuzz_seeds" / f"{name}.tflite").read_bytes()


def edit(name: str, fn) -> bytes:
    """The seed model with one schema-level edit (fn gets the ModelT and its only subgraph)."""
    m = unpack(seed(name))
    fn(m, m.subgraphs[0])
    return pack(m)


def _op(m, sg, code: int):
    return next(op for op in sg.operators if m.operatorCodes[op.opcodeIndex].builtinCode == code
                or m.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode == code)


CONV, DW, FC, AVG, SOFTMAX = 3, 4, 9, 1, 25


def _set_shape(i: int, shape):
    return lambda m, sg: setattr(sg.tensors[i], "shape", np.array(shape, np.int32))


def _opt(code: int, attr: str, v):
    return lambda m, sg: setattr(_op(m, sg, code).builtinOptions, attr, v)


def _filter_quant(code: int, attr: str, v):
    return lambda m, sg: setattr(sg.tensors[_op(m, sg, code).inputs[1]].quantization, attr, v)


def _softmax_out(m, sg):
    sg.tensors[_op(m, sg, SOFTMAX).outputs[0]].shape = np.array([1, 9], np.int32)


def _bias_scale(m, sg):
    op = _op(m, sg, FC)
    q = sg.tensors[op.inputs[2]].quantization
    q.scale = sg.tensors[op.outputs[0]].quantization.scale * 0.5  # |s_in*s_w - s_b| / s_out ~ 0.5 > 0.02


def _model_input_shape(shape):
    return lambda m, sg: setattr(sg.tensors[sg.inputs[0]], "shape", np.array(shape, np.int32))


# (name, seed, edit, message fragment, TFLM refuses it too)
DEFECTS = [
    ("zero_dim_input", "conv3x3_s1_same_relu6", _model_input_shape([1, 0, 13, 3]), "zero-sized dimension",
     False),
    ("softmax_sizes", "softmax7", _softmax_out, "differs from input shape", False),
    ("dim_above_65535", "conv1x1_pointwise", _model_input_shape([1, 70000, 1, 10]), "dimension above 65535",
     False),
    ("stride_0", "conv3x3_s1_same_relu6", _opt(CONV, "strideW", 0), "stride 1x0 (must be >= 1)", False),
    ("filter_0", "avgpool3x3_s2_same", _opt(AVG, "filterWidth", 0), "filter size 3x0", False),
    ("dilation_0", "dw3x3_s1_same_relu6", _opt(DW, "dilationHFactor", 0), "dilation 0x1", False),
    ("depth_multiplier", "dw3x3_s1_same_relu6", _opt(DW, "depthMultiplier", 2), "depth multiplier 2", False),
    ("padding_mode", "conv3x3_s1_same_relu6", _opt(CONV, "padding", 3), "padding mode 3", False),
    ("activation", "conv3x3_s1_same_relu6", _opt(CONV, "fusedActivationFunction", 4), "fused activation 4",
     False),
    ("quantized_dim", "conv3x3_s1_same_relu6", _filter_quant(CONV, "quantizedDimension", 5),
     "quantized dimension 5 out of range", True),
    ("empty_zero_points", "conv3x3_s1_same_relu6", _filter_quant(CONV, "zeroPoint", np.zeros(0, np.int64)),
     "but 0 zero points", True),
    ("nan_scale", "conv3x3_s1_same_relu6", _filter_quant(CONV, "scale", np.full(5, np.nan, np.float32)),
     "not finite", False),
    ("gigabytes", "conv1x1_pointwise", _model_input_shape([1, 4000, 4000, 10]), "bytes (limit 8,388,608)",
     False),
    ("fc_bias_scale", "fc_per_tensor", _bias_scale, "bias scale", True),
    ("options_type", "conv3x3_s1_same_relu6", lambda m, sg: setattr(sg.operators[0], "builtinOptionsType", 9),
     "builtin options of type 9", False),
]
IDS = [d[0] for d in DEFECTS]


@pytest.mark.parametrize("name,base,fn,fragment,tflm_refuses", DEFECTS, ids=IDS)
def test_invalid_model_one_line_error_in_compile_and_profile(tmp_path, capsys, name, base, fn, fragment,
                                                             tflm_refuses):
    bad = tmp_path / f"{name}.tflite"
    bad.write_bytes(edit(base, fn))
    for argv in (["compile", str(bad), "-o", str(tmp_path / "out")], ["profile", str(bad)]):
        assert main(argv) != 0
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "Traceback" not in err, err
        assert fragment in err and f"{bad}: " in err, err
    assert not (tmp_path / "out").exists()


def test_tflm_refuses_what_we_refuse_for_the_same_reason(tmp_path):
    """The defects TFLM itself refuses (the rule is TFLM's, not ours): checked with TFLM's interpreter."""
    tflm = TflmWorker()
    try:
        for name, base, fn, _, tflm_refuses in DEFECTS:
            if tflm_refuses:
                (tmp_path / "m.tflite").write_bytes(edit(base, fn))
                x = np.zeros((1, 16 * 16 * 16), np.int8)[:, : _input_bytes(base)]
                status, _ = tflm.run(tmp_path / "m.tflite", x, tmp_path / "y")
                assert status != "ok", name
    finally:
        tflm.close()


def _input_bytes(base: str) -> int:
    m = unpack(seed(base))
    return int(np.prod(m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]].shape))


def _bias_extremes(code: int):
    def fn(m, sg):
        b = m.buffers[sg.tensors[_op(m, sg, code).inputs[2]].buffer]
        v = np.where(np.arange(b.data.size // 4) % 2, -(2**31), 2**31 - 1).astype(np.int32)
        b.data = v.view(np.uint8)

    return fn


@pytest.fixture(scope="module")
def sanitized(tmp_path_factory):
    tflm = TflmWorker()
    yield SanitizedRunner(tmp_path_factory.mktemp("san")), tflm
    tflm.close()


@pytest.mark.parametrize("base,code", [("conv3x3_s1_same_relu6", CONV), ("dw3x3_s1_same_relu6", DW),
                                       ("fc_per_channel_relu", FC), ("conv1x1_deep_relu6", CONV)])
def test_bias_at_int32_extremes_is_ubsan_clean_and_bit_exact(sanitized, tmp_path, base, code):
    """Accumulators wrap modulo 2^32 like TFLM's: no signed overflow (UBSan), same bytes as TFLM."""
    runner, tflm = sanitized
    v = check_compiled(edit(base, _bias_extremes(code)), tmp_path, runner, tflm, n_inputs=8)
    assert v.kind == "bit-exact", v


def test_front_end_fuzz_slice(refdata):
    """40 seeded mutants of every seed model and of person_detect: refused with one line or accepted, never
    an exception or a hang."""
    seeds = [p.read_bytes() for p in SEEDS] + [(refdata / "models" / "person_detect.tflite").read_bytes()]
    counts: dict[str, int] = {}
    for k, s in enumerate(seeds):
        mu = Mutator(s, k)
        for n in range(40):
            data, what = mu.mutant(n)
            o = front_end(data, time_limit=10)
            counts[o.kind] = counts.get(o.kind, 0) + 1
            assert o.kind in ("accepted", "refused"), f"seed {k} mutant {n} ({what}): {o.detail}"
    assert counts.get("refused", 0) > 100 and counts.get("accepted", 0) > 10, counts


def test_sanitized_fuzz_slice(sanitized, tmp_path):
    """The first two accepted mutants of every seed model compiled, run under ASan/UBSan and compared with
    TFLM: bit-exact."""
    runner, tflm = sanitized
    checked = 0
    for k, p in enumerate(SEEDS):
        mu, found = Mutator(p.read_bytes(), 100 + k), 0
        for n in range(60):
            data, what = mu.mutant(n)
            if front_end(data).kind != "accepted":
                continue
            v = check_compiled(data, tmp_path / "m", runner, tflm, seed=n)
            assert v.kind in ("bit-exact", "tflm-crashed"), f"{p.name} mutant {n} ({what}): {v}"
            found += 1
            if found == 2:
                break
        checked += found
    assert checked >= 30


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_fuzz_corpus_replays_clean(sanitized, tmp_path, path):
    """Every input the long campaign found: now refused with one line, or clean and bit-exact."""
    data = path.read_bytes()
    o = front_end(data)
    assert o.kind in ("accepted", "refused"), o.detail
    if o.kind == "accepted":
        v = check_compiled(data, tmp_path, *sanitized)
        assert v.kind in ("bit-exact", "tflm-crashed"), v


def test_planner_refuses_a_kernel_that_would_write_past_its_buffer():
    """The compile-time bounds check catches params that disagree with the tensors (a compiler bug) before
    any C exists: here a softmax told to run one row more than its output holds."""
    from dataclasses import replace

    from tinyml.compile import ops, planner, tflite
    from tinyml.errors import TinymlError

    model = tflite.parse(seed("softmax7"), "softmax7.tflite")
    layers = ops.build_layers(model)
    planner.check_bounds(layers, planner.plan(layers, model), model)  # the real layers pass
    i = next(k for k, la in enumerate(layers) if la.op == "SOFTMAX")
    params = tuple((k, v + 1 if k == "rows" else v) for k, v in layers[i].params)
    layers[i] = replace(layers[i], params=params)
    with pytest.raises(TinymlError, match=r"op 2 \(SOFTMAX\): internal compiler error .* writes 14 bytes"):
        planner.check_bounds(layers, planner.plan(layers, model), model)
