"""Pruning: depth pruning with auxiliary heads (the paper's method) and global magnitude pruning (its baseline).

    from tinyml.prune import PruneSpec, prune_and_train
    prune_and_train("runs/demo/train/best.pt", PruneSpec("depth", cut=5, head="dscnn32_16"), splits, tcfg, out)

Model surgery lives in `depth.py`, masks in `magnitude.py`; both import torch, this package root does not.
"""

from tinyml.prune.run import PruneSpec, prune_and_train

__all__ = ["PruneSpec", "prune_and_train"]
