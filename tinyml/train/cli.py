"""`tinyml train`: train MobileNetV1 on a dataset spec and write RUN_DIR/{best,last}.pt and metrics.json.

tinyml train --data synthetic --epochs 3 --out runs/demo/train
tinyml train --data vww:/data/coco2014 --out runs/vww            # the full MLPerf schedule (50 epochs)
tinyml train --data folder:/data/vw_coco2014_96 --channels 1 --out runs/gray --resume
tinyml train --data folder:/data/vw_coco2014_96 --device cuda --workers 8 --out runs/gpu
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tinyml.cliargs import add_out
from tinyml.data import SPEC_HELP
from tinyml.errors import UsageError


def add_device_arguments(p: argparse.ArgumentParser, workers_default: str = "") -> None:
    """--device and --workers, shared by train, prune and sweep."""
    from tinyml.train.device import DEVICE_HELP, DEVICES

    p.add_argument("--device", default="auto", choices=DEVICES, help=DEVICE_HELP)
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="DataLoader worker processes reading and augmenting batches; the result does not "
                        f"depend on N (default {workers_default or 'min(4, cores - 1)'})")


def start_device(device: str, workers: int | None) -> str:
    """Check --device and --workers before any work; return the line saying which device runs."""
    from tinyml.train.device import resolve_device

    if workers is not None and workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {workers}")
    return resolve_device(device).describe()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="SPEC", help=SPEC_HELP)
    add_out(p, "RUN_DIR", "where checkpoints and metrics go", required=True, type=Path)
    p.add_argument("--alpha", type=float, default=0.25, help="width multiplier (default 0.25)")
    p.add_argument("--resolution", type=int, default=96, help="input height = width in pixels (default 96)")
    p.add_argument(
        "--channels", type=int, choices=(1, 3), default=3, help="3 = RGB, 1 = grayscale (default 3)"
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=50,
        help="epochs; the MLPerf 20/10/20 learning-rate phases are scaled to fit (default 50)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="(default 32)")
    p.add_argument(
        "--seed", type=int, default=0, help="seeds weights, split, shuffling, augmentation (default 0)"
    )
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR/last.pt where it stopped")
    p.add_argument("--no-augment", dest="augment", action="store_false", help="train without augmentation")
    p.add_argument(
        "--val-fraction", type=float, default=0.1, help="held-out share for validation (default 0.1)"
    )
    p.add_argument("--limit", type=int, default=None, help="use at most N images (balanced), for quick tries")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where decoded datasets are cached (default DATA/.tinyml-cache)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    add_device_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")


def run(args: argparse.Namespace) -> int:
    import torch

    from tinyml.data import load_splits
    from tinyml.models import ModelConfig, build_model
    from tinyml.models.profile import input_shape_of, profile_model
    from tinyml.train import TrainConfig, train_model

    print(start_device(args.device, args.workers), flush=True)
    cfg = ModelConfig(alpha=args.alpha, resolution=args.resolution, channels=args.channels)
    tcfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        augment=args.augment,
        data=args.data,
        val_fraction=args.val_fraction,
        limit=args.limit,
        threads=args.threads,
        workers=args.workers,
        device=args.device,
    )
    splits = load_splits(
        args.data,
        resolution=cfg.resolution,
        channels=cfg.channels,
        val_fraction=args.val_fraction,
        seed=args.seed,
        cache_dir=args.cache_dir,
        limit=args.limit,
        progress=not args.quiet,
    )
    torch.manual_seed(args.seed)
    model = build_model(cfg)
    _, totals = profile_model(model, input_shape_of(cfg))
    if not args.quiet:
        print(splits.summary())
        print(
            f"MobileNetV1 alpha {cfg.alpha} {cfg.resolution}x{cfg.resolution}x{cfg.channels}: "
            f"{totals['params_trainable']:,} params, {totals['macs']:,} MACs; {tcfg.epochs} epochs, "
            f"batch {tcfg.batch_size}, seed {tcfg.seed}"
        )
    res = train_model(model, cfg, splits, tcfg, args.out, resume=args.resume, progress=not args.quiet)
    best = res.history[res.best_epoch - 1] if res.history and res.best_epoch else {}
    print(
        f"best val_acc {res.best_val_acc:.4f} at epoch {res.best_epoch}/{tcfg.epochs}"
        + (f" (val_loss {best['val_loss']:.4f})" if best else "")
        + f"; {res.seconds:.1f}s"
    )
    print(f"wrote {res.best_path}, {res.last_path}, {res.metrics_path}")
    return 0
