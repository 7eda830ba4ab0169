"""--device and --workers: the selection logic, the one-line error without a GPU, the CPU path end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tinyml.errors import TinymlError
from tinyml.train.device import default_workers, pick_device, resolve_device

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("requested, cuda, mps, expected", [
    ("auto", True, True, "cuda"),  # CUDA first
    ("auto", False, True, "mps"),  # then MPS
    ("auto", False, False, "cpu"),  # then the CPU
    ("cpu", True, True, "cpu"),  # an explicit CPU is always honoured
    ("cuda", True, False, "cuda"),
    ("mps", False, True, "mps"),
])
def test_device_selection(requested, cuda, mps, expected):
    assert pick_device(requested, cuda, mps) == expected


@pytest.mark.parametrize("requested, message", [
    ("cuda", "--device cuda: no CUDA GPU is available (torch 2.0+cpu has no CUDA support)"),
    ("mps", "--device mps: Apple MPS is not available"),
    ("tpu", "unknown device 'tpu'"),
])
def test_missing_device_is_an_error(requested, message):
    with pytest.raises(TinymlError, match=re.escape(message)):
        pick_device(requested, cuda=False, mps=False, torch_version="2.0+cpu")


def test_this_machine_resolves_to_a_real_device():
    dev = resolve_device("auto")
    assert dev.describe().startswith(f"device: {dev.name}")
    assert (dev.amp_dtype is not None) == (dev.name == "cuda") and dev.pin_memory == (dev.name == "cuda")


@pytest.mark.parametrize("cpus, workers", [(1, 0), (2, 1), (3, 2), (16, 4)])
def test_default_workers_leave_a_core_to_training(cpus, workers):
    assert default_workers(cpus) == workers


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinyml.cli", *argv], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)


@pytest.mark.parametrize("verb", ["train", "prune", "sweep"])
def test_cuda_without_cuda_is_one_line_and_non_zero(tmp_path, verb):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    args = {"train": ["--data", "synthetic"], "prune": ["--base", "x.pt", "--cut", "3"],
            "sweep": ["--base", "x.pt", "--host-only"]}[verb]
    p = run_cli(verb, *args, "--out", str(tmp_path / "o"), "--device", "cuda")
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tinyml {verb}: error: --device cuda: no CUDA GPU")
    assert "Traceback" not in p.stderr and not (tmp_path / "o").exists()


def test_train_cli_says_the_device_first_and_reports_images_per_second(tmp_path):
    p = run_cli("train", "--data", "synthetic:40", "--resolution", "32", "--epochs", "1", "--threads", "1",
                "--workers", "1", "--device", "auto", "--out", str(tmp_path / "run"))
    assert p.returncode == 0, p.stderr
    first = p.stdout.splitlines()[0]
    assert first.startswith("device: cpu") and "[auto" in first
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["train"]["device_used"] == "cpu" and m["train"]["workers_used"] == 1
    assert m["epochs"][0]["images_per_s"] > 0 and "img/s" in p.stdout
