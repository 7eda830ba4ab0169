"""The training loop: MLPerf Tiny VWW recipe, per-epoch metrics and checkpoints, exact resume.

Recipe (MLPerf Tiny `train_vww.py`): Adam, lr 1e-3 / 5e-4 / 2.5e-4 for 20 / 10 / 20 epochs (phases scaled
to `epochs`), batch 32, categorical cross-entropy, L2 1e-4 on conv kernels (Keras ignores it on depthwise
kernels; so do we), on-the-fly augmentation, best validation accuracy kept.

Reproducibility: each epoch's shuffle and augmentation come from generators seeded by (seed, epoch), and
`last.pt` carries the optimizer state, so a resumed run computes exactly what an uninterrupted one does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tinyml.data import Splits
from tinyml.data.augment import augment_batch, to_float
from tinyml.errors import TinymlError, UsageError
from tinyml.models import ModelConfig, read_checkpoint_file, save_checkpoint
from tinyml.util import git_commit, write_json_atomic

# Fields that may differ between an interrupted run and its resumption.
RESUME_FREE = ("threads",)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 50
    batch_size: int = 32
    lr: tuple[float, ...] = (1e-3, 5e-4, 2.5e-4)
    lr_epochs: tuple[int, ...] = (20, 10, 20)  # phase lengths at 50 epochs; scaled to `epochs`
    l2: float = 1e-4  # Keras-style kernel regularizer: loss += l2 * sum(w^2) on (non-depthwise) conv kernels
    seed: int = 0
    augment: bool = True
    data: str = "synthetic"
    val_fraction: float = 0.1
    limit: int | None = None
    eval_batch_size: int = 256
    threads: int | None = None  # torch CPU threads (None: torch's default); same threads -> same result

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise UsageError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise UsageError(f"batch size must be at least 1, got {self.batch_size}")
        if len(self.lr) != len(self.lr_epochs) or not self.lr:
            raise TinymlError("lr and lr_epochs must have the same, non-zero length")

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based `epoch`: the MLPerf phases stretched or squeezed to `epochs`."""
        total = sum(self.lr_epochs)
        end = 0
        for i, (lr, n) in enumerate(zip(self.lr, self.lr_epochs)):
            end += n
            boundary = round(end * self.epochs / total)
            if epoch < (max(boundary, 1) if i == 0 else boundary):  # the first phase always gets an epoch
                return lr
        return self.lr[-1]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lr"], d["lr_epochs"] = list(self.lr), list(self.lr_epochs)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("lr", "lr_epochs"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


@dataclass
class TrainResult:
    out_dir: Path
    best_path: Path
    last_path: Path
    metrics_path: Path
    best_val_acc: float
    best_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0  # wall time of this call (a resumed run counts only its own part)

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> dict[str, float]:
    """Loss, accuracy and per-class recall of `model` (left in eval mode) on uint8 NHWC images."""
    model.eval()
    losses, preds = [], []
    with torch.no_grad():
        for i in range(0, len(y), batch_size):
            logits = model(to_float(x[i : i + batch_size]))
            yb = torch.as_tensor(y[i : i + batch_size])
            losses.append(F.cross_entropy(logits, yb, reduction="sum").item())
            preds.append(logits.argmax(1).numpy())
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    out = {"loss": sum(losses) / max(len(y), 1), "acc": float((pred == y).mean()) if len(y) else 0.0}
    for c in np.unique(y):
        out[f"recall_{int(c)}"] = float((pred[y == c] == c).mean())
    return out


def _generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(
        int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])
    )


def _param_groups(model: nn.Module, l2: float) -> list[dict[str, Any]]:
    """Coupled L2 (Keras regularizer semantics: grad += 2*l2*w) on trainable non-depthwise conv kernels."""
    decay, plain = [], []
    for m in model.modules():
        for name, p in m.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            is_kernel = isinstance(m, nn.Conv2d) and name == "weight" and m.groups == 1
            (decay if is_kernel else plain).append(p)
    return [{"params": decay, "weight_decay": 2 * l2}, {"params": plain, "weight_decay": 0.0}]


def _set_train_mode(model: nn.Module, frozen: Sequence[nn.Module]) -> None:
    model.train()
    for m in frozen:
        m.eval()  # frozen BatchNorm keeps its running statistics


def _check_resumable(state: dict, cfg: ModelConfig, tcfg: TrainConfig, path: Path) -> None:
    saved_m, saved_t = state["model_config"], dict(state.get("train") or {})
    if ModelConfig.from_dict(saved_m) != cfg:
        raise TinymlError(
            f"cannot resume {path}: it was trained with model config {saved_m}, not {cfg.to_dict()}"
        )
    now = tcfg.to_dict()
    diff = [k for k in now if k not in RESUME_FREE and saved_t.get(k) != now[k]]
    if diff:
        raise TinymlError(
            f"cannot resume {path}: training settings differ "
            f"({', '.join(f'{k}: {saved_t.get(k)} -> {now[k]}' for k in diff)})"
        )


def _epoch_line(m: dict[str, Any], epochs: int, best: bool) -> str:
    return (
        f"epoch {m['epoch']}/{epochs}  lr {m['lr']:.2g}  loss {m['train_loss']:.4f}  acc {m['train_acc']:.4f}"
        f"  val_loss {m['val_loss']:.4f}  val_acc {m['val_acc']:.4f}{'  (best)' if best else ''}"
        f"  {m['seconds']:.1f}s"
    )


