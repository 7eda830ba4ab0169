"""`tinyml export MODEL.tflite --board BOARD -o DIR [--profile]`: a self-contained firmware project.

The project builds with arm-none-eabi-gcc alone: `make build`, `make size`, `make flash` (QEMU with a TCP
serial port for emulated boards, pyocd for real ones), `make clean`. Copy it anywhere.
"""

from __future__ import annotations

import argparse
import sys

from tinyml.cliargs import add_model, add_out


def add_arguments(p: argparse.ArgumentParser) -> None:
    from tinyml.firmware.boards import DEFAULT_BOARD, board_names

    add_model(p, "full-int8 .tflite (or a `tinyml compile` output dir)", "MODEL.tflite")
    p.add_argument(
        "--board",
        default=DEFAULT_BOARD,
        help=f"one of {', '.join(board_names())}, or a board .toml (default {DEFAULT_BOARD})",
    )
    add_out(p, "DIR", "project directory (created or updated)", dest="output", required=True,
            aliases=("--output",))
    p.add_argument(
        "--profile",
        action="store_true",
        help="build with per-layer timing marks (what `tinyml bench --per-layer` reads)",
    )
    p.add_argument(
        "--dump-layers",
        action="store_true",
        help="build with layer dumps (for `tinyml bench --find-layer --port`); normal builds have none",
    )
    p.add_argument("--opt", default="-O2", help="optimization flag for the whole firmware (default -O2)")
    p.add_argument("--name", help="model name the firmware reports (default: the file name)")
    p.add_argument("--build", action="store_true", help="also run `make build` and print flash and RAM")
    from tinyml.compile import patch

    patch.add_arguments(p)


def run(args: argparse.Namespace) -> int:
    from tinyml.firmware.boards import load_board
    from tinyml.firmware.project import DUMP_DEFINE, build_project, dsp_fallback_warnings, export_project

    board = load_board(args.board)
    project = export_project(
        args.model, board, args.output, profile=args.profile, opt=args.opt, name=args.name,
        patch=args.patch, patch_overhead=args.patch_overhead,
        defines=(DUMP_DEFINE,) if args.dump_layers else (),
    )
    m = project.model
    print(f"exported {m.name} for {board.name} ({board.description}) -> {project.dir}/")
    print(
        f"  arena {m.arena_bytes:,} B, weights/params {m.const_bytes:,} B, {m.layers} layers"
        + (", per-layer marks on" if args.profile else "")
        + (", layer dumps on" if args.dump_layers else "")
    )
    if m.patch:
        from tinyml.compile.patch import report_line

        print(f"  {report_line(m.patch)}")
    for line in dsp_fallback_warnings(m.layer_kernels, board):
        print(f"warning: {line}", file=sys.stderr)
    if args.build:
        built = build_project(project)
        fp = built.footprint
        print(
            f"  built {project.elf}: flash {fp.flash_bytes:,} B of {board.flash_size:,} B, "
            f"RAM {fp.ram_bytes:,} B of {board.ram_size:,} B ({fp.ram_breakdown()})"
        )
        print(f"  {built.stack.describe()}")
    run_hint = (
        "boots it in QEMU with its serial port on TCP 127.0.0.1:4321"
        if board.emulated
        else f"copies {project.elf.with_suffix('.uf2')} to the board's USB drive"
        if board.uf2_family
        else f"writes it with pyocd (target {board.pyocd_target})"
    )
    print(f"next: make -C {project.dir} build | size | flash ({run_hint}) | clean")
    return 0
