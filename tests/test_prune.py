"""Depth pruning (heads, surgery, frozen tail) and magnitude pruning, on real tiny trainings."""

from __future__ import annotations

import json
import re

import pytest
import torch
from prune_cases import THREADS, TINY, TINY_DATA

from tinyml.cli import main
from tinyml.errors import TinymlError
from tinyml.models import ModelConfig, build_model, load_checkpoint
from tinyml.models.heads import HEADS, build_head, head_defaults, parse_head_spec, register_head
from tinyml.models.profile import profile_model
from tinyml.prune.depth import depth_prune
from tinyml.prune.magnitude import global_magnitude_masks, prunable_weights, sparsity_report


def split_counts(model: torch.nn.Module, cfg: ModelConfig) -> dict[str, dict[str, int]]:
    """Profile totals of the backbone and the head separately."""
    rows, totals = profile_model(model, (cfg.channels, cfg.resolution, cfg.resolution))
    parts = {"backbone": [r for r in rows if r["layer"].startswith("features")],
             "head": [r for r in rows if r["layer"].startswith("head")]}
    out = {name: {k: sum(r[k] for r in rs) for k in ("params_bn_stats", "params_folded")}
           for name, rs in parts.items()}
    out["total"] = totals
    return out


# (cut, head spec, params +BN stats, params BN-folded, backbone +BN, head +BN, MACs), counted by hand for
# alpha 0.25, 96x96x3, 2 classes. The first row is the paper's: 15,410 = 11,232 + 4,178, folded 13,362.
COUNT_CASES = [
    (5, "dscnn32_16", 15_410, 13_362, 11_232, 4_178, 3_594_272),
    (5, "dense", 17_538, 16_066, 11_232, 6_306, 3_107_392),
    (5, "dscnn32_16:pw1=64:pw2=32", 19_714, 17_346, 11_232, 8_482, None),
]


@pytest.mark.parametrize("cut,head,bn_stats,folded,backbone,head_bn,macs", COUNT_CASES)
def test_pruned_param_counts_are_exact(cut, head, bn_stats, folded, backbone, head_bn, macs):
    name, args = parse_head_spec(head)
    cfg = ModelConfig(cut=cut, head=name, head_args=args)
    counts = split_counts(build_model(cfg), cfg)
    assert counts["total"]["params_bn_stats"] == bn_stats
    assert counts["total"]["params_folded"] == folded
    assert counts["backbone"]["params_bn_stats"] == backbone
    assert counts["head"]["params_bn_stats"] == head_bn
    if macs is not None:
        assert counts["total"]["macs"] == macs


def test_profile_cli_on_pruned_checkpoint(tmp_path, capsys):
    """`tinyml profile` of a cut-5 dscnn32_16 checkpoint reports the paper's 15,410 / 13,362."""
    from tinyml.models import save_checkpoint

    cfg = ModelConfig(cut=5, head="dscnn32_16")
    save_checkpoint(tmp_path / "m.pt", build_model(cfg), cfg)
    assert main(["profile", str(tmp_path / "m.pt"), "--json", str(tmp_path / "p.json")]) == 0
    assert "15,410 with BN statistics, 13,362 BN folded" in capsys.readouterr().out
    totals = json.loads((tmp_path / "p.json").read_text())["totals"]
    assert (totals["params_bn_stats"], totals["params_folded"]) == (15_410, 13_362)


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("cut", [0, 1, 6, 13])
def test_every_head_builds_from_primitives_at_every_depth(head, cut):
    """Heads use only the converter's primitives; global pooling is AdaptiveAvgPool2d(1) (AVERAGE_POOL_2D)."""
    from tinyml.models import flat_layers

    cfg = ModelConfig(**TINY, cut=cut, head=head)
    model = build_model(cfg).eval()
    layers = flat_layers(model)  # raises on anything outside PRIMITIVES
    assert any(isinstance(m, torch.nn.AdaptiveAvgPool2d) for m in layers)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 2)


