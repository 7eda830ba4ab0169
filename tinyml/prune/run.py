"""One pruning run: base checkpoint -> pruned model -> training/fine-tuning -> OUT_DIR with a summary.

`prune_and_train` is what `tinyml prune` and every sweep point call, so both produce the same files:
OUT_DIR/best.pt, last.pt, metrics.json (as `tinyml train`) and prune.json (sizes, accuracy, what was pruned).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tinyml.errors import TinymlError, UsageError

METHODS = ("depth", "magnitude")


@dataclass(frozen=True)
class PruneSpec:
    """What to do to the base model: cut + head (+ tail frozen or not), or global magnitude sparsity."""

    method: str
    cut: int | None = None
    head: str | None = None
    head_args: tuple[tuple[str, int], ...] = field(default=())
    unfreeze: bool = False
    sparsity: float | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise TinymlError(f"unknown pruning method {self.method!r} (known: {', '.join(METHODS)})")
        if self.method == "depth" and (self.cut is None or not self.head):
            raise TinymlError("depth pruning needs --cut and --head")
        if self.method == "magnitude":
            if self.sparsity is None:
                raise TinymlError("magnitude pruning needs a sparsity, e.g. --magnitude 0.7")
            if self.cut is not None:
                raise UsageError("--magnitude prunes the whole base model: do not combine it with --cut")

    def describe(self) -> str:
        if self.method == "magnitude":
            return f"global magnitude pruning to {self.sparsity:.0%} weight sparsity, fine-tuned"
        args = "".join(f" {k}={v}" for k, v in self.head_args)
        return (f"cut after block {self.cut} + head {self.head}{args}, "
                f"{'all layers trained (unfrozen)' if self.unfreeze else 'frozen backbone, head trained'}")


def base_row(model: Any, cfg: Any) -> dict[str, Any]:
    """Params (three conventions), MACs and activation peak of a model, plus its nonzero weight count."""
    from tinyml.models.profile import input_shape_of, profile_model
    from tinyml.prune.magnitude import sparsity_report

    _, t = profile_model(model, input_shape_of(cfg))
    keys = ("params_trainable", "params_bn_stats", "params_folded", "macs", "act_peak_bytes")
    row = {k: t[k] for k in keys}
    sp = sparsity_report(model, t["params_folded"])
    row["nonzero_params"] = sp["nonzero_params"]
    row["weight_sparsity"] = round(sp["weight_sparsity"], 6)
    return row


def check_input(splits: Any, cfg: Any, base_path: Path) -> None:
    """The data must have the base model's input size: depth pruning keeps the backbone's input."""
    h, w, c = splits.train_x.shape[1:]
    if (h, w, c) != (cfg.resolution, cfg.resolution, cfg.channels):
        raise TinymlError(f"data is {h}x{w}x{c} but base checkpoint {base_path} takes "
                          f"{cfg.resolution}x{cfg.resolution}x{cfg.channels}")


def prune_and_train(base_path: str | Path, spec: PruneSpec, splits: Any, tcfg: Any, out_dir: str | Path,
                    resume: bool = False, progress: bool = True, evaluate_base: bool = True,
                    on_epoch_end: Any = None) -> dict[str, Any]:
    """Prune the base checkpoint as `spec` says, train on `splits` with `tcfg`; return what prune.json holds.

    Depth: blocks 0..cut are copied from the base; with a frozen tail they and their BN statistics stay
    bit-identical (only the head trains). Magnitude: the base's weights are masked and fine-tuned with the
    mask held fixed. The head initialisation and training are seeded by `tcfg.seed`. `evaluate_base` adds the
    base model's accuracy on the same validation split to prune.json (a sweep measures it once instead).
    """
    import torch

    from tinyml.models import load_checkpoint
    from tinyml.prune.depth import depth_prune
    from tinyml.prune.magnitude import DENSE_NOTE, global_magnitude_masks, hold_masks, sparsity_report
    from tinyml.train import evaluate, train_model
    from tinyml.util import write_json_atomic

    base_path = Path(base_path)
    base_model, base_ck = load_checkpoint(base_path)
    base_cfg = base_ck.model_config
    check_input(splits, base_cfg, base_path)
    base = base_row(base_model, base_cfg)
    if evaluate_base:
        base["val_acc"] = evaluate(base_model, splits.val_x, splits.val_y, tcfg.eval_batch_size)["acc"]

    torch.manual_seed(tcfg.seed)
    info: dict[str, Any] = {"base": str(base_path.resolve()), "spec": asdict(spec),
                            "describe": spec.describe()}
    if spec.method == "depth":
        model, cfg = depth_prune(base_model, base_cfg, spec.cut, spec.head, spec.head_args)  # type: ignore[arg-type]
        frozen = () if spec.unfreeze else (model.features,)
    else:
        model, cfg = base_model, base_cfg
        masks = global_magnitude_masks(model, spec.sparsity)  # type: ignore[arg-type]
        hold_masks(model, masks)
        before = evaluate(model, splits.val_x, splits.val_y, tcfg.eval_batch_size)
        info["val_acc_before_finetune"] = before["acc"]
        info["zeroed_weights"] = sum(int((~m).sum()) for m in masks.values())
        frozen = ()

    res = train_model(model, cfg, splits, tcfg, out_dir, resume=resume, frozen=frozen, progress=progress,
                      extra_ckpt={"prune": info}, on_epoch_end=on_epoch_end)
    best_model, _ = load_checkpoint(res.best_path)
    row = base_row(best_model, cfg)
    if spec.method == "magnitude":
        zeros = sparsity_report(best_model)["zero_weights"]
        if zeros < info["zeroed_weights"]:  # the mask must have held through fine-tuning
            raise AssertionError(f"{res.best_path}: {zeros} zero weights, "
                                 f"expected >= {info['zeroed_weights']}")
    summary = {
        **info,
        "model_config": cfg.to_dict(),
        "checkpoint": str(Path(res.best_path).resolve()),
        **row,
        "val_acc": res.best_val_acc,
        "best_epoch": res.best_epoch,
        "epochs": tcfg.epochs,
        "train_s": round(sum(h.get("seconds", 0.0) for h in res.history), 2),
        "base_row": base,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if spec.method == "magnitude":
        summary["note"] = DENSE_NOTE
    write_json_atomic(Path(out_dir) / "prune.json", summary)
    return summary
