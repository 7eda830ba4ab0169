"""Checkpoint -> verified full-int8 .tflite plus MODEL.json: the quantize stage end to end.

    report = quantize_checkpoint("runs/demo/train/best.pt", "runs/demo/model.tflite", data="synthetic")

Steps: mirror the torch chain in Keras and check it computes the same floats; convert with a class-balanced
calibration set from the training split; refuse any op or tensor a full-int8 MCU model must not have; then
measure the int8 model in the TFLM interpreter (the reference every device must match) on every validation
image, and how often TFLite's faster kernels agree with TFLM byte for byte.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tinyml.data import to_int8
from tinyml.errors import TinymlError
from tinyml.quantize.convert import TensorQuant
from tinyml.util import git_commit, write_bytes_atomic, write_json_atomic

if TYPE_CHECKING:
    from torch import nn

    from tinyml.data import Splits

DEFAULT_CALIBRATION_SAMPLES = 200
MIRROR_CHECK_IMAGES = 32  # val images (plus calibration ones) on which torch and Keras floats are compared
JSON_FORMAT = "tinyml.model"


@dataclass(frozen=True)
class Preprocess:
    """How raw camera pixels become the model's input, for every later stage (bench, demo, firmware)."""

    resolution: int
    channels: int
    color: str  # "rgb" | "gray"
    classes: tuple[str, ...]
    layout: str = "NHWC"
    input_scale: float = 1.0 / 255.0
    input_zero_point: int = -128
    int8_rule: str = "int8 = uint8 - 128"
    float_rule: str = "float = uint8 / 255"


