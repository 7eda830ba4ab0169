"""Depth pruning as model surgery: a new config (cut K, head H) plus a weight copy of blocks 0..K.

The pruned model is an ordinary `MobileNetV1` whose config says `cut=K, head=H`, so its checkpoint loads,
profiles, quantizes and compiles like any other. Only the head starts from fresh weights.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from torch import nn

from tinyml.errors import TinymlError, UsageError
from tinyml.models import NUM_BLOCKS, ModelConfig, build_model
from tinyml.models.heads import build_head


def depth_config(base: ModelConfig, cut: int, head: str, head_args: tuple[tuple[str, Any], ...] = ()
                 ) -> ModelConfig:
    """The base model's config cut after block `cut` with `head`; refuses cuts the base cannot provide."""
    if isinstance(cut, bool) or not isinstance(cut, int) or not 0 <= cut < NUM_BLOCKS:
        raise UsageError(f"cut must be a block index 0..{NUM_BLOCKS - 1} (0 = first conv, 1..13 = "
                          f"depthwise-separable blocks), got {cut!r}")
    if base.cut is not None and cut > base.cut:
        raise TinymlError(f"the base model is already cut after block {base.cut}; cut {cut} needs blocks it "
                          "no longer has (prune the unpruned model instead)")
    build_head(head, 8, base.classes, **dict(head_args))  # validates name and widths with a one-line error
    return replace(base, cut=cut, head=head, head_args=tuple(head_args))


def copy_backbone(src: nn.Module, dst: nn.Module, cut: int) -> int:
    """Copy weights and BN statistics of `features[0..cut]` from `src` to `dst`, asserting every shape.

    Returns the number of tensors copied.
    """
    src_state = src.features.state_dict()
    dst_state = dst.features.state_dict()
    copied = {}
    for key, value in dst_state.items():
        block = int(key.split(".", 1)[0])
        assert block <= cut, f"pruned backbone has block {block} beyond cut {cut}"
        if key not in src_state:
            raise TinymlError(f"base checkpoint has no tensor features.{key}: not the same architecture")
        if src_state[key].shape != value.shape:
            raise TinymlError(f"features.{key}: base has shape {tuple(src_state[key].shape)}, "
                              f"the pruned model expects {tuple(value.shape)} "
                              "(different alpha or channels?)")
        copied[key] = src_state[key].clone()
    dst.features.load_state_dict(copied, strict=True)
    return len(copied)


def depth_prune(base_model: nn.Module, base_cfg: ModelConfig, cut: int, head: str,
                head_args: tuple[tuple[str, Any], ...] = ()) -> tuple[nn.Module, ModelConfig]:
    """A new model = the base's blocks 0..cut (copied weights) + a freshly initialised `head`.

    Seed torch's RNG before calling for a reproducible head initialisation.
    """
    cfg = depth_config(base_cfg, cut, head, head_args)
    model = build_model(cfg)
    copy_backbone(base_model, model, cut)
    return model, cfg
