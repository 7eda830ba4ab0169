"""`tinyml prune`: depth-prune a checkpoint with an auxiliary head (or magnitude-prune it), then train it.

    tinyml prune --base runs/demo/train/best.pt --cut 5 --head dscnn32_16 --epochs 3 --out runs/demo/cut5
    tinyml prune --base runs/vww/best.pt --cut 7 --head dense:fc1=128 --unfreeze --out runs/vww-cut7
    tinyml prune --base runs/vww/best.pt --magnitude 0.7 --epochs 10 --out runs/vww-mag70

Data, validation split and seed default to the base checkpoint's, so the pruned model is validated on images
the base never trained on. OUT_DIR gets best.pt/last.pt/metrics.json like `tinyml train`, plus prune.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tinyml.cliargs import add_model, add_out
from tinyml.data import SPEC_HELP
from tinyml.errors import TinymlError, UsageError
from tinyml.train.cli import add_device_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p, "checkpoint to prune (RUN_DIR/best.pt; a RUN_DIR means its best.pt; --base works too)",
              "CKPT", aliases=("--base",), type=Path)
    add_out(p, "OUT_DIR", "where the pruned run goes", required=True, type=Path)
    how = p.add_argument_group("what to prune (depth: --cut/--head; or --magnitude)")
    how.add_argument("--cut", type=int, default=None, metavar="K",
                     help="keep blocks 0..K (0 = first conv, 1..13 = depthwise-separable blocks)")
    how.add_argument("--head", default="dscnn32_16", metavar="HEAD",
                     help="auxiliary head: dscnn32_16 (default) or dense; widths as NAME:key=INT, e.g. "
                          "dscnn32_16:pw1=64:pw2=32")
    how.add_argument("--unfreeze", action="store_true",
                     help="train backbone and head (default: frozen backbone and BN statistics, head only)")
    how.add_argument("--magnitude", type=float, default=None, metavar="SPARSITY",
                     help="instead: zero this fraction of all conv/dense weights (smallest first), "
                          "then fine-tune")
    p.add_argument("--data", default=None, metavar="SPEC", help=f"{SPEC_HELP} (default: the base's)")
    p.add_argument("--epochs", type=int, default=50,
                   help="epochs; the MLPerf 20/10/20 learning-rate phases are scaled to fit (default 50)")
    p.add_argument("--batch-size", type=int, default=32, help="(default 32)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed for split, head init, shuffling (default: the base's)")
    p.add_argument("--val-fraction", type=float, default=None, help="validation share (default: the base's)")
    p.add_argument("--limit", type=int, default=None, help="use at most N images (default: the base's)")
    p.add_argument("--no-augment", dest="augment", action="store_false", help="train without augmentation")
    p.add_argument("--cache-dir", type=Path, default=None, help="where decoded datasets are cached")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    add_device_arguments(p)
    p.add_argument("--resume", action="store_true", help="continue OUT_DIR/last.pt where it stopped")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")


def resolve_base(path: Path) -> Path:
    """A checkpoint path, or a run directory holding best.pt."""
    if path.is_dir():
        if not (path / "best.pt").is_file():
            raise TinymlError(f"--base {path} is a directory without best.pt")
        return path / "best.pt"
    return path


def data_settings(base_train: dict[str, Any], data: str | None, seed: int | None, val_fraction: float | None,
                  limit: int | None) -> dict[str, Any]:
    """Data, split and seed: the user's where given, else the base run's (the same validation images)."""
    out = {
        "data": data or base_train.get("data"),
        "seed": seed if seed is not None else int(base_train.get("seed", 0)),
        "val_fraction": (val_fraction if val_fraction is not None
                         else float(base_train.get("val_fraction", 0.1))),
        "limit": limit if limit is not None else base_train.get("limit"),
    }
    if not out["data"]:
        raise TinymlError("the base checkpoint does not record its data: pass --data")
    return out


def split_warning(base_train: dict[str, Any], s: dict[str, Any]) -> str | None:
    """Warn when the validation split differs from the base's: it may hold images the backbone trained on."""
    if s["data"] != base_train.get("data"):
        return None
    diff = [k for k in ("seed", "val_fraction", "limit") if base_train.get(k) != s[k]]
    if not diff:
        return None
    return (f"warning: {', '.join(diff)} differ from the base run's, so validation images may include images "
            "the base model trained on (accuracy would look better than it is)")


