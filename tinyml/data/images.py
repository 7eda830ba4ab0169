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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tinyml.errors import TinymlError
from tinyml.util import atomic_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff")
CACHE_VERSION = 1


def warn(msg: str) -> None:
    """Data problems that do not stop the run (skipped files) go to stderr on one line."""
    print(f"tinyml: warning: {msg}", file=sys.stderr)


def decode_image(path: Path, resolution: int, channels: int) -> np.ndarray | None:
    """HxWxC uint8 array, or None when the file cannot be decoded."""
    from PIL import Image

    mode = "RGB" if channels == 3 else "L"
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                im.draft(mode, (resolution * 2, resolution * 2))  # let libjpeg downscale by 1/2..1/8 first
            im = im.convert(mode).resize((resolution, resolution), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    return arr.reshape(resolution, resolution, channels)


def decode_many(
    paths: Sequence[Path],
    resolution: int,
    channels: int,
    desc: str,
    workers: int | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """(images [M,H,W,C], kept indices into `paths`, skipped paths); PIL releases the GIL: threads scale."""
    from tqdm import tqdm

    x = np.empty((len(paths), resolution, resolution, channels), np.uint8)
    ok = np.zeros(len(paths), bool)
    workers = workers or min(8, os.cpu_count() or 1)

    def one(i: int) -> None:
        arr = decode_image(paths[i], resolution, channels)
        if arr is not None:
            x[i] = arr
            ok[i] = True

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in tqdm(
            pool.map(one, range(len(paths))),
            total=len(paths),
            desc=desc,
            unit="img",
            disable=not progress or len(paths) < 200,
            leave=False,
        ):
            pass
    kept = np.flatnonzero(ok)
    skipped = [paths[i] for i in np.flatnonzero(~ok)]
    return x[kept], kept, skipped


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


def cached(path: Path, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Load arrays from `path` (.npz) or build and save them atomically."""
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            warn(f"ignoring unreadable cache {path} ({type(e).__name__}); rebuilding it")
    arrays = build()
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
    except OSError as e:
        warn(f"could not write cache {path}: {e}")
    return arrays


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise TinymlError(
            f"{what} {path} not found" if not path.exists() else f"{what} {path} is not a directory"
        )
    return path


CLASS_NAMES = ("non_person", "person")  # label = index (TFLM person_detect's output order)


def decode_labelled(
    paths: Sequence[Path], labels: np.ndarray, resolution: int, channels: int, desc: str, progress: bool
) -> dict[str, np.ndarray]:
    """Decode `paths`, keep the labels of the images that decoded; the skip count travels in the cache."""
    x, kept, skipped = decode_many(paths, resolution, channels, desc, progress=progress)
    return {
        "x": x,
        "y": labels[kept],
        "skipped": np.array(len(skipped)),
        "first_skipped": np.array(str(skipped[0]) if skipped else ""),
    }


def unpack_labelled(
    arrays: dict[str, np.ndarray], skipped_what: str, empty_class: Callable[[str], str]
) -> tuple[np.ndarray, np.ndarray, int]:
    """(x, y, skipped): warn once with the count of skipped files, refuse a class with no image left."""
    skipped = int(arrays["skipped"])
    if skipped:
        warn(f"skipped {skipped} {skipped_what} (first: {arrays['first_skipped']})")
    y = arrays["y"]
    for label, name in enumerate(CLASS_NAMES):
        if not (y == label).any():
            raise TinymlError(empty_class(name))
    return arrays["x"], y, skipped
