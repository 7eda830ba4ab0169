"""Image folders and COCO Visual Wake Words built on the fly: labels from the 0.5% rule, bad data, caching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinyml.data import load_splits
from tinyml.data.coco import load_vww, vww_labels
from tinyml.data.folder import load_folder
from tinyml.errors import TinymlError

RES = 32


def flat_jpeg(path: Path, value: int, size: tuple[int, int] = (64, 48)) -> None:
    """A flat-grey JPEG: after decoding and resizing its pixels still say which image it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value, value)).save(path, quality=95)


def ids_of(x: np.ndarray) -> list[int]:
    return [int(round(float(im.mean()))) for im in x]


# ---------------------------------------------------------------- folders


def make_folder(root: Path, n_person: int = 3, n_non: int = 4) -> dict[int, int]:
    """ROOT/person and ROOT/non_person with distinct grey levels; returns grey level -> label."""
    truth = {}
    for i in range(n_non):
        flat_jpeg(root / "non_person" / f"img{i}.jpg", 20 + 10 * i)
        truth[20 + 10 * i] = 0
    for i in range(n_person):
        flat_jpeg(root / "person" / f"img{i}.jpg", 150 + 10 * i)
        truth[150 + 10 * i] = 1
    return truth


def test_folder_labels_follow_class_folders(tmp_path):
    truth = make_folder(tmp_path / "ds")
    x, y, skipped = load_folder(tmp_path / "ds", RES, 3, cache_dir=tmp_path / "cache")
    assert skipped == 0 and x.shape == (7, RES, RES, 3)
    got = dict(zip(ids_of(x), y.tolist()))
    assert got == truth


def test_folder_grayscale_and_split(tmp_path):
    make_folder(tmp_path / "ds", 10, 10)
    s = load_splits(f"folder:{tmp_path / 'ds'}", resolution=RES, channels=1, cache_dir=tmp_path / "c")
    assert s.train_x.shape[1:] == (RES, RES, 1) and len(s.val_y) == 2 and set(s.val_y.tolist()) == {0, 1}


def test_folder_corrupt_images_are_skipped_with_a_count(tmp_path, capsys):
    truth = make_folder(tmp_path / "ds")
    (tmp_path / "ds" / "person" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "ds" / "non_person" / "empty.png").write_bytes(b"")
    x, y, skipped = load_folder(tmp_path / "ds", RES, 3, cache_dir=tmp_path / "cache")
    assert skipped == 2 and len(y) == len(truth)
    assert "skipped 2 unreadable image(s)" in capsys.readouterr().err
    # the cached result says so again, without decoding
    _, _, skipped_again = load_folder(tmp_path / "ds", RES, 3, cache_dir=tmp_path / "cache")
    assert skipped_again == 2 and "skipped 2" in capsys.readouterr().err


@pytest.mark.parametrize(
    "setup, message",
    [
        ("missing_root", "not found"),
        ("no_person_dir", "has no person/ subfolder"),
        ("empty_class", "holds no images"),
        ("only_corrupt", "holds no readable images"),
    ],
)
def test_folder_errors(tmp_path, setup, message):
    root = tmp_path / "ds"
    if setup != "missing_root":
        make_folder(root)
    if setup == "no_person_dir":
        for p in (root / "person").iterdir():
            p.unlink()
        (root / "person").rmdir()
    if setup == "empty_class":
        for p in (root / "non_person").iterdir():
            p.unlink()
        (root / "non_person" / "notes.txt").write_text("not an image")
    if setup == "only_corrupt":
        for p in (root / "person").iterdir():
            p.write_bytes(b"garbage")
    with pytest.raises(TinymlError, match=message):
        load_folder(root, RES, 3, cache_dir=tmp_path / "cache")


def test_folder_cache_is_reused_and_invalidated(tmp_path):
    make_folder(tmp_path / "ds")
    cache = tmp_path / "cache"
    x1, _, _ = load_folder(tmp_path / "ds", RES, 3, cache_dir=cache)
    files = list(cache.glob("folder_*/images.u8"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    x2, _, _ = load_folder(tmp_path / "ds", RES, 3, cache_dir=cache)
    np.testing.assert_array_equal(x1, x2)
    assert files[0].stat().st_mtime_ns == stamp  # read, not rewritten
    flat_jpeg(tmp_path / "ds" / "person" / "new.jpg", 250)
    x3, y3, _ = load_folder(tmp_path / "ds", RES, 3, cache_dir=cache)
    assert len(y3) == 8 and len(list(cache.glob("folder_*/images.u8"))) == 2


def test_folder_default_cache_lives_next_to_the_data(tmp_path):
    make_folder(tmp_path / "ds")
    load_folder(tmp_path / "ds", RES, 3)
    assert len(list((tmp_path / "ds" / ".tinyml-cache").glob("folder_*/manifest.json"))) == 1


# ---------------------------------------------------------------- COCO

W, H = 200, 100  # image area 20,000: 0.5% = 100 pixels

# (case, annotations as (category, area, iscrowd), expected label)
COCO_CASES = [
    ("no annotations", [], 0),
    ("person just under 0.5%", [(1, 99.9, 0)], 0),
    ("person exactly 0.5% (rule is strict)", [(1, 100.0, 0)], 0),
    ("person just over 0.5%", [(1, 100.1, 0)], 1),
    ("big non-person (dog)", [(18, 15000.0, 0)], 0),
    ("small person + big person", [(1, 20.0, 0), (1, 4000.0, 0)], 1),
    ("several small persons", [(1, 60.0, 0), (1, 60.0, 0)], 0),
    ("crowd person counts (as TF slim)", [(1, 500.0, 1)], 1),
    ("dog + person over", [(18, 9000.0, 0), (1, 300.0, 0)], 1),
]


def make_coco(
    root: Path, cases=COCO_CASES, split: str = "train2014", first_id: int = 1, missing: tuple[int, ...] = ()
) -> dict[int, int]:
    """A COCO root with one flat-grey image per case; returns grey level -> expected label."""
    images, anns, truth = [], [], {}
    for k, (_, objects, label) in enumerate(cases):
        img_id = first_id + k
        grey = 10 + 20 * (img_id - 1)
        name = f"COCO_{split}_{img_id:012d}.jpg"
        if k not in missing:
            flat_jpeg(root / split / name, grey, (W, H))
            truth[grey] = label
        images.append({"id": img_id, "file_name": name, "width": W, "height": H})
        for j, (cat, area, crowd) in enumerate(objects):
            side = float(np.sqrt(area))
            anns.append(
                {
                    "id": img_id * 100 + j,
                    "image_id": img_id,
                    "category_id": cat,
                    "area": area,
                    "bbox": [1.0, 1.0, side, side],
                    "iscrowd": crowd,
                }
            )
    (root / split).mkdir(parents=True, exist_ok=True)
    data = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
    }
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
    return truth


def test_vww_rule_on_annotation_table():
    """The labelling rule alone, case by case."""
    images = [{"id": k, "file_name": f"{k}.jpg", "width": W, "height": H} for k in range(len(COCO_CASES))]
    anns = [
        {"image_id": k, "category_id": c, "area": a, "bbox": [0, 0, 1, 1], "iscrowd": cr}
        for k, (_, objs, _) in enumerate(COCO_CASES)
        for c, a, cr in objs
    ]
    labels = vww_labels({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]})
    for k, (case, _, expected) in enumerate(COCO_CASES):
        assert labels[k] == expected, case