def run(args: argparse.Namespace) -> int:
    from tinyml.data import load_splits
    from tinyml.models import read_checkpoint_file
    from tinyml.models.heads import parse_head_spec
    from tinyml.prune.magnitude import DENSE_NOTE
    from tinyml.prune.run import PruneSpec, prune_and_train
    from tinyml.report import format_table
    from tinyml.train import TrainConfig
    from tinyml.train.cli import start_device

    print(start_device(args.device, args.workers), flush=True)
    if args.magnitude is not None:
        if args.cut is not None:
            raise UsageError("--magnitude prunes the whole base model: do not combine it with --cut")
        spec = PruneSpec("magnitude", sparsity=args.magnitude)
    elif args.cut is None:
        raise UsageError("say what to prune: --cut K (depth pruning) or --magnitude SPARSITY")
    else:
        name, head_args = parse_head_spec(args.head)
        spec = PruneSpec("depth", cut=args.cut, head=name, head_args=head_args, unfreeze=args.unfreeze)
    if spec.sparsity is not None and not 0.0 <= spec.sparsity < 1.0:
        raise UsageError(f"--magnitude must be in [0, 1), got {spec.sparsity}")

    base = resolve_base(args.model)
    base_obj = read_checkpoint_file(base)
    base_train = base_obj.get("train") or {}
    s = data_settings(base_train, args.data, args.seed, args.val_fraction, args.limit)
    cfg = base_obj["model_config"]
    if spec.method == "depth":
        from tinyml.models import ModelConfig
        from tinyml.prune.depth import depth_config
        # fail on a bad cut or head before loading any data
        depth_config(ModelConfig.from_dict(cfg), spec.cut, spec.head, spec.head_args)
    tcfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=s["seed"], augment=args.augment,
                       data=s["data"], val_fraction=s["val_fraction"], limit=s["limit"], threads=args.threads,
                       workers=args.workers, device=args.device)
    splits = load_splits(s["data"], resolution=cfg["resolution"], channels=cfg["channels"],
                         val_fraction=s["val_fraction"], seed=s["seed"], cache_dir=args.cache_dir,
                         limit=s["limit"], progress=not args.quiet)
    warn = split_warning(base_train, s)
    if not args.quiet:
        print(splits.summary())
        print(f"{base}: {spec.describe()}; {tcfg.epochs} epochs, batch {tcfg.batch_size}, seed {tcfg.seed}")
    if warn:
        print(warn)
    summary = prune_and_train(base, spec, splits, tcfg, args.out, resume=args.resume, progress=not args.quiet)
    print(format_table(comparison_rows(summary)))
    if spec.method == "magnitude":
        print(f"note: {DENSE_NOTE}; nonzero params = what a sparse format could at best store")
    print(f"wrote {args.out / 'best.pt'}, {args.out / 'last.pt'}, {args.out / 'metrics.json'}, "
          f"{args.out / 'prune.json'}")
    return 0


def comparison_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Base vs pruned, side by side, with the change in percent."""
    base = summary["base_row"]
    keys = [("params (+BN stats)", "params_bn_stats"), ("params (BN folded)", "params_folded"),
            ("nonzero params (folded)", "nonzero_params"), ("params (trainable)", "params_trainable"),
            ("MACs", "macs"), ("activation peak (B)", "act_peak_bytes"), ("val accuracy", "val_acc")]
    rows = []
    for label, k in keys:
        b, p = base.get(k), summary.get(k)
        if k == "val_acc":
            change = f"{(p - b) * 100:+.2f} pts" if b is not None and p is not None else "-"
        else:
            change = f"{(p / b - 1) * 100:+.1f}%" if b else "-"
        rows.append({"": label, "base": b, "pruned": p, "change": change})
    return rows
