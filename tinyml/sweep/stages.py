"""The host stages of a sweep point: `train` (prune + train, or evaluate the base) and `profile`.

Each stage is `(point, ctx, point_dir, record) -> dict of new record fields`; the record so far carries what
earlier stages produced (e.g. `checkpoint`). Register new stages in `tinyml.sweep.runner.STAGES`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinyml.sweep.points import Point


def train_stage(point: Point, ctx: Any, pdir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Prune the base as the point says and train it in `pdir` (resuming its last.pt); base: just evaluate."""
    from tinyml.models import load_checkpoint
    from tinyml.prune.run import PruneSpec, check_input, prune_and_train
    from tinyml.sweep.runner import splits_for
    from tinyml.train import evaluate

    base_model, base_ck = load_checkpoint(ctx.base)
    splits = splits_for(ctx, base_ck.model_config)
    if point.method == "base":
        check_input(splits, base_ck.model_config, Path(ctx.base))
        acc = evaluate(base_model, splits.val_x, splits.val_y)["acc"]
        return {"checkpoint": str(Path(ctx.base).resolve()), "val_acc": acc, "best_epoch": base_ck.epoch,
                "epochs": base_ck.train.get("epochs", base_ck.epoch),
                "train_s": _base_train_seconds(ctx.base)}
    spec = PruneSpec(point.method, cut=point.cut, head=point.head, head_args=point.head_args,
                     unfreeze=point.unfreeze, sparsity=point.sparsity)
    printer = _epoch_printer(point, ctx) if ctx.progress else None
    s = prune_and_train(ctx.base, spec, splits, ctx.train_config(), pdir, resume=True, progress=False,
                        evaluate_base=False, on_epoch_end=printer)
    out = {k: s[k] for k in ("checkpoint", "val_acc", "best_epoch", "epochs", "train_s")}
    for k in ("val_acc_before_finetune", "zeroed_weights"):
        if k in s:
            out[k] = s[k]
    return out


def _epoch_printer(point: Point, ctx: Any) -> Any:
    """One line per epoch (a sweep's points are too many for per-batch bars)."""
    from tqdm import tqdm

    def show(m: dict[str, Any]) -> None:
        tqdm.write(f"  {point.id} epoch {m['epoch']}/{ctx.epochs}: loss {m['train_loss']:.4f} "
                   f"val_acc {m['val_acc']:.4f} ({m['seconds']:.1f}s)")

    return show


def _base_train_seconds(base: str) -> float | None:
    """The base run's training time, from the metrics.json beside its checkpoint (None if absent)."""
    try:
        epochs = json.loads((Path(base).parent / "metrics.json").read_text())["epochs"]
        return round(sum(e.get("seconds", 0.0) for e in epochs), 2)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def profile_stage(point: Point, ctx: Any, pdir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Params (trainable, +BN statistics, BN folded), nonzero params, MACs and activation peak."""
    from tinyml.models import load_checkpoint
    from tinyml.prune.run import base_row

    model, ck = load_checkpoint(record["checkpoint"])
    return base_row(model, ck.model_config)
