"""A lazy row selection of an image array: the train or validation part of a memory-mapped dataset.

`x[idx]` on a NumPy memmap with an index array copies the selected rows into RAM; a split made that way
would hold the whole dataset in anonymous memory. An ImageView keeps the base array (memmap or ndarray) and
the row numbers, and reads rows only when indexed, so a batch costs a batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class ImageView:
    """Rows `index` of a uint8 [N,H,W,C] array; indexing (int, slice, index array) returns an ndarray."""

    def __init__(self, base: np.ndarray, index: np.ndarray | None = None) -> None:
        self.base = base
        self.index = np.arange(len(base)) if index is None else np.asarray(index, np.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.base.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    @property
    def ndim(self) -> int:
        return self.base.ndim

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: Any) -> np.ndarray:
        rows = self.index[key]
        if np.ndim(rows) == 0:
            return np.array(self.base[int(rows)])
        return np.asarray(self.base[rows])  # fancy indexing copies just these rows (a memmap reads them)

    def take(self, idx: np.ndarray) -> ImageView:
        """A view of some of this view's rows (how a split is made without copying images)."""
        return ImageView(self.base, self.index[idx])

    def __getattr__(self, name: str) -> Any:
        """Other ndarray methods (astype, transpose, ...) work on the selected rows, read into memory."""
        if name.startswith("_") or not hasattr(np.ndarray, name):
            raise AttributeError(f"'ImageView' object has no attribute {name!r}")
        return getattr(self[:], name)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)
