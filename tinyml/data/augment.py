"""MLPerf Tiny VWW augmentation on whole batches in torch: one affine warp per image, cheap and seedable.

The Keras ImageDataGenerator of the MLPerf reference uses rotation_range=10, width/height_shift_range=0.05,
zoom_range=0.1 and horizontal_flip; fill mode "nearest" (edge pixels repeat) = `padding_mode="border"`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augment:
    rotation_deg: float = 10.0
    shift: float = 0.05
    zoom: float = 0.1
    hflip: bool = True


MLPERF = Augment()


def to_float(x_uint8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0, 1]: the model input convention (uint8 / 255)."""
    if isinstance(x_uint8, np.ndarray) and not x_uint8.flags.writeable:
        x_uint8 = x_uint8.copy()  # torch refuses to wrap read-only memory (the cached synthetic set is)
    t = torch.as_tensor(x_uint8)
    return t.permute(0, 3, 1, 2).float().div_(255.0)


def augment_batch(x: torch.Tensor, gen: torch.Generator, aug: Augment = MLPERF) -> torch.Tensor:
    """Random rotation/shift/zoom/flip of a float NCHW batch; all randomness comes from `gen`."""
    n = x.shape[0]
    u = torch.rand(n, 5, generator=gen, dtype=torch.float64)
    ang = (u[:, 0] * 2 - 1) * math.radians(aug.rotation_deg)
    zoom = 1 + (u[:, 1] * 2 - 1) * aug.zoom  # >1 samples a larger area: zoom out, as Keras
    tx = (u[:, 2] * 2 - 1) * aug.shift * 2  # affine_grid coordinates span [-1, 1] = 2 units per image
    ty = (u[:, 3] * 2 - 1) * aug.shift * 2
    flip = torch.where(u[:, 4] < 0.5, -1.0, 1.0) if aug.hflip else torch.ones(n, dtype=torch.float64)
    cos, sin = torch.cos(ang) * zoom, torch.sin(ang) * zoom
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
