"""`tinyml sweep`: prune and train many cut points (and magnitude baselines), measure each on the board.

    tinyml sweep --base runs/demo/train/best.pt --cuts 1-13 --head dscnn32_16,dense --magnitude 0.5,0.7,0.9 \\
        --data synthetic --epochs 3 --out runs/demo/sweep --jobs 2 [--board cortex-m | --port /dev/ttyACM0]

Every point goes prune + train -> profile -> int8 quantize (TFLM) -> compile + build for the board -> run on
it over serial (`--host-only` stops after profile). Each point lives in SWEEP_DIR/points/<id>/ (checkpoints,
model.tflite, fw/, bench.json, record.json). A rerun skips finished points and resumes interrupted ones;
SWEEP_DIR/results.{csv,json,md} and acc_vs_*.png cover every finished point.
"""

from __future__ import annotations

import argparse
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tinyml.cliargs import add_model, add_out
from tinyml.data import SPEC_HELP
from tinyml.errors import TinymlError, UsageError
from tinyml.train.cli import add_device_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p, "the unpruned checkpoint (RUN_DIR/best.pt, or a RUN_DIR; --base works too)",
              "CKPT", aliases=("--base",), type=Path)
    add_out(p, "SWEEP_DIR", "where points and results go", required=True, type=Path)
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
    p.add_argument("--jobs", type=int, default=1,
                   help="points run in parallel processes, each with its own build dir and QEMU (default 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per point (default: all cores, split between --jobs)")
    add_device_arguments(p, workers_default="min(4, cores / jobs - 1)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    r = p.add_argument_group("where points run")
    r.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: this machine (--jobs processes); ray: one Ray task per point on a cluster "
                        "(default local)")
    r.add_argument("--ray-address", default=None, metavar="HOST:PORT",
                   help="the Ray cluster's head (its GCS port, 6379 by default), or auto: RAY_ADDRESS or the "
                        "cluster started on this machine with `ray start --head` (default auto)")
    r.add_argument("--max-retries", type=int, default=None, metavar="N",
                   help="with --executor ray: reruns of a point whose worker process or node died "
                        "(default 3); a point that fails by itself is not retried")
    d = p.add_argument_group("device stages (int8 quantize, build, run on the board)")
    d.add_argument("--host-only", action="store_true",
                   help="stop after training and profiling: no int8 model, firmware or board run")
    d.add_argument("--board", default=None,
                   help="board name from boards/ or a board .toml (default cortex-m, the emulated Cortex-M4)")
    d.add_argument("--port", default=None,
                   help="serial port of a real board: each point is flashed (`make flash`, pyocd) and "
                        "measured there, one at a time")
    d.add_argument("--baud", type=int, default=None, help="baud rate for --port (default: the board file's)")
    d.add_argument("--bench-runs", type=int, default=3, metavar="N",
                   help="timed runs per input on the board (default 3; emulated counts are exact)")
    d.add_argument("--bench-inputs", type=int, default=2, metavar="N",
                   help="validation images run on the board and checked against TFLM (default 2)")
    from tinyml.compile import patch

    patch.add_arguments(d)
    d.add_argument("--calibration-samples", type=int, default=200, metavar="N",
                   help="training images calibrating the int8 activation ranges (default 200)")


def check_executor(args: argparse.Namespace) -> None:
    """Flags of one executor given to the other are mistakes: say so instead of ignoring them."""
    if args.executor == "local":
        for flag, v in (("--ray-address", args.ray_address), ("--max-retries", args.max_retries)):
            if v is not None:
                raise UsageError(f"{flag} is for --executor ray")
        return
    if args.jobs != 1:
        raise UsageError("--jobs is for --executor local; on Ray each point is a task and the cluster's "
                          "CPUs set how many run at once (--threads sets the CPUs per point)")
    if args.max_retries is not None and args.max_retries < 0:
        raise UsageError(f"--max-retries must be at least 0, got {args.max_retries}")


