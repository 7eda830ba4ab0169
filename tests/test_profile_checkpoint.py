"""`tinyml train` and `tinyml profile` from the command line: outputs, exact counts, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tinyml.cli import main
from tinyml.models import ModelConfig, build_model, load_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parent.parent


def tinyml(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "tinyml", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )


# A 2-epoch 32x32 run: the fixture trains it, the resume test asks for the same run again.
TRAIN_ARGS = ("train", "--data", "synthetic:40", "--resolution", "32", "--epochs", "2", "--batch-size", "16",
              "--threads", "1")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    r = tinyml(*TRAIN_ARGS, "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert f"wrote {out / 'best.pt'}" in r.stdout and "best val_acc" in r.stdout
    return out


def test_train_cli_writes_run_dir(trained):
    assert {p.name for p in trained.iterdir()} >= {"best.pt", "last.pt", "metrics.json"}
    metrics = json.loads((trained / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 2 and metrics["train"]["data"] == "synthetic:40"
    _, ck = load_checkpoint(trained / "last.pt")
    assert ck.model_config == ModelConfig(resolution=32) and ck.epoch == 2


def test_train_cli_resume_of_finished_run(trained, capsys):
    assert main([*TRAIN_ARGS, "--out", str(trained), "--resume", "--quiet"]) == 0
    assert "best val_acc" in capsys.readouterr().out


def test_profile_cli_on_trained_checkpoint(trained, tmp_path):
    r = tinyml("profile", str(trained / "best.pt"), "--json", str(tmp_path / "p.json"))
    assert r.returncode == 0, r.stderr
    for header in (
        "params (trainable)",
        "params (+BN stats)",
        "params (BN folded)",
        "MACs",
        "out bytes (int8)",
    ):
        assert header in r.stdout
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["totals"]["model_config"]["resolution"] == 32
    assert len(data["rows"]) == 30 and data["rows"][-1]["layer"] == "head.fc"


def test_profile_cli_exact_counts_for_the_reference_model(tmp_path, capsys):
    torch.manual_seed(0)
    cfg = ModelConfig()
    save_checkpoint(tmp_path / "ref.pt", build_model(cfg), cfg)
    assert main(["profile", str(tmp_path / "ref.pt"), "--json", str(tmp_path / "ref.json")]) == 0
    totals = json.loads((tmp_path / "ref.json").read_text())["totals"]
    assert (
        totals["macs"],
        totals["params_trainable"],
        totals["params_bn_stats"],
        totals["params_folded"],
    ) == (7_489_664, 216_322, 221_794, 210_850)
    out = capsys.readouterr().out
    assert "7,489,664 MACs" in out and "221,794 with BN statistics" in out and "210,850 BN folded" in out
    assert main(["profile", str(tmp_path / "ref.pt"), "--per-layer"]) == 0
    assert "features.0.pad" in capsys.readouterr().out


def assert_one_line_error(r: subprocess.CompletedProcess, verb: str, text: str, code: int) -> None:
    assert r.returncode == code, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tinyml {verb}: error:") and text in lines[0], r.stderr


def test_cli_errors_in_a_subprocess(tmp_path):
    assert_one_line_error(
        tinyml("train", "--data", "imagenet", "--out", str(tmp_path / "x")),
        "train",
        "unknown data source 'imagenet'",
        2,  # a usage error
    )
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 100)
    assert_one_line_error(tinyml("profile", str(junk)), "profile", "is not a tinyml checkpoint", 1)


@pytest.mark.parametrize(
    "argv, text, code",
    [
        (["train", "--data", "folder:/nonexistent/tinyml-ds", "--out", "{tmp}/r"], "dataset folder", 1),
        (
            ["train", "--data", "synthetic:40", "--epochs", "0", "--out", "{tmp}/r"],
            "epochs must be at least 1",
            2,
        ),
        (
            ["train", "--data", "synthetic:40", "--resolution", "16", "--out", "{tmp}/r"],
            "resolution must be at least",
            2,
        ),
        (["profile", "{tmp}/missing.pt"], "not found", 1),
    ],
)
def test_cli_errors_in_process(tmp_path, capsys, argv, text, code):
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"tinyml {argv[0]}: error:") and text in err[0]


def test_existing_run_is_not_overwritten(trained, capsys):
    before = (trained / "last.pt").read_bytes()
    assert (
        main(
            [
                "train",
                "--data",
                "synthetic:40",
                "--resolution",
                "32",
                "--epochs",
                "2",
                "--out",
                str(trained),
                "--quiet",
            ]
        )
        == 1
    )
    assert "already holds a run" in capsys.readouterr().err
    assert (trained / "last.pt").read_bytes() == before
