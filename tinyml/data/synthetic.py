"""A deterministic, learnable stand-in for Visual Wake Words: stick-figure people on clutter vs. clutter only.

Both classes share the same background statistics and the same clutter shapes (discs, boxes, bars,
ellipses), so colour or "has a circle" alone does not separate them: a person is the arrangement - a head
above a torso with two arms and two legs - in a random pose, size, colour and position. Image i depends only
on (seed, i), so `synthetic:N` for a larger N keeps the first images; `load_splits` uses a fixed seed (the
dataset is fixed, like a folder; the training seed picks the split). Plain numpy: ~500 images/s at 96x96.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

DEFAULT_COUNT = 3000
# clutter kinds: disc, box, bar, ellipse -- mostly furniture-like boxes and blobs, some head/limb look-alikes
CLUTTER_MIX = (0.15, 0.4, 0.15, 0.3)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return ys, xs


class _Canvas:
    """Float RGB image with anti-aliased primitive shapes drawn over bounding boxes only (fast)."""

    def __init__(self, img: np.ndarray) -> None:
        self.img = img
        self.size = img.shape[0]
        self.ys, self.xs = _grid(self.size)

    def _paint(self, box: tuple[float, float, float, float], coverage_fn, color: np.ndarray) -> None:
        x0, y0, x1, y1 = (
            int(math.floor(box[0])) - 1,
            int(math.floor(box[1])) - 1,
            int(math.ceil(box[2])) + 2,
            int(math.ceil(box[3])) + 2,
        )
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, self.size), min(y1, self.size)
        if x0 >= x1 or y0 >= y1:
            return
        ys, xs = self.ys[y0:y1, x0:x1], self.xs[y0:y1, x0:x1]
        a = np.clip(coverage_fn(xs, ys), 0.0, 1.0)[..., None]
        region = self.img[y0:y1, x0:x1]
        region *= 1.0 - a
        region += a * color

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, angle: float, color: np.ndarray) -> None:
        c, s = math.cos(angle), math.sin(angle)
        r = max(rx, ry)

        def cov(xs, ys):
            u = ((xs - cx) * c + (ys - cy) * s) / rx
            v = (-(xs - cx) * s + (ys - cy) * c) / ry
            d = np.sqrt(u * u + v * v)
            return (1.0 - d) * min(rx, ry) + 0.5

        self._paint((cx - r, cy - r, cx + r, cy + r), cov, color)

    def capsule(self, x0: float, y0: float, x1: float, y1: float, radius: float, color: np.ndarray) -> None:
        """A thick segment with round ends (limbs, bars)."""
        dx, dy = x1 - x0, y1 - y0
        n2 = dx * dx + dy * dy + 1e-6

        def cov(xs, ys):
            t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / n2, 0.0, 1.0)
            px, py = x0 + t * dx - xs, y0 + t * dy - ys
            return radius - np.sqrt(px * px + py * py) + 0.5

        self._paint(
            (min(x0, x1) - radius, min(y0, y1) - radius, max(x0, x1) + radius, max(y0, y1) + radius),
            cov,
            color,
        )

    def rect(self, x0: float, y0: float, x1: float, y1: float, color: np.ndarray) -> None:
        def cov(xs, ys):
            return np.minimum(np.minimum(xs - x0, x1 - xs), np.minimum(ys - y0, y1 - ys)) + 0.5

        self._paint((x0, y0, x1, y1), cov, color)


def _color(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 1.0, 3).astype(np.float32)


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random field: base colour + gradient + low-frequency blotches; returns (image, base colour)."""
    ys, xs = _grid(size)
    base = _color(rng) * 0.8 + 0.1
    g = rng.normal(0, 0.25, (2, 3)).astype(np.float32)
    img = base + (xs[..., None] / size - 0.5) * g[0] + (ys[..., None] / size - 0.5) * g[1]
    k = int(rng.integers(3, 7))
    coarse = rng.normal(0, 0.12, (k, k, 3)).astype(np.float32)
    pos = np.linspace(0, k - 1, size, dtype=np.float32)
    i0 = np.minimum(pos.astype(np.int64), k - 2)
    f = (pos - i0)[:, None]
    rows = coarse[i0] * (1 - f[..., None]) + coarse[i0 + 1] * f[..., None]  # bilinear: rows, then columns
    blot = rows[:, i0] * (1 - f[None, :, :]) + rows[:, i0 + 1] * f[None, :, :]
    return (img + blot).astype(np.float32), base


