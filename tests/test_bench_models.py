"""scripts/bench_models.py's kernel report (docs/m4-kernels.md): design floors and the per-class split, on
hand-made per-layer rows (no board: the bench runs themselves are covered by the device tests)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_models.py"


@pytest.fixture(scope="module")
def bm():
    spec = importlib.util.spec_from_file_location("bench_models", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_design_floors_follow_the_inner_loops(bm):
    # pointwise: 27 cycles per 24 MACs plus 51 per pair of channels over 3 pixels x 2 channels x depth (48
    # with exactly 4 or 8 groups), and the widening (27 per group of 4 depth values) of each block of 3
    # pixels over its 3 x depth x out_c MACs
    assert bm.floor_per_mac("conv2d_1x1_s8", 128) == pytest.approx((27 * 32 + 51) / (6 * 128))
    assert bm.floor_per_mac("conv2d_1x1_s8", 128, 128) == pytest.approx(
        (27 * 32 + 51) / (6 * 128) + 27 * 32 / (3 * 128 * 128))
    assert bm.floor_per_mac("conv2d_1x1_s8", 16, 32, align=4) == pytest.approx(
        (27 * 4 + 48) / (6 * 16) + 27 * 4 / (3 * 16 * 32))
    # stride 1, ReLU with out_zp -128, depth <= 128: blocks of four pixels (34 cycles per 32 MACs, 60 a pair
    # of channels, the widening 34 a group per block) first; 36 pixels are nine blocks, 9 stay in threes
    assert bm.floor_per_mac("conv2d_1x1_s8", 128, 128, align=4, pixels=36) == pytest.approx(
        (34 * 32 + 60) / (8 * 128) + 34 * 32 / (4 * 128 * 128))
    assert bm.floor_per_mac("conv2d_1x1_s8", 128, 256, align=4, pixels=9) == pytest.approx(
        bm.floor_per_mac("conv2d_1x1_s8", 128, 256, align=4))
    # depth 8 under ReLU with out_zp -128: the thin kernel (28.5 per channel of two pixels, 27 per pixel pair)
    assert bm.floor_per_mac("conv2d_1x1_s8", 8, 16, align=4) == pytest.approx(28.5 / 16 + 27 / 256)
    assert bm.floor_per_mac("conv2d_1x1_s8", 8, 16) == pytest.approx((27 * 2 + 51) / 48 + 54 / 384)
    # im2col: the 27-value patch padded to 32 for the pointwise engine; 3x3 RGB under ReLU with out_zp -128
    # and the grayscale layer take the first-layer engine (12 K + 42 a pass of 3 pixels x 2 channels)
    assert bm.floor_per_mac("conv2d_im2col_s8", 27) == pytest.approx((27 * 8 + 51) / (6 * 27))
    assert bm.floor_per_mac("conv2d_im2col_s8", 27, 8, align=4) == pytest.approx(
        (4 * (12 * 14 + 36.5) + 3 * 44 + 11) / 648)  # exactly 8 channels: the relu8 engine
    assert bm.floor_per_mac("conv2d_im2col_s8", 27, 6, align=4) == pytest.approx(
        210 / 162 + 44 / 162 + 12 / 486)
    assert bm.floor_per_mac("conv2d_3x3_1ch_s8", 9, 8) == pytest.approx((4 * 96.5 + 3 * 19 + 11) / 216)
    # depthwise: stride 2 one pixel at a time; stride 1 the pixel-pair window's four-pixel passes
    assert bm.floor_per_mac("depthwise_conv2d_3x3_s8", 9, 8, 2) == pytest.approx(3.5)
    assert bm.floor_per_mac("depthwise_conv2d_3x3_s8", 9, 8, 1, out_w=48) == pytest.approx(
        (81 * 12 + 14) / (36 * 12) + 0.125)
    assert bm.floor_per_mac("depthwise_conv2d_3x3_s8", 9, 8, 1, out_w=6) == pytest.approx(132.5 / 54 + 0.15)
    assert bm.floor_per_mac("avg_pool2d_s8", 9) is None


def layer(index, kernel, macs, cycles, floor):
    return {"index": index, "op": "X", "kernel": kernel, "macs": macs, "count": cycles // 2,
            "est_cycles": cycles, "est_cycles_per_mac": cycles / macs if macs else None,
            "floor_per_mac": floor, "shape": f"layer {index}"}


def test_kernels_doc_splits_cycles_by_class_against_the_floors(bm):
    layers = [
        layer(0, "conv2d_3x3_1ch_s8", 1000, 5000, 3.0),
        layer(1, "depthwise_conv2d_3x3_s8", 1000, 4000, 3.5),
        layer(2, "conv2d_1x1_s8", 10000, 14000, 1.2),
        layer(3, "avg_pool2d_s8", 0, 300, None),
    ]
    classes = {k["class"]: k for k in bm.class_rows(layers)}
    assert classes["depthwise 3x3"]["floor_cycles"] == pytest.approx(3500)
    assert classes["pointwise 1x1"]["floor_cycles"] == pytest.approx(12000)
    assert classes["first layer (conv2d_3x3_1ch_s8)"]["est_cycles"] == 5000
    assert classes["rest (pool, FC, softmax, ...)"]["floor_cycles"] == 300  # no floor: as measured
    doc = bm.kernels_doc([{"model": "m", "per_layer": layers}], "cortex-m")
    assert "## `m`: 0.02 M est. cycles, 1.94 cycles/MAC (target 1.20: 0.01 M)" in doc
    # every kernel at its floor: 3000 + 3500 + 12000 + 300; pointwise at its floor leaves 1.2 x 12000 - 12000
    # for the other 2000 MACs
    assert "Every kernel at its design floor: 0.02 M est. cycles (1.57/MAC)" in doc
    assert "everything else (2,000 MACs) would have to average 1.20 cycles/MAC" in doc
    assert "| 2 | layer 2 | conv2d_1x1_s8 | 10,000 | 7,000 | 14,000 | 1.40 | 1.20 | 2,000 |" in doc
