"""Train -> (prune) -> quantize on synthetic data, checked in TFLM on every validation image."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tinyml.data import load_splits
from tinyml.models import ModelConfig, build_model, load_checkpoint, named_flat_layers
from tinyml.quantize.convert import ALLOWED_OPS, read_flatbuffer
from tinyml.tflm import TflmReference, tflm_arena_bytes

DATA, RES = "synthetic:1000", 48
REPO = Path(__file__).resolve().parent.parent


def _splits():
    return load_splits(DATA, resolution=RES, channels=3, val_fraction=0.1, seed=0, progress=False)


@pytest.fixture(scope="session")
def trained(artifacts) -> Path:
    """A MobileNetV1 0.25 at 48x48 trained 3 epochs on synthetic data (best.pt; ~66% val accuracy, so int8 vs
    float accuracy compares a model that learned something)."""
    from tinyml.train import TrainConfig, train_model

    cfg = ModelConfig(resolution=RES)
    torch.manual_seed(0)
    res = train_model(build_model(cfg), cfg, _splits(), TrainConfig(epochs=3, data=DATA, augment=False),
                      artifacts / "q_train", progress=False)
    return res.best_path


@pytest.fixture(scope="session")
def quantized_full(trained, artifacts) -> tuple[Path, dict, str]:
    """`tinyml quantize` on the trained checkpoint, run as a user would: (model path, MODEL.json, stdout)."""
    out = artifacts / "q_full" / "model.tflite"
    cmd = [sys.executable, "-m", "tinyml", "quantize", "--model", str(trained), "--out", str(out),
           "--calibration-samples", "100", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(out.with_suffix(".json").read_text()), proc.stdout


def _expected_ops(model: nn.Module) -> list[str]:
    """One TFLite op per torch compute layer (BN, ReLU fold into the conv; Flatten into FC) plus SOFTMAX."""
    ops = []
    for _, m in named_flat_layers(model):
        if isinstance(m, nn.Conv2d):
            ops.append("DEPTHWISE_CONV_2D" if m.groups > 1 else "CONV_2D")
        elif isinstance(m, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            ops.append("AVERAGE_POOL_2D")
        elif isinstance(m, nn.Linear):
            ops.append("FULLY_CONNECTED")
    return ops + ["SOFTMAX"]


def _check_quantized(tflite: Path, meta: dict, checkpoint: Path) -> None:
    """Everything MODEL.json claims, re-derived from the .tflite, the checkpoint and TFLM."""
    model_bytes = tflite.read_bytes()
    torch_model, ck = load_checkpoint(checkpoint)
    cfg = ck.model_config

    # op set: exactly the ops of the torch chain (RESHAPE allowed for Flatten), nothing outside the MCU set
    fb = read_flatbuffer(model_bytes)
    assert set(fb.ops) <= ALLOWED_OPS
    assert [op for op in fb.ops if op != "RESHAPE"] == _expected_ops(torch_model)
    assert meta["ops"] == list(fb.ops)
    assert set(fb.tensor_types) <= {"INT8", "INT32"} and fb.per_channel_weights

    # int8 in/out: input exactly uint8 - 128, output the softmax's 1/256, -128
    ref = TflmReference(model_bytes)
    qin, qout = ref.input_details["quantization_parameters"], ref.output_details["quantization_parameters"]
    assert ref.input_details["dtype"] == np.int8 and ref.output_details["dtype"] == np.int8
    assert qin["scales"][0] == np.float32(1 / 255) and qin["zero_points"][0] == -128
    assert qout["scales"][0] == np.float32(1 / 256) and qout["zero_points"][0] == -128
    assert tuple(ref.input_details["shape"]) == (1, cfg.resolution, cfg.resolution, cfg.channels)
    assert meta["input"]["scale"] == pytest.approx(1 / 255, rel=1e-6) and meta["input"]["zero_point"] == -128
    assert meta["preprocess"] == {
        "resolution": cfg.resolution, "channels": cfg.channels, "color": "rgb",
        "classes": ["non_person", "person"], "layout": "NHWC", "input_scale": pytest.approx(1 / 255),
        "input_zero_point": -128,
        "int8_rule": "int8 = uint8 - 128", "float_rule": "float = uint8 / 255"}

    # int8 accuracy: TFLM on every validation image gives exactly the reported number
    splits = _splits()
    x8 = (splits.val_x.astype(np.int16) - 128).astype(np.int8)
    outs = np.array([ref.invoke(x).reshape(-1) for x in x8])
    checks = meta["checks"]
    assert checks["val_images"] == len(splits.val_y)
    assert checks["int8_accuracy"] == pytest.approx(float(np.mean(outs.argmax(1) == splits.val_y)))
    assert checks["int8_reference"] == "tflm"
    assert checks["accuracy_drop"] == pytest.approx(checks["float_accuracy"] - checks["int8_accuracy"])
    assert abs(checks["accuracy_drop"]) <= 0.1
    # quantization noise may flip borderline images, never many, and hardly any confident one
    float_p = torch.softmax(torch_model(torch.from_numpy(splits.val_x.transpose(0, 3, 1, 2)) / 255.0), 1)
    float_p = float_p.detach().numpy()
    int8_p = (outs.astype(np.float64) + 128) / 256
    assert checks["prob_max_abs_diff"] == pytest.approx(np.abs(int8_p - float_p).max(), abs=1e-6)
    confident = np.abs(float_p[:, 1] - 0.5) > 0.25
    assert np.mean(int8_p[confident].argmax(1) == float_p[confident].argmax(1)) >= 0.95
    assert checks["int8_float_agreement"] >= 0.8
    assert checks["mirror_max_abs_diff"] < 1e-4
    # TFLite without delegates: byte-exact count within range, at most 2 LSB apart (FACTS.md)
    assert 0 <= checks["tflite_byte_exact"] <= len(splits.val_y)
    assert checks["tflite_max_abs_diff"] <= 2
    assert (checks["tflite_max_abs_diff"] == 0) == (checks["tflite_byte_exact"] == len(splits.val_y))

    # sizes and provenance
    assert meta["model_bytes"] == len(model_bytes)
    assert meta["sha256"] == hashlib.sha256(model_bytes).hexdigest()
    assert meta["model"] == tflite.name
    assert meta["tflm_arena_bytes"] == tflm_arena_bytes(model_bytes)
    assert meta["source"]["checkpoint"] == str(checkpoint.resolve())
    assert meta["source"]["model_config"] == cfg.to_dict()
    assert meta["source"]["seed"] == 0 and meta["source"]["commit"]
    cal = meta["calibration"]
    assert cal["split"] == "train" and sum(cal["per_class"].values()) == cal["samples"]
    assert abs(cal["per_class"]["person"] - cal["per_class"]["non_person"]) <= 1


@pytest.mark.slow
def test_quantize_full_model(trained, quantized_full):
    tflite, meta, stdout = quantized_full
    _check_quantized(tflite, meta, trained)
    assert meta["checks"]["float_accuracy"] >= 0.6  # better than chance: the int8 comparison means something
    assert min(meta["checks"]["per_class_int8_accuracy"].values()) > 0
    assert meta["calibration"]["samples"] == 100
    assert "int8 accuracy (TFLM)" in stdout and str(tflite) in stdout


@pytest.mark.slow
@pytest.mark.parametrize("head", ["dscnn32_16", "dense"])
def test_quantize_pruned_model(trained, artifacts, head):
    from tinyml.prune import PruneSpec, prune_and_train
    from tinyml.quantize import quantize_checkpoint
    from tinyml.train import TrainConfig

    summary = prune_and_train(trained, PruneSpec("depth", cut=5, head=head), _splits(),
                              TrainConfig(epochs=1, data=DATA), artifacts / f"q_prune_{head}", progress=False,
                              evaluate_base=False)
    ckpt = Path(summary["checkpoint"])
    out = artifacts / f"q_prune_{head}" / "model.tflite"
    report = quantize_checkpoint(ckpt, out, calibration_samples=50, progress=False)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta == json.loads(json.dumps(report.to_json()))
    _check_quantized(out, meta, ckpt)
