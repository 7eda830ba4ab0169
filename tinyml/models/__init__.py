"""MobileNetV1 (MLPerf Tiny VWW layout), checkpoints and per-layer profile.

Blocks are addressable: `model.features[0]` is the first conv, `model.features[1..13]` the depthwise-separable
blocks; `model.head` is the classifier (or an auxiliary head after depth pruning).
"""

from tinyml.models.checkpoint import Checkpoint, load_checkpoint, preprocess_for, read_checkpoint_file, save_checkpoint
from tinyml.models.mobilenet import (
    BN_EPS,
    NUM_BLOCKS,
    PRIMITIVES,
    MobileNetV1,
    ModelConfig,
    block_channels,
    block_of,
    block_strides,
    build_model,
    flat_layers,
    layer_names,
    named_flat_layers,
    tf_same_padding,
)

__all__ = [
    "BN_EPS", "NUM_BLOCKS", "PRIMITIVES", "Checkpoint", "MobileNetV1", "ModelConfig", "block_channels", "block_of",
    "block_strides", "build_model", "flat_layers", "layer_names", "load_checkpoint", "named_flat_layers",
    "preprocess_for", "read_checkpoint_file", "save_checkpoint", "tf_same_padding",
]
