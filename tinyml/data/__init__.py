"""Datasets for person / no-person: COCO Visual Wake Words, image folders, and a synthetic stand-in.

    splits = load_splits("synthetic")   # or "synthetic:6000", "vww:/data/coco", "folder:/data/vw_coco2014_96"

Every source gives uint8 NHWC images at the model resolution (RGB or grayscale) and labels 0 = non_person,
1 = person (TFLM person_detect's output order). The model's float input is uint8 / 255; its int8 input is
uint8 - 128 (scale 1/255, zero point -128).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyml.data.view import ImageView
from tinyml.errors import TinymlError, UsageError

CLASSES = ("non_person", "person")
SPEC_HELP = "synthetic[:N] | vww:COCO_ROOT | folder:DIR (DIR/person/*.jpg, DIR/non_person/*.jpg)"


@dataclass(frozen=True)
class Splits:
    """Train and validation sets: x uint8 [N,H,W,C] (a view: rows are read when indexed), y int64 [N]."""

    train_x: ImageView
    train_y: np.ndarray
    val_x: ImageView
    val_y: np.ndarray
    classes: tuple[str, ...] = CLASSES
    source: str = ""
    skipped: int = 0  # unreadable files left out (a warning said so)

    def summary(self) -> str:
        def counts(y: np.ndarray) -> str:
            return "/".join(str(int((y == c).sum())) for c in range(len(self.classes)))

        return (
            f"{self.source}: train {len(self.train_y)} ({counts(self.train_y)} {'/'.join(self.classes)}), "
            f"val {len(self.val_y)} ({counts(self.val_y)}), {self.train_x.shape[1]}x{self.train_x.shape[2]}"
            f"x{self.train_x.shape[3]}"
        )


def to_int8(x_uint8: np.ndarray) -> np.ndarray:
    """uint8 pixels -> the int8 model input (scale 1/255, zero point -128): the same pixels the float model
    sees as uint8 / 255."""
    return (np.asarray(x_uint8).astype(np.int16) - 128).astype(np.int8)


def to_gray(x: np.ndarray) -> np.ndarray:
    """RGB uint8 NHWC -> 1-channel luma with PIL's "L" weights (the file loaders use PIL itself)."""
    luma = (
        x[..., 0].astype(np.uint32) * 19595
        + x[..., 1].astype(np.uint32) * 38470
        + x[..., 2].astype(np.uint32) * 7471
        + 0x8000
    ) >> 16
    return luma.astype(np.uint8)[..., None]


def split_indices(y: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded train/val split (each class keeps its share in both parts)."""
    if not 0 < val_fraction < 1:
        raise TinymlError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    rng = np.random.default_rng([seed, 7919])
    train, val = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_val = max(1, int(round(len(idx) * val_fraction)))
        if n_val >= len(idx):
            raise TinymlError(
                f"class {CLASSES[c] if c < len(CLASSES) else c} has {len(idx)} image(s): "
                "too few for a train/validation split"
            )
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def parse_spec(spec: str) -> tuple[str, str]:
    kind, _, arg = spec.partition(":")
    if kind not in ("synthetic", "vww", "folder"):
        raise UsageError(f"unknown data source {spec!r} (use {SPEC_HELP})")
    if kind != "synthetic" and not arg:
        raise TinymlError(f"data source {kind}: needs a path, e.g. {kind}:/data/coco")
    return kind, arg


def load_splits(
    spec: str,
    resolution: int = 96,
    channels: int = 3,
    val_fraction: float = 0.1,
    seed: int = 0,
    cache_dir: Path | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> Splits:
    """Load a dataset by spec and split it; `limit` caps the image count (balanced) for quick tries."""
    if channels not in (1, 3):
        raise TinymlError(f"channels must be 1 or 3, got {channels}")
    kind, arg = parse_spec(spec)
    skipped = 0
    if kind == "synthetic":
        from tinyml.data.synthetic import DEFAULT_COUNT, synthetic_dataset

        try:
            count = int(arg) if arg else DEFAULT_COUNT
        except ValueError:
            raise TinymlError(f"synthetic:N needs an image count, got {arg!r}") from None
        if limit is not None:
            count = min(count, limit)
        if count < 20:
            raise TinymlError(f"synthetic dataset needs at least 20 images, got {count}")
        x, y = synthetic_dataset(count, resolution)  # a fixed dataset, like a folder: `seed` picks the split
        x = ImageView(to_gray(x) if channels == 1 else x)
    elif kind == "folder":
        from tinyml.data.folder import load_folder

        x, y, skipped = load_folder(Path(arg).expanduser(), resolution, channels, cache_dir, limit, progress)
    else:
        from tinyml.data.coco import load_vww

        x, y, skipped = load_vww(Path(arg).expanduser(), resolution, channels, cache_dir, limit, progress)
    tr, va = split_indices(y, val_fraction, seed)
    return Splits(train_x=x.take(tr), train_y=y[tr], val_x=x.take(va), val_y=y[va], source=spec,
                  skipped=skipped)


__all__ = ["CLASSES", "SPEC_HELP", "ImageView", "Splits", "load_splits", "parse_spec", "split_indices",
           "to_gray", "to_int8"]
