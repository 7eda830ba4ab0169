"""`tinyml pipeline --config pipeline.toml`: train -> sweep -> quantize -> export -> flash -> bench.

    tinyml pipeline --config examples/pipeline.toml                 # everything the config says
    tinyml pipeline --config examples/demo.toml --run-dir runs/demo --board mps2-an500

Every stage writes into one run directory (run.dir) and records itself in RUN_DIR/pipeline.json with a key
of the settings it depends on. A rerun reuses each finished stage whose key is unchanged, resumes an
interrupted one (training from last.pt, the sweep from its finished points), and redoes a stage whose
settings changed, with everything after it. The schema is in `tinyml.pipeline.config`;
examples/pipeline.toml documents it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tinyml.cliargs import add_out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, type=Path, metavar="PIPELINE.toml",
                   help="pipeline config (see examples/pipeline.toml)")
    add_out(p, "DIR", "overrides run.dir", dest="run_dir", aliases=("--run-dir",), type=Path)
    p.add_argument("--board", default=None, help="overrides run.board (a name from boards/ or a .toml)")
    p.add_argument("--port", default=None, help="overrides run.port (serial port of a real board)")
    p.add_argument("--jobs", type=int, default=None, help="overrides run.jobs (sweep points in parallel)")
    p.add_argument("--device", default=None, choices=("auto", "cpu", "cuda", "mps"),
                   help="overrides run.device (auto: CUDA, then MPS, then CPU)")
    p.add_argument("--workers", type=int, default=None, help="overrides run.workers (DataLoader workers)")


def run(args: argparse.Namespace) -> int:
    from tinyml.pipeline.config import load_config
    from tinyml.pipeline.stages import Pipeline

    overrides = {"run": {"dir": str(args.run_dir) if args.run_dir else None, "board": args.board,
                         "port": args.port, "jobs": args.jobs, "device": args.device,
                         "workers": args.workers}}
    cfg = load_config(args.config, overrides)
    return Pipeline(cfg).run()
