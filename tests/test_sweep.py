"""`tinyml sweep --host-only`: points, resumable records, parallel runs, a killed sweep, results and plots.

The device stages (int8, build, bench) are tested in test_sweep_device.py.
"""

from __future__ import annotations

import csv
import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image
from prune_cases import SUBPROCESS_ENV, SWEEP_CMD, THREADS, TINY_DATA, finished_points, kill_sweep_when

from tinyml.cli import main
from tinyml.errors import TinymlError
from tinyml.sweep.points import Point, make_points, parse_cuts, parse_sparsities

REPO = Path(__file__).resolve().parent.parent






@pytest.mark.parametrize("text,cuts", [
    ("1-13", list(range(1, 14))), ("3,5,7", [3, 5, 7]), ("1-4,9", [1, 2, 3, 4, 9]), ("0", [0]),
    ("5,5,2", [2, 5]),
])
def test_parse_cuts(text, cuts):
    assert parse_cuts(text) == cuts


@pytest.mark.parametrize("text,message", [
    ("0-14", "cut 14 out of range"), ("x", "bad --cuts"), ("5-3", "empty range"), ("-1", "bad --cuts"),
])
def test_parse_cuts_errors(text, message):
    with pytest.raises(TinymlError, match=message):
        parse_cuts(text)


def test_parse_sparsities():
    assert parse_sparsities("0.9,0.5,0.7") == [0.5, 0.7, 0.9]
    with pytest.raises(TinymlError, match=r"\[0, 1\)"):
        parse_sparsities("0.5,1.0")


def test_point_ids_are_stable_and_unique():
    points = make_points([3, 12], ["dscnn32_16", "dense:fc1=128"], unfreeze=True, sparsities=[0.5])
    assert [p.id for p in points] == [
        "base", "depth-c03-dscnn32_16-unfrozen", "depth-c03-dense-fc1128-unfrozen",
        "depth-c12-dscnn32_16-unfrozen", "depth-c12-dense-fc1128-unfrozen", "magnitude-s0.50"]
    for p in points:  # a record's fields rebuild the same point (another executor can rerun it from JSON)
        assert Point.from_fields(json.loads(json.dumps(p.fields()))) == p


def _files(d: Path) -> dict[str, int]:
    return {str(p.relative_to(d)): p.stat().st_mtime_ns for p in sorted(d.rglob("*")) if p.is_file()}


EXTRA_CALLS: list[str] = []


def extra_stage(point, ctx, pdir, record):
    """A stand-in for a later (int8/device) stage: adds a column from what earlier stages recorded."""
    EXTRA_CALLS.append(point.id)
    return {"extra_kib": round(record["params_folded"] / 1024, 1)}


