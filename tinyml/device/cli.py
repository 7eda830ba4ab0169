"""`tinyml bench`: latency of a model on a board over serial, every output checked against TFLM.

tinyml bench --model person_detect.tflite                        # emulated Cortex-M4 (builds, boots QEMU)
tinyml bench --model m.tflite --board mps2-an500 --per-layer --json bench.json
tinyml bench --model m.tflite --port /dev/ttyACM0 --baud 115200  # a real board already flashed
tinyml bench --model m.tflite --find-layer       # on a mismatch: the first layer that differs on the device
"""

from __future__ import annotations

import argparse
import sys

from tinyml.cliargs import add_model, add_out


def add_arguments(p: argparse.ArgumentParser) -> None:
    from tinyml.compile import patch

    patch.add_arguments(p)
    from tinyml.device.bench import DEFAULT_RANDOM_INPUTS, DEFAULT_RUNS, DEFAULT_WARMUP
    from tinyml.firmware.boards import DEFAULT_BOARD

    add_model(p, "full-int8 .tflite", "MODEL.tflite")
    p.add_argument(
        "--board",
        default=DEFAULT_BOARD,
        help=f"board name from boards/ or a board .toml (default {DEFAULT_BOARD}); emulated boards "
        f"are built and booted in QEMU",
    )
    p.add_argument(
        "--port",
        help="serial port of a real board already running firmware for MODEL "
        "(/dev/ttyACM0, COM3, or socket://HOST:PORT for `make flash` under QEMU)",
    )
    p.add_argument("--baud", type=int, help="baud rate for --port (default: the board file's, 115200)")
    p.add_argument(
        "--runs", type=int, default=DEFAULT_RUNS, help=f"timed runs per input (default {DEFAULT_RUNS})"
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=DEFAULT_WARMUP,
        help=f"untimed runs per input first (default {DEFAULT_WARMUP})",
    )
    p.add_argument(
        "--input",
        nargs="+",
        metavar="FILE",
        help="image files (preprocessed as MODEL.json beside the model says, else as its input tensor "
        "implies), int8 .npy tensors or raw .bin bytes, fed as-is (default: random inputs)",
    )
    p.add_argument(
        "--random",
        type=int,
        default=DEFAULT_RANDOM_INPUTS,
        metavar="N",
        help=f"number of random inputs when no --input is given (default {DEFAULT_RANDOM_INPUTS})",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument(
        "--per-layer",
        action="store_true",
        help="also profile every layer (builds the firmware with per-layer marks)",
    )
    p.add_argument(
        "--find-layer",
        action="store_true",
        help="on a mismatch with TFLM: rebuild with layer dumps, run the first mismatching input again and "
        "name the first layer whose output differs (op, tensor, differing bytes, largest difference); "
        "with --port the board must run firmware from `tinyml export --dump-layers`",
    )
    p.add_argument(
        "--cycles",
        action="store_true",
        help="also estimate core cycles (emulated boards): exact per-instruction counts from a QEMU plugin "
        "x the core's TRM cost rules; adds est. cycles per run, per function and (with --per-layer) per "
        "layer",
    )
    p.add_argument(
        "--flash-wait-states",
        type=int,
        metavar="N",
        help="with --cycles: also give an upper bound charging N wait states on every data read from flash "
        "(default: the board file's memory.flash_wait_states, if any)",
    )
    p.add_argument(
        "--cycles-listing",
        metavar="PATH",
        help="with --cycles: write every executed address of the model (mean per run) with its count, taken "
        "branches, flash reads, est. cycles and disassembly, by function (for kernel tuning)",
    )
    add_out(p, "PATH.json", "write the full result as JSON (schema: docs/guide.md, bench)", dest="json",
            aliases=("--json",))
    p.add_argument(
        "--build-dir",
        metavar="DIR",
        help="where the firmware project is exported and built (default build/tinyml-bench/...)",
    )
    p.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for one device answer (default 60)"
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tinyml.device.bench import bench_model
    from tinyml.device.inputs import load_inputs
    from tinyml.util import write_json_atomic, write_text_atomic

    if args.cycles_listing and not args.cycles:
        print("tinyml bench: error: --cycles-listing needs --cycles", file=sys.stderr)
        return 2
    model = Path(args.model)
    inputs = load_inputs(args.input, model) if args.input else None
    r = bench_model(
        model,
        args.board,
        runs=args.runs,
        warmup=args.warmup,
        inputs=inputs,
        random=args.random,
        seed=args.seed,
        per_layer=args.per_layer,
        build_dir=args.build_dir,
        port=args.port,
        baud=args.baud,
        timeout=args.timeout,
        progress=sys.stderr.isatty(),
        cycles=args.cycles,
        flash_wait_states=args.flash_wait_states,
        patch=args.patch,
        patch_overhead=args.patch_overhead,
    )
    print(r.summary())
    doc = r.to_json()
    print(prediction_table(model, r, inputs, doc))
    if args.cycles_listing and r.cycles is not None:
        write_text_atomic(args.cycles_listing, r.cycles.listing)
        print(f"wrote {args.cycles_listing}")
    found = _find_layer(args, model, r, inputs) if args.find_layer and not r.bit_exact else None
    if found is not None:
        doc["find_layer"] = found.to_json()
    if args.json:
        write_json_atomic(args.json, doc)
        print(f"wrote {args.json}")
    if not r.bit_exact:
        print("\n" + "!" * 78, file=sys.stderr)
        bad = sum(not x.bit_exact for x in r.inputs)
        print(f"MISMATCH: the device's output differs from TFLM's on {bad} of {len(r.inputs)} inputs:",
              file=sys.stderr)
        for x in r.inputs:
            if not x.bit_exact:
                print("  " + x.mismatch(), file=sys.stderr)
        if found is not None:
            print(found.summary(), file=sys.stderr)
        else:
            print("to find the first layer that differs on the device: rerun with --find-layer",
                  file=sys.stderr)
        print("!" * 78, file=sys.stderr)
        return 1
    if args.find_layer:
        print("find-layer: every output is bit-exact with TFLM; no layer to look for")
    return 0


def _find_layer(args: argparse.Namespace, model, r, inputs):
    """The first mismatching input again, on firmware with layer dumps (rebuilt beside the bench's)."""
    from pathlib import Path

    from tinyml.device.find_layer import find_layer
    from tinyml.device.inputs import random_inputs

    cases = inputs or random_inputs(args.random, int(r.device["input_bytes"]), args.seed)
    i = next(k for k, x in enumerate(r.inputs) if not x.bit_exact)
    how = "reading layer dumps from the board" if args.port else "rebuilding with layer dumps"
    print(f"find-layer: {how}, running input {r.inputs[i].name} again", file=sys.stderr)
    build_dir = Path(str(Path(args.build_dir)) + "-dump") if args.build_dir else None
    return find_layer(model, args.board, cases[i], build_dir=build_dir, port=args.port, baud=args.baud,
                      timeout=args.timeout, patch=args.patch, patch_overhead=args.patch_overhead)


def prediction_table(model, result, inputs, doc: dict) -> str:
    """What the model saw and said, per input (also added to the JSON's inputs[]): the device's output,
    which TFLM's equals when bit-exact."""
    from tinyml.device.inputs import predictions
    from tinyml.report import format_table

    preds = predictions(model, [x.output for x in result.inputs])
    hows = [x.how for x in inputs] if inputs else ["random int8 bytes"] * len(preds)
    rows = []
    for entry, (label, score), how in zip(doc["inputs"], preds, hows):
        entry.update({"predicted": label, "score": round(score, 4), "fed": how})
        rows.append({"input": entry["name"], "predicted": label, "score": f"{score:.3f}", "fed as": how})
    return "predictions (device output; labels from MODEL.json when present):\n" + format_table(rows)
