"""Training batches from DataLoader worker processes: read, convert and augment off the training loop.

Item (epoch, b) is batch b of that epoch, made from nothing but (seed, epoch, b): the epoch's shuffle comes
from a generator seeded by (seed, epoch), batch b's augmentation from one seeded by (seed, epoch, b). So which
worker makes a batch, and how many workers there are, cannot change it: a run repeats bit for bit with 0, 1
or N workers, and a resumed run continues exactly. Rows are read from the dataset's memory map, so workers
share the page cache instead of each holding a copy.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from tinyml.data.augment import augment_batch, to_float

PREFETCH = 4  # batches each worker prepares ahead


def seeded_generator(seed: int, *stream: int) -> torch.Generator:
    """A torch generator for one purpose (shuffle, augmentation of one batch) of one epoch of one seed."""
    return torch.Generator().manual_seed(
        int(np.random.SeedSequence([seed, *stream]).generate_state(1)[0])
    )


class EpochBatches(Dataset):
    """Map-style dataset whose keys are (epoch, batch index); items are (float NCHW images, labels)."""

    def __init__(self, x: object, y: np.ndarray, batch_size: int, seed: int, augment: bool) -> None:
        self.x, self.y = x, y
        self.batch_size, self.seed, self.augment = batch_size, seed, augment
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The epoch's shuffle (computed once per epoch per process)."""
        if self._order is None or self._order[0] != epoch:
            perm = torch.randperm(len(self.y), generator=seeded_generator(self.seed, epoch, 0)).numpy()
            self._order = (epoch, perm)
        return self._order[1]

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, b = key
        idx = self.order(epoch)[b * self.batch_size:(b + 1) * self.batch_size]
        xb = to_float(self.x[idx])
        if self.augment:
            xb = augment_batch(xb, seeded_generator(self.seed, epoch, 1, b))
        return xb, torch.as_tensor(self.y[idx])


class EpochKeys(Sampler):
    """Yields (epoch, 0..n-1); set `.epoch` before iterating (the sampler runs in the training process)."""

    def __init__(self, n_batches: int) -> None:
        self.n_batches, self.epoch = n_batches, 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, b) for b in range(self.n_batches))

    def __len__(self) -> int:
        return self.n_batches


def _worker_init(worker_id: int) -> None:
    """One thread per worker (workers run side by side); library RNGs seeded per worker, although the
    batches themselves use only their own seeded generators."""
    info = get_worker_info()
    torch.set_num_threads(1)
    base = info.seed if info is not None else worker_id
    random.seed(base)
    np.random.seed(base % 2**32)


def make_loader(ds: EpochBatches, workers: int, pin_memory: bool) -> tuple[DataLoader, EpochKeys]:
    """A DataLoader over `ds` with `workers` persistent processes (0: batches made in this process)."""
    keys = EpochKeys(len(ds))
    loader = DataLoader(ds, batch_size=None, sampler=keys, num_workers=workers, pin_memory=pin_memory,
                        persistent_workers=workers > 0, prefetch_factor=PREFETCH if workers else None,
                        worker_init_fn=_worker_init if workers else None,
                        generator=seeded_generator(ds.seed, 2))  # worker seeds: torch's global RNG untouched
    return loader, keys
