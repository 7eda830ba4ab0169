"""`tinyml pipeline --config`: one-line config errors; a tiny run to the board; reruns reuse stages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tinyml.cli import main
from tinyml.pipeline.config import load_config

REPO = Path(__file__).resolve().parent.parent
STAGES = ["train", "sweep", "quantize", "export", "flash", "bench"]


@pytest.fixture(autouse=True)
def restore_torch_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = '[data]\nspec = "synthetic:200"\n'


@pytest.mark.parametrize("text,message", [
    ('[data]\nspec = "synthetic"\n[train]\nepochz = 3\n', "unknown key 'train.epochz'"),
    ('[data]\nspec = "synthetic"\n[trian]\nepochs = 3\n', "unknown section [trian]"),
    ('[train]\nepochs = 3\n', "missing 'data.spec'"),
    ('[data]\nspec = "synthetic"\n[train]\nepochs = "3"\n', "'train.epochs' must be an integer"),
    ('[data]\nspec = "synthetic"\n[train]\nepochs = 0\n', "'train.epochs' must be at least 1"),
    ('[data]\nspec = "folder:/no/such/dir"\n', "'data.spec' 'folder:/no/such/dir': no such directory"),
    ('[data]\nspec = "imagenet"\n', "'data.spec' 'imagenet' is not"),
    ('[data]\nspec = "synthetic"\n[run]\nboard = "nope"\n', "'run.board': unknown board 'nope'"),
    ('[data]\nspec = "synthetic"\n[run]\nboard = "nucleo-l4r5zi"\n', "set 'run.port'"),
    ('[data]\nspec = "synthetic"\n[run]\ndevice = "tpu"\n', "'run.device' must be one of auto, cpu"),
    ('[data]\nspec = "synthetic"\n[run]\nworkers = -1\n', "'run.workers' must be at least 0"),
    ('[data]\nspec = "synthetic"\n[sweep]\ncuts = [3, 14]\n', "'sweep.cuts': cut 14 out of range"),
    ('[data]\nspec = "synthetic"\n[sweep]\nheads = ["dscnn32_16", "nope"]\n', "'sweep.heads': unknown head"),
    ('[data]\nspec = "synthetic"\n[bench]\ninputs = ["missing.jpg"]\n', "'bench.inputs[0]' 'missing.jpg'"),
    ('[data]\nspec = "synthetic"\n[select]\npoint = "cut5"\n', "'select.point' must be"),
    ('[data\nspec = "synthetic"\n', "not valid TOML"),
    ('[data]\nspec = "synthetic"\n[run]\nexecutor = "slurm"\n', "'run.executor' must be"),
    ('[data]\nspec = "synthetic"\n[run]\nray_address = "auto"\n', "'run.ray_address' is for run.executor"),
])
def test_config_errors_are_one_line_naming_the_key(tmp_path, capsys, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, text)
    assert main(["pipeline", "--config", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"tinyml pipeline: error: config {path}") and message in err and "\n" not in err
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_missing_config_and_bad_override(tmp_path, capsys):
    assert main(["pipeline", "--config", str(tmp_path / "nope.toml")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"tinyml pipeline: error: config {tmp_path / 'nope.toml'}: no such file"
    assert main(["pipeline", "--config", str(write(tmp_path, GOOD)), "--board", "nope"]) == 1
    assert "'run.board': unknown board 'nope'" in capsys.readouterr().err


def test_example_configs_are_valid(tmp_path, monkeypatch):
    """The documented examples load as they are (pipeline.toml's folder:images made to exist here)."""
    demo = load_config(REPO / "examples" / "demo.toml")
    assert demo["data"]["spec"] == "synthetic" and demo["run"]["board"] == "cortex-m"
    assert len(demo["sweep"]["cuts"]) >= 3 and demo["sweep"]["enabled"]
    assert not demo["sweep"]["host_only"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "images").mkdir()
    full = load_config(REPO / "examples" / "pipeline.toml")
    from tinyml.pipeline.config import SCHEMA

    text = (REPO / "examples" / "pipeline.toml").read_text()
    for section, keys in SCHEMA.items():  # every key is documented in the example
        assert f"[{section}]" in text, section
        for key in keys:
            assert f"\n{key} =" in text or f"# {key} =" in text, f"{section}.{key}"
    assert full["train"]["epochs"] == 50


def test_ray_executor_reaches_the_sweep(tmp_path):
    """[run] executor = "ray" runs the pipeline's sweep on the Ray cluster at ray_address."""
    from tinyml.pipeline.stages import Pipeline

    path = write(tmp_path, GOOD + '[run]\nexecutor = "ray"\nray_address = "10.0.0.5:6379"\njobs = 2\n')
    argv = Pipeline(load_config(path))._sweep_argv("base.pt", tmp_path / "sweep")
    assert argv[argv.index("--executor") + 1] == "ray"
    assert argv[argv.index("--ray-address") + 1] == "10.0.0.5:6379"
    assert argv[argv.index("--jobs") + 1] == "1"  # the cluster, not jobs, sets the parallelism
    argv = Pipeline(load_config(write(tmp_path, GOOD)))._sweep_argv("base.pt", tmp_path / "sweep")
    assert "--executor" not in argv


TINY = """
[run]
dir = "{run}"
jobs = 1
threads = 1
quiet = true

[data]
spec = "synthetic:200"

[train]
epochs = 1
resolution = 32

[sweep]
cuts = [3]
heads = ["dscnn32_16"]
epochs = 1
bench_runs = 2
bench_inputs = 1

[select]
point = "best"
max_drop_pts = 100.0

[bench]
runs = {runs}
random = 1
per_layer = true
"""


def _mtimes(d: Path) -> dict[str, int]:
    return {str(p.relative_to(d)): p.stat().st_mtime_ns for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_tiny_pipeline_runs_to_the_board_and_reuses_finished_stages(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = write(tmp_path, TINY.format(run=run, runs=2))
    assert main(["pipeline", "--config", str(cfg)]) == 0
    printed = capsys.readouterr().out
    state = json.loads((run / "pipeline.json").read_text())["stages"]
    assert list(state) == STAGES and all(s["done"] for s in state.values())

    # every stage's outputs are in the run directory
    assert (run / "train" / "best.pt").exists() and (run / "sweep" / "results.md").exists()
    chosen = state["quantize"]["outputs"]["tflite"]
    assert Path(chosen).parent == run / "model" and Path(chosen).with_suffix(".json").exists()
    assert (run / "firmware" / "build" / "firmware.elf").exists()
    bench = json.loads((run / "bench.json").read_text())
    assert bench["bit_exact"] and bench["per_layer"] and len(bench["runs"]) == 2
    assert bench["unit"] == "instructions" and bench["board"] == "cortex-m"
    assert bench["est_cycles"]["mean"] > 0 and "est. cycles" in (run / "bench.txt").read_text()
    assert "cycles (" in (run / "summary.md").read_text()  # estimated cycles beside the instructions
    assert (run / "summary.md").exists() and (run / "pipeline.toml").read_text() == cfg.read_text()
    sweep = {r["id"]: r for r in json.loads((run / "sweep" / "results.json").read_text())["points"]}
    assert set(sweep) == {"base", "depth-c03-dscnn32_16-frozen"}
    assert all(r["bit_exact"] and r["fits"] for r in sweep.values())
    # max_drop_pts = 100: the fastest point is chosen, and the ending shows the sweep table and the plots
    assert Path(chosen).stem == "depth-c03-dscnn32_16-frozen"
    tail = printed[printed.index("sweep (2 points, measured on cortex-m)"):]
    assert "instr mean" in tail and "bit-exact" in tail and "acc_vs_latency.png" in tail.splitlines()[-2]

    # a rerun reuses every stage: nothing in the run directory is rewritten but the state
    before = _mtimes(run)
    assert main(["pipeline", "--config", str(cfg)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("reused (finished earlier with the same settings)") == 6
    after = _mtimes(run)
    assert {k for k in after if after[k] != before.get(k)} <= {"pipeline.json", "summary.md"}

    # a changed bench setting redoes only the bench
    cfg.write_text(TINY.format(run=run, runs=3))
    assert main(["pipeline", "--config", str(cfg)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("reused (finished") == 5 and "== [6/6] bench\n" in printed
    assert len(json.loads((run / "bench.json").read_text())["runs"]) == 3
    assert (run / "train" / "best.pt").stat().st_mtime_ns == before["train/best.pt"]
    assert (run / "firmware" / "build" / "firmware.elf").stat().st_mtime_ns == \
        before["firmware/build/firmware.elf"]

    # an interrupted stage (here: the quantize stage marked unfinished, its model gone) is redone, and the
    # stages after it follow only if its output changed
    shutil.rmtree(run / "model")
    assert main(["pipeline", "--config", str(cfg)]) == 0
    printed = capsys.readouterr().out
    assert "== [3/6] quantize" in printed and (run / "model").is_dir()
    assert (run / "train" / "best.pt").stat().st_mtime_ns == before["train/best.pt"]


@pytest.mark.slow
def test_tiny_pipeline_on_cortex_m0(tmp_path, capsys):
    """The same tiny run on the ARMv6-M board: sweep points and chosen model bit-exact on the Cortex-M0."""
    run = tmp_path / "run"
    cfg = write(tmp_path, TINY.format(run=run, runs=1))
    assert main(["pipeline", "--config", str(cfg), "--board", "cortex-m0"]) == 0
    printed = capsys.readouterr().out
    bench = json.loads((run / "bench.json").read_text())
    assert bench["bit_exact"] and bench["per_layer"] and bench["board"] == "cortex-m0"
    assert bench["unit"] == "instructions" and bench["clock_hz"] == 16_000_000
    sweep = json.loads((run / "sweep" / "results.json").read_text())["points"]
    assert len(sweep) == 2 and all(r["bit_exact"] and r["fits"] and r["board"] == "cortex-m0" for r in sweep)
    assert "sweep (2 points, measured on cortex-m0)" in printed
    assert "ms @16 MHz" in (run / "sweep" / "results.md").read_text()
