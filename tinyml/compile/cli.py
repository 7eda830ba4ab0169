"""`tinyml compile MODEL.tflite -o DIR [--name NAME]`: a full-int8 .tflite -> self-contained C sources."""

from __future__ import annotations

import argparse
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="full-int8 .tflite file (one int8 input, one int8 output)")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="DIR",
        help="output directory (created, or replaced if it is a previous compile output)",
    )
    p.add_argument(
        "--name",
        default="model",
        help="C prefix of every symbol, macro and file (default: model -> model.h, model_invoke)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="print the layers and the memory plan")


def run(args: argparse.Namespace) -> int:
    from tinyml.compile import compile_tflite

    t0 = time.perf_counter()
    c = compile_tflite(args.model, args.output, args.name)
    dt = time.perf_counter() - t0
    if args.verbose:
        print(layer_table(c))
        print()
        print(c.plan.table(c.model))
        print()
    print(
        f"compiled {args.model} -> {args.output}/ in {dt:.2f} s: {len(c.layers)} layers, {c.macs:,} MACs, "
        f"{c.const_bytes:,} B of weights/params"
    )
    print(
        f"  {args.name}.h: {args.name}_invoke(), arena {c.plan.arena_bytes:,} B "
        f"(lower bound {c.plan.lower_bound:,} B), kernels: {', '.join(c.kernels)}"
    )
    return 0


def layer_table(c) -> str:
    rows = [f"{'#':>3} {'op':<18} {'kernel':<24} {'MACs':>10}  shapes"]
    for la in c.layers:
        rows.append(f"{la.index:>3} {la.op:<18} {la.kernel or '-':<24} {la.macs:>10,}  {la.summary}")
    return "\n".join(rows)
