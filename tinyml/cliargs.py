"""One grammar for every `tinyml` command: the model and the output are given the same way everywhere.

- the model a command reads: positional `MODEL` or `--model MODEL` (either; checked in `resolve_model`);
- what a command writes: `-o/--out PATH`;
- exit codes: 0 ok, 1 runtime failure, 2 usage error, 130 interrupted (EXIT_CODES_HELP, in every --help).
"""

from __future__ import annotations

import argparse
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_CODES_HELP = (
    "exit codes: 0 ok, 1 runtime failure (bad model or data, failed build, device error or mismatch), "
    "2 usage error (flags), 130 interrupted (finished work is kept)"
)
_MODEL = "_model_positional"


def add_model(p: argparse.ArgumentParser, help: str, metavar: str = "MODEL", aliases: tuple[str, ...] = (),
              **kwargs: Any) -> None:
    """The model as positional MODEL or --model MODEL (plus older spellings in `aliases`, e.g. --base)."""
    p.add_argument(_MODEL, nargs="?", metavar=metavar, help=f"{help} (or --model {metavar})", **kwargs)
    p.add_argument("--model", *aliases, dest="model", metavar=metavar, default=None,
                   help="the same, as an option", **kwargs)


def add_out(p: argparse.ArgumentParser, metavar: str, help: str, *, dest: str = "out", required: bool = False,
            aliases: tuple[str, ...] = (), **kwargs: Any) -> None:
    """Where the command writes: -o/--out (plus older spellings in `aliases`)."""
    p.add_argument("-o", "--out", *aliases, dest=dest, metavar=metavar, required=required, help=help,
                   **kwargs)


def resolve_model(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """args.model from whichever form was given; a usage error (exit 2) if none or two different ones."""
    if not hasattr(args, _MODEL):
        return
    positional = getattr(args, _MODEL)
    delattr(args, _MODEL)
    if positional is not None and args.model is not None and str(positional) != str(args.model):
        parser.error(f"two models given ({positional} and --model {args.model}): give one")
    args.model = positional if positional is not None else args.model
    if args.model is None:
        parser.error("the model is required: give it as MODEL or --model MODEL")
