"""MobileNetV1 structure, TF-style padding, the flat layer list, checkpoints and the exact profile counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tinyml.errors import TinymlError
from tinyml.models import (
    BN_EPS,
    NUM_BLOCKS,
    PRIMITIVES,
    ModelConfig,
    block_of,
    build_model,
    flat_layers,
    layer_names,
    load_checkpoint,
    save_checkpoint,
    tf_same_padding,
)
from tinyml.models.profile import profile_model

# (H=W, C) after each of blocks 0..13 for alpha 0.25 at 96x96
BLOCK_OUTPUTS_96 = [
    (48, 8),
    (48, 16),
    (24, 32),
    (24, 32),
    (12, 64),
    (12, 64),
    (6, 128),
    (6, 128),
    (6, 128),
    (6, 128),
    (6, 128),
    (6, 128),
    (3, 256),
    (3, 256),
]


def test_blocks_are_addressable_with_mlperf_shapes():
    model = build_model(ModelConfig()).eval()
    assert len(model.features) == NUM_BLOCKS == 14
    x = torch.zeros(1, 3, 96, 96)
    for i, (size, ch) in enumerate(BLOCK_OUTPUTS_96):
        x = model.features[i](x)
        assert tuple(x.shape) == (1, ch, size, size), f"block {i}"
    assert tuple(model.head(x).shape) == (1, 2)
    assert [type(m) for m in model.head] == [nn.AvgPool2d, nn.Flatten, nn.Linear]
    for i in range(1, 14):
        dw, pw = model.features[i].dw.conv, model.features[i].pw.conv
        assert dw.groups == dw.in_channels and dw.kernel_size == (3, 3) and pw.kernel_size == (1, 1)
        assert dw.bias is not None and pw.bias is not None


def test_conv_bias_bn_eps_and_relu_everywhere():
    model = build_model(ModelConfig())
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(bns) == len(convs) == 27
    assert all(bn.eps == BN_EPS == 1e-3 for bn in bns)
    assert all(c.bias is not None for c in convs)
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 27


@pytest.mark.parametrize(
    "size, kernel, stride, expected",
    [
        (96, 3, 2, (0, 1)),  # even input, stride 2: TF pads bottom/right only
        (48, 3, 2, (0, 1)),
        (5, 3, 2, (1, 1)),  # odd input, stride 2: symmetric
        (7, 3, 2, (1, 1)),
        (48, 3, 1, (1, 1)),  # stride 1: symmetric
        (6, 1, 1, (0, 0)),
    ],
)
def test_tf_same_padding(size, kernel, stride, expected):
    assert tf_same_padding(size, kernel, stride) == expected


@pytest.mark.parametrize("resolution", [96, 80, 64, 50])
def test_stride2_layers_pad_like_tensorflow(resolution):
    """Every stride-2 conv sees TF 'same' padding: an explicit ZeroPad2d or, when symmetric, conv padding."""
    model = build_model(ModelConfig(resolution=resolution)).eval()
    size = resolution
    layers = flat_layers(model)
    for i, m in enumerate(layers):
        if isinstance(m, nn.Conv2d):
            before, after = tf_same_padding(size, m.kernel_size[0], m.stride[0])
            prev = layers[i - 1] if i else None
            if isinstance(prev, nn.ZeroPad2d):
                assert prev.padding == (before, after, before, after) and m.padding == (0, 0)
            else:
                assert before == after and m.padding == (before, before)
            size = -(-size // m.stride[0])
    assert tuple(model(torch.zeros(1, 3, resolution, resolution)).shape) == (1, 2)


def test_flat_layers_are_a_chain_of_primitives():
    model = build_model(ModelConfig()).eval()
    layers, names = flat_layers(model), layer_names(model)
    assert len(layers) == len(names) == 4 + 13 * 6 + 4 + 3  # conv 0, 13 x (dw+pw) x 3, 4 stride-2 pads, head
    assert all(isinstance(m, PRIMITIVES) for m in layers)
    assert names[:4] == ["features.0.pad", "features.0.conv", "features.0.bn", "features.0.relu"]
    assert "features.5.pw.conv" in names and names[-1] == "head.fc"
    assert block_of("features.5.pw.conv") == 5 and block_of("head.fc") is None
    x = torch.rand(2, 3, 96, 96)
    y = x
    for m in layers:  # running the leaves in order is the model
        y = m(y)
    torch.testing.assert_close(y, model(x), rtol=0, atol=0)


def test_flat_layers_refuses_unsupported_modules():
    model = build_model(ModelConfig())
    model.head.add_module("sm", nn.Softmax(dim=1))
    with pytest.raises(TinymlError, match="head.sm is a Softmax"):
        flat_layers(model)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"channels": 2}, "channels must be 1"),
        ({"resolution": 16}, "at least 32"),
        ({"alpha": 0}, "alpha must be > 0"),
        ({"cut": 14, "head": "dense"}, "cut must be a block index"),
        ({"cut": 5}, "needs a head"),
        ({"arch": "resnet"}, "unknown architecture"),
    ],
)
def test_model_config_validation(kwargs, message):
    with pytest.raises(TinymlError, match=message):
        ModelConfig(**kwargs)


def test_model_config_round_trip():
    cfg = ModelConfig(
        alpha=0.5, resolution=64, channels=1, cut=5, head="dscnn", head_args=(("w2", 16), ("w1", 32))
    )
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.head_args == (("w1", 32), ("w2", 16))


# ---------------------------------------------------------------- profile

# (config, MACs, trainable, +BN statistics, BN folded). The RGB row is the MLPerf VWW reference
# (vww_96_int8.tflite: 7,489,664 MACs, Keras count 221,794); grayscale gives person_detect's 7,157,888 MACs.
PROFILE_CASES = [
    (ModelConfig(), 7_489_664, 216_322, 221_794, 210_850),
    (ModelConfig(channels=1), 7_157_888, 216_178, 221_650, 210_706),
]


@pytest.mark.parametrize("cfg, macs, trainable, with_stats, folded", PROFILE_CASES)
def test_profile_exact_counts(cfg, macs, trainable, with_stats, folded):
    model = build_model(cfg)
    rows, totals = profile_model(model, (cfg.channels, cfg.resolution, cfg.resolution))
    assert (
        totals["macs"],
        totals["params_trainable"],
        totals["params_bn_stats"],
        totals["params_folded"],
    ) == (macs, trainable, with_stats, folded)
    assert totals["params_trainable"] == sum(p.numel() for p in model.parameters())
    assert totals["params_bn_stats"] - totals["params_trainable"] == sum(
        b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var"))
    )
    # per-leaf rows give the same totals as fused-op rows
    _, leaf_totals = profile_model(model, (cfg.channels, cfg.resolution, cfg.resolution), per_leaf=True)
    assert {k: leaf_totals[k] for k in ("macs", "params_folded")} == {
        k: totals[k] for k in ("macs", "params_folded")
    }


def test_profile_rows_and_activation_peak():
    rows, totals = profile_model(build_model(ModelConfig()), (1, 3, 96, 96))
    assert len(rows) == 27 + 3
    first = rows[0]
    assert first["layer"] == "features.0" and first["op"] == "conv3x3/2+bn+relu"
    assert (
        first["output"] == [48, 48, 8] and first["macs"] == 48 * 48 * 8 * 27 and first["act_bytes"] == 18_432
    )
    assert rows[3]["layer"] == "features.2.dw" and rows[3]["op"] == "dw3x3/2+bn+relu"
    # peak: block 1's pointwise conv reads 48x48x8 and writes 48x48x16 int8
    assert totals["act_peak_bytes"] == 48 * 48 * (8 + 16) and totals["act_peak_layer"] == "features.1.pw"


def test_profile_folded_count_checks_bn_position():
    """BN after a bias-free conv folds into a new bias; BN not after a conv cannot fold (scale + shift)."""
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.BatchNorm2d(4),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )
    rows, totals = profile_model(model, (3, 8, 8), per_leaf=True)
    assert [r["params_folded"] for r in rows] == [108, 4, 0, 8, 0, 0, 10]
    assert totals["params_bn_stats"] == 108 + 16 + 16 + 10


# ---------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip(tmp_path):
    cfg = ModelConfig(channels=1, resolution=64)
    torch.manual_seed(0)
    model = build_model(cfg)
    model.features[3].pw.bn.running_mean.fill_(0.25)  # buffers travel too
    path = save_checkpoint(
        tmp_path / "m.pt",
        model,
        cfg,
        train={"epochs": 1},
        metrics={"val_acc": 0.5},
        epoch=1,
        seed=7,
        note="hello",
    )
    loaded, ck = load_checkpoint(path)
    assert not loaded.training and ck.model_config == cfg and ck.epoch == 1 and ck.seed == 7
    assert ck.extra == {"note": "hello"} and ck.metrics == {"val_acc": 0.5} and ck.train == {"epochs": 1}
    assert ck.preprocess["color"] == "gray" and ck.preprocess["int8_zero_point"] == -128
    assert ck.preprocess["input_scale"] == pytest.approx(1 / 255)
    x = torch.rand(3, 1, 64, 64)
    torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left nothing behind


@pytest.mark.parametrize(
    "content, message",
    [
        ("text", "not a tinyml checkpoint"),
        ("state_dict", "not a tinyml checkpoint"),
        ("other_version", "version 99"),
        ("missing", "not found"),
    ],
)
def test_foreign_files_are_refused(tmp_path, content, message):
    path = tmp_path / "x.pt"
    if content == "text":
        path.write_text("hello")
    elif content == "state_dict":
        torch.save(build_model(ModelConfig()).state_dict(), path)
    elif content == "other_version":
        torch.save({"format": "tinyml.checkpoint", "version": 99}, path)
    with pytest.raises(TinymlError, match=message):
        load_checkpoint(path)
