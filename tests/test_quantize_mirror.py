"""The Keras mirror computes what the torch chain computes, and refuses what would need extra ops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tinyml.errors import TinymlError
from tinyml.models import ModelConfig, build_model, named_flat_layers
from tinyml.quantize.convert import pick_calibration
from tinyml.quantize.mirror import MIRROR_TOLERANCE, build_mirror, mirror_max_abs_diff


def _randomize_bn(model: nn.Module) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, so a wrong eps or a swapped tensor shows."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model.eval()


# name -> (input H, W, C; torch chain). Each exercises one layout rule of the mirror.
MIRRORABLE = {
    # Flatten of a 2x... map: the Linear's columns must be permuted from (c, h, w) to (h, w, c)
    "flatten_of_spatial_map": ((12, 10, 3), lambda: [
        nn.Conv2d(3, 4, 3, 1, 1), nn.ReLU6(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4 * 6 * 5, 8),
        nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3)]),
    # TF-style stride-2 padding folded into the conv; depthwise with multiplier 8 on one channel
    "pad_and_depth_multiplier": ((16, 16, 1), lambda: [
        nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(1, 8, 3, 2, 0), nn.BatchNorm2d(8, eps=1e-5), nn.ReLU(),
        nn.Conv2d(8, 16, 3, 1, 1, groups=8, bias=False), nn.BatchNorm2d(16, affine=False),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2)]),
    # odd input: TF "same" at stride 2 is symmetric, so torch padding=1 is exactly it
    "odd_input_symmetric_same": ((15, 15, 3), lambda: [
        nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)]),
    "ends_in_softmax": ((8, 8, 3), lambda: [
        nn.Conv2d(3, 4, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2),
        nn.Softmax(1)]),
}


@pytest.mark.parametrize("case", sorted(MIRRORABLE))
def test_mirror_matches_torch(case):
    shape, make = MIRRORABLE[case]
    torch.manual_seed(0)
    model = _randomize_bn(nn.Sequential(*make()))
    mirror = build_mirror(list(model.named_children()), shape)
    images = np.random.default_rng(0).integers(0, 256, (6, *shape), dtype=np.uint8)
    assert mirror_max_abs_diff(model, mirror, images) < MIRROR_TOLERANCE


@pytest.mark.parametrize("cfg", [
    ModelConfig(resolution=32), ModelConfig(resolution=40, channels=1, alpha=0.5),
    ModelConfig(resolution=48, cut=5, head="dscnn32_16"), ModelConfig(resolution=48, cut=3, head="dense"),
], ids=["full_rgb32", "gray40_alpha0.5", "cut5_dscnn32_16", "cut3_dense"])
def test_mirror_matches_tinyml_models(cfg):
    torch.manual_seed(0)
    model = _randomize_bn(build_model(cfg))
    shape = (cfg.resolution, cfg.resolution, cfg.channels)
    mirror = build_mirror(named_flat_layers(model), shape)
    images = np.random.default_rng(0).integers(0, 256, (4, *shape), dtype=np.uint8)
    assert mirror_max_abs_diff(model, mirror, images) < MIRROR_TOLERANCE


# name -> (input shape, chain, words the one-line error must contain)
REFUSED = {
    "maxpool": ((8, 8, 3), [nn.Conv2d(3, 4, 3, 1, 1), nn.MaxPool2d(2)], ["layer 1", "MaxPool2d"]),
    "torch_style_stride2_padding": ((16, 16, 3), [nn.Conv2d(3, 4, 3, 2, 1)], ["layer 0", "PAD op"]),
    "dilation": ((8, 8, 3), [nn.Conv2d(3, 4, 3, 1, 2, dilation=2)], ["layer 0", "dilation"]),
    "grouped_conv": ((8, 8, 4), [nn.Conv2d(4, 4, 1, groups=2)], ["layer 0", "groups=2"]),
    "lone_pad": ((8, 8, 3), [nn.ZeroPad2d(1), nn.ReLU()], ["layer 0", "PAD op"]),
    "avgpool_padding": ((8, 8, 3), [nn.AvgPool2d(3, 1, 1)], ["layer 0", "padding"]),
    "no_classifier": ((8, 8, 3), [nn.Conv2d(3, 4, 1)], ["not a vector"]),
    "sigmoid": ((8, 8, 3), [nn.Conv2d(3, 4, 1), nn.Sigmoid()], ["layer 1", "Sigmoid"]),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_mirror_refuses_unconvertible_layers(case):
    shape, layers, words = REFUSED[case]
    with pytest.raises(TinymlError) as err:
        build_mirror(list(nn.Sequential(*layers).named_children()), shape)
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


# (labels, n) -> per-class counts the balanced pick must give
CALIBRATION = [
    ([0] * 50 + [1] * 50, 20, (10, 10)),
    ([0] * 50 + [1] * 50, 7, (4, 3)),
    ([0] * 90 + [1] * 5, 40, (35, 5)),  # a short class gives all it has, the other tops up
    ([0] * 3 + [1] * 4, 200, (3, 4)),  # more requested than exist: everything
]


@pytest.mark.parametrize("labels,n,per_class", CALIBRATION)
def test_calibration_is_balanced(labels, n, per_class):
    y = np.array(labels, np.int64)
    cal = pick_calibration(y, n, 2, seed=0)
    assert cal.per_class == per_class
    assert tuple(np.bincount(y[cal.indices], minlength=2)) == per_class
    assert len(np.unique(cal.indices)) == len(cal.indices)
    np.testing.assert_array_equal(cal.indices, pick_calibration(y, n, 2, seed=0).indices)  # seeded


@pytest.mark.parametrize("labels,n", [([0, 1, 1], 0), ([], 10)])
def test_empty_calibration_set_is_refused(labels, n):
    with pytest.raises(TinymlError, match="calibration set is empty"):
        pick_calibration(np.array(labels, np.int64), n, 2, seed=0)
