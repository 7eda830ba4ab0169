"""Reproduce the issue-8 targets table with one command: `make bench-models` (or this script).

Both reference models (examples/models) run through `tinyml bench` (the same code as the CLI verb) on the
emulated Cortex-M4 (`cortex-m`, QEMU mps2-an386, -icount: counts are exact instructions), once as shipped
(instructions, flash, RAM, arena, stack peak) and once with per-layer marks (instructions and instructions/MAC
per layer), both with `--cycles`: estimated core cycles from the TRM rules (docs/cycle-model.md), and the
upper bound with the flash wait states of the MLPerf Tiny board (STM32L4R5 at 120 MHz: 5). The
compiler's memory plan gives the arena against its lower bound max over layers of (inputs + output). TFLM's
figures are the ones measured once by hand and recorded here (TFLM built with its own flags on the same
emulated board).

Kernel figures are measured with `--patch off` (whole layers, whatever the CLI default): they measure the
kernels. `--cores` adds instructions and est. cycles of both models on the other emulated DSP cores (M7, M33,
M55); `--kernels-doc PATH` writes docs/m4-kernels.md: the per-layer cycles/MAC beside each kernel's design
floor (what its inner loop costs by the TRM rules) and what is left to 1.20 cycles/MAC (issue 16).

Writes OUT/results.json, OUT/results.csv, OUT/per_layer.csv and OUT/results.md, and prints the Markdown.

Each model also runs once with `--patch auto` (the CLI default; instructions, linked RAM, flash, the
compiler's choice), reported beside the `off` figures. `--boards` instead measures linked RAM and
instructions, `--patch off` and `auto`, bit-exact, on every emulated board (or the ones named):
OUT/boards.{md,json,csv}.

    .venv/bin/python scripts/bench_models.py [--models DIR] [--out DIR] [--board cortex-m] [--no-per-layer]
        [--cores] [--kernels-doc docs/m4-kernels.md]
    .venv/bin/python scripts/bench_models.py --boards [all|BOARD,...] [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from tinyml.util import write_text_atomic

# TFLM on the emulated Cortex-M4 (FACTS.md): instructions per Invoke(), arena, firmware flash
TFLM: dict[str, dict[str, int]] = {
    "person_detect": {
        "ref_instructions": 95_592_387,
        "cmsis_instructions": 22_928_866,
        "arena_bytes": 82_292,
        "flash_ref": 382_508,
        "flash_cmsis": 397_100,
    },
    "vww_96_int8": {
        "ref_instructions": 100_176_934,
        "cmsis_instructions": 24_102_368,
        "arena_bytes": 100_660,
        "flash_ref": 452_076,
        "flash_cmsis": 466_668,
    },
}
# Published real-silicon cycles per inference, VWW on the STM32L4R5 (Cortex-M4 @ 120 MHz), MLPerf Tiny
PUBLISHED_CYCLES = {"vww_96_int8": {"X-CUBE-AI": 10_670_000, "Plumerai": 11_850_000}}
L4R5_WAIT_STATES = 5
# targets: instructions and flash (issue 8; flash raised by issue 16 to 248,344 B at its filing + 10%), linked
# firmware RAM with --patch off / auto (issue 17)
TARGETS: dict[str, dict[str, int | None]] = {
    "person_detect": {"instructions": 11_500_000, "ram": 49_152, "ram_auto": 32_768, "flash": 273_000},
    "vww_96_int8": {"instructions": 12_000_000, "ram": 65_536, "ram_auto": 49_152, "flash": None},
}
PATCHES = ("off", "auto")
DEFAULT_MODELS = Path(__file__).resolve().parent.parent / "examples" / "models"
# the other emulated cores with the DSP extension (--cores): board -> core, as the tables label them
DSP_BOARDS = {"cortex-m": "M4", "mps2-an500": "M7", "mps2-an505": "M33", "mps3-an547": "M55"}
# issue 16: 9.0 M est. M4 cycles on vww_96_int8 (7.49 M MACs), 8.6 M on person_detect
TARGET_CYCLES_PER_MAC = 1.20


FLOORS_TEXT = """\
**Design floor**: est. cycles per MAC that a kernel's current loops cannot go below by those rules,
counted from their instructions (every load pipelined as the code allows; no call, loop or border
overhead):

- pointwise 1x1, four pixels (`pw4x2_relu`: stride 1, ReLU with out_zp -128, depth <= 128, blocks of four
  pixels first): the block's widened activations sit in the routine's own stack frame, read as `[sp, #imm]`,
  which frees the activation pointer's register for 8 accumulators; each group's weights are laid out
  offline (same bytes) as c0d0 c1d0 c0d2 c1d2 | c0d1 c1d1 c0d3 c1d3, so one `SXTB16` gives both channels'
  halves for one activation word. A group of 4 depth values x 2 output channels x 4 pixels is 32 MACs in 34
  cycles: per half group 5 words loaded in 7 (four `LDR`s back to back 2+1+1+1, the fifth 2), 2 `SXTB16`, 8
  `SMLAD` = 17: 0.31 loads, 0.125 `SXTB16` and 0.5 `SMLAD` per MAC, 1.0625 cycles/MAC. Per pair of channels
  60 more (pointers and parameters 10, eight requantizations 24, output addresses and eight `STRB` 13, next
  biases and end test 8, entry jump 5); per block of 4 pixels the widening, 34 a group: floor = (34 x
  depth/4 + 60) / (8 x depth) + 34 x depth/4 / (4 x depth x out_c): 1.14 at 128 -> 128, 1.21 at 64 -> 64,
  1.36 at 32 -> 32, 1.60 at 16 -> 32.
