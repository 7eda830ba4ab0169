"""`tinyml sweep` to the device: int8 quantize, build, run on an emulated board; fits, resume, determinism.

One small sweep (a 32x32 base and one cut point, 1 epoch) on a board file written here: the default Cortex-M4
under QEMU with only 128 KiB of flash, so the unpruned base does not fit and the cut point does. Everything is
real: training, TF conversion, TFLM, our compiler, arm-none-eabi-gcc, QEMU and the serial protocol.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from firmware_cases import board_variant
from PIL import Image
from prune_cases import SUBPROCESS_ENV, SWEEP_CMD, THREADS, finished_points, kill_sweep_when

from tinyml.cli import main

SMALL_FLASH = 128 * 1024
CUT = "depth-c03-dscnn32_16-frozen"






def _mtimes(d: Path) -> dict[str, int]:
    return {str(p.relative_to(d)): p.stat().st_mtime_ns for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_device_sweep_fits_bit_exact_resume(tiny_base, tmp_path, capsys):
    out = tmp_path / "sweep"
    board = board_variant(tmp_path, "small-flash", flash=SMALL_FLASH)
    argv = ["sweep", "--base", str(tiny_base), "--cuts", "3", "--epochs", "1", "--out", str(out),
            "--board", str(board), "--bench-runs", "2", "--bench-inputs", "2", "--quiet", *THREADS]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "do not fit small-flash: base" in printed
    assert f"patches: {CUT} auto -> " in printed  # the compiler's choice per point, --patch auto the default

    rows = {r["id"]: r for r in json.loads((out / "results.json").read_text())["points"]}
    assert set(rows) == {"base", CUT}
    base, cut = rows["base"], rows[CUT]
    for r in rows.values():  # every point went through every stage, whether it fits or not
        assert r["stages_done"] == ["train", "profile", "quantize", "build", "bench"]
        assert r["board"] == "small-flash" and r["flash_size"] == SMALL_FLASH
        assert 0.0 <= r["int8_acc"] <= 1.0 and r["tflite_bytes"] == Path(r["tflite"]).stat().st_size > 0
        assert r["int8_drop_pts"] == pytest.approx((r["val_acc"] - r["int8_acc"]) * 100, abs=0.011)

    # the base needs more flash than the board has: recorded with the numbers, not measured, not a failure
    assert base["fits"] is False and "does not fit" in base["fit_error"] and "flash" in base["fit_error"]
    assert base["flash_bytes"] > SMALL_FLASH and base.get("latency_mean") is None
    assert not (out / "points" / "base" / "bench.json").exists()

    # the cut point fits: built, run over serial, every output equal to TFLM's
    assert cut["fits"] is True and cut["bit_exact"] is True
    assert 0 < cut["flash_bytes"] <= SMALL_FLASH and cut["ram_bytes"] > 0
    assert cut["patch"] == "auto" and cut["patch_choice"].startswith("patches: auto -> ")
    assert cut["arena_bytes"] <= cut["arena_bytes_off"]
    assert cut["latency_unit"] == "instructions" and cut["clock_hz"] == 25_000_000
    # estimated cycles beside the exact instructions (an M4 spends more than one cycle per instruction)
    assert cut["cycle_rules"] == "cortex-m4/trm-r0p1" and cut["est_cycles_mean"] > cut["latency_mean"]
    assert 0 < cut["latency_mean"] <= cut["latency_p90"]
    assert cut["latency_ms"] == pytest.approx(cut["latency_mean"] / 25e6 * 1e3, rel=1e-3)
    bench = json.loads((out / "points" / CUT / "bench.json").read_text())
    assert bench["bit_exact"] and len(bench["inputs"]) == 2 and len(bench["runs"]) == 4
    assert bench["flash_bytes"] == cut["flash_bytes"]

    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    for col in ("int8_acc", "int8_drop_pts", "tflite_bytes", "flash_bytes", "ram_bytes", "fits",
                "latency_mean", "latency_p90", "latency_ms", "bit_exact"):
        assert col in header, col
    csv_rows = {r["id"]: r for r in csv.DictReader((out / "results.csv").open())}
    assert csv_rows["base"]["fits"] == "False" and csv_rows[CUT]["bit_exact"] == "True"
    md = (out / "results.md").read_text()
    assert "instr mean" in md and "ms @25 MHz" in md and "do not fit the board" in md
    for png in ("acc_vs_latency.png", "acc_vs_ram.png", "acc_vs_flash.png", "acc_vs_params.png"):
        with Image.open(out / png) as im:
            assert im.format == "PNG" and im.size[0] >= 800
        assert f"]({png})" in md

    # emulated instruction counts repeat exactly: the same firmware and inputs, booted again
    from tinyml.device.bench import bench_model
    from tinyml.sweep.device import bench_inputs
    from tinyml.sweep.runner import SweepContext

    ctx = SweepContext.from_dict(json.loads((out / "sweep.json").read_text())["context"])
    again = bench_model(cut["tflite"], str(board), runs=2, warmup=1,
                        inputs=bench_inputs(ctx, cut["checkpoint"], 2), build_dir=out / "points" / CUT / "fw")
    assert again.counts == bench["runs"] and again.bit_exact

    # a rerun redoes nothing; a point interrupted after `build` redoes only `bench`
    before = _mtimes(out / "points")
    assert main(argv) == 0
    assert "2 point(s) already finished" in capsys.readouterr().out
    assert _mtimes(out / "points") == before
    rec_path = out / "points" / CUT / "record.json"
    rec = json.loads(rec_path.read_text())
    rec["stages_done"] = rec["stages_done"][:-1]
    rec_path.write_text(json.dumps(rec))
    before = _mtimes(out / "points")
    assert main(argv) == 0
    after = _mtimes(out / "points")
    changed = {k for k in after if after[k] != before.get(k)}
    assert f"{CUT}/bench.json" in changed and f"{CUT}/record.json" in changed
    assert not any(k.startswith("base/") for k in changed)
    assert not any(k.endswith((".pt", ".tflite", "model.json", ".elf")) for k in changed), changed
    assert json.loads(rec_path.read_text())["latency_mean"] == cut["latency_mean"]


@pytest.mark.parametrize("args,message", [
    (["--board", "nope"], "unknown board 'nope'"),
    (["--board", "nucleo-l4r5zi"], "is a real board: pass --port"),
    (["--port", "/dev/ttyACM0"], "--port is for real boards"),
    (["--board", "nucleo-l4r5zi", "--port", "/dev/null", "--jobs", "2"], "use --jobs 1"),
    (["--bench-runs", "0"], "--bench-runs must be at least 1"),
])
def test_device_sweep_errors_are_one_line(tiny_base, tmp_path, capsys, args, message):
    assert main(["sweep", "--base", str(tiny_base), "--out", str(tmp_path / "s"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinyml sweep: error: ") and message in err and "\n" not in err
    assert not (tmp_path / "s").exists()


def test_a_sweep_dir_keeps_one_board(tiny_base, tmp_path, capsys):
    """Device columns of one sweep dir come from one board; another board is refused, not mixed."""
    from tinyml.sweep.runner import DEVICE_STAGES, SweepContext, check_sweep_dir

    out = tmp_path / "s"
    options = (("board", "cortex-m"), ("board_name", "cortex-m"))
    check_sweep_dir(SweepContext(base=str(tiny_base), data="synthetic:160", out=str(out), epochs=1,
                                 stages=DEVICE_STAGES, options=options))
    assert main(["sweep", "--base", str(tiny_base), "--cuts", "2", "--epochs", "1", "--out", str(out),
                 "--board", "mps2-an500"]) == 1
    assert "holds points measured on board cortex-m, not mps2-an500" in capsys.readouterr().err


def _qemus_for(out: Path) -> list[int]:
    """QEMU processes booting firmware from under `out` (read from /proc, not matched by name)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"qemu-system-arm") and any(str(out).encode() in a for a in args):
            pids.append(int(cmdline.parent.name))
    return pids


