"""A tiny trained base model shared by the prune, sweep and pipeline tests, trained once per test session
(conftest.py turns it into the session fixture `tiny_base`), and the helpers that kill a sweep mid-run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from tinyml.models import ModelConfig, build_model

TINY = {"alpha": 0.25, "resolution": 32, "channels": 3}
TINY_DATA = "synthetic:160"
# One torch thread: tiny models train several times faster that way on a busy 2-core machine.
THREADS = ["--threads", "1"]
SWEEP_CMD = [sys.executable, "-m", "tinyml", "sweep"]  # a sweep in its own process, to be killed
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}


def train_tiny_base(artifacts: Path) -> Path:
    """A 1-epoch 32x32 MobileNetV1 base checkpoint, trained once per test run (shared with test_sweep)."""
    out = artifacts / "prune-base"
    if not (out / "best.pt").exists():
        from tinyml.data import load_splits
        from tinyml.train import TrainConfig, train_model

        cfg = ModelConfig(**TINY)
        splits = load_splits(TINY_DATA, resolution=cfg.resolution, channels=cfg.channels, progress=False)
        torch.manual_seed(0)
        train_model(build_model(cfg), cfg, splits, TrainConfig(epochs=1, data=TINY_DATA, threads=1), out,
                    progress=False)
    return out / "best.pt"



def finished_points(sweep_dir: Path, stages: list[str]) -> dict[str, int]:
    """Point id -> record mtime of every point whose record has exactly `stages` done."""
    done = {}
    for p in sweep_dir.glob("points/*/record.json"):
        try:
            rec = json.loads(p.read_text())
        except ValueError:
            continue
        if rec.get("stages_done") == stages:
            done[rec["id"]] = p.stat().st_mtime_ns
    return done


def kill_sweep_when(argv: list[str], log_path: Path, ready: Callable[[], bool], poll: float = 0.1) -> None:
    """Run `argv` (a sweep) in a subprocess and SIGKILL that process alone as soon as `ready()` holds."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(argv, env=SUBPROCESS_ENV, stdout=subprocess.DEVNULL, stderr=log,
                                start_new_session=True)
        deadline = time.time() + 300
        try:
            while not ready():
                assert proc.poll() is None, log_path.read_text()
                assert time.time() < deadline, "sweep made no progress"
                time.sleep(poll)
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
