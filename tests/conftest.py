"""Shared test fixtures: the reference models/images (examples/), a per-run cache for built artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tinyml.util import examples_dir

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def refdata() -> Path:
    """The repo's reference models and images (examples/): the tests read nothing outside the repo."""
    d = examples_dir()
    assert (d / "models" / "person_detect.tflite").exists(), f"reference models missing under {d}"
    return d


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    """One directory per test run: expensive artifacts (trained models, builds) are made once and reused."""
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(autouse=True)
def restore_torch_threads():
    """Training sets torch's global thread count; give every other test its own back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_base(artifacts: Path) -> Path:
    """A 1-epoch 32x32 MobileNetV1 checkpoint (tests/prune_cases.py), trained once per test run."""
    from prune_cases import train_tiny_base

    return train_tiny_base(artifacts)
