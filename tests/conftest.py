"""Shared test fixtures: where the shared models/images are, and a per-run cache for built artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyml.util import shared_dir

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared() -> Path:
    d = shared_dir()
    assert (d / "models" / "person_detect.tflite").exists(), f"shared/ not found at {d}"
    return d


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    """One directory per test run: expensive artifacts (trained models, builds) are made once and reused."""
    return tmp_path_factory.mktemp("artifacts")
