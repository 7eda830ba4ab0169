"""Synthetic data, splits, specs and augmentation: deterministic, balanced, and honest about bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinyml.data import CLASSES, load_splits, split_indices, to_gray
from tinyml.data.augment import Augment, augment_batch, to_float
from tinyml.data.synthetic import synthetic_dataset, synthetic_image
from tinyml.errors import TinymlError


def test_synthetic_is_deterministic_balanced_and_prefix_stable():
    x1, y1 = synthetic_dataset(40, 48)
    x2, y2 = synthetic_dataset(41, 48)  # a different cache entry, generated afresh
    np.testing.assert_array_equal(x1, x2[:40])
    np.testing.assert_array_equal(y1, y2[:40])
    assert x1.dtype == np.uint8 and x1.shape == (40, 48, 48, 3)
    assert y1.dtype == np.int64 and (y1 == 1).sum() == (y1 == 0).sum() == 20
    # images are not trivially alike: different indices and seeds give different pictures
    assert not np.array_equal(synthetic_image(0, 0, 48, False), synthetic_image(1, 0, 48, False))
    assert len({x1[i].tobytes() for i in range(40)}) == 40


def test_person_images_differ_from_clutter_in_the_figure_only():
    """Same (seed, index): the person image is the clutter image plus a figure (and moved occluders)."""
    with_person = synthetic_image(0, 5, 96, True).astype(int)
    without = synthetic_image(0, 5, 96, False).astype(int)
    changed = (np.abs(with_person - without).max(axis=2) > 40).mean()
    assert 0.005 < changed < 0.6


@pytest.mark.parametrize("channels", [1, 3])
def test_load_splits_synthetic_shapes_and_stratified_split(channels):
    s = load_splits("synthetic:200", resolution=48, channels=channels, seed=3)
    assert s.classes == CLASSES == ("non_person", "person")
    assert s.train_x.shape == (180, 48, 48, channels) and s.val_x.shape == (20, 48, 48, channels)
    assert s.train_x.dtype == np.uint8 and s.train_y.dtype == np.int64
    assert (s.val_y == 1).sum() == 10 and (s.train_y == 1).sum() == 90
    again = load_splits("synthetic:200", resolution=48, channels=channels, seed=3)
    np.testing.assert_array_equal(s.val_x, again.val_x)
    other = load_splits("synthetic:200", resolution=48, channels=channels, seed=4)
    assert not np.array_equal(s.val_x, other.val_x)


def test_split_indices_disjoint_and_complete():
    y = np.array([0] * 30 + [1] * 70)
    tr, va = split_indices(y, 0.1, seed=0)
    assert set(tr).isdisjoint(va) and sorted([*tr, *va]) == list(range(100))
    assert (y[va] == 0).sum() == 3 and (y[va] == 1).sum() == 7


def test_gray_matches_pil_luma():
    from PIL import Image

    rgb = synthetic_dataset(4, 48)[0]
    ours = to_gray(rgb)[..., 0]
    pil = np.stack([np.asarray(Image.fromarray(im).convert("L")) for im in rgb])
    np.testing.assert_array_equal(ours, pil)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("imagenet", "unknown data source"),
        ("folder:", "needs a path"),
        ("synthetic:abc", "image count"),
        ("synthetic:5", "at least 20"),
        ("folder:/nonexistent/tinyml-data", "not found"),
        ("vww:/nonexistent/coco", "not found"),
    ],
)
def test_bad_specs_raise_one_line_errors(spec, message):
    with pytest.raises(TinymlError, match=message) as e:
        load_splits(spec, resolution=48)
    assert "\n" not in str(e.value)


def test_augmentation_is_seeded_and_keeps_range():
    x = to_float(synthetic_dataset(8, 48)[0])
    a = augment_batch(x, torch.Generator().manual_seed(1))
    b = augment_batch(x, torch.Generator().manual_seed(1))
    c = augment_batch(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    # each image moves, but stays close to the original (rotation 10 deg, shift 5%, zoom 10%)
    diff = (a - x).abs().mean(dim=(1, 2, 3))
    assert (diff > 0).all()


def test_augmentation_without_transforms_is_identity():
    x = to_float(synthetic_dataset(4, 48)[0])
    y = augment_batch(x, torch.Generator().manual_seed(0), Augment(0.0, 0.0, 0.0, False))
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


def test_horizontal_flip_only_mirrors():
    x = to_float(synthetic_dataset(64, 48)[0])
    y = augment_batch(x, torch.Generator().manual_seed(0), Augment(0.0, 0.0, 0.0, True))
    flipped = [torch.allclose(y[i], x[i].flip(-1), atol=1e-5) for i in range(64)]
    same = [torch.allclose(y[i], x[i], atol=1e-5) for i in range(64)]
    assert all(f or s for f, s in zip(flipped, same)) and 16 < sum(flipped) < 48
