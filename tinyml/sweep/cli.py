"""`tinyml sweep`: prune and train many cut points (and magnitude baselines), chart accuracy against cost.

    tinyml sweep --base runs/demo/train/best.pt --cuts 1-13 --head dscnn32_16,dense --magnitude 0.5,0.7,0.9 \\
        --data synthetic --epochs 3 --out runs/demo/sweep --jobs 2

Each point lives in SWEEP_DIR/points/<id>/ (checkpoints, metrics, record.json). A rerun skips finished points
and resumes interrupted ones; SWEEP_DIR/results.{csv,json,md} and acc_vs_*.png cover every finished point.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tinyml.data import SPEC_HELP


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", required=True, type=Path, metavar="CKPT",
                   help="the unpruned checkpoint (RUN_DIR/best.pt; a RUN_DIR means its best.pt)")
    p.add_argument("--out", required=True, type=Path, metavar="SWEEP_DIR", help="where points and results go")
    p.add_argument("--cuts", default="1-13", help="cut points: a range 1-13 or a list 3,5,7 (default 1-13)")
    p.add_argument("--head", default="dscnn32_16", metavar="HEADS",
                   help="comma-separated heads, e.g. dscnn32_16,dense (widths as NAME:key=INT; "
                        "default dscnn32_16)")
    p.add_argument("--unfreeze", action="store_true", help="train backbone and head (default: head only)")
    p.add_argument("--magnitude", default=None, metavar="SPARSITIES",
                   help="also magnitude-prune the base to these sparsities, e.g. 0.5,0.7,0.9")
    p.add_argument("--data", default=None, metavar="SPEC", help=f"{SPEC_HELP} (default: the base's)")
    p.add_argument("--epochs", type=int, default=50,
                   help="epochs per point (default 50, the MLPerf schedule)")
    p.add_argument("--batch-size", type=int, default=32, help="(default 32)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: the base's)")
    p.add_argument("--val-fraction", type=float, default=None, help="validation share (default: the base's)")
    p.add_argument("--limit", type=int, default=None, help="use at most N images (default: the base's)")
    p.add_argument("--no-augment", dest="augment", action="store_false", help="train without augmentation")
    p.add_argument("--cache-dir", type=Path, default=None, help="where decoded datasets are cached")
    p.add_argument("--jobs", type=int, default=1, help="points trained in parallel processes (default 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per point (default: all cores, split between --jobs)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from tinyml.errors import TinymlError
    from tinyml.models import read_checkpoint_file
    from tinyml.prune.cli import data_settings, resolve_base, split_warning
    from tinyml.sweep.points import make_points, parse_cuts, parse_sparsities
    from tinyml.sweep.report import collect, terminal_table, write_results
    from tinyml.sweep.runner import (
        HOST_STAGES,
        SweepContext,
        check_sweep_dir,
        is_finished,
        read_record,
        record_path,
        run_points,
    )

    if args.jobs < 1:
        raise TinymlError(f"--jobs must be at least 1, got {args.jobs}")
    cuts = parse_cuts(args.cuts)
    heads = [h for h in args.head.split(",") if h.strip()]
    sparsities = parse_sparsities(args.magnitude) if args.magnitude else []
    points = make_points(cuts, heads, unfreeze=args.unfreeze, sparsities=sparsities)

    base = resolve_base(args.base).resolve()
    base_obj = read_checkpoint_file(base)
    base_cfg = base_obj["model_config"]
    if base_cfg.get("cut") is not None and max(cuts) > base_cfg["cut"]:
        raise TinymlError(f"base {base} is already cut after block {base_cfg['cut']}; "
                          f"--cuts goes to {max(cuts)}")
    base_train = base_obj.get("train") or {}
    s = data_settings(base_train, args.data, args.seed, args.val_fraction, args.limit)
    ctx = SweepContext(base=str(base), out=str(args.out.resolve()), epochs=args.epochs,
                       batch_size=args.batch_size, augment=args.augment,
                       cache_dir=str(args.cache_dir) if args.cache_dir else None, threads=args.threads,
                       progress=not args.quiet and args.jobs == 1, stages=HOST_STAGES, **s)
    ctx.train_config()  # validates epochs and batch size before any work
    check_sweep_dir(ctx)
    warn = split_warning(base_train, s)
    if warn:
        print(warn)
    n_depth = len(points) - 1 - len(sparsities)
    print(f"sweep of {len(points)} points ({n_depth} depth, {len(sparsities)} magnitude, + base) on "
          f"{ctx.data}, {ctx.epochs} epochs each, {args.jobs} job(s) -> {args.out}")

    bar = tqdm(total=len(points), desc="sweep", unit="point", disable=args.quiet)

    def done(rec: dict) -> None:
        status = f"error: {rec['error']}" if rec.get("error") else f"val_acc {rec.get('val_acc', 0):.4f}"
        bar.write(f"{rec['id']}: {status}")
        bar.update(1)

    finished = sum(is_finished(read_record(record_path(ctx, p)), ctx.stages) for p in points)
    if finished:
        bar.write(f"{finished} point(s) already finished in {args.out}: skipped")
        bar.update(finished)
    records = run_points(points, ctx, jobs=args.jobs, on_done=done)
    bar.close()
    rows, failed = collect(ctx.out, ctx.settings(), ctx.stages)
    written = write_results(ctx.out, rows, failed, ctx.settings())
    print(terminal_table(rows))
    if any(r.get("method") == "magnitude" for r in rows):
        print("note: magnitude points count nonzero params; unstructured sparsity does not shrink a dense "
              "int8 flatbuffer or speed up dense kernels")
    print("wrote " + ", ".join(str(p) for p in written.values()))
    bad = [r for r in records if r.get("error")]
    if bad:
        print(f"{len(bad)} point(s) failed (see their record.json; rerun to retry): "
              + ", ".join(r["id"] for r in bad))
        return 1
    return 0