- pointwise 1x1, three pixels (`pw3x2_relu`, `pw3x2_relu4` / `pw3x2_relu8` for exactly 4 or 8 groups: depth
  over 128, the 9-pixel maps, remainders): a group of 4 depth values x 2 channels x 3 pixels is 24 MACs in 27
  cycles (8 words loaded in 11, 4 `SXTB16`, 12 `SMLAD`: 1.125); per pair of channels 51 more (48 with 4 or 8
  groups), per block of 3 pixels `widen3` 27 a group: floor = (27 x depth/4 + 51) / (6 x depth) + 27 x
  depth/4 / (3 x depth x out_c): 1.17 at 256 -> 256 (3x3 map).
- pointwise, depth 8 (`pw8x2_relu`; out_c a multiple of 8 dividing 64, ReLU with out_zp -128): two pixels'
  16 input values stay in registers as 8 int16-pair words and each output channel streams past them as one
  8-word record (doubled bias, weights widened and doubled, M, radd, rshift): per channel of two pixels (16
  MACs) `LDM` bias + 2 weight words 4, 8 `SMLAD`, `LDM` 2 weight words 3, `LDM` M and radd 3, `LDR` rshift 2,
  two `SMMLAR`, `ASR`, `SSAT` 6, two `STRB` 2 = 28, loop test 4 per 8 channels; per pair of pixels 27 (load
  and widen the input): 28.5/16 + 27/(16 x out_c) = 1.89 at 8 -> 16.
- depthwise 3x3, stride 1 (`window_s1`, ReLU with out_zp -128, in_c % 4 == 0): the three input rows an
  output row needs are converted once into a window in scratch, pixel-pair interleaved (the word of channels
  c, c+1 of pixels p, p+1 is [p.c, p.c+1, p+1.c, p+1.c+1]), so `SXTB16` / `SXTB16 ROR #8` give two
  horizontally adjacent taps of one channel and `SMLAD` takes both; padding columns and rows hold in_zp, so
  every pixel is interior. Per window row of a four-pixel pass of one channel (`dw_quads_relu`): 5 loads back
  to back 6 (3 pair words, weight words (w0,w1), (w1,w2)), 3 `SXTB16`, 8 MAC instructions = 17 cycles for 12
  MACs; per pass 3 rows + bias 52, requantization 24 (parameters 5, 4 `SMMLAR`, `ASR` + `SSAT` 8, 4 `STRB` 5,
  pointers 2), loop 5 = 81 cycles per 36 MACs (2.25), 14 more a channel; converting each input row once
  (`PKHBT`/`PKHTB`, 18 cycles per 16 bytes) 0.125: floor = (81 nq + 14) / (36 nq) + 0.125 with nq = out_w/4:
  2.41 at width 48, 2.44 at 24, 2.51 at 12; rows of 6 (`dw_six_relu`: a four- and a two-pixel pass) 2.60, of
  3 (`dw_four_relu`: one pass, a lane unused) 3.24.
  Stride 2 (`interior_full`, one pixel): per tap of 4 channels 3 `LDR`s (4 cycles), 2 `SXTB16`, 4 single
  MACs (`SMLABB`/`SMLATT`) = 10 cycles for 4 MACs; per output 8 (3 parameter loads, `SMMLAR`, `ASR`,
  `SSAT`, `STRB`) over 9 MACs; biases 4 per group: 126 cycles per 36 MACs = 3.50. A border pixel with only
  its window's right column or bottom row in the padding (`edge_run`: SAME on even maps) runs the six inside
  taps the same way and the three padding taps as one multiply of in_zp by their summed weights (`SADD16`):
  121 cycles per 36 MACs, 3.36; corners read their taps through a table of 9 pointers (12 cycles a tap).
