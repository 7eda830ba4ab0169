"""`tinyml` command line: one verb per pipeline stage.

Each verb lives in its stage's package as a module with `add_arguments(parser)` and `run(args) -> int`.
Those modules import heavy libraries (torch, tensorflow) inside `run`, so `tinyml --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from tinyml.cliargs import (
    EXIT_CODES_HELP,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    resolve_model,
)
from tinyml.errors import TinymlError, UsageError

GRAMMAR_HELP = (
    "Every command takes its model as MODEL or --model MODEL and writes to -o/--out. " + EXIT_CODES_HELP + "."
)
parsers: dict[str, argparse.ArgumentParser] = {}  # verb -> its parser (usage errors print its usage line)

# verb -> (module, one-line help). Order = order of the pipeline.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("tinyml.train.cli", "train a MobileNetV1 visual-wake-words model"),
    "prune": ("tinyml.prune.cli", "depth-prune a checkpoint with an auxiliary head (or magnitude-prune)"),
    "quantize": ("tinyml.quantize.cli", "convert a checkpoint to a full-int8 .tflite, verified in TFLM"),
    "profile": ("tinyml.profile_cli", "per-layer MACs, params and memory of a checkpoint or .tflite"),
    "compile": ("tinyml.compile.cli", "compile a .tflite to C (bit-exact with TFLite Micro)"),
    "verify": ("tinyml.compile.verify_cli", "check compiled C against the TFLM interpreter, byte for byte"),
    "export": ("tinyml.firmware.cli", "render a self-contained firmware project for a board"),
    "bench": ("tinyml.device.cli", "measure latency on a board over serial and check outputs against TFLM"),
    "sweep": ("tinyml.sweep.cli", "pruning sweep: train, quantize and measure many cut points"),
    "pipeline": ("tinyml.pipeline", "run the whole pipeline from one config file"),
    "doctor": ("tinyml.doctor", "check the toolchain, QEMU and Python packages"),
}


def _available() -> dict[str, object]:
    """Import each verb's module; a verb whose stage is not built yet is simply absent."""
    mods = {}
    for verb, (modname, _) in COMMANDS.items():
        try:
            mods[verb] = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name and modname.startswith(e.name):
                continue
            raise
    return mods


def version_line() -> str:
    """`tinyml --version`: the package version and the commit it was built from."""
    from tinyml import __version__
    from tinyml.util import git_commit

    return f"tinyml {__version__} (commit {git_commit()}, Python {sys.version.split()[0]})"


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(prog="tinyml", description=__doc__.splitlines()[0], epilog=GRAMMAR_HELP)
    parser.add_argument("--version", action="version", version=version_line())
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    mods = _available()
    parsers.clear()
    for verb, mod in mods.items():
        p = sub.add_parser(verb, help=COMMANDS[verb][1], description=COMMANDS[verb][1],
                           epilog=EXIT_CODES_HELP)
        mod.add_arguments(p)  # type: ignore[attr-defined]
        parsers[verb] = p
    return parser, mods


def main(argv: list[str] | None = None) -> int:
    parser, mods = build_parser()
    args = parser.parse_args(argv)
    if not args.verb:
        parser.print_help()
        return EXIT_USAGE
    resolve_model(args, parsers[args.verb])
    try:
        return int(mods[args.verb].run(args) or 0)  # type: ignore[attr-defined]
    except UsageError as e:
        print(f"tinyml {args.verb}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except TinymlError as e:
        print(f"tinyml {args.verb}: error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"tinyml {args.verb}: interrupted (finished work was saved)", file=sys.stderr)
        if "ray" in sys.modules:  # a Ray driver leaves without Ray's teardown
            from tinyml.sweep.ray_executor import abandon_driver

            abandon_driver(EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
