"""Training: the MLPerf Tiny VWW recipe with per-epoch checkpoints and exact resume.

The names load on first use, so importing the package (as the CLI does for `tinyml --help`) skips torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainConfig", "TrainResult", "evaluate", "train_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tinyml.train import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'tinyml.train' has no attribute {name!r}")
