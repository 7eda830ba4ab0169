"""Inputs for `tinyml bench`: image files preprocessed the way the model was trained, raw tensors, or random.

Preprocessing comes from MODEL.json beside the .tflite when `tinyml quantize` wrote one (resolution, channels,
color, input scale/zero point); otherwise it is inferred from the input tensor: HxWxC, gray for C=1 and RGB
for C=3, and pixels mapped onto the tensor's real range ([0, 1] or [-1, 1]) then quantized.
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
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB" if pre.channels == 3 else "L")
            im = im.resize((pre.width, pre.height), Image.Resampling.BILINEAR)
            pixels = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as e:
        raise TinymlError(f"{path}: cannot read the image ({e})") from None
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
    elif suffix in IMAGE_SUFFIXES:
        data = load_image(path, preprocessing(model_path, shape, scale, zero_point))
    else:
        raise TinymlError(
            f"{path}: unknown input type '{suffix}' (images {', '.join(IMAGE_SUFFIXES)}; int8 .npy; "
            f"raw bytes {', '.join(RAW_SUFFIXES)})"
        )
    if data.size != nbytes:
        raise TinymlError(f"{path}: {data.size} values, the model input {list(shape)} takes {nbytes}")
    return BenchInput(path.name, np.ascontiguousarray(data, dtype=np.int8))


def load_inputs(paths: list[str | Path], model_path: Path) -> list[BenchInput]:
    """--input files for a model, whose input tensor (shape, quantization) is read from the .tflite."""
    from tinyml.compile import tflite

    m = tflite.load(model_path)
    t = m.tensors[m.inputs[0]]
    return [load_input(p, model_path, tuple(t.shape), t.scale, t.zero_point) for p in paths]


def random_inputs(count: int, nbytes: int, seed: int = 0) -> list[BenchInput]:
    rng = np.random.default_rng(seed)
    return [
        BenchInput(f"random #{i} (seed {seed})", rng.integers(-128, 128, nbytes, dtype=np.int8))
        for i in range(count)
    ]