@pytest.mark.slow
def test_killed_device_sweep_resumes_and_leaves_no_qemu(tiny_base, tmp_path):
    import subprocess
    import time

    out = tmp_path / "sweep"
    argv = [*SWEEP_CMD, "--base", str(tiny_base), "--cuts", "1-2", "--head", "dense", "--epochs", "1",
            "--out", str(out), "--bench-runs", "1", "--bench-inputs", "1", "--quiet", *THREADS]

    def finished() -> dict[str, int]:
        return finished_points(out, ["train", "profile", "quantize", "build", "bench"])

    # kill the sweep process alone while a later point runs on its QEMU (after the base point finished):
    # the QEMU it started must follow
    kill_sweep_when(argv, tmp_path / "stderr.txt", lambda: bool(finished() and _qemus_for(out)), poll=0.05)
    done_before = finished()
    assert 1 <= len(done_before) < 3, "the kill must land mid-sweep"
    deadline = time.time() + 20
    while _qemus_for(out) and time.time() < deadline:
        time.sleep(0.2)
    assert _qemus_for(out) == [], "a QEMU outlived the killed sweep"

    res = subprocess.run(argv, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert f"{len(done_before)} point(s) already finished" in res.stdout
    done_after = finished()
    assert len(done_after) == 3
    assert {k: done_after[k] for k in done_before} == done_before  # finished points were not redone
    rows = json.loads((out / "results.json").read_text())["points"]
    assert len(rows) == 3 and all(r["bit_exact"] for r in rows)
