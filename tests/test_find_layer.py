"""`tinyml bench --find-layer`: every layer's output dumped from the device over serial, compared with TFLM's
tensors. A real QEMU board runs the small model with one layer broken on purpose (TINYML_CORRUPT_LAYER, a
test-only macro of the dump build that flips every other byte of that layer's output in the arena, so every
later layer computes on it): find-layer must name exactly that layer; unbroken, every layer must be equal.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from firmware_cases import small_model  # noqa: F401

from tinyml import cli
from tinyml.device.find_layer import find_layer
from tinyml.device.transport import QemuBoard
from tinyml.errors import TinymlError
from tinyml.firmware.boards import load_board
from tinyml.firmware.project import DUMP_DEFINE, build_project, export_project


def _input(model) -> np.ndarray:
    from tinyml.compile import analyze

    c = analyze(model)
    return np.random.default_rng(3).integers(-128, 128, c.model.tensors[c.model.inputs[0]].nbytes, np.int8)


def _broken_layer(model):
    """A layer in the middle of the model with real computation (not an alias): the one to break."""
    from tinyml.compile import analyze

    layers = [la for la in analyze(model).layers if la.kernel]
    return layers[len(layers) // 2]


def test_find_layer_names_exactly_the_broken_layer(small_model, artifacts):  # noqa: F811
    la = _broken_layer(small_model)
    r = find_layer(small_model, "cortex-m", _input(small_model), build_dir=artifacts / "fw-find-broken",
                   defines=(f"TINYML_CORRUPT_LAYER={la.index}",))
    first = r.comparison.first
    assert first is not None and (first.index, first.op) == (la.index, la.op), r.summary()
    assert first.differing >= first.size // 4 and first.max_diff > 0 and not r.output_equal
    assert r.comparison.compared[-1] == la.index and len(r.comparison.compared) > 1
    assert f"FIRST DIFFERING: layer {la.index} ({la.op}" in r.summary()


def test_find_layer_on_an_unbroken_model_finds_every_layer_equal(small_model, artifacts):  # noqa: F811
    from tinyml.compile import analyze

    r = find_layer(small_model, "cortex-m", _input(small_model), build_dir=artifacts / "fw-find-ok")
    assert r.comparison.first is None and r.output_equal, r.summary()
    assert r.comparison.compared == tuple(la.index for la in analyze(small_model).layers)
    assert f"all {len(r.comparison.compared)} compared layers equal TFLM's" in r.summary()


def test_the_normal_build_has_no_dump_code(small_model, artifacts):  # noqa: F811
    """The dump hook costs a normal build nothing: the firmware is the same bytes with or without this
    feature's sources (the macro absent), and a dump build answers INFO with dump=1."""
    board = load_board("cortex-m")
    normal = export_project(small_model, board, artifacts / "fw-find-normal")
    text = (normal.dir / "Makefile").read_text()
    assert DUMP_DEFINE not in text and "TINYML_CORRUPT_LAYER" not in text
    elf = build_project(normal).elf
    import subprocess

    syms = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, timeout=60).stdout
    assert "tinyml_debug_tensor" not in syms and "cmd_dump" not in syms


def test_bench_cli_find_layer_over_a_port(tmp_path, small_model, artifacts, capsys):  # noqa: F811
    """bench --port on a board whose layer is broken: the mismatch names the flag; with it, the layer."""
    la = _broken_layer(small_model)
    board = load_board("cortex-m")
    project = export_project(small_model, board, artifacts / "fw-find-broken-port",
                             defines=(DUMP_DEFINE, f"TINYML_CORRUPT_LAYER={la.index}"))
    elf = build_project(project).elf
    out = tmp_path / "bench.json"
    with QemuBoard(board, elf) as q:
        base = ["bench", "--model", str(small_model), "--port", q.url, "--runs", "1", "--random", "1"]
        assert cli.main(base) == 1
        assert "rerun with --find-layer" in capsys.readouterr().err
        assert cli.main([*base, "--find-layer", "--json", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"FIRST DIFFERING: layer {la.index} ({la.op}" in err, err
    doc = json.loads(out.read_text())["find_layer"]
    assert doc["first_differing"]["index"] == la.index and doc["first_differing"]["max_abs_diff"] > 0


def test_find_layer_over_a_port_needs_a_dump_build(small_model, artifacts):  # noqa: F811
    board = load_board("cortex-m")
    elf = build_project(export_project(small_model, board, artifacts / "fw-find-normal")).elf
    with QemuBoard(board, elf) as q:
        with pytest.raises(TinymlError, match="built without layer dumps: export it with `tinyml export "
                                              "--dump-layers`"):
            find_layer(small_model, board, _input(small_model), port=q.url)


def test_patched_inner_layers_are_named_unobservable(tmp_path, refdata):
    """--patch 2 on person_detect: layer 0 runs in row bands inside the stage, so it has no dump; the
    comparison says so and compares the stage's output (layer 1) in its place (host build, same C)."""
    from tinyml.compile import compile_tflite, host
    from tinyml.compile.verify_cli import compare_layers

    c = compile_tflite(refdata / "models" / "person_detect.tflite", tmp_path / "model", patch_setting=2)
    exe = host.build(tmp_path / "model", "model", tmp_path / "host_debug", debug=True)
    x = np.random.default_rng(0).integers(-128, 128, 9216, np.int8)
    frames = host.run_debug(exe, x)
    cmp = compare_layers(c, frames, x)
    assert 0 not in frames and cmp.unobservable == (0,) and cmp.compared[0] == 1 and cmp.first is None