def _clutter(rng: np.random.Generator, cv: _Canvas, count: int) -> None:
    s = cv.size
    for _ in range(count):
        kind = int(rng.choice(4, p=CLUTTER_MIX))
        col = _color(rng)
        cx, cy = rng.uniform(-0.1, 1.1, 2) * s
        if kind == 0:  # disc, same size range as heads
            r = rng.uniform(0.03, 0.12) * s
            cv.ellipse(cx, cy, r, r, 0.0, col)
        elif kind == 1:  # box
            w, h = rng.uniform(0.06, 0.4, 2) * s
            cv.rect(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, col)
        elif kind == 2:  # bar, same thickness range as limbs
            ang = rng.uniform(0, math.pi)
            ln = rng.uniform(0.1, 0.45) * s
            cv.capsule(
                cx, cy, cx + ln * math.cos(ang), cy + ln * math.sin(ang), rng.uniform(0.01, 0.035) * s, col
            )
        else:  # ellipse, same range as torsos
            cv.ellipse(
                cx, cy, rng.uniform(0.04, 0.2) * s, rng.uniform(0.04, 0.2) * s, rng.uniform(0, math.pi), col
            )


def _contrasting(rng: np.random.Generator, against: np.ndarray) -> np.ndarray:
    """A random colour that stands out from `against` (a figure in camouflage is no use to learn from)."""
    c = _color(rng)
    return c if np.abs(c - against).sum() > 0.6 else (1.0 - c).astype(np.float32)


def _person(rng: np.random.Generator, cv: _Canvas, bg: np.ndarray) -> None:
    """Head, torso, two arms, two legs; pose, scale, position and colours vary."""
    s = cv.size
    h = rng.uniform(0.5, 0.9) * s  # figure height
    cx = rng.uniform(0.2, 0.8) * s
    top = rng.uniform(0.02, 0.98) * s - h / 2
    top = float(np.clip(top, -0.05 * s, s - 0.95 * h))
    lean = rng.uniform(-0.15, 0.15)
    skin, shirt, trousers = _color(rng), _contrasting(rng, bg), _contrasting(rng, bg)
    if rng.uniform() < 0.5:
        skin = np.array([0.9, 0.7, 0.55], np.float32) * rng.uniform(0.4, 1.1)
    head_r = h * rng.uniform(0.08, 0.11)
    neck_y = top + 2 * head_r
    hip_y = neck_y + h * 0.38
    hip_x = cx + lean * h * 0.38
    limb = h * rng.uniform(0.04, 0.06)
    # legs
    for side in (-1, 1):
        ang = math.pi / 2 + side * rng.uniform(0.05, 0.5)
        ln = h * rng.uniform(0.4, 0.47)
        kx, ky = hip_x + side * limb, hip_y
        cv.capsule(kx, ky, kx + ln * math.cos(ang), ky + ln * math.sin(ang), limb, trousers)
    # torso
    cv.ellipse(
        (cx + hip_x) / 2,
        (neck_y + hip_y) / 2,
        h * rng.uniform(0.08, 0.12),
        (hip_y - neck_y) / 2 + limb,
        math.atan2(hip_x - cx, hip_y - neck_y) * -1.0,
        shirt,
    )
    # arms from the shoulders, anywhere from hanging down to raised
    sh_y = neck_y + h * 0.05
    for side in (-1, 1):
        ang = math.pi / 2 - side * rng.uniform(0.15, 2.6)
        ln = h * rng.uniform(0.3, 0.38)
        sx = cx + side * h * 0.07
        cv.capsule(sx, sh_y, sx + ln * math.cos(ang), sh_y + ln * math.sin(ang), limb * 0.8, shirt)
    cv.ellipse(cx, top + head_r, head_r, head_r * 1.15, 0.0, skin)


def synthetic_image(seed: int, index: int, size: int, person: bool) -> np.ndarray:
    """One HxWx3 uint8 image, a pure function of (seed, index, size, person)."""
    rng = np.random.default_rng([seed, index, size])
    img, bg = _background(rng, size)
    cv = _Canvas(img)
    n_before = int(rng.integers(1, 5))
    _clutter(rng, cv, n_before)
    if person:
        _person(rng, cv, bg)
    _clutter(rng, cv, int(rng.integers(0, 2)))  # occluders in front
    noise = rng.normal(0, rng.uniform(0.0, 0.04), cv.img.shape).astype(np.float32)
    return (np.clip(cv.img + noise, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


@lru_cache(maxsize=4)
def synthetic_dataset(count: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(x uint8 [N,size,size,3], y int64 [N]) with exactly balanced classes (even index = no person).

    Cached per process (tests and sweeps ask for the same set repeatedly); callers must not modify the arrays.
    """
    y = (np.arange(count) % 2).astype(np.int64)
    x = np.empty((count, size, size, 3), np.uint8)
    for i in range(count):
        x[i] = synthetic_image(seed, i, size, bool(y[i]))
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y
