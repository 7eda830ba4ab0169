"""`tinyml compile MODEL.tflite -o DIR [--name NAME]`: a full-int8 .tflite -> self-contained C sources."""

from __future__ import annotations

import argparse
import time

from tinyml.cliargs import add_model, add_out


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p, "full-int8 .tflite file (one int8 input, one int8 output)", "MODEL.tflite")
    add_out(p, "DIR", "output directory (created, or replaced if it is a previous compile output)",
            dest="output", required=True, aliases=("--output",))
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
    if args.verbose:
        print(ram_headline(c))
    return 0


def ram_headline(c) -> str:
    """What the arena means for a board: the model's whole share of the linked RAM."""
    t_in, t_out = (c.model.tensors[c.model.inputs[0]], c.model.tensors[c.model.outputs[0]])
    return (
        f"RAM: the model's share is the {c.plan.arena_bytes:,} B arena (every activation, the "
        f"{t_in.nbytes:,} B input and {t_out.nbytes:,} B output included); the linked firmware's ram_bytes "
        "adds the derived stack and the runtime's ~1.1 KB (`tinyml export --build` and `tinyml bench` "
        "report it)"
    )


def layer_table(c) -> str:
    rows = [f"{'#':>3} {'op':<18} {'kernel':<24} {'MACs':>10}  shapes"]
    for la in c.layers:
        rows.append(f"{la.index:>3} {la.op:<18} {la.kernel or '-':<24} {la.macs:>10,}  {la.summary}")
    return "\n".join(rows)