def test_vww_uses_area_field_and_falls_back_to_box():
    images = [
        {"id": 1, "file_name": "a.jpg", "width": W, "height": H},
        {"id": 2, "file_name": "b.jpg", "width": W, "height": H},
    ]
    anns = [
        # segmentation area under the threshold although the box is large: TF slim's rule says no person
        {"image_id": 1, "category_id": 1, "area": 50.0, "bbox": [0, 0, 100, 50]},
        # no area field: the box's w*h (11 x 10 = 110 > 100) decides
        {"image_id": 2, "category_id": 1, "bbox": [0, 0, 11, 10]},
    ]
    assert vww_labels(
        {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
    ) == {1: 0, 2: 1}


def test_coco_tree_labels_decode_and_cache(tmp_path):
    root = tmp_path / "coco"
    truth = make_coco(root)
    truth |= make_coco(root, COCO_CASES[:3], split="val2014", first_id=len(COCO_CASES) + 1)
    x, y, skipped = load_vww(root, RES, 3, cache_dir=tmp_path / "cache")
    assert skipped == 0 and len(y) == len(truth)
    assert dict(zip(ids_of(x), y.tolist())) == truth
    cache_files = list((tmp_path / "cache").glob("vww_*/images.u8"))
    assert len(cache_files) == 1
    # a second run is served from the cache: with the images gone it still returns them, undecoded
    for p in (root / "train2014").iterdir():
        p.unlink()
    x2, y2, _ = load_vww(root, RES, 3, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)


def test_coco_missing_images_are_skipped_with_a_count(tmp_path, capsys):
    root = tmp_path / "coco"
    truth = make_coco(root, missing=(0, 2))
    x, y, skipped = load_vww(root, RES, 1, cache_dir=tmp_path / "cache")
    assert skipped == 2 and x.shape == (len(truth), RES, RES, 1)
    assert dict(zip(ids_of(x), y.tolist())) == truth
    assert "skipped 2 missing or unreadable COCO image(s)" in capsys.readouterr().err


def test_coco_load_splits_and_limit(tmp_path):
    root = tmp_path / "coco"
    make_coco(root, COCO_CASES * 3)
    s = load_splits(f"vww:{root}", resolution=RES, cache_dir=tmp_path / "cache")
    assert len(s.train_y) + len(s.val_y) == 27 and set(s.val_y.tolist()) == {0, 1}
    lim = load_splits(f"vww:{root}", resolution=RES, cache_dir=tmp_path / "cache", limit=8)
    n = np.concatenate([lim.train_y, lim.val_y])
    assert len(n) == 8 and (n == 1).sum() == 4


@pytest.mark.parametrize(
    "setup, message",
    [
        ("no_annotations", "no annotations/instances_"),
        ("no_image_dir", "no annotation file has its image folder"),
        ("bad_json", "cannot read COCO annotations"),
        ("no_person_category", "no 'person' category"),
    ],
)
def test_coco_errors(tmp_path, setup, message):
    root = tmp_path / "coco"
    root.mkdir()
    if setup != "no_annotations":
        make_coco(root, COCO_CASES[:4])
    ann = root / "annotations" / "instances_train2014.json"
    if setup == "no_image_dir":
        for p in (root / "train2014").iterdir():
            p.unlink()
        (root / "train2014").rmdir()
    if setup == "bad_json":
        ann.write_text("{ not json")
    if setup == "no_person_category":
        data = json.loads(ann.read_text())
        data["categories"] = [{"id": 18, "name": "dog"}]
        ann.write_text(json.dumps(data))
    with pytest.raises(TinymlError, match=message):
        load_vww(root, RES, 3, cache_dir=tmp_path / "cache")


def test_unwritable_dataset_caches_under_home(tmp_path, monkeypatch):
    """A dataset on a read-only place still gets a cache (/proc refuses mkdir even to root)."""
    from tinyml.data.images import default_cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir(Path("/proc/self")) == tmp_path / "xdg" / "tinyml"
    assert default_cache_dir(tmp_path) == tmp_path / ".tinyml-cache"
