"""A tiny trained base model shared by the prune, sweep and pipeline tests, trained once per test session.

conftest.py turns it into the session fixture `tiny_base`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tinyml.models import ModelConfig, build_model

TINY = {"alpha": 0.25, "resolution": 32, "channels": 3}
TINY_DATA = "synthetic:160"
# One torch thread: tiny models train several times faster that way on a busy 2-core machine.
THREADS = ["--threads", "1"]


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

