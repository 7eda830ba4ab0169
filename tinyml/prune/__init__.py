"""Pruning: depth pruning with auxiliary heads (the paper's method) and magnitude pruning (its baseline).

    from tinyml.prune import PruneSpec, prune_and_train
    spec = PruneSpec("depth", cut=5, head="dscnn32_16")
    summary = prune_and_train("runs/demo/train/best.pt", spec, splits, tcfg, "runs/demo/cut5")

Model surgery lives in `depth.py`, masks in `magnitude.py`; both import torch, this package root does not.
"""

from tinyml.prune.run import PruneSpec, prune_and_train

__all__ = ["PruneSpec", "prune_and_train"]
