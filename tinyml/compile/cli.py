"""`tinyml compile MODEL.tflite -o DIR [--name NAME]`: a full-int8 .tflite -> self-contained C sources."""

from __future__ import annotations

import argparse
import time

from tinyml.cliargs import add_model, add_out
from tinyml.compile import patch


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
    patch.add_arguments(p)


def run(args: argparse.Namespace) -> int:
    from tinyml.compile import compile_tflite

    t0 = time.perf_counter()
    c = compile_tflite(args.model, args.output, args.name, patch_setting=args.patch,
                       overhead=args.patch_overhead)
    dt = time.perf_counter() - t0
    if args.verbose:
        print(layer_table(c))
        print()
        print(c.plan.table(c.model))
        print()
        print(live_table(c))
        print()
    print(
        f"compiled {args.model} -> {args.output}/ in {dt:.2f} s: {len(c.layers)} layers, {c.macs:,} MACs, "
        f"{c.const_bytes:,} B of weights/params"
    )
    print(
        f"  {args.name}.h: {args.name}_invoke(), arena {c.plan.arena_bytes:,} B "
        f"(lower bound {c.plan.lower_bound:,} B), kernels: {', '.join(c.kernels)}"
    )
    print(f"  {patch.report_line(patch.report(c))}")
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


def live_table(c) -> str:
    """Per layer: the arena bytes alive while it runs, without patches and with the chosen ones."""
    off = c.plan_off or c.plan
    rows = [f"{'#':>3} {'op':<18} {'live, no patches':>17} {'live, patched':>14}   (B alive while the layer "
            "runs, in-place pairs counted whole)"]
    for i, la in enumerate(c.layers):
        rows.append(f"{la.index:>3} {la.op:<18} {_live(off, i, c.layers):>17,} "
                    f"{_live_patched(c, i):>14,}")
    head = c.patch.describe() if c.patch else "patches: off"
    return head + f"; arena {off.arena_bytes:,} B without, {c.plan.arena_bytes:,} B with\n" + "\n".join(rows)


def _live(plan, pos: int, layers) -> int:
    """Bytes of the planned buffers alive at planned position pos, plus that layer's scratch."""
    return sum(b.size for b in plan.buffers if b.first <= pos <= b.last) + layers[pos].scratch_bytes


def _live_patched(c, i: int) -> int:
    if c.patch is None:
        return _live(c.plan, i, c.layers)
    p = c.patch
    if i >= p.stage:
        return _live(c.plan, c.plan_pos(i), c.layers[p.stage - 1:])
    t_in = c.model.tensors[c.model.inputs[0]].nbytes
    t_out = c.model.tensors[c.layers[p.stage - 1].output].nbytes
    return t_in + t_out + p.scratch_bytes  # the stage: input, its output, band buffers and kernel scratch


def layer_table(c) -> str:
    rows = [f"{'#':>3} {'op':<18} {'kernel':<24} {'MACs':>10}  shapes"]
    for la in c.layers:
        rows.append(f"{la.index:>3} {la.op:<18} {la.kernel or '-':<24} {la.macs:>10,}  {la.summary}")
    return "\n".join(rows)