@dataclass(frozen=True)
class QuantReport:
    """Everything the run measured; `to_json()` is MODEL.json, `table()` the printed summary."""

    tflite_path: Path
    json_path: Path
    model_bytes: int
    sha256: str
    ops: tuple[str, ...]
    input: TensorQuant
    output: TensorQuant
    tflm_arena_bytes: int
    mirror_max_abs_diff: float  # float64 twin vs torch float64: the check (fails above 1e-4)
    mirror_max_abs_diff_float32: float  # the converted float32 mirror vs torch float32: rounding drift, info
    float_accuracy: float
    int8_accuracy: float  # measured with TFLM on every validation image
    val_images: int
    int8_float_agreement: float  # fraction of val images where int8 and float predict the same class
    prob_mean_abs_diff: float  # mean |int8 - float| softmax probability over val images and classes
    prob_max_abs_diff: float
    tflite_byte_exact: int  # val images where TFLite (no delegates) output == TFLM output, byte for byte
    tflite_max_abs_diff: int  # largest |TFLite - TFLM| over all outputs, in int8 LSB
    per_class_int8_accuracy: dict[str, float]
    calibration: dict[str, Any]
    preprocess: Preprocess
    source: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def accuracy_drop(self) -> float:
        return self.float_accuracy - self.int8_accuracy

    @property
    def tflite_agreement(self) -> float:
        return self.tflite_byte_exact / self.val_images if self.val_images else 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "format": JSON_FORMAT,
            "version": 1,
            "model": self.tflite_path.name,
            "model_bytes": self.model_bytes,
            "sha256": self.sha256,
            "ops": list(self.ops),
            "op_counts": dict(Counter(self.ops)),
            "tflm_arena_bytes": self.tflm_arena_bytes,
            "input": asdict(self.input),
            "output": asdict(self.output),
            "weights": "int8 per-channel, int32 bias",
            "preprocess": asdict(self.preprocess),
            "checks": {
                "mirror_max_abs_diff": self.mirror_max_abs_diff,
                "mirror_max_abs_diff_float32": self.mirror_max_abs_diff_float32,
                "float_accuracy": self.float_accuracy,
                "int8_accuracy": self.int8_accuracy,
                "accuracy_drop": self.accuracy_drop,
                "int8_reference": "tflm",
                "val_images": self.val_images,
                "int8_float_agreement": self.int8_float_agreement,
                "prob_mean_abs_diff": self.prob_mean_abs_diff,
                "prob_max_abs_diff": self.prob_max_abs_diff,
                "per_class_int8_accuracy": self.per_class_int8_accuracy,
                "tflite_resolver": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
                "tflite_byte_exact": self.tflite_byte_exact,
                "tflite_agreement": self.tflite_agreement,
                "tflite_max_abs_diff": self.tflite_max_abs_diff,
            },
            "calibration": self.calibration,
            "source": self.source,
            "seconds": self.seconds,
        }

    def table(self) -> str:
        """Human-readable check table (the same numbers as MODEL.json)."""
        q = self.input
        o = self.output
        rows = [
            ("model", f"{self.tflite_path} ({self.model_bytes:,} B)"),
            ("ops", ", ".join(f"{n}x{op}" for op, n in Counter(self.ops).items())),
            ("TFLM arena", f"{self.tflm_arena_bytes:,} B (64-bit host)"),
            ("input", f"int8 {'x'.join(map(str, q.shape))} scale {q.scale:.7g} zp {q.zero_point} "
                      f"({self.preprocess.int8_rule}, {self.preprocess.color})"),
            ("output", f"int8 {'x'.join(map(str, o.shape))} scale {o.scale:.7g} zp {o.zero_point} "
                       f"({', '.join(self.preprocess.classes)})"),
            ("calibration", f"{self.calibration['samples']} train images "
                            f"({', '.join(f'{k} {v}' for k, v in self.calibration['per_class'].items())})"),
            ("mirror max |keras - torch|", f"{self.mirror_max_abs_diff:.1e} in float64, "
                                           f"{self.mirror_max_abs_diff_float32:.1e} in float32"),
            ("float accuracy (torch)", f"{self.float_accuracy:.2%}"),
            ("int8 accuracy (TFLM)", f"{self.int8_accuracy:.2%} on {self.val_images} val images"),
            ("accuracy drop (float - int8)", f"{self.accuracy_drop * 100:+.2f} points"),
            ("int8 = float prediction", f"{self.int8_float_agreement:.2%}"),
            ("|int8 - float| probability", f"mean {self.prob_mean_abs_diff:.3f}, "
                                           f"max {self.prob_max_abs_diff:.3f}"),
            ("TFLite == TFLM bytes", f"{self.tflite_byte_exact}/{self.val_images} "
                                     f"(max diff {self.tflite_max_abs_diff} LSB)"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _float_probabilities(model: nn.Module, images_u8: np.ndarray, has_softmax: bool,
                         batch: int = 256) -> np.ndarray:
    """Softmax outputs of the torch model on uint8 NHWC images (fed as uint8 / 255, NCHW)."""
    import torch

    probs = []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(images_u8), batch):
            x = torch.from_numpy(images_u8[i:i + batch].transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
            out = model(x)
            probs.append((out if has_softmax else torch.softmax(out, dim=1)).numpy())
    return np.concatenate(probs)


def _tflite_interpreter(model_bytes: bytes):
    """TFLite with its builtin kernels and no XNNPACK (XNNPACK rounds differently from TFLM, see FACTS.md)."""
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        it = tf.lite.Interpreter(
            model_content=model_bytes,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    return it


@dataclass(frozen=True)
class _Int8Eval:
    tflm_out: np.ndarray  # (N, classes) int8
    tflite_out: np.ndarray


def evaluate_int8(model_bytes: bytes, images_u8: np.ndarray, progress: bool = True) -> _Int8Eval:
    """Run every image through TFLM (the reference) and TFLite (no delegates); int8 input = uint8 - 128."""
    from tqdm import tqdm

    from tinyml.tflm import TflmReference

    ref = TflmReference(model_bytes)
    lite = _tflite_interpreter(model_bytes)
    in_idx, out_idx = lite.get_input_details()[0]["index"], lite.get_output_details()[0]["index"]
    x8 = to_int8(images_u8)
    tflm, tfl = [], []
    for x in tqdm(x8, desc="int8 eval (TFLM)", unit="img", disable=not progress, leave=False):
        tflm.append(ref.invoke(x).reshape(-1))
        lite.set_tensor(in_idx, x[None])
        lite.invoke()
        tfl.append(np.array(lite.get_tensor(out_idx)).reshape(-1))
    width = int(np.prod(ref.output_details["shape"]))
    return _Int8Eval(tflm_out=np.array(tflm, np.int8).reshape(-1, width),
                     tflite_out=np.array(tfl, np.int8).reshape(-1, width))


def _check_splits(splits: Splits, resolution: int, channels: int) -> None:
    want = (resolution, resolution, channels)
    for name, x in (("train", splits.train_x), ("validation", splits.val_x)):
        if x.ndim != 4 or tuple(x.shape[1:]) != want or x.dtype != np.uint8:
            raise TinymlError(f"{name} images are {x.dtype} {tuple(x.shape[1:])}, the model takes uint8 "
                              f"{'x'.join(map(str, want))}")
    if len(splits.val_y) == 0:
        raise TinymlError("the validation split is empty: nothing to measure int8 accuracy on")


def quantize_model(model: nn.Module, layers: list[tuple[str, nn.Module]], splits: Splits,
                   out: str | os.PathLike, *, resolution: int, channels: int, classes: tuple[str, ...],
                   calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES, seed: int = 0,
                   source: dict[str, Any] | None = None, progress: bool = True) -> QuantReport:
    """Quantize a torch chain (`layers` = named leaf modules in execution order) and verify it.

    Writes `out` (.tflite) and MODEL.json beside it (`out` with suffix .json), both atomically and only after
    every check passed.
    """
    import keras

    from tinyml.quantize import convert
    from tinyml.quantize.mirror import MIRROR_TOLERANCE, build_mirror, mirror_max_abs_diff
    from tinyml.tflm import tflm_arena_bytes

    out = Path(out)
    _check_splits(splits, resolution, channels)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    calib = convert.pick_calibration(splits.train_y, calibration_samples, len(classes), seed)
    calib_u8 = splits.train_x[calib.indices]

    keras.backend.clear_session()  # one process may quantize many models (the sweep): keep Keras state flat
    shape = (resolution, resolution, channels)
    mirror = build_mirror(layers, shape)
    check_u8 = np.concatenate([calib_u8[:MIRROR_CHECK_IMAGES], splits.val_x[:MIRROR_CHECK_IMAGES]])
    diff = mirror_max_abs_diff(model, build_mirror(layers, shape, dtype="float64"), check_u8)
    diff32 = mirror_max_abs_diff(model, mirror, check_u8)
    if not diff <= MIRROR_TOLERANCE:
        raise TinymlError(f"the Keras mirror differs from the torch model by {diff:.3g} "
                          f"(> {MIRROR_TOLERANCE}): a conversion bug, please report it with the checkpoint")
    times["mirror"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    model_bytes = convert.convert_int8(mirror.model, convert.calibration_inputs(calib_u8))
    fb = convert.read_flatbuffer(model_bytes)
    convert.check_int8_model(fb)
    times["convert"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    arena = tflm_arena_bytes(model_bytes)
    float_probs = _float_probabilities(model, splits.val_x, mirror.torch_has_softmax)
    float_pred = float_probs.argmax(axis=1)
    ev = evaluate_int8(model_bytes, splits.val_x, progress=progress)
    times["evaluate"] = time.perf_counter() - t0

    y = splits.val_y
    int8_pred = ev.tflm_out.argmax(axis=1)  # ties go to the lower class index, as argmax on a device would
    int8_probs = (ev.tflm_out.astype(np.float64) - fb.output.zero_point) * fb.output.scale
    exact = int(np.all(ev.tflm_out == ev.tflite_out, axis=1).sum())
    max_diff = int(np.max(np.abs(ev.tflm_out.astype(np.int16) - ev.tflite_out.astype(np.int16)), initial=0))
    per_class = {name: float(np.mean(int8_pred[y == c] == c))
                 for c, name in enumerate(classes) if np.any(y == c)}
    preprocess = Preprocess(resolution=resolution, channels=channels,
                            color="rgb" if channels == 3 else "gray", classes=tuple(classes))
    report = QuantReport(
        tflite_path=out, json_path=out.with_suffix(".json"), model_bytes=len(model_bytes),
        sha256=_sha256(model_bytes), ops=fb.ops, input=fb.input, output=fb.output, tflm_arena_bytes=arena,
        mirror_max_abs_diff=diff, mirror_max_abs_diff_float32=diff32,
        float_accuracy=float(np.mean(float_pred == y)),
        int8_accuracy=float(np.mean(int8_pred == y)), val_images=len(y),
        int8_float_agreement=float(np.mean(int8_pred == float_pred)),
        prob_mean_abs_diff=float(np.mean(np.abs(int8_probs - float_probs))),
        prob_max_abs_diff=float(np.max(np.abs(int8_probs - float_probs))), tflite_byte_exact=exact,
        tflite_max_abs_diff=max_diff, per_class_int8_accuracy=per_class,
        calibration={"samples": int(len(calib.indices)), "requested": calibration_samples, "split": "train",
                     "per_class": {classes[c]: n for c, n in enumerate(calib.per_class)}, "seed": seed,
                     "input_range": "pinned to [0, 1] (one black and one white pixel in the first sample)"},
        preprocess=preprocess,
        source={**(source or {}), "seed": seed, "commit": git_commit(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "data": splits.source, "train_images": int(len(splits.train_y))},
        seconds={k: round(v, 2) for k, v in times.items()},
    )
    write_bytes_atomic(out, model_bytes)
    write_json_atomic(report.json_path, report.to_json())
    return report


def quantize_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, *, data: str | None = None,
                        splits: Splits | None = None, calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES,
                        cache_dir: Path | None = None, progress: bool = True) -> QuantReport:
    """Quantize a tinyml checkpoint (full or depth-pruned) to `out` and write MODEL.json beside it.

    Pass `splits` to reuse loaded data across calls (the sweep); otherwise `data` (a data spec, default: the
    checkpoint's training data) is loaded with the checkpoint's validation fraction, seed and image limit,
    so the validation images are the ones training held out.
    """
    from tinyml.models import load_checkpoint, named_flat_layers

    model, ck = load_checkpoint(checkpoint)
    cfg = ck.model_config
    pre = ck.preprocess
    scale, offset = float(pre.get("input_scale", 1 / 255)), float(pre.get("input_offset", 0.0))
    if abs(scale - 1 / 255) > 1e-9 or offset != 0.0:
        raise TinymlError(f"{checkpoint}: float input is uint8 * {scale} + {offset}; int8 conversion "
                          "needs uint8 / 255 (int8 = uint8 - 128)")
    train_cfg = ck.train or {}
    seed = int(ck.seed if ck.seed is not None else train_cfg.get("seed", 0))
    if splits is None:
        from tinyml.data import load_splits

        spec = data or train_cfg.get("data")
        if not spec:
            raise TinymlError(f"{checkpoint} does not say which data it was trained on: pass --data")
        limit = train_cfg.get("limit") if spec == train_cfg.get("data") else None
        splits = load_splits(spec, resolution=cfg.resolution, channels=cfg.channels,
                             val_fraction=float(train_cfg.get("val_fraction", 0.1)), seed=seed,
                             cache_dir=cache_dir, limit=limit, progress=progress)
    classes = tuple(pre.get("classes") or splits.classes)
    source = {"checkpoint": str(Path(checkpoint).resolve()), "model_config": cfg.to_dict(),
              "checkpoint_commit": ck.commit, "checkpoint_metrics": ck.metrics}
    return quantize_model(model, named_flat_layers(model), splits, out, resolution=cfg.resolution,
                          channels=cfg.channels, classes=classes, calibration_samples=calibration_samples,
                          seed=seed, source=source, progress=progress)