def test_registering_a_head_takes_a_few_lines():
    from collections import OrderedDict

    from torch import nn

    @register_head("test_tiny")
    def tiny(in_channels: int, classes: int, width: int = 4) -> nn.Sequential:
        return nn.Sequential(OrderedDict(pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(),
                                         fc1=nn.Linear(in_channels, width), fc=nn.Linear(width, classes)))

    try:
        assert head_defaults("test_tiny") == {"width": 4}
        cfg = ModelConfig(**TINY, cut=3, head="test_tiny", head_args=(("width", 6),))
        assert build_model(cfg).head.fc1.out_features == 6
    finally:
        del HEADS["test_tiny"]


@pytest.mark.parametrize("call,message", [
    (lambda: build_head("nope", 8, 2), "unknown head 'nope'"),
    (lambda: build_head("dense", 8, 2, pw1=3), "head dense has no parameter pw1"),
    (lambda: build_head("dense", 8, 2, fc1=0), "fc1 must be a positive integer"),
    (lambda: parse_head_spec("dscnn32_16:pw1"), "bad head parameter"),
    (lambda: parse_head_spec("dscnn32_16:pw3=4"), "has no parameter pw3"),
])
def test_head_errors(call, message):
    with pytest.raises(TinymlError, match=message):
        call()


@pytest.mark.parametrize("cut", [0, 4, 13])
def test_surgery_copies_the_backbone_exactly(cut):
    torch.manual_seed(1)
    base_cfg = ModelConfig(**TINY)
    base = build_model(base_cfg)
    model, cfg = depth_prune(base, base_cfg, cut, "dense")
    assert (cfg.cut, cfg.head) == (cut, "dense")
    assert len(model.features) == cut + 1
    src = base.features.state_dict()
    for key, value in model.features.state_dict().items():
        assert torch.equal(value, src[key]), key


def test_surgery_refuses_a_base_of_other_shape():
    base = build_model(ModelConfig(**{**TINY, "alpha": 0.5}))
    with pytest.raises(TinymlError, match="features.0.conv.weight: base has shape"):
        depth_prune(base, ModelConfig(**TINY), 3, "dense")


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.slow
def test_frozen_tail_keeps_backbone_bit_identical_and_unfreeze_trains_it(tiny_base, tmp_path, capsys):
    base_model, _ = load_checkpoint(tiny_base)
    base_feat = _state(base_model.features)
    for unfreeze in (False, True):
        out = tmp_path / f"cut4-{unfreeze}"
        argv = ["prune", "--base", str(tiny_base), "--cut", "4", "--head", "dscnn32_16", "--epochs", "2",
                "--out", str(out), "--quiet", *THREADS] + (["--unfreeze"] if unfreeze else [])
        assert main(argv) == 0
        assert "params (BN folded)" in capsys.readouterr().out
        summary = json.loads((out / "prune.json").read_text())
        assert summary["model_config"]["cut"] == 4 and summary["epochs"] == 2
        for ckpt in ("best.pt", "last.pt"):
            model, ck = load_checkpoint(out / ckpt)
            feat = model.features.state_dict()
            same = [torch.equal(feat[k], base_feat[k]) for k in feat]
            if unfreeze:
                assert not all(same), "unfrozen training left the backbone untouched"
            else:  # weights, biases, BN affine AND running statistics, bit for bit
                assert all(same), [k for k, s in zip(feat, same) if not s]
            assert ck.extra["prune"]["spec"]["unfreeze"] is unfreeze


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9])
def test_magnitude_masks_hit_the_sparsity_exactly(sparsity):
    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY))
    masks = global_magnitude_masks(model, sparsity)
    total = sum(w.numel() for _, w in prunable_weights(model))
    assert sum(int((~m).sum()) for m in masks.values()) == round(sparsity * total)
    # global: every kept weight is at least as large as every pruned one
    params = dict(model.named_parameters())
    kept = torch.cat([params[n].detach().abs()[m] for n, m in masks.items()])
    cut = torch.cat([params[n].detach().abs()[~m] for n, m in masks.items()])
    if len(cut):
        assert kept.min() >= cut.max()


