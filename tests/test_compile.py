"""The compiler on the reference models: bit-exact with TFLM on host, the generated-code contract, errors.

Fixtures of generated models come from compile_cases.py (imported, hence the F811 noqa below).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from compile_cases import refusal_models  # noqa: F401 (fixture)

from tinyml.cli import main
from tinyml.compile import compile_tflite, host
from tinyml.compile.profile import profile_tflite
from tinyml.tflm import TflmReference

MODELS = {"person_detect": 7_157_888, "vww_96_int8": 7_489_664}  # name -> MACs (FACTS.md)


@pytest.fixture(scope="session")
def built(artifacts, refdata):
    """name -> (Compiled, host executable), compiled and built once per session."""
    cache = {}

    def get(name: str):
        if name not in cache:
            d = artifacts / "compile" / name
            c = compile_tflite(refdata / "models" / f"{name}.tflite", d)
            cache[name] = (c, host.build(d, "model", artifacts / "compile" / f"{name}_host"))
        return cache[name]

    return get


def _tflm(c, xs: np.ndarray) -> np.ndarray:
    ref = TflmReference(c.model.data)
    return np.stack([ref.invoke(x).reshape(-1).view(np.int8) for x in xs])


def test_person_detect_shared_images(built, refdata):
    c, exe = built("person_detect")
    xs = np.stack(
        [
            np.frombuffer((refdata / "images" / f"{n}_image_data.u8.bin").read_bytes(), np.int8)
            for n in ("person", "no_person")
        ]
    )
    ys = host.run(exe, xs, 2)
    np.testing.assert_array_equal(ys, [[-113, 113], [57, -57]])
    np.testing.assert_array_equal(ys, _tflm(c, xs))


@pytest.mark.parametrize("name", MODELS)
def test_shared_models_bit_exact_on_random_inputs(built, name):
    c, exe = built(name)
    xs = np.random.default_rng(5).integers(
        -128, 128, (50, c.model.tensors[c.model.inputs[0]].nbytes), np.int8
    )
    ys = host.run(exe, xs, c.model.tensors[c.model.outputs[0]].nbytes)
    np.testing.assert_array_equal(ys, _tflm(c, xs))


@pytest.mark.parametrize("name,macs", MODELS.items())
def test_profile_macs_and_arena(refdata, name, macs):
    rows, totals = profile_tflite(refdata / "models" / f"{name}.tflite")
    assert totals["macs"] == macs == sum(r["macs"] for r in rows)
    assert len(rows) == 31
    assert 0 < totals["arena_bytes"] < totals["tflm_arena_bytes"] and totals["arena_lower_bound"] > 0
    assert totals["arena_bytes_patched"] < totals["arena_bytes"]  # the default patches lower it
    assert totals["model_bytes"] == (refdata / "models" / f"{name}.tflite").stat().st_size


def test_memory_plan_aliases_reshape_and_holds_the_io_tensors(built):
    c, _ = built("person_detect")
    plan, model = c.plan, c.model
    reshape = next(la for la in c.layers if la.op == "RESHAPE")
    assert plan.of_tensor[reshape.inputs[0]] is plan.of_tensor[reshape.output]
    # the model input and output are arena buffers too: alive from before the first layer / after the last
    b_in, b_out = plan.of_tensor[model.inputs[0]], plan.of_tensor[model.outputs[0]]
    assert (b_in.first, b_out.last) == (-1, len(c.layers)) and b_in.where == b_out.where == "arena"
    assert (plan.input_offset, plan.output_offset) == (b_in.offset, b_out.offset)
    # arena buffers alive at the same layer overlap only where a layer writes over an input it consumes, and
    # then only with the gap its kernel was written for
    allowed = {}
    for la in c.layers:
        for pos, gap in la.inplace.items():
            allowed[(id(plan.of_tensor[la.output]), id(plan.of_tensor[la.inputs[pos]]))] = gap
    arena = [b for b in plan.buffers if b.where == "arena"]
    overlapping = 0
    for i, a in enumerate(arena):
        for b in arena[i + 1 :]:
            if (
                a.first <= b.last
                and b.first <= a.last
                and a.offset < b.offset + b.size
                and b.offset < a.offset + a.size
            ):
                out, inp = (a, b) if (id(a), id(b)) in allowed else (b, a)
                assert (id(out), id(inp)) in allowed, (a, b)
                assert inp.offset - out.offset >= allowed[(id(out), id(inp))], (a, b)
                overlapping += 1
    assert overlapping > 0  # the plan does use in-place layers on person_detect
    assert plan.arena_bytes >= max(b.offset + b.size for b in arena)


def test_generated_code_is_readable(built):
    c, exe = built("person_detect")
    d = exe.parent / "person_detect"
    src = (d / "model.c").read_text()
    assert "/* layer 0: DEPTHWISE_CONV_2D 96x96x1 -> 48x48x8, 3x3 s2 SAME dm8, RELU6;" in src
    assert "depthwise_conv2d" in src and src.count("TINYML_MARK(") == 31 + 1 + 2
    header = (d / "model.h").read_text()
    for macro in (
        "MODEL_INPUT_BYTES 9216",
        "MODEL_OUTPUT_BYTES 2",
        f"MODEL_ARENA_BYTES {c.plan.arena_bytes}",
        "MODEL_NUM_LAYERS 31",
        "MODEL_INPUT_ZERO_POINT -1",
        "MODEL_OUTPUT_ZERO_POINT -128",
        "MODEL_OUTPUT_SCALE 0.00390625f",
        "MODEL_INPUT_H 96",
        "int model_invoke(const int8_t *input, int8_t *output);",
        "extern const unsigned int model_tflite_len;",
    ):
        assert macro in header, macro
    weights = (d / "model_weights.c").read_text()
    assert "model_l2_weights[128]" in weights and "/* layer 2: CONV_2D 48x48x16 */" in weights
    tfl = (d / "model_tflite.c").read_text()
    assert "_Alignas(16) const unsigned char model_tflite[300568]" in tfl


def test_cli_compile_verbose_prints_plan(tmp_path, refdata, capsys):
    assert (
        main(["compile", str(refdata / "models" / "vww_96_int8.tflite"), "-o", str(tmp_path / "o"), "-v"])
        == 0
    )
    out = capsys.readouterr().out
    assert "arena peak" in out and "lower bound" in out and "27648   -1-0     arena+" in out
    assert "RAM: the model's share is the" in out and "27,648 B input" in out
    assert "FULLY_CONNECTED" in out and "7,489,664 MACs" in out


def _corrupt(data: bytes) -> bytes:
    return data[:100] + bytes(200) + data[300:]


BAD_INPUTS = [  # (case, make file bytes from person_detect or a generated model, message fragment)
    ("truncated", lambda pd, m: pd[: len(pd) // 3], "malformed .tflite"),
    ("empty", lambda pd, m: b"", "not a TFLite flatbuffer"),
    ("not_tflite", lambda pd, m: b"hello world, this is not a model" * 10, "not a TFLite flatbuffer"),
    ("float", lambda pd, m: m["float"], "float32 (a float model)"),
    ("unsupported_op", lambda pd, m: m["tanh"], "op 1 (TANH) is not supported"),
    ("two_inputs", lambda pd, m: m["two_inputs"], "2 inputs and 1 outputs"),
]


@pytest.mark.parametrize("case,make,message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_models_give_one_line_error_and_no_dir(
    tmp_path,
    refdata,
    refusal_models,  # noqa: F811
    capsys,
    case,
    make,
    message,
):
    bad = tmp_path / f"{case}.tflite"
    bad.write_bytes(
        make(
            (refdata / "models" / "person_detect.tflite").read_bytes(),
            {k: p.read_bytes() for k, p in refusal_models.items()},
        )
    )
    out = tmp_path / "out"
    assert main(["compile", str(bad), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinyml compile: error: ") and message in err and "\n" not in err, err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == [bad.name]


def test_failed_compile_keeps_previous_output(tmp_path, refdata, capsys):
    out = tmp_path / "out"
    assert main(["compile", str(refdata / "models" / "person_detect.tflite"), "-o", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"junk")
    assert main(["compile", str(bad), "-o", str(out)]) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    user_dir = tmp_path / "mine"
    user_dir.mkdir()
    (user_dir / "notes.txt").write_text("keep me")
    assert main(["compile", str(refdata / "models" / "person_detect.tflite"), "-o", str(user_dir)]) == 1
    assert "is not a `tinyml compile` output" in capsys.readouterr().err
    assert (user_dir / "notes.txt").read_text() == "keep me"


TWO_MODEL_APP = r"""
#include <stdio.h>
#include "pd.h"
#include "vww.h"
int main(void) {
    static int8_t a[PD_INPUT_BYTES], b[VWW_INPUT_BYTES], ya[PD_OUTPUT_BYTES], yb[VWW_OUTPUT_BYTES];
    if (fread(a, 1, sizeof a, stdin) != sizeof a || fread(b, 1, sizeof b, stdin) != sizeof b) return 3;
    if (pd_invoke(a, ya) || vww_invoke(b, yb)) return 4;
    fwrite(ya, 1, sizeof ya, stdout);
    fwrite(yb, 1, sizeof yb, stdout);
    return pd_layers[0].macs == 165888u && vww_tflite_len > 0u && PD_NUM_LAYERS == 31 ? 0 : 5;
}
"""


@pytest.mark.slow
def test_name_prefix_two_models_link_into_one_program(tmp_path, refdata):
    dirs = {}
    for name, model in (("pd", "person_detect"), ("vww", "vww_96_int8")):
        dirs[name] = tmp_path / name
        compile_tflite(refdata / "models" / f"{model}.tflite", dirs[name], name)
        names = {p.name for p in dirs[name].iterdir()}
        assert {f"{name}.h", f"{name}.c", f"{name}_weights.c", f"{name}_tflite.c"} <= names
        assert not any(n.startswith("model") for n in names)
        header = (dirs[name] / f"{name}.h").read_text()
        assert f"int {name}_invoke(" in header and f"#define {name.upper()}_INPUT_BYTES" in header
    app = tmp_path / "app.c"
    app.write_text(TWO_MODEL_APP)
    exe = tmp_path / "app"
    srcs = [str(p) for d in dirs.values() for p in sorted(d.glob("*.c"))]
    subprocess.run(
        [
            host.host_cc(),
            *host.CFLAGS,
            "-I",
            str(dirs["pd"]),
            "-I",
            str(dirs["vww"]),
            *srcs,
            str(app),
            "-lm",
            "-o",
            str(exe),
        ],
        check=True,
    )
    # every global symbol of the model files carries its prefix; kernels are shared (weak)
    nm = subprocess.run(["nm", "-g", "--defined-only", str(exe)], capture_output=True, text=True).stdout
    kernels = {p.stem for d in dirs.values() for p in d.glob("*_s8.c")}
    for line in nm.splitlines():
        sym = line.split()[-1]
        if sym.startswith(("pd_", "vww_")):
            continue
        assert sym in kernels or not sym.startswith(("model", "conv", "depthwise")), sym
    rng = np.random.default_rng(3)
    xa, xb = rng.integers(-128, 128, 9216, np.int8), rng.integers(-128, 128, 27648, np.int8)
    r = subprocess.run([str(exe)], input=xa.tobytes() + xb.tobytes(), capture_output=True, check=True)
    y = np.frombuffer(r.stdout, np.int8)
    np.testing.assert_array_equal(
        y[:2],
        TflmReference((refdata / "models" / "person_detect.tflite").read_bytes()).invoke(xa).reshape(-1),
    )
    np.testing.assert_array_equal(
        y[2:], TflmReference((refdata / "models" / "vww_96_int8.tflite").read_bytes()).invoke(xb).reshape(-1)
    )


ARM_CPUS = {
    "cortex-m4": ["-mcpu=cortex-m4", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"],
    "cortex-m3": ["-mcpu=cortex-m3"],
    "cortex-m0": ["-mcpu=cortex-m0"],
}


@pytest.mark.parametrize("cpu", ARM_CPUS)
def test_arm_gcc_builds_generated_sources(built, tmp_path, cpu):
    """Every generated file and every kernel in the package compile with -Werror for Cortex-M."""
    from importlib import resources

    c, exe = built("person_detect")
    d = exe.parent / "person_detect"
    kdir = Path(str(resources.files("tinyml.compile").joinpath("kernels")))
    srcs = sorted(d.glob("*.c")) + sorted(p for p in kdir.glob("*.c") if not (d / p.name).exists())
    code = [s for s in srcs if not s.name.endswith(("_weights.c", "_tflite.c"))]  # data only: built once
    for flags, files in (([], srcs), (["-DTINYML_PROFILE", "-DTINYML_DEBUG", "-Os"], code)):
        for src in files:
            cmd = [
                "arm-none-eabi-gcc",
                "-std=c11",
                "-O2",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-mthumb",
                *ARM_CPUS[cpu],
                *flags,
                "-I",
                str(d),
                "-c",
                str(src),
                "-o",
                str(tmp_path / "x.o"),
            ]
            r = subprocess.run(cmd, capture_output=True, text=True)
            assert r.returncode == 0, f"{src.name}: {r.stderr}"


def test_verify_cli(refdata, capsys):
    assert main(["verify", str(refdata / "models" / "person_detect.tflite"), "--inputs", "3"]) == 0
    assert "bit-exact 5/5 (3 random + 2 reference images)" in capsys.readouterr().out


def test_verify_names_the_first_differing_layer(tmp_path, refdata):
    """Sabotage the first constant of layer 5 in the generated C (weight or bias): the per-layer comparison
    must point at layer 5."""
    from tinyml.compile.verify_cli import first_bad_layer

    c = compile_tflite(refdata / "models" / "person_detect.tflite", tmp_path / "model")
    w = tmp_path / "model" / "model_weights.c"
    text = w.read_text()
    start = text.index("= {", text.index(" model_l5_"))
    m = re.compile(r"-?\d+").search(text, start)
    value = int(m.group())
    w.write_text(text[: m.start()] + str(value + 40 if value < 80 else value - 40) + text[m.end() :])
    x = np.random.default_rng(0).integers(-128, 128, 9216, np.int8)
    msg = first_bad_layer(c, tmp_path, x)
    assert msg.startswith("layer 5 (DEPTHWISE_CONV_2D"), msg