- first layer (`tinyml_first5_relu8` / `tinyml_first14_relu8` for exactly 8 output channels, else
  `tinyml_first5_relu` / `tinyml_first14_relu`: the engine of `conv2d_3x3_1ch_s8`, grayscale, and of
  `conv2d_im2col_s8`'s 3x3 RGB path): each pixel's patch is widened once into K words of int16 pairs (K = 5
  grayscale, 14 RGB) shared by all output channels; per pair of channels of a block of 3 pixels, each word is 3
  activation and 2 weight `LDR`s back to back 6 and 6 `SMLAD` (12 cycles for 12 MAC slots), plus 36.5 (per
  two pairs: 4 runs of 3 parameter `LDR`s 16, the record end 1, 4 x `SMMLAR`/`ASR`/`SSAT` on 3 outputs 36, 12
  `STRB` at fixed offsets 12, loop 4); widening 19 cycles a grayscale window, 44 an RGB one, 11 per block of 3
  pixels: with 8 output channels 2.10 cycles/MAC grayscale, 1.48 RGB.
"""


GAP_TEXT = """\
## What is left, and what would close it

Even with every kernel at its design floor the models stay above 1.20 cycles/MAC (the line above each class
table): the pointwise layers, at their floors within a few per cent, hold about three quarters of the cycles,
so the targets need a pointwise loop below 1.06 cycles/MAC, not tuning:

- **Pointwise below its 1.06 floor.** The four-pixel block loads 0.31 words, widens 0.125 weight words and
  issues 0.5 `SMLAD` per MAC; with the 8 accumulators, 2 weight halves, 3 activation words and the weight
  pointer all 14 registers are taken (the activations are addressed from SP), so its loads cannot run longer
  than three. Dropping the weight `SXTB16` needs int16 weights in flash, about +200 KB (over the +10% flash
  bound). Depth 256 (the 3x3x256 layers) would need a 2 KB buffer and about 7.7 KB more code for the
  four-pixel block, and its 9 pixels split no better than 3+3+3. The thin layers' per-pair cost is gone at
  depth 8 (`pw8x2_relu`); at depth 16 a two-half variant reached 1.60 cycles/MAC but needs 1.2 KB more
  scratch where person_detect's `--patch auto` arena peaks.
- **Depthwise stride 2** (3.9-4.9 cycles/MAC, about 0.62 M cycles a model): the pixel-pair window works there
  too (it ran bit-exact) but costs 2.5-4 KB of scratch on the layers where the arena peaks, and on the narrow
  layers its conversion (each input byte serves only 2.25 MACs) made it slower. Pairing taps in registers
  (`PKHBT`/`PKHTB` of two columns' words) counts at about 3% better: its 9 loads a window row need 9 free
  registers and 7 are free. Building the per-channel records when a layer starts costs about 20 k cycles a
  model (1.0 cycles/MAC on the 6x6x128 layer).
- **Small maps.** The 3x3x256 stride-1 layer (4.49) uses 3 of a pass's 4 pixel lanes and unpacks 56 cycles of
  records a channel for 9 pixels; the 6x6 layers are at 2.97 against 2.60.
- **First layer.** Grayscale: requantizing and storing are 40 of a pass's 102 cycles, and 3 pixels x 2
  channels is the largest block the registers allow; the border windows and per-call costs are the rest.

For scale: the published real-silicon leaders on this model class (MLPerf Tiny VWW on an STM32L4R5 Cortex-M4)
are X-CUBE-AI at 10.67 M cycles (1.42 cycles/MAC) and Plumerai at 11.85 M.
"""


def floor_per_mac(
    kernel: str, macs_per_output: float, out_c: int = 0, stride_w: int = 1, align: int = 8, out_w: int = 0,
    pixels: int = 0,
) -> float | None:
    """Design floor of a kernel: est. Cortex-M4 cycles per MAC its current loops cannot go below (CYCLES.md
    rules, every load pipelined as the code allows, no call or border overhead); None for kernels without one.
    d = MACs per output value (the dot product's depth: in_c for 1x1, the patch for im2col, 9 for 3x3);
    out_c: output channels (what per-pixel work is shared by); stride_w: depthwise stride-1 layers run the
    pixel-pair window; align: what im2col pads its patches to (4 under ReLU with out_zp -128, else 8); out_w:
    output width (the window's passes of four pixels a row); pixels: output pixels (1x1 layers run blocks of
    four first, the rest in threes)."""
    d = macs_per_output
    if kernel == "conv2d_1x1_s8" and d == 8 and out_c and out_c % 8 == 0 and 64 % out_c == 0 and align == 4:
        # pw8x2_relu: two pixels' input in registers; per channel of two pixels 28.5 (LDMs of the record,
        # 8 SMLAD, 2 requantized stores, the loop test per 8 channels), per pair of pixels 27 (load, widen)
        return 28.5 / 16 + 27 / (16 * out_c)
    if kernel == "conv2d_im2col_s8" and d == 27 and align == 4 and out_c and out_c % 2 == 0:
        return _first_floor(14, 27, 44, out_c)  # 3x3 RGB through the first-layer engine
    four = 4 * _blocks4(pixels) if kernel == "conv2d_1x1_s8" and d <= 128 and d % 8 == 0 and align == 4 else 0
    if four and stride_w == 1 and out_c % 2 == 0:
        # pw4x2_relu: a group of 4 depth values x 2 channels x 4 pixels = 32 MACs in 34 cycles (per half group
        # 5 loads 7, 2 SXTB16, 8 SMLAD); per pair of channels 60; per block of 4 pixels the widening, 34 a group
        groups = d // 4
        fl4 = (34 * groups + 60) / (8 * d) + 34 * groups / (4 * d * out_c)
        fl3 = floor_per_mac(kernel, d, out_c, stride_w, align)
        return (four * fl4 + (pixels - four) * (fl3 or fl4)) / pixels
    if kernel in ("conv2d_1x1_s8", "conv2d_im2col_s8"):
        # pw3x2_relu: a group of 4 depth values x 2 channels x 3 pixels = 24 MACs in 27 cycles (4 LDRs back
        # to back 5, 2 LDRD 6, 4 SXTB16, 12 SMLAD); per pair of channels 51 (48 with exactly 4 or 8 groups: no
        # entry jump): biases, 6 requantized stores, pointers; per block of 3 pixels widen3, 27 per group; the
        # depth padded to a multiple of `align`
        groups = -(-d // align) * align // 4
        per_pair = 48 if kernel == "conv2d_1x1_s8" and groups in (4, 8) else 51
        widen = 27 * groups / (3 * d * out_c) if out_c else 0.0
        return (27 * groups + per_pair) / (6 * d) + widen
    if kernel == "depthwise_conv2d_3x3_s8":
        if stride_w == 1:
            return _window_floor(out_w)
        # interior_full, a group of 4 channels: 9 taps x 10 (3 LDRs 4, 2 SXTB16, 4 SMLAxy), 4 biases +4,
        # 4 outputs x 8 (3 LDRs 4, SMMLAR, ASR, SSAT, STRB) = 126 cycles for 36 MACs
        return 126 / 36
    if kernel == "conv2d_3x3_1ch_s8":
        return _first_floor(5, 9, 19, out_c or 8)  # grayscale through the first-layer engine
    return None


def _blocks4(n: int) -> int:
    """conv2d_1x1_s8's blocks of four pixels for n pixels (remainders of 9, 6 or 3 go in threes)."""
    r = n % 4
    return max(n // 4 - (2 if r == 1 else 1 if r == 2 else 0), 0)


def _first_floor(k: int, d: int, widen: int, out_c: int) -> float:
    """The first-layer engine (tinyml_first_s8.c): a pass of 3 pixels x 2 channels over K words of int16 pairs
    is 12 K + 42 cycles (per word 5 LDRs 6 and 6 SMLAD; per pass the parameters, 6 requantized stores, the
    loop); with exactly 8 output channels (the relu8 engine: two pairs a loop, stores at fixed offsets) 12 K +
    36.5 and 11 a block. Per pixel the widening of its patch (`widen` cycles) and per block of 3 pixels 12,
    shared by out_c channels."""
    if out_c == 8:
        return (4 * (12 * k + 36.5) + 3 * widen + 11) / (3 * 8 * d)
    return (12 * k + 42) / (6 * d) + widen / (d * out_c) + 12 / (3 * d * out_c)


def _window_floor(out_w: int) -> float:
    """Depthwise stride 1 (window_s1): a four-pixel pass of one channel (dw_quads_relu) is 81 cycles for 36
    MACs (per window row 5 LDRs 6, 3 SXTB16, 8 MACs; bias, 4 requantized stores, loop), 14 more a channel;
    converting each input row once into the pixel-pair window 0.125/MAC. Rows of 6 (dw_six_relu) 2.60, of 3
    or 4 (dw_four_relu, one pass) 83.5 cycles a pass."""
    if out_w == 6:
        return 132.5 / 54 + 0.15
    if out_w in (3, 4):
        return 83.5 / (9 * out_w) + (0.15 if out_w == 3 else 0.125)
    quads = max(out_w // 4, 1)
    return (81 * quads + 14) / (36 * quads) + 0.125


def run_bench(
    model: Path, board: str, per_layer: bool, json_path: Path, cycles: bool = True, patch: str = "off",
    random: int = 2,
) -> dict[str, Any]:
    """`tinyml bench --model M --board B --random 2 --runs 1 --patch off [--per-layer] [--cycles] --json P`,
    in process. `off` (whole layers) gives the kernels' figures, whatever the CLI default."""
    from tinyml.device import cli

    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    argv = ["--model", str(model), "--board", board, "--random", str(random), "--runs", "1", "--json",
            str(json_path), "--patch", patch]
    argv += ["--cycles", "--flash-wait-states", str(L4R5_WAIT_STATES)] if cycles else []
    args = p.parse_args(argv + (["--per-layer"] if per_layer else []))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli.run(args)
    if rc:
        sys.stdout.write(out.getvalue())
        raise SystemExit(f"tinyml bench failed for {model} (exit {rc})")
    return json.loads(json_path.read_text())


def compiled(model: Path) -> Any:
    """The compiler's view of `model` (its memory plan and layers)."""
    from tinyml.compile import compile_tflite

    with tempfile.TemporaryDirectory() as d:
        return compile_tflite(model, Path(d) / "m", "model")


def layer_info(c: Any) -> dict[int, dict[str, Any]]:
    """Per layer index: its shape, MACs per output value and its kernel's design floor (cycles/MAC)."""
    out = {}
    for la in c.layers:
        prm = dict(la.params)
        q = dict(prm.get("q", ()))
        align = 4 if (q.get("act_min"), q.get("act_max"), q.get("out_zp")) == (-128, 127, -128) else 8
        outputs = 1
        for n in la.out_shape:
            outputs *= n
        d = la.macs / outputs if la.macs else 0
        out[la.index] = {
            "shape": la.summary.split(";")[0],
            "macs_per_output": d,
            "floor_per_mac": floor_per_mac(
                la.kernel, d, la.out_shape[-1], prm.get("stride_w", 1), align, la.out_shape[-2],
                outputs // la.out_shape[-1],
            )
            if la.macs
            else None,
        }
    return out


def plan(c: Any) -> dict[str, int]:
    """The compiler's memory plan: arena, lower bound (max over layers of inputs + output) and its layer."""
    tensors = c.model.tensors
    in_out = [
        (
            sum(tensors[t].nbytes for t in la.inputs if isinstance(t, int)) + tensors[la.output].nbytes,
            la.index,
        )
        for la in c.layers
    ]
    naive, naive_layer = max(in_out)
    return {
        "arena_bytes": c.plan.arena_bytes,
        # the planner's bound: arena-resident inputs + output + scratch of a layer, an in-place pair counted
        # as its overlapped span; the plain max over layers of (inputs + output) ignores in-place overlap
        "lower_bound_bytes": c.plan.lower_bound,
        "lower_bound_layer": c.plan.lower_bound_layer,
        "max_in_out_bytes": naive,
        "max_in_out_layer": naive_layer,
        "live_peak_bytes": c.plan.live_peak,
    }


def _cycles(b: dict[str, Any]) -> dict[str, Any]:
    """Estimated cycles of one bench JSON: mean (P = 2), the P = 1..3 band, the flash-wait-state bound."""
    est = b.get("est_cycles")
    if not est:
        return {}
    return {
        "est_cycles": round(est["mean"]),
        "est_cycles_p1": round(est["p_band"]["p1"]),
        "est_cycles_p3": round(est["p_band"]["p3"]),
        "est_cycles_flash_ws_bound": round(est["with_flash_wait_states"]["mean"]),
        "cycle_rules": b["cycle_model"]["rules"],
    }


def cycles_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """Estimated cycles beside instructions and the published real-silicon figures."""
    if not any("est_cycles" in r for r in rows):
        return []
    lines = [
        "",
        f"Estimated cycles ({rows[0].get('cycle_rules')} rules, zero wait states, P = 2; band P = 1..3): an "
        "estimate from exact per-instruction counts, not a measurement. Bound: + "
        f"{L4R5_WAIT_STATES} wait states on every data read from flash (STM32L4R5 at 120 MHz). Published: "
        "real STM32L4R5 silicon (MLPerf Tiny).",
        "",
        "| model | instructions | est. cycles | band P = 1..3 | cycles / instruction | with 5 WS (bound) "
        "| published (cycles) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if "est_cycles" not in r:
            continue
        pub = ", ".join(f"{k} {mega(v)}" for k, v in PUBLISHED_CYCLES.get(r["model"], {}).items()) or "-"
        lines.append(
            f"| `{r['model']}` | {mega(r['instructions'])} | **{mega(r['est_cycles'])}** "
            f"| {mega(r['est_cycles_p1'])} .. {mega(r['est_cycles_p3'])} "
            f"| {r['est_cycles'] / r['instructions']:.2f} | {mega(r['est_cycles_flash_ws_bound'])} | {pub} |"
        )
    return lines


def core_row(b: dict[str, Any]) -> dict[str, Any]:
    """Instructions, est. cycles (and band) and bit-exactness of one bench JSON: a row of the cores table."""
    return {**_cycles(b), "instructions": int(b["max"]), "bit_exact": bool(b["bit_exact"])}


def cores_markdown(rows: list[dict[str, Any]], board: str) -> str:
    """Both models on every emulated DSP core: instructions beside est. cycles, each labelled."""
    if not any(r.get("cores") for r in rows):
        return ""
    lines = [
        "",
        "Every emulated core with the DSP extension, `--patch off`: **instructions** exact (QEMU `-icount`), "
        "**est. cycles** = per-address execution counts (QEMU plugin) x the core's cost rules "
        "(docs/cycle-model.md; M4: the TRM's; M7, M33, M55: approximations), zero wait states, P = 2.",
        "",
        "| model | core (board, rules) | instructions | est. cycles | band P = 1..3 | cycles / instruction "
        "| est. cycles / MAC | bit-exact |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        for b, v in {board: r, **r.get("cores", {})}.items():
            if "est_cycles" not in v:
                continue
            lines.append(
                f"| `{r['model']}` | {DSP_BOARDS.get(b, b)} (`{b}`, {v['cycle_rules']}) "
                f"| {mega(v['instructions'])} "
                f"| **{mega(v['est_cycles'])}** | {mega(v['est_cycles_p1'])} .. {mega(v['est_cycles_p3'])} "
                f"| {v['est_cycles'] / v['instructions']:.2f} | {v['est_cycles'] / r['macs']:.2f} "
                f"| {'yes' if v['bit_exact'] else 'NO'} |"
            )
    return "\n".join(lines) + "\n"


def op_class(kernel: str | None, index: int) -> str:
    """The kernel families the cycle budget is split into."""
    if kernel == "conv2d_1x1_s8":
        return "pointwise 1x1"
    if kernel == "depthwise_conv2d_3x3_s8":
        return "depthwise 3x3"
    if index == 0:
        return f"first layer ({kernel})"
    return "rest (pool, FC, softmax, ...)"


def class_rows(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per op class: MACs, instructions, est. cycles and the cycles its kernels' design floors would give."""
    out: dict[str, dict[str, Any]] = {}
    for la in layers:
        k = out.setdefault(op_class(la["kernel"], la["index"]), {"layers": 0, "macs": 0, "count": 0,
                                                                  "est_cycles": 0.0, "floor_cycles": 0.0})
        k["layers"] += 1
        k["macs"] += la["macs"]
        k["count"] += la["count"]
        k["est_cycles"] += la["est_cycles"] or 0
        fl = la.get("floor_per_mac")
        k["floor_cycles"] += fl * la["macs"] if fl else la["est_cycles"] or 0
    return [{"class": name, **v} for name, v in out.items()]


def kernels_doc(rows: list[dict[str, Any]], board: str) -> str:
    """docs/m4-kernels.md: where the est. M4 cycles go per layer and op class, against the design floors."""
    t = TARGET_CYCLES_PER_MAC
    lines = [
        "# Cortex-M4 cycles per layer against the kernels' design floors",
        "",
        "Generated by `.venv/bin/python scripts/bench_models.py --kernels-doc docs/m4-kernels.md` (do not "
        "edit by "
        f"hand). Board `{board}` (QEMU mps2-an386), `tinyml bench --patch off --cycles --per-layer`: "
        "**instructions** are exact emulated counts; **est. cycles** are per-address execution counts (QEMU "
        "plugin) x the Cortex-M4 TRM rules of [cycle-model.md](cycle-model.md), zero wait states, "
        "taken-branch "
        "refill P = 2: an estimate, not a measurement.",
        "",
        FLOORS_TEXT,
        "",
    ]
    for r in rows:
        layers = r.get("per_layer") or []
        total_macs = sum(la["macs"] for la in layers) or 1
        total = sum(la["est_cycles"] or 0 for la in layers)
        lines += [
            f"## `{r['model']}`: {mega(total)} est. cycles, {total / total_macs:.2f} cycles/MAC "
            f"(target {t:.2f}: {mega(t * total_macs)})",
            "",
            "| # | layer | kernel | MACs | instructions | est. cycles | cycles/MAC | design floor | "
            f"cycles above {t:.2f}/MAC |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for la in layers:
            cm = f"{la['est_cycles_per_mac']:.2f}" if la.get("est_cycles_per_mac") else "-"
            fl = f"{la['floor_per_mac']:.2f}" if la.get("floor_per_mac") else "-"
            lines.append(
                f"| {la['index']} | {la.get('shape') or la['op']} | {la['kernel'] or '-'} | {la['macs']:,} "
                f"| {la['count']:,} | {la['est_cycles'] or 0:,.0f} | {cm} | {fl} "
                f"| {(la['est_cycles'] or 0) - t * la['macs']:,.0f} |"
            )
        lines += [
            "",
            "| op class | layers | MACs | instructions | est. cycles | share | cycles/MAC "
            "| at the design floors "
            f"| cycles above {t:.2f}/MAC |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        classes = class_rows(layers)
        for k in classes:
            has_macs = k["macs"] and not k["class"].startswith("rest")
            cm = f"{k['est_cycles'] / k['macs']:.2f}" if has_macs else "-"
            fm = f" ({k['floor_cycles'] / k['macs']:.2f}/MAC)" if has_macs else ""
            lines.append(
                f"| {k['class']} | {k['layers']} | {k['macs']:,} | {k['count']:,} | {k['est_cycles']:,.0f} "
                f"| {100 * k['est_cycles'] / (total or 1):.1f}% | {cm} | {k['floor_cycles']:,.0f}{fm} "
                f"| {k['est_cycles'] - t * k['macs']:,.0f} |"
            )
        at_floor = sum(k["floor_cycles"] for k in classes)
        pw = next((k for k in classes if k["class"] == "pointwise 1x1"), None)
        rest_macs = total_macs - (pw["macs"] if pw else 0)
        need = (t * total_macs - (pw["floor_cycles"] if pw else 0)) / (rest_macs or 1)
        lines += [
            "",
            f"Every kernel at its design floor: {mega(at_floor)} est. cycles "
            f"({at_floor / total_macs:.2f}/MAC) "
            f"against the target {mega(t * total_macs)}. With pointwise at its floor, everything else "
            f"({rest_macs:,} MACs) would have to average {need:.2f} cycles/MAC.",
            "",
        ]
    return "\n".join(lines + [GAP_TEXT])


def mega(n: float) -> str:
    return f"{n / 1e6:.2f} M"


def verdict(value: int, target: int | None) -> str:
    if target is None:
        return "-"
    return "met" if value <= target else "not met"


def markdown(rows: list[dict[str, Any]], board: str) -> str:
    lines = [
        f"Emulated instruction counts (QEMU `-icount`, board `{board}`; TFLM figures: TFLM built with its own "
        "flags, measured the same way on the same board). RAM = the linked firmware's RAM (.data + .bss + the "
        "stack reservation, from the ELF), broken down into arena (input and output included) + stack + runtime; "
        "TFLM's figure beside it is its arena alone. Arena lower bound: max "
        "over layers of the arena bytes a layer needs (inputs + output + scratch, an in-place input/output "
        "pair as its overlapped span); max(in + out): the same without in-place overlap or scratch.",
        "",
        "| model (`--patch off`) | TFLM ref | TFLM + CMSIS-NN | tinyml | target | speed-up vs CMSIS-NN "
        "| arena (TFLM) "
        "| linked RAM (target) | = arena + stack + runtime | arena lower bound | max(in + out) | flash (TFLM+CMSIS-NN) | flash target "
        "| bit-exact |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        t, g = TFLM[r["model"]], TARGETS[r["model"]]
        ram_t = f"{g['ram']:,} B" if g["ram"] else "-"
        flash_t = f"{g['flash']:,} B ({verdict(r['flash_bytes'], g['flash'])})" if g["flash"] else "-"
        lines.append(
            f"| `{r['model']}` | {mega(t['ref_instructions'])} | {mega(t['cmsis_instructions'])} "
            f"| **{mega(r['instructions'])}** | {mega(g['instructions'] or 0)} "
            f"({verdict(r['instructions'], g['instructions'])}) "
            f"| {t['cmsis_instructions'] / r['instructions']:.2f}x "
            f"| {r['arena_bytes']:,} B ({t['arena_bytes']:,} B) "
            f"| {r['ram_bytes']:,} B ({ram_t}, {verdict(r['ram_bytes'], g['ram'])}) "
            f"| {r['arena_bytes']:,} + {r['stack_bytes']:,} + {r['runtime_bytes']:,} B "
            f"| {r['lower_bound_bytes']:,} B (layer {r['lower_bound_layer']}) "
            f"| {r['max_in_out_bytes']:,} B (layer {r['max_in_out_layer']}) "
            f"| {r['flash_bytes']:,} B ({t['flash_cmsis']:,} B) | {flash_t} "
            f"| {'yes' if r['bit_exact'] else 'NO'} |"
        )
    lines += patch_markdown(rows)
    lines += cycles_markdown(rows)
    for r in rows:
        if not r.get("per_layer"):
            continue
        lines += ["", f"`{r['model']}` per layer (profiling build):", ""]
        lines += [
            "| # | op | kernel | MACs | instructions | instr/MAC | est. cycles | cycles/MAC | % |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        total = sum(la["count"] for la in r["per_layer"]) or 1
        for la in r["per_layer"]:
            pm = f"{la['per_mac']:.2f}" if la["per_mac"] else "-"
            ec = f"{la['est_cycles']:,.0f}" if la.get("est_cycles") is not None else "-"
            cm = f"{la['est_cycles_per_mac']:.2f}" if la.get("est_cycles_per_mac") else "-"
            lines.append(
                f"| {la['index']} | {la['op']} | {la['kernel'] or '-'} | {la['macs']:,} "
                f"| {la['count']:,} | {pm} | {ec} | {cm} | {100 * la['count'] / total:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--models", type=Path, default=DEFAULT_MODELS,
        help="directory of the reference .tflite files (default: the repo's examples/models)",
    )
    ap.add_argument("--out", type=Path, default=Path("runs/bench-models"), help="where the results go")
    ap.add_argument("--board", default="cortex-m")
    ap.add_argument("--no-per-layer", action="store_true", help="skip the per-layer profiling runs")
    ap.add_argument("--no-cycles", action="store_true", help="skip the cycle estimates (no QEMU plugin)")
    ap.add_argument(
        "--cores", action="store_true",
        help="also instructions and est. cycles on the other emulated DSP cores (M7, M33, M55)",
    )
    ap.add_argument(
        "--kernels-doc", type=Path, metavar="PATH",
        help="write the per-layer cycles/MAC against the kernels' design floors (docs/m4-kernels.md)",
    )
    ap.add_argument("--boards", nargs="?", const="all", metavar="all|BOARD,...",
                    help="instead: linked RAM and instructions, --patch off and auto, on each emulated board")
    a = ap.parse_args(argv)
    if a.kernels_doc and (a.no_per_layer or a.no_cycles):
        ap.error("--kernels-doc needs the per-layer cycle estimates (drop --no-per-layer / --no-cycles)")
    a.out.mkdir(parents=True, exist_ok=True)
    if a.boards:
        return boards_main(a)
    rows: list[dict[str, Any]] = []
    for name in TFLM:
        model = a.models / f"{name}.tflite"
        c = compiled(model)
        b = run_bench(model, a.board, False, a.out / f"{name}.bench.json", not a.no_cycles)
        row: dict[str, Any] = {
            "model": name,
            "board": a.board,
            "instructions": int(b["max"]),
            "bit_exact": bool(b["bit_exact"]),
            "flash_bytes": int(b["flash_bytes"]),
            "stack_peak_bytes": int(b["stack_peak_bytes"]),
            "ram_bytes": int(b["ram_bytes"]),
            "stack_bytes": int(b["stack_bytes"]),
            "runtime_bytes": int(b["ram_bytes"]) - int(b["arena_bytes"]) - int(b["stack_bytes"]),
            **_cycles(b),
            "macs": sum(la.macs for la in c.layers),
            **plan(c),
            **{f"tflm_{k}": v for k, v in TFLM[name].items()},
            **{f"target_{k}": v for k, v in TARGETS[name].items()},
        }
        u = run_bench(model, a.board, False, a.out / f"{name}.auto.json", False, "auto")
        row["auto"] = {"instructions": int(u["max"]), "ram_bytes": int(u["ram_bytes"]),
                       "arena_bytes": int(u["arena_bytes"]), "flash_bytes": int(u["flash_bytes"]),
                       "bit_exact": bool(u["bit_exact"]), "patch_choice": patch_line(u)}
        if not a.no_per_layer:
            pl = run_bench(model, a.board, True, a.out / f"{name}.per_layer.json", not a.no_cycles)
            info = layer_info(c)
            row["per_layer"] = [{**la, **info.get(la["index"], {})} for la in pl["per_layer"]]
        if a.cores:
            row["cores"] = {
                board: core_row(
                    run_bench(model, board, False, a.out / f"{name}.{board}.json", not a.no_cycles)
                )
                for board in DSP_BOARDS
                if board != a.board
            }
        rows.append(row)
    (a.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    scalar = [k for k in rows[0] if k not in ("per_layer", "auto", "cores")]
    with open(a.out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=scalar, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    with open(a.out / "per_layer.csv", "w", newline="") as f:
        w = csv.writer(f)
        keys = ("index", "op", "kernel", "macs", "count", "per_mac", "est_cycles", "est_cycles_per_mac")
        w.writerow(["model", "index", "op", "kernel", "macs", "instructions", "per_mac", "est_cycles",
                    "est_cycles_per_mac"])
        for r in rows:
            for la in r.get("per_layer") or ():
                w.writerow([r["model"], *(la.get(k) for k in keys)])
    md = markdown(rows, a.board) + cores_markdown(rows, a.board)
    (a.out / "results.md").write_text(md)
    print(md)
    print(f"written: {a.out}/results.json, results.csv, per_layer.csv, results.md")
    if a.kernels_doc:
        write_text_atomic(a.kernels_doc, kernels_doc(rows, a.board))
        print(f"written: {a.kernels_doc}")
    exact = all(r["bit_exact"] and r["auto"]["bit_exact"] for r in rows) and all(
        v["bit_exact"] for r in rows for v in r.get("cores", {}).values()
    )
    return 0 if exact else 1


def patch_line(b: dict[str, Any]) -> str:
    from tinyml.compile.patch import report_line

    return report_line(b["patch"]) if b.get("patch") else "-"


def overhead(instructions: int, off: int) -> str:
    return f"{instructions / off - 1:+.1%}"


def choice(line: str) -> str:
    """'layers 0-3 in 6 row bands' out of a report line."""
    return line.split(" -> ", 1)[-1].split(",", 1)[0]


def patch_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The same models with `--patch auto` (the CLI default): measured against the `off` row above."""
    lines = ["", "| model (`--patch auto`, the default) | tinyml | vs off | linked RAM (target) | arena "
             "| flash | bit-exact | the compiler's choice |", "|---|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        u, g = r["auto"], TARGETS[r["model"]]
        lines.append(
            f"| `{r['model']}` | **{mega(u['instructions'])}** "
            f"| {overhead(u['instructions'], r['instructions'])} "
            f"| **{u['ram_bytes']:,} B** ({g['ram_auto']:,} B, {verdict(u['ram_bytes'], g['ram_auto'])}) "
            f"| {u['arena_bytes']:,} B | {u['flash_bytes']:,} B | {'yes' if u['bit_exact'] else 'NO'} "
            f"| {choice(u['patch_choice'])} |"
        )
    return lines


def emulated_boards(spec: str) -> list[str]:
    from tinyml.firmware.boards import board_names, load_board

    names = board_names() if spec == "all" else spec.split(",")
    return [n for n in names if load_board(n).emulated]


def boards_main(a: argparse.Namespace) -> int:
    """Both models, off and auto, on every emulated board: linked RAM, instructions, bit-exact (1 random
    input, 1 run: the counts are exact and repeatable)."""
    rows: list[dict[str, Any]] = []
    for board in emulated_boards(a.boards):
        for name, patch in ((n, p) for n in TFLM for p in PATCHES):
            print(f"bench-boards: {board} {name} --patch {patch}", file=sys.stderr, flush=True)
            b = run_bench(a.models / f"{name}.tflite", board, False, a.out / f"{board}.{name}.{patch}.json",
                          False, patch, random=1)
            rows.append({"board": board, "core": b["device"].get("cpu", ""), "model": name, "patch": patch,
                         "ram_bytes": int(b["ram_bytes"]), "arena_bytes": int(b["arena_bytes"]),
                         "stack_bytes": int(b["stack_bytes"]), "flash_bytes": int(b["flash_bytes"]),
                         "instructions": int(b["max"]), "bit_exact": bool(b["bit_exact"]),
                         "patch_choice": patch_line(b)})
    (a.out / "boards.json").write_text(json.dumps(rows, indent=2) + "\n")
    with open(a.out / "boards.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    md = boards_markdown(rows)
    (a.out / "boards.md").write_text(md)
    print(md)
    print(f"written: {a.out}/boards.json, boards.csv, boards.md")
    return 0 if all(r["bit_exact"] for r in rows) else 1


def boards_markdown(rows: list[dict[str, Any]]) -> str:
    """One line per board and model: linked RAM and instructions with --patch off and auto."""
    lines = [
        "| board (core) | model | linked RAM off | linked RAM auto | instructions off | instructions auto "
        "| overhead | flash | auto's choice | bit-exact |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    by = {(r["board"], r["model"], r["patch"]): r for r in rows}
    for (board, model, patch), r in by.items():
        if patch != "off" or (board, model, "auto") not in by:
            continue
        u = by[(board, model, "auto")]
        lines.append(
            f"| {board} ({r['core']}) | {model} | {r['ram_bytes']:,} B | **{u['ram_bytes']:,} B** "
            f"| {r['instructions']:,} | {u['instructions']:,} "
            f"| {overhead(u['instructions'], r['instructions'])} "
            f"| {u['flash_bytes'] - r['flash_bytes']:+,} B | {choice(u['patch_choice'])} "
            f"| {'yes' if r['bit_exact'] and u['bit_exact'] else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
