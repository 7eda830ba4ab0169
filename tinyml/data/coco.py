"""Visual Wake Words from a COCO root: label 1 ("person") when a person annotation covers > 0.5% of the image.

The rule is TF slim's `build_visualwakewords_data` (the one MLPerf Tiny's `vw_coco2014_96` archive was built
with): it divides COCO's annotation `area` field (the segmentation area; the box's w*h when `area` is
missing) by image width * height and needs it strictly above 0.005. Like TF slim, crowd annotations
(`iscrowd=1`) count. Every split found (`annotations/instances_<split>.json` with images in `<split>/`,
e.g. train2014 + val2014) is pooled; `load_splits` then holds out the validation fraction. The decoded
images are cached on disk (tinyml.data.cache), keyed by the annotation files (size, mtime), resolution,
channels, limit and the labelling rule, so a second run skips JSON parsing and decoding.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tinyml.data.images import cached_dataset, default_cache_dir, file_stamp, require_dir, warn
from tinyml.data.view import ImageView
from tinyml.errors import TinymlError

AREA_THRESHOLD = 0.005
PERSON = "person"


def vww_labels(instances: dict, threshold: float = AREA_THRESHOLD) -> dict[int, int]:
    """image id -> 0/1 for one COCO instances file (every listed image gets a label)."""
    person_ids = {c["id"] for c in instances.get("categories", []) if c.get("name") == PERSON}
    if not person_ids:
        raise TinymlError("COCO annotations have no 'person' category")
    images = {im["id"]: im for im in instances.get("images", [])}
    labels = dict.fromkeys(images, 0)
    for ann in instances.get("annotations", []):
        im = images.get(ann.get("image_id"))
        if im is None or ann.get("category_id") not in person_ids:
            continue
        area = ann.get("area")
        if area is None:
            area = float(ann["bbox"][2]) * float(ann["bbox"][3])
        if area / (im["width"] * im["height"]) > threshold:
            labels[im["id"]] = 1
    return labels


def find_splits(root: Path) -> list[tuple[Path, Path]]:
    """(instances json, image dir) pairs under a COCO root."""
    require_dir(root, "COCO root")
    ann_dir = root / "annotations"
    files = sorted(ann_dir.glob("instances_*.json")) if ann_dir.is_dir() else []
    if not files:
        raise TinymlError(
            f"COCO root {root} has no annotations/instances_*.json "
            "(expected annotations/instances_train2014.json and train2014/)"
        )
    pairs = []
    for f in files:
        img_dir = root / f.stem.removeprefix("instances_")
        if img_dir.is_dir():
            pairs.append((f, img_dir))
        else:
            warn(f"ignoring {f.name}: image folder {img_dir} not found")
    if not pairs:
        raise TinymlError(
            f"COCO root {root}: no annotation file has its image folder "
            f"(looked for {', '.join(f.stem.removeprefix('instances_') for f in files)}/)"
        )
    return pairs


def _list_images(pairs: list[tuple[Path, Path]]) -> tuple[list[Path], np.ndarray]:
    paths: list[Path] = []
    labels: list[int] = []
    for ann_file, img_dir in pairs:
        try:
            instances = json.loads(ann_file.read_text())
        except (OSError, ValueError) as e:
            raise TinymlError(f"cannot read COCO annotations {ann_file}: {type(e).__name__}") from None
        lab = vww_labels(instances)
        for im in sorted(instances["images"], key=lambda im: im["file_name"]):
            paths.append(img_dir / im["file_name"])
            labels.append(lab[im["id"]])
    return paths, np.array(labels, np.int64)


def load_vww(
    root: Path,
    resolution: int,
    channels: int,
    cache_dir: Path | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> tuple[ImageView, np.ndarray, int]:
    """(x, y, skipped count) for the pooled COCO splits; missing or unreadable images are skipped, counted."""
    pairs = find_splits(root)
    key = {"kind": "vww", "root": str(root.resolve()), "res": resolution, "ch": channels, "limit": limit,
           "ann": file_stamp([a for a, _ in pairs]), "threshold": AREA_THRESHOLD}

    def items() -> tuple[list[Path], np.ndarray]:
        paths, labels = _list_images(pairs)
        if limit is not None:
            keep = np.concatenate([np.flatnonzero(labels == c)[: max(1, limit // 2)] for c in (0, 1)])
            keep.sort()
            paths, labels = [paths[i] for i in keep], labels[keep]
        return paths, labels

    return cached_dataset(
        cache_dir or default_cache_dir(root), "vww", key, items, resolution, channels, "decoding COCO",
        progress, "missing or unreadable COCO image(s)",
        lambda name: f"COCO root {root} gives no readable {name} images",
    )
