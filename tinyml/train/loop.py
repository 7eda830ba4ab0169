"""The training loop: MLPerf Tiny VWW recipe, per-epoch metrics and checkpoints, exact resume.

Recipe (MLPerf Tiny `train_vww.py`): Adam, lr 1e-3 / 5e-4 / 2.5e-4 for 20 / 10 / 20 epochs (phases scaled
to `epochs`), batch 32, categorical cross-entropy, L2 1e-4 on conv kernels (Keras ignores it on depthwise
kernels; so do we), on-the-fly augmentation, best validation accuracy kept.

Reproducibility: each epoch's shuffle and each batch's augmentation come from generators seeded by (seed,
epoch[, batch]) (tinyml.train.batches), and `last.pt` carries the optimizer state, so a resumed run computes
exactly what an uninterrupted one does, with any number of DataLoader workers. On the CPU that is bit for bit;
on CUDA, mixed precision and cuDNN's kernel choice make results vary slightly between runs.
"""

from __future__ import annotations

import contextlib
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
from tinyml.data.augment import to_float
from tinyml.errors import TinymlError, UsageError
from tinyml.models import ModelConfig, read_checkpoint_file, save_checkpoint
from tinyml.util import git_commit, write_json_atomic

# Fields that may differ between an interrupted run and its resumption (they do not change what is computed,
# or, for the device, the user moved the run on purpose).
RESUME_FREE = ("threads", "workers", "device")


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
    workers: int | None = None  # DataLoader processes (None: default_workers()); any count, same result
    device: str = "auto"  # auto | cpu | cuda | mps (tinyml.train.device)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise UsageError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise UsageError(f"batch size must be at least 1, got {self.batch_size}")
        if len(self.lr) != len(self.lr_epochs) or not self.lr:
            raise TinymlError("lr and lr_epochs must have the same, non-zero length")
        if self.workers is not None and self.workers < 0:
            raise UsageError(f"workers must be 0 or more, got {self.workers}")

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


def evaluate(model: nn.Module, x: Any, y: np.ndarray, batch_size: int = 256) -> dict[str, float]:
    """Loss, accuracy and per-class recall of `model` (left in eval mode, on its device) on uint8 NHWC."""
    model.eval()
    dev = next(model.parameters()).device
    losses, preds = [], []
    with torch.no_grad():
        for i in range(0, len(y), batch_size):
            logits = model(to_float(x[i : i + batch_size]).to(dev)).float().cpu()
            yb = torch.as_tensor(y[i : i + batch_size])
            losses.append(F.cross_entropy(logits, yb, reduction="sum").item())
            preds.append(logits.argmax(1).numpy())
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    out = {"loss": sum(losses) / max(len(y), 1), "acc": float((pred == y).mean()) if len(y) else 0.0}
    for c in np.unique(y):
        out[f"recall_{int(c)}"] = float((pred[y == c] == c).mean())
    return out


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
        f"  {m['seconds']:.1f}s  {m['images_per_s']:.0f} img/s"
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

    from tinyml.train.batches import EpochBatches, make_loader
    from tinyml.train.device import default_workers, resolve_device

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    best_path, last_path, metrics_path = out / "best.pt", out / "last.pt", out / "metrics.json"
    dev = resolve_device(tcfg.device)
    if tcfg.threads:
        torch.set_num_threads(tcfg.threads)
    for m in frozen:
        for p in m.parameters():
            p.requires_grad_(False)
    if not any(p.requires_grad for p in model.parameters()):
        raise TinymlError("nothing to train: every parameter is frozen")
    model.to(dev.torch)
    opt = torch.optim.Adam(_param_groups(model, tcfg.l2), lr=tcfg.lr_at(0))
    scaler = torch.amp.GradScaler("cuda") if dev.grad_scaler else None
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
        opt.load_state_dict(rs["optimizer"])  # moves the moments to the parameters' device
        if scaler is not None and rs.get("grad_scaler"):
            scaler.load_state_dict(rs["grad_scaler"])
        history, best_acc, best_epoch = list(rs["history"]), rs["best_val_acc"], rs["best_epoch"]
        start = int(state["epoch"])
        torch.set_rng_state(rs["torch_rng"])
        if progress:
            tqdm.write(f"resuming {out} after epoch {start}/{tcfg.epochs}")

    workers = tcfg.workers if tcfg.workers is not None else default_workers()
    train_meta = tcfg.to_dict() | {"threads_used": torch.get_num_threads(), "workers_used": workers,
                                   "device_used": dev.name, "amp": dev.amp_dtype,
                                   "data_summary": splits.summary()}
    t_call = time.time()
    n = len(splits.train_y)
    batches = EpochBatches(splits.train_x, splits.train_y, tcfg.batch_size, tcfg.seed, tcfg.augment)
    loader, keys = make_loader(batches, workers, dev.pin_memory) if start < tcfg.epochs else (None, None)
    step = _Step(model, opt, dev, scaler)
    for epoch in range(start, tcfg.epochs):
        t0 = time.time()
        lr = tcfg.lr_at(epoch)
        for g in opt.param_groups:
            g["lr"] = lr
        _set_train_mode(model, frozen)
        keys.epoch = epoch
        bar = tqdm(loader, total=len(batches), desc=f"epoch {epoch + 1}/{tcfg.epochs}", unit="batch",
                   disable=not progress, leave=False)
        loss_sum, correct, seen = _run_epoch(bar, step, t0)
        t_train = time.time() - t0
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
            "images_per_s": round(seen / max(t_train, 1e-9), 1),  # training images (incl. loading) per second
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
            **({"grad_scaler": scaler.state_dict()} if scaler is not None else {}),
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
    del loader  # stops the persistent workers
    model.to("cpu")  # callers profile, prune and export on the CPU
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


class _Step:
    """One optimisation step on the device: float32 on CPU/MPS; on CUDA autocast (+ grad scaling for fp16)."""

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer, dev: Any, scaler: Any) -> None:
        self.model, self.opt, self.dev, self.scaler = model, opt, dev, scaler
        self.autocast = (
            (lambda: torch.autocast("cuda", dtype=getattr(torch, dev.amp_dtype)))
            if dev.amp_dtype else contextlib.nullcontext
        )

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed loss, correct count) of the batch, as device tensors (no host sync per step)."""
        xb = xb.to(self.dev.torch, non_blocking=self.dev.pin_memory)
        yb = yb.to(self.dev.torch, non_blocking=self.dev.pin_memory)
        with self.autocast():
            logits = self.model(xb)
        loss = F.cross_entropy(logits.float(), yb)
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()
        return loss.detach() * len(yb), (logits.argmax(1) == yb).sum()


def _run_epoch(bar: Any, step: _Step, t0: float) -> tuple[float, int, int]:
    """Train over the epoch's batches; the bar shows running loss, accuracy and images/s (read from the device
    every 10 batches, so a GPU is not stalled by a host sync each step)."""
    loss_t = torch.zeros((), dtype=torch.float64, device=step.dev.torch)
    correct_t = torch.zeros((), dtype=torch.int64, device=step.dev.torch)
    seen = 0
    for i, (xb, yb) in enumerate(bar):
        loss, right = step(xb, yb)
        loss_t += loss
        correct_t += right
        seen += len(yb)
        if i % 10 == 0:
            bar.set_postfix(loss=f"{loss_t.item() / seen:.4f}", acc=f"{correct_t.item() / seen:.4f}",
                            img_s=f"{seen / max(time.time() - t0, 1e-9):.0f}", refresh=False)
    return loss_t.item(), int(correct_t.item()), seen


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