@pytest.mark.slow
def test_sweep_end_to_end_rerun_and_extra_stage(tiny_base, tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["sweep", "--base", str(tiny_base), "--cuts", "2,4,6,8", "--head", "dscnn32_16,dense",
            "--magnitude", "0.5", "--epochs", "1", "--out", str(out), "--quiet", "--host-only", *THREADS]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "does not shrink a dense int8 flatbuffer" in printed

    for name in ("results.csv", "results.json", "results.md", "acc_vs_params.png", "acc_vs_macs.png"):
        assert (out / name).stat().st_size > 0, name
    for png in ("acc_vs_params.png", "acc_vs_macs.png"):
        with Image.open(out / png) as im:
            assert im.format == "PNG" and im.size[0] >= 800
    rows = list(csv.DictReader((out / "results.csv").open()))
    ids = [r["id"] for r in rows]
    assert ids[0] == "base" and ids[-1] == "magnitude-s0.50" and len(ids) == 10
    assert set(ids) == {p.id for p in make_points([2, 4, 6, 8], ["dscnn32_16", "dense"], sparsities=[0.5])}
    md = (out / "results.md").read_text()
    assert "| depth-c04-dscnn32_16-frozen |" in md and "![acc_vs_params.png](acc_vs_params.png)" in md

    # every record's numbers agree with a fresh profile of its own checkpoint
    from tinyml.models import load_checkpoint
    from tinyml.models.profile import input_shape_of, profile_model

    results = json.loads((out / "results.json").read_text())["points"]
    base_row = results[0]
    for r in results:
        model, ck = load_checkpoint(r["checkpoint"])
        _, t = profile_model(model, input_shape_of(ck.model_config))
        for k in ("params_trainable", "params_bn_stats", "params_folded", "macs", "act_peak_bytes"):
            assert r[k] == t[k], (r["id"], k)
        assert 0.0 <= r["val_acc"] <= 1.0 and r["stages_done"] == ["train", "profile"]
        if r["method"] == "depth":
            assert (ck.model_config.cut, ck.model_config.head) == (r["cut"], r["head"])
            assert r["params_folded"] < base_row["params_folded"] and r["macs"] < base_row["macs"]
            assert r["train_s"] > 0 and r["epochs"] == 1
        if r["method"] == "magnitude":
            assert r["weight_sparsity"] >= 0.5 and r["nonzero_params"] < 0.55 * base_row["params_folded"]
            assert r["macs"] == base_row["macs"] and r["params_folded"] == base_row["params_folded"]

    # a rerun skips every finished point: no file under points/ is rewritten
    before = _files(out / "points")
    assert main(argv) == 0
    assert "10 point(s) already finished" in capsys.readouterr().out
    assert _files(out / "points") == before

    # a later stage is added by name: only it runs, on every point, and its column reaches the outputs
    from tinyml.sweep.report import CSV_COLUMNS, collect, write_results
    from tinyml.sweep.runner import SweepContext, run_points

    ctx = SweepContext.from_dict(json.loads((out / "sweep.json").read_text())["context"])
    ctx = replace(ctx, stages=(*ctx.stages, "test_sweep:extra_stage"), progress=False, threads=1)
    checkpoints = {k: v for k, v in before.items() if k.endswith(".pt")}
    points = [Point.from_fields(r) for r in results]
    records = run_points(points, ctx)
    assert sorted(EXTRA_CALLS) == sorted(p.id for p in points)
    assert {k: v for k, v in _files(out / "points").items() if k.endswith(".pt")} == checkpoints
    assert all(r["extra_kib"] == round(r["params_folded"] / 1024, 1) for r in records)
    rows, failed = collect(out, ctx.settings(), ctx.stages)
    write_results(out, rows, failed, ctx.settings())
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert header[:len(CSV_COLUMNS)] == CSV_COLUMNS and "extra_kib" in header

    # the same directory with other settings is refused, not mixed
    assert main(["sweep", "--base", str(tiny_base), "--cuts", "2", "--epochs", "2", "--out", str(out),
                 "--host-only"]) == 1
    err = capsys.readouterr().err.strip()
    assert "holds a sweep made with other settings (epochs: 1 -> 2)" in err and "\n" not in err


@pytest.mark.parametrize("args,message", [
    (["--cuts", "3-14"], "cut 14 out of range"),
    (["--head", "dscnn32_16,nope"], "unknown head 'nope'"),
    (["--magnitude", "0.5,abc"], "bad --magnitude"),
    (["--jobs", "0"], "--jobs must be at least 1"),
    (["--epochs", "0"], "epochs must be at least 1"),
])
def test_sweep_cli_errors_are_one_line(tiny_base, tmp_path, capsys, args, message):
    assert main(["sweep", "--base", str(tiny_base), "--out", str(tmp_path / "s"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinyml sweep: error: ") and message in err and "\n" not in err


def test_sweep_refuses_another_base(tiny_base, tmp_path, capsys):
    """A sweep dir made from one base refuses another (here: another resolution), instead of mixing them."""
    from tinyml.models import ModelConfig, build_model, save_checkpoint
    from tinyml.sweep.runner import SweepContext, check_sweep_dir

    out = tmp_path / "s"
    check_sweep_dir(SweepContext(base=str(tiny_base), data=TINY_DATA, out=str(out), epochs=1))
    cfg = ModelConfig(resolution=48)
    save_checkpoint(tmp_path / "b48.pt", build_model(cfg), cfg, train={"data": TINY_DATA})
    assert main(["sweep", "--base", str(tmp_path / "b48.pt"), "--cuts", "2", "--epochs", "1",
                 "--out", str(out)]) == 1
    assert "made from another base checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_killed_sweep_resumes_without_redoing_points(tiny_base, tmp_path):
    out = tmp_path / "sweep"
    argv = [*SWEEP_CMD, "--base", str(tiny_base), "--cuts", "1-5", "--head", "dense", "--epochs", "1",
            "--out", str(out), "--quiet", "--host-only", *THREADS]

    def finished() -> dict[str, int]:
        return finished_points(out, ["train", "profile"])

    kill_sweep_when(argv, tmp_path / "stderr.txt", lambda: any(i != "base" for i in finished()), poll=0.2)
    done_before = finished()
    assert 2 <= len(done_before) < 6, "the kill must land mid-sweep"

    # resume with two parallel worker processes
    res = subprocess.run([*argv[:-2], "--jobs", "2"], env=SUBPROCESS_ENV, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    assert f"{len(done_before)} point(s) already finished" in res.stdout
    done_after = finished()
    assert len(done_after) == 6
    assert {k: done_after[k] for k in done_before} == done_before  # finished points were not redone
    assert len(list(csv.DictReader((out / "results.csv").open()))) == 6


def _row(i: int, cut: int, x: float, acc: float, **kw) -> dict:
    return {"id": f"p{i}", "method": "depth", "series": "depth / h", "cut": cut, "ram_bytes": x,
            "int8_acc": acc, "latency_unit": "instructions", "board": "cortex-m", **kw}


def test_plots_join_points_along_the_axis_draw_the_front_and_ring_the_chosen_point():
    import matplotlib.pyplot as plt

    from tinyml.sweep.plots import accuracy_figure, pareto_front

    rows = [_row(0, 5, 300.0, 0.8), _row(1, 3, 100.0, 0.6), _row(2, 4, 200.0, 0.5),
            {"id": "base", "method": "base", "series": "base", "ram_bytes": 400.0, "int8_acc": 0.85}]
    fig = accuracy_figure(rows, "ram_bytes", "RAM", "int8_acc", "acc", "t", None, chosen="p0")
    ax = fig.axes[0]
    series = next(ln for ln in ax.lines if ln.get_label() == "depth / h")
    assert list(series.get_xdata()) == [100.0, 200.0, 300.0]  # in RAM order, not id order (no zig-zag)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "chosen for the board: p0" in labels and any(t.startswith("Pareto front") for t in labels)
    assert any(t.get_text() == "chosen: p0" for t in ax.texts)
    plt.close(fig)
    assert pareto_front([(100, 0.6), (200, 0.5), (300, 0.8), (400, 0.85)]) == [0, 2, 3]


def test_latency_axis_says_what_the_number_is():
    from tinyml.sweep.report import latency_axis

    assert latency_axis([_row(0, 1, 1, 0.5)]) == (
        "latency_mean", "instructions per inference (emulated on cortex-m, exact)")
    real = _row(0, 1, 1, 0.5, latency_unit="cycles", board="nucleo-l4r5zi")
    assert latency_axis([real]) == ("latency_ms", "ms on nucleo-l4r5zi (DWT cycles at its clock)")
