"""The device stages of a sweep point: `quantize` -> `build` -> `bench` (after the host `train`, `profile`).

    quantize  full-int8 .tflite of the point's checkpoint, accuracy measured in TFLM   -> POINT/model.tflite
    build     compile to C, export the firmware project, build it for the board       -> POINT/fw/
    bench     boot it (QEMU, or flash a real board), run validation images over serial -> POINT/bench.json

A model too big for the board is not an error: `build` records `fits: false` with the numbers the budget check
or the linker gave, and `bench` then leaves the latency columns empty. Each point builds in its own `fw/` and
each QEMU listens on its own OS-chosen port, so points run in parallel without colliding.

Stage settings come from `SweepContext.options`: board, port, baud, bench_runs, bench_inputs, warmup.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from tinyml.compile.patch import DEFAULT_SETTING
from tinyml.sweep.points import Point
from tinyml.util import write_json_atomic, write_text_atomic

DEFAULT_BENCH_RUNS = 3  # emulated counts are exact and repeat run after run: a few runs suffice
DEFAULT_BENCH_INPUTS = 2  # validation images sent per point (~3 s each over QEMU's serial for 96x96x3)
DEFAULT_WARMUP = 1


def board_of(ctx: Any) -> Any:
    """The sweep's board (a name from boards/ or a board .toml path)."""
    from tinyml.firmware.boards import DEFAULT_BOARD, load_board

    return load_board(ctx.option("board") or DEFAULT_BOARD)


def _splits(ctx: Any, checkpoint: str) -> Any:
    from tinyml.models import load_checkpoint
    from tinyml.sweep.runner import splits_for

    _, ck = load_checkpoint(checkpoint)
    return splits_for(ctx, ck.model_config)


def quantize_stage(point: Point, ctx: Any, pdir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Full-int8 .tflite of the point's checkpoint, its accuracy measured in TFLM on the validation split."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tinyml.quantize import quantize_checkpoint

    splits = _splits(ctx, record["checkpoint"])
    samples = int(ctx.option("calibration_samples", 200))
    rep = quantize_checkpoint(record["checkpoint"], pdir / "model.tflite", splits=splits,
                              calibration_samples=min(samples, len(splits.train_y)), progress=False)
    return {"tflite": str(rep.tflite_path), "tflite_bytes": rep.model_bytes, "int8_acc": rep.int8_accuracy,
            "int8_drop_pts": round(rep.accuracy_drop * 100, 2), "tflm_arena_bytes": rep.tflm_arena_bytes,
            "int8_float_agreement": rep.int8_float_agreement}


def build_stage(point: Point, ctx: Any, pdir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Compile, export and build the firmware in POINT/fw; a model too big is recorded, not raised."""
    from tinyml.compile.patch import report_line
    from tinyml.device.bench import build_firmware
    from tinyml.firmware.project import BudgetExceeded, image_footprint, read_model_info

    board = board_of(ctx)
    out: dict[str, Any] = {"board": board.name, "flash_size": board.flash_size, "ram_size": board.ram_size,
                           "clock_hz": board.clock_hz}
    try:
        elf = build_firmware(record["tflite"], board, pdir / "fw", patch=ctx.option("patch", DEFAULT_SETTING),
                             patch_overhead=ctx.option("patch_overhead"))
    except BudgetExceeded as e:
        needs = e.needs
        return {**out, "fits": False, "fit_error": str(e), "footprint_exact": needs.exact,
                "flash_bytes": needs.flash_bytes or None, "ram_bytes": needs.ram_bytes or None}
    fp = image_footprint(elf)
    chosen = read_model_info(pdir / "fw" / "model").patch or {}
    return {**out, "fits": True, "footprint_exact": True, "flash_bytes": fp.flash_bytes,
            "ram_bytes": fp.ram_bytes, "arena_bytes": fp.arena_bytes, "stack_bytes": fp.stack_bytes,
            "patch": ctx.option("patch", DEFAULT_SETTING), "arena_bytes_off": chosen.get("arena_bytes_off"),
            "patch_choice": report_line(chosen) if chosen else None, "elf": str(elf)}


def bench_inputs(ctx: Any, checkpoint: str, n: int) -> list[Any]:
    """The first validation images of each class in turn, as int8 tensors (int8 = uint8 - 128)."""
    from tinyml.data import to_int8
    from tinyml.device.inputs import BenchInput

    s = _splits(ctx, checkpoint)
    order: list[int] = []
    per_class = [np.flatnonzero(s.val_y == c).tolist() for c in range(len(s.classes))]
    while len(order) < n and any(per_class):
        for idx in per_class:
            if idx and len(order) < n:
                order.append(idx.pop(0))
    return [BenchInput(f"val #{i} ({s.classes[int(s.val_y[i])]})",
                       to_int8(s.val_x[i]).reshape(-1)) for i in order]


def _flash_real_board(fw: Path) -> None:
    """Write the point's firmware to a real board (`make flash`: pyocd) before measuring it over --port."""
    from tinyml.firmware.project import flash_project

    flash_project(fw)


def bench_stage(point: Point, ctx: Any, pdir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Run validation images on the board; latency mean/p90 (count and ms) and the bit-exact check vs TFLM."""
    from tinyml.device.bench import bench_model

    if not record.get("fits"):
        return {}  # recorded by `build` as not fitting: nothing to run
    board = board_of(ctx)
    port = ctx.option("port")
    if port:
        _flash_real_board(pdir / "fw")
    inputs = bench_inputs(ctx, record["checkpoint"], int(ctx.option("bench_inputs", DEFAULT_BENCH_INPUTS)))
    r = bench_model(record["tflite"], board, runs=int(ctx.option("bench_runs", DEFAULT_BENCH_RUNS)),
                    warmup=int(ctx.option("warmup", DEFAULT_WARMUP)), inputs=inputs, build_dir=pdir / "fw",
                    port=port, baud=ctx.option("baud"), cycles=not port and board.emulated,
                    patch=ctx.option("patch", DEFAULT_SETTING), patch_overhead=ctx.option("patch_overhead"))
    write_json_atomic(pdir / "bench.json", r.to_json())
    write_text_atomic(pdir / "bench.txt", r.summary() + "\n")
    s = r.stats
    mismatches = [x.mismatch() for x in r.inputs if not x.bit_exact]
    return {"latency_unit": r.unit, "latency_mean": round(s["mean"], 1), "latency_p90": round(s["p90"], 1),
            "latency_ms": round(r.ms(s["mean"]), 3), "latency_p90_ms": round(r.ms(s["p90"]), 3),
            "clock_hz": r.clock_hz, "bit_exact": r.bit_exact, "mismatch": "; ".join(mismatches) or None,
            "flash_bytes": r.flash_bytes, "ram_bytes": r.ram_bytes, "arena_bytes": r.arena_bytes,
            "stack_bytes": r.stack_bytes, "stack_peak_bytes": r.stack_peak_bytes, "bench_runs": len(r.counts),
            **_cycle_fields(r)}


def _cycle_fields(r: Any) -> dict[str, Any]:
    """Estimated cycles beside the exact instructions (emulated boards; see docs/cycle-model.md)."""
    if r.cycles is None:
        return {}
    return {"est_cycles_mean": round(r.cycles.mean, 1), "est_cycles_ms": round(r.ms(r.cycles.mean), 3),
            "cycle_rules": r.cycles.rules.name}
