"""`tinyml quantize`: checkpoint -> full-int8 .tflite, verified in the TFLM interpreter.

    tinyml quantize --model runs/demo/train/best.pt --data synthetic --out runs/demo/model.tflite

Writes MODEL.tflite and MODEL.json (checks, quantization, preprocessing) beside it and prints the checks.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tinyml.cliargs import add_model, add_out
from tinyml.errors import UsageError
from tinyml.quantize.quantize import DEFAULT_CALIBRATION_SAMPLES  # light: torch/TF load inside functions


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p, "tinyml checkpoint (.pt), full or depth-pruned", "CHECKPOINT")
    p.add_argument("--data", default=None, metavar="SPEC",
                   help="calibration and validation data: synthetic[:N] | vww:COCO_ROOT | folder:DIR "
                        "(default: the data the checkpoint was trained on)")
    p.add_argument("--calibration-samples", type=int, default=DEFAULT_CALIBRATION_SAMPLES, metavar="N",
                   help=f"training images used to calibrate activation ranges, balanced across classes "
                        f"(default {DEFAULT_CALIBRATION_SAMPLES})")
    add_out(p, "MODEL.tflite", "output model; MODEL.json goes beside it", required=True)
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="where decoded datasets are cached (default DATA/.tinyml-cache)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix != ".tflite":
        raise UsageError(f"--out {out}: the output file must end in .tflite")
    if args.calibration_samples < 1:
        raise UsageError(f"calibration set is empty: --calibration-samples {args.calibration_samples}, "
                          "need at least 1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no C++ info chatter
    from tinyml.quantize.quantize import quantize_checkpoint

    report = quantize_checkpoint(args.model, out, data=args.data,
                                 calibration_samples=args.calibration_samples, cache_dir=args.cache_dir,
                                 progress=not args.quiet)
    print(report.table())
    print(f"wrote {report.tflite_path} and {report.json_path}")
    return 0
