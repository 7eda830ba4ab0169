"""MobileNetV1 in the MLPerf Tiny visual-wake-words layout, built so every later stage can walk it as a chain.

Layout (MLPerf Tiny `vww_model.py`): conv3x3/2 with bias + BatchNorm + ReLU, then 13 depthwise-separable
blocks (DW3x3 conv+bias+BN+ReLU, PW1x1 conv+bias+BN+ReLU), average pool over the whole map, dense. The model
outputs logits: the softmax of the .tflite is added at conversion.

Padding follows TensorFlow's "same": stride-1 3x3 convs pad 1 on every side (symmetric, as TF), stride-2
3x3 convs get an explicit `nn.ZeroPad2d` with TF's split (bottom/right for even inputs) and padding 0, so
the Keras mirror converts with no PAD ops. (When TF's split is symmetric - odd input sizes - the conv pads.)

BatchNorm uses eps=1e-3 (Keras' default, the MLPerf reference's) so the mirror copies it unchanged; momentum
stays torch's 0.1 so statistics settle within the short runs of the demo.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from tinyml.errors import TinymlError, UsageError
from tinyml.models.layout import BN_EPS, DS_BLOCKS, FIRST_CHANNELS, NUM_BLOCKS

ARCHS = ("mobilenet_v1",)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network; stored in every checkpoint."""

    arch: str = "mobilenet_v1"
    alpha: float = 0.25
    resolution: int = 96
    channels: int = 3
    classes: int = 2
    cut: int | None = None  # keep features[0..cut] and attach `head` (depth pruning)
    head: str | None = None
    head_args: tuple[tuple[str, Any], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise TinymlError(f"unknown architecture {self.arch!r} (known: {', '.join(ARCHS)})")
        if not self.alpha > 0:
            raise TinymlError(f"alpha must be > 0, got {self.alpha}")
        if self.channels not in (1, 3):
            raise TinymlError(f"channels must be 1 (grayscale) or 3 (RGB), got {self.channels}")
        if self.resolution < 32:
            raise UsageError(f"resolution must be at least 32 (five stride-2 layers), got {self.resolution}")
        if self.classes < 2:
            raise TinymlError(f"classes must be at least 2, got {self.classes}")
        if self.cut is not None:
            if not 0 <= self.cut < NUM_BLOCKS:
                raise UsageError(f"cut must be a block index 0..{NUM_BLOCKS - 1}, got {self.cut}")
            if not self.head:
                raise TinymlError("a cut model needs a head (cut is set, head is not)")
        # normalise head_args to a sorted tuple of pairs so equal configs compare and hash equal
        object.__setattr__(self, "head_args", tuple(sorted((str(k), v) for k, v in self.head_args)))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["head_args"] = {k: v for k, v in self.head_args}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        d = dict(d)
        args = d.pop("head_args", None) or {}
        items = args.items() if isinstance(args, dict) else [tuple(p) for p in args]
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise TinymlError(f"unknown model config fields: {', '.join(sorted(unknown))}")
        return cls(**d, head_args=tuple(items))


def block_channels(alpha: float) -> list[int]:
    """Output channels of blocks 0..13 for a width multiplier (Keras rounds int(c * alpha))."""
    return [max(1, int(c * alpha)) for c in (FIRST_CHANNELS, *(c for _, c in DS_BLOCKS))]


def block_strides() -> list[int]:
    return [2, *(s for s, _ in DS_BLOCKS)]


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding TensorFlow's "same" uses for one spatial dimension."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_bn_relu(
    cin: int, cout: int, kernel: int, stride: int, size: int, depthwise: bool = False
) -> tuple[nn.Sequential, int]:
    """conv(+bias) + BN + ReLU, TF "same" padding for a `size`x`size` input; returns (module, out size)."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    before, after = tf_same_padding(size, kernel, stride)
    if before == after:
        pad = before
    else:
        layers["pad"] = nn.ZeroPad2d((before, after, before, after))
        pad = 0
    layers["conv"] = nn.Conv2d(
        cin, cout, kernel, stride=stride, padding=pad, bias=True, groups=cin if depthwise else 1
    )
    layers["bn"] = nn.BatchNorm2d(cout, eps=BN_EPS)
    layers["relu"] = nn.ReLU()
    return nn.Sequential(layers), math.ceil(size / stride)


def ds_block(cin: int, cout: int, stride: int, size: int) -> tuple[nn.Sequential, int]:
    """Depthwise-separable block: `dw` (3x3 depthwise) then `pw` (1x1 pointwise)."""
    dw, size = conv_bn_relu(cin, cin, 3, stride, size, depthwise=True)
    pw, size = conv_bn_relu(cin, cout, 1, 1, size)
    return nn.Sequential(OrderedDict(dw=dw, pw=pw)), size


def build_backbone(cfg: ModelConfig) -> tuple[nn.Sequential, int, int]:
    """features[0..last] of MobileNetV1; returns (features, out channels, out spatial size)."""
    last = NUM_BLOCKS - 1 if cfg.cut is None else cfg.cut
    chans = block_channels(cfg.alpha)
    strides = block_strides()
    size = cfg.resolution
    first, size = conv_bn_relu(cfg.channels, chans[0], 3, strides[0], size)
    blocks: list[nn.Module] = [first]
    for i in range(1, last + 1):
        block, size = ds_block(chans[i - 1], chans[i], strides[i], size)
        blocks.append(block)
    return nn.Sequential(*blocks), chans[last], size


def classifier_head(in_channels: int, size: int, classes: int) -> nn.Sequential:
    """The MLPerf classifier: AveragePooling2D(whole map) -> Flatten -> Dense."""
    return nn.Sequential(
        OrderedDict(pool=nn.AvgPool2d(size), flatten=nn.Flatten(), fc=nn.Linear(in_channels, classes))
    )


class MobileNetV1(nn.Module):
    """A pure chain: forward = head(features(x)). Input float NCHW in [0, 1]; output logits."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.features, channels, size = build_backbone(cfg)
        if cfg.cut is None:
            self.head = classifier_head(channels, size, cfg.classes)
        else:
            from tinyml.models.heads import build_head

            self.head = build_head(cfg.head, channels, cfg.classes, **dict(cfg.head_args))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def init_weights(model: nn.Module) -> None:
    """Keras defaults of the MLPerf model: he_normal convs, zero biases, glorot_uniform dense."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


def build_model(cfg: ModelConfig) -> MobileNetV1:
    """A freshly initialised model (uses torch's global RNG: seed it first for reproducible weights)."""
    return MobileNetV1(cfg)


# Leaf primitives a model may contain: the quantize mirror and the profiler handle exactly these.
PRIMITIVES: tuple[type[nn.Module], ...] = (
    nn.ZeroPad2d,
    nn.Conv2d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.ReLU6,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Linear,
    nn.Dropout,
)


def named_flat_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(dotted name, leaf module) in execution order; refuses modules outside the supported chain."""
    out = []
    for name, m in model.named_modules():
        if any(True for _ in m.children()):
            continue
        if not isinstance(m, PRIMITIVES):
            raise TinymlError(
                f"layer {name} is a {type(m).__name__}, which the pipeline does not support "
                f"(supported: {', '.join(p.__name__ for p in PRIMITIVES)})"
            )
        if isinstance(m, nn.Conv2d) and m.groups not in (1, m.in_channels):
            raise TinymlError(
                f"layer {name}: grouped conv with groups={m.groups} is not supported "
                "(only groups=1 or depthwise)"
            )
        if isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size not in (1, (1, 1)):
            raise TinymlError(f"layer {name}: AdaptiveAvgPool2d must have output size 1")
        out.append((name, m))
    return out


def flat_layers(model: nn.Module) -> list[nn.Module]:
    """All leaf modules in execution order (the model is a chain of PRIMITIVES)."""
    return [m for _, m in named_flat_layers(model)]


def layer_names(model: nn.Module) -> list[str]:
    """Dotted PyTorch names parallel to `flat_layers`, e.g. "features.5.pw.conv", for error messages."""
    return [n for n, _ in named_flat_layers(model)]


def block_of(name: str) -> int | None:
    """Backbone block index of a dotted layer name ("features.5.pw.conv" -> 5); None for the head."""
    parts = name.split(".")
    if len(parts) >= 2 and parts[0] == "features" and parts[1].isdigit():
        return int(parts[1])
    return None