def device_options(args: argparse.Namespace, jobs: int) -> tuple[tuple[str, object], ...]:
    """The device stages' settings, checked up front (board file, port vs emulated board, parallelism)."""
    from tinyml.compile.patch import parse_setting
    from tinyml.firmware.boards import DEFAULT_BOARD, load_board

    board = load_board(args.board or DEFAULT_BOARD)
    if args.port and board.emulated:
        raise UsageError(f"--port is for real boards; board {board.name} is emulated "
                          "(QEMU boots each point)")
    if not args.port and not board.emulated:
        raise UsageError(f"board {board.name} is a real board: pass --port (e.g. /dev/ttyACM0), "
                          "or --host-only")
    if args.port and jobs > 1:
        raise UsageError("--port measures on one board: use --jobs 1 (training can still use all cores)")
    for flag, n in (("--bench-runs", args.bench_runs), ("--bench-inputs", args.bench_inputs),
                    ("--calibration-samples", args.calibration_samples)):
        if n < 1:
            raise UsageError(f"{flag} must be at least 1, got {n}")
    opts = {"board": str(board.path) if args.board and args.board.endswith(".toml") else board.name,
            "board_name": board.name, "port": args.port, "baud": args.baud, "bench_runs": args.bench_runs,
            "bench_inputs": args.bench_inputs, "calibration_samples": args.calibration_samples,
            "patch": str(parse_setting(args.patch)), "patch_overhead": args.patch_overhead}
    return tuple(opts.items())


def check_same_board(out: Path, options: tuple[tuple[str, object], ...]) -> None:
    """Device columns of one sweep dir come from one board: refuse to mix boards (the stages would skip)."""
    import json

    try:
        old = dict(json.loads((out / "sweep.json").read_text())["context"].get("options") or ())
    except (OSError, ValueError, KeyError, TypeError):
        return
    new = dict(options)
    if old.get("board_name") and old["board_name"] != new.get("board_name"):
        raise TinymlError(f"{out} holds points measured on board {old['board_name']}, not "
                          f"{new.get('board_name')}; use another --out")


