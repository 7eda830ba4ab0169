"""Decode image files to the model's input size, skipping (and counting) unreadable ones; cache the result.

Images are squashed to resolution x resolution (no crop, like the MLPerf `vw_coco2014_96` archive) with PIL's
antialiasing bilinear filter; grayscale uses PIL's "L" conversion (ITU-R 601 luma).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tinyml.data.view import ImageView
from tinyml.errors import TinymlError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff")
CACHE_VERSION = 2  # 2: memory-mapped cache directories (tinyml.data.cache)


def warn(msg: str) -> None:
    """Data problems that do not stop the run (skipped files) go to stderr on one line."""
    print(f"tinyml: warning: {msg}", file=sys.stderr)


def decode_image(path: Path, resolution: int, channels: int, width: int | None = None) -> np.ndarray | None:
    """HxWxC uint8 (H = resolution, W = width or resolution), or None when the file cannot be decoded."""
    from PIL import Image

    mode = "RGB" if channels == 3 else "L"
    width = width or resolution
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                im.draft(mode, (width * 2, resolution * 2))  # let libjpeg downscale by 1/2..1/8 first
            im = im.convert(mode).resize((width, resolution), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    return arr.reshape(resolution, width, channels)


def default_cache_dir(data_root: Path) -> Path:
    """`DATA_ROOT/.tinyml-cache` when writable, else ~/.cache/tinyml (read-only datasets get a cache too)."""
    d = data_root / ".tinyml-cache"
    try:
        d.mkdir(exist_ok=True)
        if os.access(d, os.W_OK):
            return d
    except OSError:
        pass
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tinyml"


def cache_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps({"v": CACHE_VERSION, **parts}, sort_keys=True).encode()).hexdigest()[:16]


def file_stamp(paths: Sequence[Path]) -> str:
    """A cheap fingerprint of a file list (names, sizes, mtimes): any change rebuilds the cache."""
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise TinymlError(
            f"{what} {path} not found" if not path.exists() else f"{what} {path} is not a directory"
        )
    return path


CLASS_NAMES = ("non_person", "person")  # label = index (TFLM person_detect's output order)


def cached_dataset(
    cache_dir: Path, name: str, key: dict, list_items: Callable[[], tuple[Sequence[Path], np.ndarray]],
    resolution: int, channels: int, desc: str, progress: bool, skipped_what: str,
    empty_class: Callable[[str], str],
) -> tuple[ImageView, np.ndarray, int]:
    """(x, y, skipped) from the memory-mapped cache (built first if needed; see tinyml.data.cache).

    Unreadable files are left out with one warning giving their count; a class with no image left is an error.
    """
    from tinyml.data.cache import open_cached

    c = open_cached(cache_dir / f"{name}_{resolution}_{channels}_{cache_key(key)}", key, list_items,
                    resolution, channels, desc, progress)
    if c.skipped:
        warn(f"skipped {c.skipped} {skipped_what} (first: {c.first_skipped})")
    kept = np.flatnonzero(c.ok)
    y = c.y[kept]
    for label, cls in enumerate(CLASS_NAMES):
        if not (y == label).any():
            raise TinymlError(empty_class(cls))
    return ImageView(c.x, kept), y, c.skipped
