"""Inputs for `tinyml bench`: image files preprocessed the way the model was trained, raw tensors, or random.

One preprocessing path: an image file is decoded exactly as training and the sweep decode their images
(tinyml.data.images.decode_image: squashed to HxW with PIL's bilinear filter, RGB or "L" gray), then quantized
as MODEL.json beside the .tflite records (`tinyml quantize`: int8 = uint8 - 128, the rule the sweep's bench
inputs use too); without MODEL.json the pixels are mapped onto the input tensor's real range ([0, 1] or
[-1, 1]).
An int8 .npy or a raw .bin is fed as-is, and each input says which of these it was (`BenchInput.how`).
After the run, `predictions` names the class each output picks (labels from MODEL.json's classes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyml.errors import TinymlError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff")
RAW_SUFFIXES = (".bin", ".raw", ".u8", ".s8")


@dataclass(frozen=True)
class Preprocess:
    height: int
    width: int
    channels: int
    scale: float
    zero_point: int
    pixel_range: tuple[float, float]  # the real value a pixel of 0 and of 255 becomes

    def quantize(self, pixels: np.ndarray) -> np.ndarray:
        lo, hi = self.pixel_range
        real = lo + pixels.astype(np.float64) * ((hi - lo) / 255.0)
        return np.clip(np.round(real / self.scale) + self.zero_point, -128, 127).astype(np.int8)


@dataclass(frozen=True)
class BenchInput:
    name: str
    data: np.ndarray  # int8, flat, exactly the model's input bytes
    how: str = ""  # what was fed: "image 96x96 RGB, int8 = uint8 - 128 (MODEL.json)", "raw bytes, as-is", ...


def input_spec(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) != 4 or shape[0] != 1 or shape[3] not in (1, 3):
        raise TinymlError(
            f"cannot feed an image to an input of shape {list(shape)} (need [1, H, W, 1 or 3]); "
            f"pass an int8 .npy tensor instead"
        )
    return shape[1], shape[2], shape[3]


def preprocessing(model_path: Path, shape: tuple[int, ...], scale: float, zero_point: int) -> Preprocess:
    """The preprocessing MODEL.json (from `tinyml quantize`) records, else one inferred from the input."""
    h, w, c = input_spec(shape)
    meta = model_path.with_suffix(".json")
    if meta.exists():
        try:
            pre = json.loads(meta.read_text()).get("preprocess")
        except json.JSONDecodeError as e:
            raise TinymlError(f"{meta}: not valid JSON ({e})") from None
        if pre:
            res, ch = int(pre["resolution"]), int(pre["channels"])
            if (res, res, ch) != (h, w, c):
                raise TinymlError(f"{meta} says {res}x{res}x{ch} but {model_path.name} takes {h}x{w}x{c}")
            # float = uint8 / 255 (the quantizer's rule), then the tensor's own quantization
            return Preprocess(h, w, c, float(pre.get("input_scale", scale)),
                              int(pre.get("input_zero_point", zero_point)), (0.0, 1.0))
    # No record: map pixels onto the real range the int8 input covers, [-1, 1] or [0, 1].
    lo = scale * (-128 - zero_point)
    return Preprocess(h, w, c, scale, zero_point, (-1.0, 1.0) if lo < -0.25 else (0.0, 1.0))


def load_image(path: Path, pre: Preprocess) -> np.ndarray:
    """Decoded as the training data is (one decoder for both), then quantized for the model's input."""
    from tinyml.data.images import decode_image

    pixels = decode_image(path, pre.height, pre.channels, pre.width)
    if pixels is None:
        raise TinymlError(f"{path}: cannot read the image")
    return pre.quantize(pixels).reshape(-1)


def load_input(
    path: str | Path, model_path: Path, shape: tuple[int, ...], scale: float, zero_point: int
) -> BenchInput:
    """One --input file: an image (preprocessed), an int8 .npy tensor, or raw bytes (.bin), fed as-is."""
    path = Path(path)
    nbytes = int(np.prod(shape))
    if not path.exists():
        raise TinymlError(f"{path}: no such input file")
    suffix = path.suffix.lower()
    how = "int8 .npy tensor, fed as-is"
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise TinymlError(f"{path}: not a readable .npy file ({e})") from None
        if arr.dtype != np.int8:
            raise TinymlError(
                f"{path}: dtype {arr.dtype}, but the model input is int8 (quantize it first, or pass "
                f"the image file)"
            )
        data = arr.reshape(-1)
    elif suffix in RAW_SUFFIXES:
        data = np.frombuffer(path.read_bytes(), dtype=np.int8)
        how = "raw bytes, fed as-is (no preprocessing)"
    elif suffix in IMAGE_SUFFIXES:
        pre = preprocessing(model_path, shape, scale, zero_point)
        data = load_image(path, pre)
        how = f"image resized to {pre.height}x{pre.width} {'RGB' if pre.channels == 3 else 'gray'}, " + (
            "int8 = uint8 - 128 (MODEL.json)" if model_path.with_suffix(".json").exists()
            else f"pixels -> [{pre.pixel_range[0]:g}, {pre.pixel_range[1]:g}] -> int8 (no MODEL.json)")
    else:
        raise TinymlError(
            f"{path}: unknown input type '{suffix}' (images {', '.join(IMAGE_SUFFIXES)}; int8 .npy; "
            f"raw bytes {', '.join(RAW_SUFFIXES)})"
        )
    if data.size != nbytes:
        raise TinymlError(f"{path}: {data.size} values, the model input {list(shape)} takes {nbytes}")
    return BenchInput(path.name, np.ascontiguousarray(data, dtype=np.int8), how)


def load_inputs(paths: list[str | Path], model_path: Path) -> list[BenchInput]:
    """--input files for a model, whose input tensor (shape, quantization) is read from the .tflite."""
    from tinyml.compile import tflite

    m = tflite.load(model_path)
    t = m.tensors[m.inputs[0]]
    return [load_input(p, model_path, tuple(t.shape), t.scale, t.zero_point) for p in paths]


def random_inputs(count: int, nbytes: int, seed: int = 0) -> list[BenchInput]:
    rng = np.random.default_rng(seed)
    return [
        BenchInput(f"random #{i} (seed {seed})", rng.integers(-128, 128, nbytes, dtype=np.int8),
                   "random int8 bytes")
        for i in range(count)
    ]


def class_labels(model_path: Path, n: int) -> list[str]:
    """The classes MODEL.json records (`tinyml quantize`), else "class 0", "class 1", ..."""
    meta = model_path.with_suffix(".json")
    try:
        classes = json.loads(meta.read_text()).get("preprocess", {}).get("classes") if meta.exists() else None
    except (json.JSONDecodeError, AttributeError):
        classes = None
    return list(classes) if classes and len(classes) == n else [f"class {i}" for i in range(n)]


def predictions(model_path: Path, outputs: list[bytes]) -> list[tuple[str, float]]:
    """(label, score) per output: the arg-max class and its dequantized output (after softmax: a
    probability)."""
    from tinyml.compile import tflite

    m = tflite.load(model_path)
    t = m.tensors[m.outputs[0]]
    out = []
    for raw in outputs:
        q = np.frombuffer(raw, np.int8)
        labels = class_labels(model_path, q.size)
        k = int(np.argmax(q))
        out.append((labels[k], float(t.scale * (int(q[k]) - t.zero_point))))
    return out
