"""MobileNetV1 (MLPerf Tiny VWW layout), checkpoints and per-layer profile.

Blocks are addressable: `model.features[0]` is the first conv, `model.features[1..13]` the depthwise-separable
blocks; `model.head` is the classifier (or an auxiliary head after depth pruning).
Names other than the layout constants load on first use, so importing this package does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from tinyml.models.layout import BN_EPS, DS_BLOCKS, FIRST_CHANNELS, NUM_BLOCKS

_LAZY = {
    "tinyml.models.checkpoint": (
        "Checkpoint", "load_checkpoint", "preprocess_for", "read_checkpoint_file", "save_checkpoint",
    ),
    "tinyml.models.mobilenet": (
        "PRIMITIVES", "MobileNetV1", "ModelConfig", "block_channels", "block_of", "block_strides",
        "build_model", "flat_layers", "layer_names", "named_flat_layers", "tf_same_padding",
    ),
}  # fmt: skip
_WHERE = {name: mod for mod, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'tinyml.models' has no attribute {name!r}")


__all__ = ["BN_EPS", "DS_BLOCKS", "FIRST_CHANNELS", "NUM_BLOCKS", *_WHERE]
