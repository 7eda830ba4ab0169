"""Image-folder datasets: ROOT/person/*.jpg and ROOT/non_person/*.jpg (the MLPerf `vw_coco2014_96` layout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinyml.data.images import (
    CLASS_NAMES,
    IMAGE_SUFFIXES,
    cached_dataset,
    default_cache_dir,
    file_stamp,
    require_dir,
)
from tinyml.data.view import ImageView
from tinyml.errors import TinymlError

CLASS_DIRS = CLASS_NAMES  # label = index


def list_folder(root: Path) -> list[tuple[Path, int]]:
    """(image path, label) sorted by class then name; errors name the missing or empty class folder."""
    require_dir(root, "dataset folder")
    items: list[tuple[Path, int]] = []
    for label, name in enumerate(CLASS_DIRS):
        d = root / name
        if not d.is_dir():
            found = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir())) or "none"
            raise TinymlError(
                f"dataset folder {root} has no {name}/ subfolder (expected {'/ and '.join(CLASS_DIRS)}/;"
                f" found: {found})"
            )
        files = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise TinymlError(f"class folder {d} holds no images ({', '.join(IMAGE_SUFFIXES[:3])}, ...)")
        items += [(p, label) for p in files]
    return items


def load_folder(
    root: Path,
    resolution: int,
    channels: int,
    cache_dir: Path | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> tuple[ImageView, np.ndarray, int]:
    """(x, y, skipped count) from the folder tree via the memory-mapped cache, keyed by file list + size +
    mtime (the class folders are the labelling rule)."""
    items = list_folder(root)
    if limit is not None:
        items = _balanced_prefix(items, limit)
    paths = [p for p, _ in items]
    labels = np.array([lab for _, lab in items], np.int64)
    key = {"kind": "folder", "root": str(root.resolve()), "res": resolution, "ch": channels,
           "classes": list(CLASS_DIRS), "files": file_stamp(paths)}
    return cached_dataset(
        cache_dir or default_cache_dir(root), "folder", key, lambda: (paths, labels), resolution, channels,
        f"decoding {root.name}", progress, f"unreadable image(s) in {root}",
        lambda name: f"class folder {root / name} holds no readable images",
    )


def _balanced_prefix(items: list[tuple[Path, int]], limit: int) -> list[tuple[Path, int]]:
    """At most `limit` items, half from each class (for quick tries on a big folder)."""
    out = []
    for label in range(len(CLASS_DIRS)):
        of_class = [it for it in items if it[1] == label]
        out += of_class[: max(1, limit // len(CLASS_DIRS))]
    return out