def run(args: argparse.Namespace) -> int:
    from tinyml.models import read_checkpoint_file
    from tinyml.prune.cli import data_settings, resolve_base, split_warning
    from tinyml.sweep.points import make_points, parse_cuts, parse_sparsities
    from tinyml.sweep.report import collect, terminal_table, write_results
    from tinyml.sweep.runner import DEVICE_STAGES, HOST_STAGES, SweepContext, check_sweep_dir
    from tinyml.train.cli import start_device
    from tinyml.train.device import default_workers

    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    check_executor(args)
    if args.executor == "ray":  # the nodes pick their device: the driver may have no GPU at all
        start_device("cpu", args.workers)
        print(f"device: {args.device} on the Ray cluster's nodes"
              + (" (each point asks for one GPU)" if args.device.startswith("cuda") else ""), flush=True)
    else:
        print(start_device(args.device, args.workers), flush=True)
    workers = args.workers
    if workers is None and args.jobs > 1:  # the cores are shared between the parallel points
        workers = default_workers(max(1, (os.cpu_count() or 1) // args.jobs))
    cuts = parse_cuts(args.cuts)
    heads = [h for h in args.head.split(",") if h.strip()]
    sparsities = parse_sparsities(args.magnitude) if args.magnitude else []
    points = make_points(cuts, heads, unfreeze=args.unfreeze, sparsities=sparsities)

    base = resolve_base(args.model).resolve()
    base_obj = read_checkpoint_file(base)
    base_cfg = base_obj["model_config"]
    if base_cfg.get("cut") is not None and max(cuts) > base_cfg["cut"]:
        raise TinymlError(f"base {base} is already cut after block {base_cfg['cut']}; "
                          f"--cuts goes to {max(cuts)}")
    base_train = base_obj.get("train") or {}
    s = data_settings(base_train, args.data, args.seed, args.val_fraction, args.limit)
    options = () if args.host_only else device_options(args, args.jobs)
    ctx = SweepContext(base=str(base), out=str(args.out.resolve()), epochs=args.epochs,
                       batch_size=args.batch_size, augment=args.augment,
                       cache_dir=str(args.cache_dir) if args.cache_dir else None, threads=args.threads,
                       workers=workers, device=args.device, progress=not args.quiet and args.jobs == 1,
                       stages=HOST_STAGES if args.host_only else DEVICE_STAGES, options=options, **s)
    ctx.train_config()  # validates epochs and batch size before any work
    if not args.host_only:
        check_same_board(args.out, options)
    check_sweep_dir(ctx)
    warn = split_warning(base_train, s)
    if warn:
        print(warn)
    n_depth = len(points) - 1 - len(sparsities)
    where = "host only" if args.host_only else f"measured on {ctx.option('board_name')}"
    how = (f"{args.jobs} job(s)" if args.executor == "local" else
           f"Ray cluster {args.ray_address or 'auto'}, {ctx.threads or 1} CPU(s) per point")
    print(f"sweep of {len(points)} points ({n_depth} depth, {len(sparsities)} magnitude, + base) on "
          f"{ctx.data}, {ctx.epochs} epochs each, {where}, {how} -> {args.out}")

    with ExitStack() as session:
        if args.executor == "ray":  # joined before the bar starts: a wrong address is one clean line
            from tinyml.sweep.ray_executor import connected

            session.enter_context(connected(args.ray_address or "auto"))
        records = run_with_bar(points, ctx, args)
    rows, failed = collect(ctx.out, ctx.settings(), ctx.stages)
    written = write_results(ctx.out, rows, failed, ctx.settings())
    print(terminal_table(rows))
    choices = [f"{r['id']} {r['patch_choice'].split(': ', 1)[-1]}" for r in rows if r.get("patch_choice")]
    if choices:
        print("patches: " + "; ".join(choices))
    no_fit = [r["id"] for r in rows if r.get("fits") is False]
    if no_fit:
        print(f"do not fit {ctx.option('board_name')}: {', '.join(no_fit)} (see results.md)")
    inexact = [r["id"] for r in rows if r.get("bit_exact") is False]
    if inexact:
        print(f"MISMATCH: device output differs from TFLM on {', '.join(inexact)} (see their bench.txt)")
    if any(r.get("method") == "magnitude" for r in rows):
        print("note: magnitude points count nonzero params; unstructured sparsity does not shrink a dense "
              "int8 flatbuffer or speed up dense kernels")
    print("wrote " + ", ".join(str(p) for p in written.values()))
    bad = [r for r in records if r.get("error")]
    if inexact:
        return 1
    if bad:
        print(f"{len(bad)} point(s) failed (see their record.json; rerun to retry): "
              + ", ".join(r["id"] for r in bad))
        return 1
    return 0


def run_with_bar(points: list, ctx: Any, args: argparse.Namespace) -> list[dict]:
    """Run the unfinished points on the chosen executor under one progress bar (a line per point event)."""
    from tqdm import tqdm

    from tinyml.sweep.runner import is_finished, read_record, record_path, run_points

    bar = tqdm(total=len(points), desc="sweep", unit="point", disable=args.quiet)

    def done(rec: dict) -> None:
        bar.write(f"{rec['id']}: {point_status(rec)}")
        bar.update(1)

    def status(point_id: str, text: str, counts: dict[str, int]) -> None:
        if text.startswith("on "):
            bar.write(f"{point_id}: {text}")
        bar.set_postfix_str(", ".join(f"{v} {k}" for k, v in counts.items() if v), refresh=True)

    finished = sum(is_finished(read_record(record_path(ctx, p)), ctx.stages) for p in points)
    if finished:
        bar.write(f"{finished} point(s) already finished in {args.out}: skipped")
        bar.update(finished)
    try:
        if args.executor == "ray":
            from tinyml.sweep.ray_executor import DEFAULT_MAX_RETRIES, run_points_ray

            retries = DEFAULT_MAX_RETRIES if args.max_retries is None else args.max_retries
            return run_points_ray(points, ctx, address=args.ray_address or "auto", max_retries=retries,
                                  on_done=done, on_status=status)
        return run_points(points, ctx, jobs=args.jobs, on_done=done)
    finally:
        bar.close()


def point_status(rec: dict) -> str:
    """One progress line per finished point: its accuracy, and on the device its latency or 'does not fit'."""
    if rec.get("error"):
        return f"error: {rec['error']}"
    parts = [f"val_acc {rec.get('val_acc', 0):.4f}"]
    if rec.get("int8_acc") is not None:
        parts.append(f"int8 {rec['int8_acc']:.4f}")
    if rec.get("fits") is False:
        parts.append("does not fit the board")
    elif rec.get("latency_ms") is not None:
        parts.append(f"{rec['latency_mean']:,.0f} {rec['latency_unit']} = {rec['latency_ms']:.2f} ms, "
                     f"flash {rec['flash_bytes']:,} B, RAM {rec['ram_bytes']:,} B, "
                     f"{'bit-exact' if rec.get('bit_exact') else 'NOT bit-exact'}")
    return ", ".join(parts)