def train_model(
    model: nn.Module,
    cfg: ModelConfig,
    splits: Splits,
    tcfg: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    frozen: Sequence[nn.Module] = (),
    progress: bool = True,
    extra_ckpt: dict | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train `model` in place; write RUN_DIR/metrics.json, best.pt (best val accuracy) and last.pt each epoch.

    `frozen` modules get requires_grad=False and stay in eval mode (frozen BN statistics) for the whole run.
    `resume` continues from RUN_DIR/last.pt (a missing last.pt starts afresh); without it an existing
    last.pt is refused so a finished run is never overwritten by accident. `on_epoch_end(metrics)` runs after
    each epoch's checkpoints are on disk (raising KeyboardInterrupt there is an interruption).
    """
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    best_path, last_path, metrics_path = out / "best.pt", out / "last.pt", out / "metrics.json"
    if tcfg.threads:
        torch.set_num_threads(tcfg.threads)
    for m in frozen:
        for p in m.parameters():
            p.requires_grad_(False)
    if not any(p.requires_grad for p in model.parameters()):
        raise TinymlError("nothing to train: every parameter is frozen")
    opt = torch.optim.Adam(_param_groups(model, tcfg.l2), lr=tcfg.lr_at(0))
    history: list[dict[str, Any]] = []
    best_acc, best_epoch, start = -1.0, 0, 0
    extra = dict(extra_ckpt or {})

    if last_path.exists() and not resume:
        raise TinymlError(
            f"{out} already holds a run ({last_path.name}); pass --resume to continue it "
            "or choose another --out"
        )
    if resume and last_path.exists():
        state = read_checkpoint_file(last_path)
        _check_resumable(state, cfg, tcfg, last_path)
        rs = state.get("resume_state")
        if not rs:
            raise TinymlError(f"{last_path} carries no training state to resume from")
        model.load_state_dict(state["state_dict"])
        opt.load_state_dict(rs["optimizer"])
        history, best_acc, best_epoch = list(rs["history"]), rs["best_val_acc"], rs["best_epoch"]
        start = int(state["epoch"])
        torch.set_rng_state(rs["torch_rng"])
        if progress:
            tqdm.write(f"resuming {out} after epoch {start}/{tcfg.epochs}")

    train_meta = tcfg.to_dict() | {"threads_used": torch.get_num_threads(), "data_summary": splits.summary()}
    t_call = time.time()
    n = len(splits.train_y)
    for epoch in range(start, tcfg.epochs):
        t0 = time.time()
        lr = tcfg.lr_at(epoch)
        for g in opt.param_groups:
            g["lr"] = lr
        _set_train_mode(model, frozen)
        order = torch.randperm(n, generator=_generator(tcfg.seed, epoch, 0)).numpy()
        aug_gen = _generator(tcfg.seed, epoch, 1)
        loss_sum, correct = 0.0, 0
        bar = tqdm(
            range(0, n, tcfg.batch_size),
            desc=f"epoch {epoch + 1}/{tcfg.epochs}",
            unit="batch",
            disable=not progress,
            leave=False,
        )
        for i in bar:
            idx = order[i : i + tcfg.batch_size]
            xb = to_float(splits.train_x[idx])
            if tcfg.augment:
                xb = augment_batch(xb, aug_gen)
            yb = torch.as_tensor(splits.train_y[idx])
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            bar.set_postfix(loss=f"{loss_sum / (i + len(idx)):.4f}", acc=f"{correct / (i + len(idx)):.4f}")
        val = evaluate(model, splits.val_x, splits.val_y, tcfg.eval_batch_size)
        m = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": loss_sum / n,
            "train_acc": correct / n,
            "val_loss": val["loss"],
            "val_acc": val["acc"],
            **{f"val_{k}": v for k, v in val.items() if k.startswith("recall_")},
            "seconds": round(time.time() - t0, 2),
        }
        history.append(m)
        is_best = m["val_acc"] > best_acc
        if is_best:
            best_acc, best_epoch = m["val_acc"], m["epoch"]
            save_checkpoint(
                best_path, model, cfg, train=train_meta, metrics=m, epoch=m["epoch"], seed=tcfg.seed, **extra
            )
        resume_state = {
            "optimizer": opt.state_dict(),
            "history": history,
            "best_val_acc": best_acc,
            "best_epoch": best_epoch,
            "torch_rng": torch.get_rng_state(),
        }
        save_checkpoint(
            last_path,
            model,
            cfg,
            train=train_meta,
            metrics=m,
            epoch=m["epoch"],
            seed=tcfg.seed,
            resume_state=resume_state,
            **extra,
        )
        _write_metrics(metrics_path, cfg, train_meta, history, best_epoch)
        if progress:
            tqdm.write(_epoch_line(m, tcfg.epochs, is_best))
        if on_epoch_end:
            on_epoch_end(m)
    if start >= tcfg.epochs and progress:
        tqdm.write(f"{out}: all {tcfg.epochs} epochs already done")
    model.eval()
    return TrainResult(
        out_dir=out,
        best_path=best_path,
        last_path=last_path,
        metrics_path=metrics_path,
        best_val_acc=best_acc,
        best_epoch=best_epoch,
        history=history,
        seconds=round(time.time() - t_call, 2),
    )


def _write_metrics(
    path: Path, cfg: ModelConfig, train_meta: dict, history: list[dict], best_epoch: int
) -> None:
    write_json_atomic(
        path,
        {
            "model_config": cfg.to_dict(),
            "train": train_meta,
            "commit": git_commit(),
            "best": history[best_epoch - 1] if best_epoch else None,
            "epochs": history,
        },
    )
