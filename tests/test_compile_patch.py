"""Patch-based inference on the host: row bands bit-exact with TFLM, the choice, and its refusals."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from compile_cases import case_models  # noqa: F401 (fixture)

from tinyml.cli import main
from tinyml.compile import analyze, compile_tflite, host
from tinyml.compile import patch as patch_mod
from tinyml.compile.patch import report
from tinyml.errors import TinymlError
from tinyml.tflm import TflmReference


def _run(c, d, n=4):
    exe = host.build(d, c.name, d.parent / f"{c.name}_exe")
    t_in = c.model.tensors[c.model.inputs[0]]
    xs = np.random.default_rng(3).integers(-128, 128, (n, t_in.nbytes), np.int8)
    ref = TflmReference(c.model.data)
    want = np.stack([ref.invoke(x).reshape(-1).view(np.int8) for x in xs])
    return host.run(exe, xs, c.model.tensors[c.model.outputs[0]].nbytes), want


@pytest.mark.parametrize("name", ["person_detect", "vww_96_int8"])
@pytest.mark.parametrize("setting", ["auto", 5, 24])
def test_reference_models_in_patches_are_bit_exact(tmp_path, refdata, name, setting):
    c = compile_tflite(refdata / "models" / f"{name}.tflite", tmp_path / "m", patch_setting=setting)
    assert c.patch is not None and c.plan_off is not None
    if setting == "auto":  # the full-size early activations are gone
        assert c.plan.arena_bytes < c.plan_off.arena_bytes
    else:
        assert c.patch.n == setting and c.plan.arena_bytes <= c.plan_off.arena_bytes + 4096
    ys, want = _run(c, tmp_path / "m")
    np.testing.assert_array_equal(ys, want)


def test_auto_respects_the_overhead_budget(refdata):
    model = refdata / "models" / "person_detect.tflite"
    free = analyze(model, patch_setting="auto", overhead=1.0)
    tight = analyze(model, patch_setting="auto", overhead=0.02)
    none = analyze(model, patch_setting="auto", overhead=0.0)
    assert free.patch.est_overhead <= 1.0 and tight.patch.est_overhead <= 0.02
    assert free.plan.arena_bytes <= tight.plan.arena_bytes < tight.plan_off.arena_bytes
    assert none.patch is None and none.plan.arena_bytes == none.plan.arena_bytes


@pytest.mark.parametrize(
    "setting,message",
    [
        ("0", "--patch 0: a patch setting needs at least 2 bands (or use off)"),
        ("many", "--patch 'many': expected auto, off or a number of bands"),
        ("500", "--patch 500: more bands than rows: the stage's outputs have at most 48 rows"),
    ],
)
def test_invalid_patch_settings_say_why(tmp_path, refdata, capsys, setting, message):
    rc = main(["compile", str(refdata / "models" / "person_detect.tflite"), "-o", str(tmp_path / "o"),
               "--patch", setting])
    assert rc == 2 and message in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_verbose_report_shows_live_bytes_with_and_without_patches(tmp_path, refdata, capsys):
    assert main(["compile", str(refdata / "models" / "person_detect.tflite"), "-o", str(tmp_path / "o"),
                 "--patch", "6", "-v"]) == 0
    out = capsys.readouterr().out
    assert "patches: the first 4 layers in 6 row bands" in out and "live, no patches" in out
    row = [line for line in out.splitlines() if line.strip().startswith("2 CONV_2D")][-1]  # the live table
    without, with_ = (int(v.replace(",", "")) for v in row.split()[-2:])
    assert with_ < without  # layer 2's 36,864 B output never exists


def test_a_model_without_a_convolution_stage_refuses_bands(case_models):  # noqa: F811
    with pytest.raises(TinymlError, match=r"--patch 2: the model's first layer .* is not a convolution"):
        analyze(case_models["softmax7"], patch_setting=2)
    assert analyze(case_models["softmax7"], patch_setting="auto").patch is None


def test_compile_defaults_to_auto_and_reports_the_choice(tmp_path, refdata, capsys):
    """The default is auto; the choice is one line of the CLI output and a dict in the compile manifest."""
    model = refdata / "models" / "person_detect.tflite"
    assert main(["compile", str(model), "-o", str(tmp_path / "o")]) == 0
    c = analyze(model, patch_setting="auto")
    line = (f"patches: auto -> layers 0-3 in {c.patch.n} row bands, arena {c.plan.arena_bytes:,} B vs "
            f"{c.plan_off.arena_bytes:,} B off, est. +{c.patch.est_overhead:.1%} instructions")
    assert line in capsys.readouterr().out
    doc = json.loads((tmp_path / "o" / "tinyml_compile.json").read_text())["patch"]
    assert doc == report(c) and doc["stage_layers"] == [0, 1, 2, 3] and doc["setting"] == "auto"
    assert main(["compile", str(model), "-o", str(tmp_path / "o"), "--patch", "off"]) == 0
    assert f"patches: off, arena {c.plan_off.arena_bytes:,} B" in capsys.readouterr().out


def _corrupt(how: str):
    """A make_plan whose plans are broken in one way (what a compiler bug could produce)."""
    def broken(*args, **kwargs):
        p = make_plan_ok(*args, **kwargs)
        bands = [list(b) for b in p.bands]
        if how == "buffer":
            return replace(p, buf_bytes=(p.buf_bytes[0] - 4, p.buf_bytes[1]))
        if how == "halo" and p.stage > 1:  # band 1's second layer misses its first input row
            bl = bands[1][1]
            bands[1][1] = replace(bl, in_rows=(bl.in_rows[0] + 1, bl.in_rows[1]), pad_top=bl.pad_top)
        if how == "rows":  # band 0's first layer writes past its tensor
            bl = bands[0][0]
            bands[0][0] = replace(bl, out_rows=(bl.out_rows[0], 10_000))
        if how == "cover":  # the last band is lost
            bands = bands[:-1]
        return replace(p, bands=tuple(tuple(b) for b in bands))
    return broken


make_plan_ok = patch_mod.make_plan


@pytest.mark.parametrize(
    "how,message",
    [
        ("buffer", r"patch band \d+: writes \d+ B into band buffer 0 of \d+ B"),
        ("halo", r"patch band 1: .*(not the rows output rows|the previous layer wrote)"),
        ("rows", r"patch band 0: rows out \[0, 10000\)"),
        ("cover", r"patch band 4: the bands cover 20 of 24 output rows"),
    ],
)
def test_a_corrupted_patch_plan_is_refused(monkeypatch, refdata, how, message):
    """Patched plans go through the bounds check too: a broken band never becomes C."""
    monkeypatch.setattr(patch_mod, "make_plan", _corrupt(how))
    with pytest.raises(TinymlError, match=r"internal compiler error \(please report\): " + message):
        analyze(refdata / "models" / "person_detect.tflite", patch_setting=6)
