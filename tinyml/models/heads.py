"""Auxiliary heads for depth pruning: what replaces MobileNetV1's tail after cutting it at block K.

A head is a function `(in_channels, classes, **widths) -> nn.Sequential` registered by name; its keyword
arguments are the widths a user may change (`ModelConfig.head_args`, `--head NAME:key=INT`).
Adding one is a few lines:

    @register_head("tiny")
    def tiny(in_channels: int, classes: int, width: int = 8) -> nn.Sequential:
        return nn.Sequential(OrderedDict(pw=pointwise(in_channels, width), pool=nn.AdaptiveAvgPool2d(1),
                                         flatten=nn.Flatten(), fc=nn.Linear(width, classes)))

Heads use only the pipeline's primitives (conv with bias + BN + ReLU, pooling, Flatten, Linear), so the
quantize mirror, the profiler and the compiler handle them like the backbone. Convs are stride 1 with TF
"same" padding, so a head works on any feature-map size. Global pooling is `nn.AdaptiveAvgPool2d(1)`, which
the quantize mirror turns into a Keras AveragePooling2D over the whole map, i.e. TFLite AVERAGE_POOL_2D (the
op the unpruned classifier already uses), never MEAN: a pruned model needs no op the full model does not.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from inspect import Parameter, signature

from torch import nn

from tinyml.errors import TinymlError, UsageError
from tinyml.models.mobilenet import conv_bn_relu

HeadFn = Callable[..., nn.Sequential]
HEADS: dict[str, HeadFn] = {}


def register_head(name: str) -> Callable[[HeadFn], HeadFn]:
    """Decorator: make a head buildable by name (`--head NAME`, `ModelConfig(head=NAME)`)."""

    def deco(fn: HeadFn) -> HeadFn:
        HEADS[name] = fn
        return fn

    return deco


def head_names() -> list[str]:
    return sorted(HEADS)


def head_defaults(name: str) -> dict[str, int]:
    """The width parameters a head accepts and their defaults (what `head_args` may set)."""
    fn = _lookup(name)
    return {p.name: p.default for p in list(signature(fn).parameters.values())[2:]
            if p.kind in (Parameter.POSITIONAL_OR_KEYWORD, Parameter.KEYWORD_ONLY)}


def _lookup(name: str | None) -> HeadFn:
    if name not in HEADS:
        raise UsageError(f"unknown head {name!r} (known: {', '.join(head_names())})")
    return HEADS[name]


def build_head(name: str | None, in_channels: int, classes: int, **head_args: int) -> nn.Sequential:
    """The head `name` on an `in_channels` feature map; `head_args` set its widths (unknown keys: error)."""
    fn = _lookup(name)
    allowed = head_defaults(name)  # type: ignore[arg-type]
    unknown = sorted(set(head_args) - set(allowed))
    if unknown:
        raise UsageError(f"head {name} has no parameter {', '.join(unknown)} "
                          f"(it takes: {', '.join(f'{k}={v}' for k, v in allowed.items()) or 'none'})")
    for k, v in head_args.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise TinymlError(f"head {name}: {k} must be a positive integer, got {v!r}")
    return fn(in_channels, classes, **head_args)


def depthwise(channels: int) -> nn.Sequential:
    """DW3x3/1 conv (bias) + BN + ReLU, 'same' padding."""
    return conv_bn_relu(channels, channels, 3, 1, 1, depthwise=True)[0]


def pointwise(cin: int, cout: int) -> nn.Sequential:
    """PW1x1 conv (bias) + BN + ReLU."""
    return conv_bn_relu(cin, cout, 1, 1, 1)[0]


@register_head("dscnn32_16")
def dscnn32_16(in_channels: int, classes: int, pw1: int = 32, pw2: int = 16) -> nn.Sequential:
    """The paper's head: two depthwise-separable blocks (stride 1), global average pool, dense."""
    return nn.Sequential(OrderedDict(
        dw1=depthwise(in_channels),
        pw1=pointwise(in_channels, pw1),
        dw2=depthwise(pw1),
        pw2=pointwise(pw1, pw2),
        pool=nn.AdaptiveAvgPool2d(1),
        flatten=nn.Flatten(),
        fc=nn.Linear(pw2, classes),
    ))


@register_head("dense")
def dense(in_channels: int, classes: int, fc1: int = 64, fc2: int = 32) -> nn.Sequential:
    """The paper's baseline head: global average pool, then a small MLP."""
    return nn.Sequential(OrderedDict(
        pool=nn.AdaptiveAvgPool2d(1),
        flatten=nn.Flatten(),
        fc1=nn.Linear(in_channels, fc1),
        relu1=nn.ReLU(),
        fc2=nn.Linear(fc1, fc2),
        relu2=nn.ReLU(),
        fc=nn.Linear(fc2, classes),
    ))


def parse_head_spec(spec: str) -> tuple[str, tuple[tuple[str, int], ...]]:
    """'dscnn32_16' or 'dscnn32_16:pw1=64:pw2=32' -> (name, head_args); bad specs are one-line errors."""
    name, *rest = spec.strip().split(":")
    _lookup(name)
    args: dict[str, int] = {}
    for item in rest:
        key, eq, value = item.partition("=")
        if not eq or not key or not value.strip().isdigit():
            raise TinymlError(f"bad head parameter {item!r} in {spec!r} (expected NAME:key=INT[:key=INT])")
        args[key.strip()] = int(value)
    allowed = head_defaults(name)
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        raise UsageError(f"head {name} has no parameter {', '.join(unknown)} "
                          f"(it takes: {', '.join(f'{k}={v}' for k, v in allowed.items()) or 'none'})")
    return name, tuple(sorted(args.items()))
