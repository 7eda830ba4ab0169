"""Per-layer cost of a model: output shapes, parameters under three conventions, MACs, int8 activation bytes.

Parameter conventions (the numbers people quote differ only by these):
- trainable:  what torch optimises (conv/dense weights and biases, BN gamma and beta);
- +BN stats:  the Keras count, which adds BN's moving mean and variance (non-trainable);
- BN folded:  what an int8 model stores after BN is folded into the preceding conv (its bias absorbs BN).
MACs count multiply-accumulates of convs and dense layers (pooling, BN, ReLU count none), as TFLite tools do.
Activation bytes are the int8 output tensor of each op; the activation peak is the largest input+output pair,
a lower bound on the tensor arena a chain model needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tinyml.models.mobilenet import named_flat_layers

ROW_KEYS = (
    "layer",
    "op",
    "input",
    "output",
    "params_trainable",
    "params_bn_stats",
    "params_folded",
    "macs",
    "act_bytes",
)
# Table headers that spell the conventions out.
HEADERS = {
    "layer": "layer",
    "op": "op",
    "input": "input HxWxC",
    "output": "output HxWxC",
    "params_trainable": "params (trainable)",
    "params_bn_stats": "params (+BN stats)",
    "params_folded": "params (BN folded)",
    "macs": "MACs",
    "act_bytes": "out bytes (int8)",
}


@dataclass
class _Leaf:
    name: str
    module: nn.Module
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    prev: nn.Module | None


@dataclass
class _Group:
    members: list[_Leaf] = field(default_factory=list)


def _hwc(shape: tuple[int, ...]) -> list[int]:
    """NCHW (or N,F) batch-1 shape -> [H, W, C] (or [F]) as a .tflite shows it."""
    s = list(shape[1:])
    return [s[1], s[2], s[0]] if len(s) == 3 else s


def _trace(model: nn.Module, input_shape: tuple[int, ...]) -> list[_Leaf]:
    layers = named_flat_layers(model)
    shapes: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    hooks = [
        m.register_forward_hook(
            lambda mod, inp, out, i=i: shapes.__setitem__(i, (tuple(inp[0].shape), tuple(out.shape)))
        )
        for i, (_, m) in enumerate(layers)
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    leaves = []
    for i, (name, m) in enumerate(layers):
        leaves.append(_Leaf(name, m, *shapes[i], prev=layers[i - 1][1] if i else None))
    return leaves


def _params(leaf: _Leaf) -> tuple[int, int, int]:
    """(trainable, with BN statistics, after BN folding) parameter counts of one leaf."""
    m = leaf.module
    own = sum(p.numel() for p in m.parameters(recurse=False))
    if isinstance(m, nn.BatchNorm2d):
        c = m.num_features
        after_conv = isinstance(leaf.prev, nn.Conv2d)
        # folding into a conv keeps nothing (or adds the bias a bias-free conv lacks); else scale + shift
        folded = (0 if leaf.prev.bias is not None else c) if after_conv else 2 * c  # type: ignore[union-attr]
        return own, own + 2 * c, folded
    return own, own, own


def _macs(leaf: _Leaf) -> int:
    m = leaf.module
    if isinstance(m, nn.Conv2d):
        kh, kw = m.kernel_size
        return math.prod(leaf.out_shape[1:]) * kh * kw * (m.in_channels // m.groups)
    if isinstance(m, nn.Linear):
        return m.in_features * m.out_features
    return 0


def _op_name(leaf: _Leaf) -> str:
    m = leaf.module
    if isinstance(m, nn.Conv2d):
        kind = "dw" if m.groups == m.in_channels and m.groups > 1 else "conv"
        return f"{kind}{m.kernel_size[0]}x{m.kernel_size[1]}/{m.stride[0]}"
    return {
        nn.ZeroPad2d: "pad",
        nn.BatchNorm2d: "bn",
        nn.ReLU: "relu",
        nn.ReLU6: "relu6",
        nn.AvgPool2d: "avgpool",
        nn.AdaptiveAvgPool2d: "gap",
        nn.Flatten: "flatten",
        nn.Linear: "dense",
        nn.Dropout: "dropout",
    }.get(type(m), type(m).__name__.lower())


def _group(leaves: list[_Leaf]) -> list[_Group]:
    """Fuse pad -> conv/dense -> BN -> ReLU into one op, as an int8 runtime executes them."""
    groups: list[_Group] = []
    for leaf in leaves:
        m = leaf.module
        cur = groups[-1].members if groups else []
        cur_mods = [x.module for x in cur]
        fusable_into = cur and isinstance(
            cur_mods[-1], (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.ReLU, nn.ReLU6)
        )
        if (
            isinstance(m, (nn.BatchNorm2d, nn.ReLU, nn.ReLU6))
            and fusable_into
            and not any(isinstance(x, (nn.ReLU, nn.ReLU6)) for x in cur_mods)
        ):
            cur.append(leaf)
        elif isinstance(m, nn.Conv2d) and cur and all(isinstance(x, nn.ZeroPad2d) for x in cur_mods):
            cur.append(leaf)
        else:
            groups.append(_Group([leaf]))
    return groups


def _common_prefix(names: list[str]) -> str:
    parts = [n.split(".") for n in names]
    prefix = []
    for tokens in zip(*parts):
        if len(set(tokens)) != 1:
            break
        prefix.append(tokens[0])
    return ".".join(prefix) if len(names) > 1 and prefix else names[0]


def _row(members: list[_Leaf]) -> dict[str, Any]:
    counts = [_params(x) for x in members]
    ops = [_op_name(x) for x in members if not isinstance(x.module, nn.ZeroPad2d)] or ["pad"]
    return {
        "layer": _common_prefix([x.name for x in members]),
        "op": "+".join(ops),
        "input": _hwc(members[0].in_shape),
        "output": _hwc(members[-1].out_shape),
        "params_trainable": sum(c[0] for c in counts),
        "params_bn_stats": sum(c[1] for c in counts),
        "params_folded": sum(c[2] for c in counts),
        "macs": sum(_macs(x) for x in members),
        "act_bytes": math.prod(members[-1].out_shape[1:]),
    }


def profile_model(
    model: nn.Module, input_shape: tuple[int, ...], per_leaf: bool = False
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows per fused op (or per leaf module with `per_leaf`) and totals, for an NCHW `input_shape`.

    `input_shape` is (C, H, W) or (1, C, H, W). Totals: macs, params_trainable, params_bn_stats,
    params_folded, act_peak_bytes (+ act_peak_layer), input_bytes, output_bytes.
    """
    shape = tuple(input_shape) if len(input_shape) == 4 else (1, *input_shape)
    leaves = _trace(model, shape)
    groups = [_Group([x]) for x in leaves] if per_leaf else _group(leaves)
    rows = [_row(g.members) for g in groups]
    peaks = [
        (math.prod(g.members[0].in_shape[1:]) + r["act_bytes"], r["layer"]) for g, r in zip(groups, rows)
    ]
    peak, peak_layer = max(peaks)
    totals = {
        "input_shape": list(shape),
        "macs": sum(r["macs"] for r in rows),
        "params_trainable": sum(r["params_trainable"] for r in rows),
        "params_bn_stats": sum(r["params_bn_stats"] for r in rows),
        "params_folded": sum(r["params_folded"] for r in rows),
        "act_peak_bytes": peak,
        "act_peak_layer": peak_layer,
        "input_bytes": math.prod(shape[1:]),
        "output_bytes": rows[-1]["act_bytes"],
    }
    return rows, totals


def input_shape_of(cfg: Any) -> tuple[int, int, int, int]:
    """NCHW batch-1 input shape of a ModelConfig."""
    return (1, cfg.channels, cfg.resolution, cfg.resolution)