@pytest.mark.slow
def test_magnitude_fine_tuning_keeps_the_mask(tiny_base, tmp_path, capsys):
    out = tmp_path / "mag"
    assert main(["prune", "--base", str(tiny_base), "--magnitude", "0.8", "--epochs", "1", "--out", str(out),
                 "--quiet", *THREADS]) == 0
    printed = capsys.readouterr().out
    assert "does not shrink a dense int8 flatbuffer" in printed and "nonzero params" in printed
    base_model, _ = load_checkpoint(tiny_base)
    masks = global_magnitude_masks(base_model, 0.8)
    model, _ = load_checkpoint(out / "best.pt")
    params = dict(model.named_parameters())
    for name, keep in masks.items():
        assert torch.all(params[name].detach()[~keep] == 0), name
    summary = json.loads((out / "prune.json").read_text())
    report = sparsity_report(model, summary["params_folded"])
    assert report["weight_sparsity"] >= 0.8 - 1e-6
    assert summary["nonzero_params"] == report["nonzero_params"]
    assert report["nonzero_params"] == summary["params_folded"] - report["zero_weights"]
    assert summary["params_folded"] == summary["base_row"]["params_folded"]  # dense storage is unchanged


@pytest.mark.parametrize("args,message", [
    (["--cut", "14"], "cut must be a block index 0..13"),
    (["--cut", "-1"], "cut must be a block index 0..13"),
    (["--cut", "3", "--head", "resnet"], "unknown head 'resnet'"),
    (["--cut", "3", "--head", "dense:fc9=3"], "head dense has no parameter fc9"),
    (["--magnitude", "1.5"], r"\[0, 1\)"),
    (["--magnitude", "0.5", "--cut", "3"], "do not combine it with --cut"),
    ([], "say what to prune"),
    (["--cut", "3", "--epochs", "0"], "epochs must be at least 1"),
])
def test_prune_cli_errors_are_one_line(tiny_base, tmp_path, capsys, args, message):
    assert main(["prune", "--base", str(tiny_base), "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinyml prune: error: ") and "\n" not in err
    assert re.search(message, err), err


@pytest.mark.parametrize("make_base,message", [
    (lambda d: d / "missing.pt", "not found"),
    (lambda d: (d / "junk.pt").write_bytes(b"junk") and d / "junk.pt", "is not a tinyml checkpoint"),
    (lambda d: d, "is a directory without best.pt"),
])
def test_prune_cli_bad_base(tmp_path, capsys, make_base, message):
    base = make_base(tmp_path)
    assert main(["prune", "--base", str(base), "--cut", "3", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_prune_refuses_a_cut_deeper_than_a_pruned_base(tmp_path, capsys):
    from tinyml.models import save_checkpoint

    cfg = ModelConfig(**TINY, cut=4, head="dense")
    save_checkpoint(tmp_path / "cut4.pt", build_model(cfg), cfg, train={"data": TINY_DATA})
    argv = ["prune", "--base", str(tmp_path / "cut4.pt"), "--cut", "6", "--out", str(tmp_path / "o")]
    assert main(argv) == 1
    assert "already cut after block 4" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("head,convs,fcs", [("dscnn32_16", 4, 1)])  # `dense` pools the same way
def test_pruned_models_convert_to_int8_with_average_pool(tmp_path, head, convs, fcs):
    """The heads' AdaptiveAvgPool2d(1) becomes AVERAGE_POOL_2D (never MEAN); the head maps op for op."""
    from tinyml.data import load_splits
    from tinyml.models import save_checkpoint
    from tinyml.quantize.quantize import quantize_checkpoint

    cfg = ModelConfig(**TINY, cut=2, head=head)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.pt", build_model(cfg), cfg)
    splits = load_splits(TINY_DATA, resolution=32, channels=3, progress=False)
    report = quantize_checkpoint(tmp_path / "m.pt", tmp_path / "m.tflite", splits=splits, progress=False)
    ops = list(report.ops)
    assert ops[:5] == ["CONV_2D"] + ["DEPTHWISE_CONV_2D", "CONV_2D"] * 2  # blocks 0..2
    pool = ops.index("AVERAGE_POOL_2D")
    assert "MEAN" not in ops and ops.count("AVERAGE_POOL_2D") == 1
    assert len([op for op in ops[5:pool] if op.endswith("CONV_2D")]) == convs
    assert ops[pool:].count("FULLY_CONNECTED") == fcs
