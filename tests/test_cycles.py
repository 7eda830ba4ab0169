"""Estimated cycles: the QEMU plugin's exact per-address counts priced by the TRM rules (docs/cycle-model.md).

The micro-benchmarks (tests/data/cycle_bench*.S) are worked out on paper here from the rule tables; the
estimator must reproduce them exactly on every emulated board. This checks the counting and the rules'
arithmetic, not the rules themselves (only a cycle counter on silicon can).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyml.cycles.calibrate import run_spans
from tinyml.cycles.model import decode, decode_insn, rules_for
from tinyml.cycles.profile import Insn
from tinyml.device.bench import bench_model
from tinyml.errors import TinymlError
from tinyml.firmware.boards import load_board

DATA = Path(__file__).parent / "data"
P = 2  # the refill after a taken branch the estimates use (TRM: 1 to 3)

# Cortex-M4 (TRM r0p1 Table 3-1, 3.3.2), worked out per span: fixed cycles + taken branches x P.
M4 = {
    # movs; 10 x (adds, eors, subs, bne): 41 single cycles, 9 taken bne
    "alu": 1 + 10 * 4 + 9 * P,
    # movs; 5 x (ldr 2, ldr pipelined 1, str imm 1, ldr after a store 2, ldr through the loaded register 2,
    # str reg-offset pipelined 1, adds 1, ldr after adds writing its base 2+1, ldrd 3, adds 1,
    # str reg-offset 2,
    # subs 1, bne 1); 4 taken
    "ldst": 1 + 5 * (2 + 1 + 1 + 2 + 2 + 1 + 1 + 3 + 3 + 1 + 2 + 1 + 1) + 4 * P,
    # movs; 4 x (push 4 regs 1+4, pop 1+4, ldm 3 regs 1+3, stmia 2 regs 1+2, mov, subs, bne); 3 taken
    "ldm": 1 + 4 * (5 + 5 + 4 + 3 + 1 + 1 + 1) + 3 * P,
    # movs; 3 x (bl 1+P, bx lr 1+P, bl 1+P, push {r4,lr} 1+2, adds, pop {r4,pc} 1+2+3, subs, bne); 2 taken bne
    "call": 1 + 3 * (1 + 1 + 1 + 3 + 1 + 6 + 1 + 1) + (3 * 3 + 2) * P,
    # movs; 2 x (mul, mla, smull, smlal: 1 each on the M4; subs, bne); 1 taken
    "mul": 1 + 2 * 6 + 1 * P,
}
# Cortex-M3 (TRM r2p1 Table 18-1): MLA 2, SMULL 3-5 and SMLAL 4-7 taken as 5; the rest as the M4.
M3 = M4 | {"mul": 1 + 2 * (1 + 2 + 5 + 5 + 1 + 1) + 1 * P}
# Cortex-M7 approximation: loads 1, LDRD 2, no pipelining/stall pairs, greedy dual issue
# (second of a pair free):
M7 = {
    "alu": 1 + 10 * (1 + 1 + 0 + 1) + 9 * P,  # subs pairs with eors (adds -> eors depend on r1)
    # ldr, ldr, str (pairs? two memory ops: no), ldr, ldr, str, adds (pairs with str: free), ldr, ldrd 2,
    # adds (pairs with ldrd: free), str, subs (free with str), bne (after a paired one: 1)
    "ldst": 1 + 5 * (1 + 1 + 1 + 1 + 1 + 1 + 0 + 1 + 2 + 0 + 1 + 0 + 1) + 4 * P,
    "ldm": 1 + 4 * (5 + 5 + 4 + 3 + 1 + 0 + 1) + 3 * P,  # subs pairs with mov
    "call": 1 + 3 * (1 + 1 + 1 + 3 + 1 + 6 + 1 + 0) + (3 * 3 + 2) * P,  # bne pairs with subs
    "mul": 1 + 2 * (1 + 1 + 1 + 1 + 0 + 1) + 1 * P,  # subs pairs with smlal; multiplies never pair
}
EXPECTED = {"cortex-m": M4, "mps2-an385": M3, "mps2-an505": M4, "mps3-an547": M4, "mps2-an500": M7}
INSTRUCTIONS = {"alu": 41, "ldst": 66, "ldm": 29, "call": 25, "mul": 13}


@pytest.mark.parametrize("board", sorted(EXPECTED))
def test_micro_benchmarks_reproduce_the_rule_arithmetic_exactly(board):
    b = load_board(board)
    got = run_spans(DATA / "cycle_bench.S", b, rules_for(b.mcpu))
    assert {n: e.instructions for n, e in got.items()} == INSTRUCTIONS
    assert {n: e.cycles() for n, e in got.items()} == EXPECTED[board]
    # P only moves taken branches: the band is the same arithmetic with P = 1 and P = 3
    assert got["alu"].band == (EXPECTED[board]["alu"] - 9, EXPECTED[board]["alu"] + 9)


@pytest.mark.parametrize("board", ["cortex-m0", "cortex-m"])
def test_m0plus_rules_price_an_armv6m_stream(board):
    """The ARMv6-M program on the M0 board (QEMU micro:bit) and on the M4 (the same instruction stream),
    priced with the M0+ table."""
    got = run_spans(DATA / "cycle_bench_v6m.S", load_board(board), rules_for("cortex-m0plus"))["v6m"]
    # movs; 4 x (adds 1, muls 1, ldr 2, ldr 2, str 2, push 1+2, pop 1+2, bl 3, bx 2, bl 3, push 1+2,
    # pop {r4,pc} 3+2, subs 1, bne 1 [+1 taken]); b 2 ; 3 taken bne
    per_iter = 1 + 1 + 2 + 2 + 2 + 3 + 3 + 3 + 2 + 3 + 3 + 5 + 1 + 1
    assert got.cycles() == 1 + 4 * per_iter + 3 + 2
    assert got.band == (got.cycles(), got.cycles())  # fixed branch costs: no P band on the M0+
    assert got.instructions == 1 + 4 * 14 + 1


@pytest.mark.parametrize(
    "disas,kind,extra",
    [
        ("ldr.w r1, [r2, #4]", "load", {"addr": {2}, "writes": {1}}),
        ("ldrsb.w r4, [r5], #1", "load", {"addr": {5}}),
        ("str r1, [r4, r6]", "store_reg", {"addr": {4, 6}}),
        ("strb r1, [r4, #3]", "store", {}),
        ("ldrd r1, r2, [r4, #8]", "pair", {}),
        ("pop.w {r4, r5, r6, r7, r8, pc}", "ldm", {"nregs": 6, "to_pc": True}),
        ("push {r4, lr}", "stm", {"nregs": 2, "addr": {13}}),
        ("bne #0x1234", "cbranch", {}),
        ("bls #0x1234", "cbranch", {}),
        ("bl #0x1234", "call", {}),
        ("bx lr", "branch", {}),
        ("cbz r0, #0x20", "cbranch", {}),
        ("smlad r0, r1, r2, r0", "dp", {"writes": {0}}),
        ("smull r1, r2, r3, r6", "lmul", {"writes": {1, 2}}),
        ("cmp r0, #1", "dp", {"writes": set()}),
        ("mov pc, lr", "pcwrite", {}),
        ("vldrb.s16 q0, [r0]", "mve", {}),
        ("vmla.f32 s0, s1, s2", "vmac", {}),
        ("vmov r2, s3", "vfp", {"writes": {2}}),
        ("vmov s0, r1", "vfp", {"writes": set()}),
        ("movne r0, #1", "dp", {"writes": {0}}),
        ("ldrne r0, [r1]", "load", {"addr": {1}}),
        ("sub sp, #8", "dp", {"writes": {13}}),
    ],
)
def test_decode_reads_qemu_disassembly(disas, kind, extra):
    op = decode(disas)
    assert op.kind == kind
    for k, v in extra.items():
        assert getattr(op, k) == (frozenset(v) if isinstance(v, set) else v)


@pytest.mark.parametrize(
    "raw,disas,kind",
    [
        ("4ef001e0", ".byte 0x4e, 0xf0", "dp"),  # DLS lr, lr: capstone in QEMU 7.2 knows no ARMv8.1-M loops
        ("0ff001c0", ".byte 0x0f, 0xf0", "le"),  # LE
        ("99ed001f", "ldc p15, c7, [sb]", "mve"),  # a Helium load in coprocessor space
        ("0868", "ldr r0, [r1]", "load"),
    ],
)
def test_armv81m_instructions_are_read_from_their_bytes(raw, disas, kind):
    assert decode_insn(Insn(0, len(raw) // 2, raw, disas)).kind == kind


def test_board_files_state_flash_wait_states_for_the_memory_bound():
    assert load_board("nucleo-l4r5zi").flash_wait_states == 5  # 120 MHz, soc_stm32l4.c
    assert load_board("nucleo-f767zi").flash_wait_states == 7  # 216 MHz, soc_stm32f7.c
    assert load_board("cortex-m").flash_wait_states is None  # SSRAM: no bound unless asked for


def test_every_board_core_has_rules_and_unknown_cores_are_named():
    for name in ("cortex-m", "mps2-an385", "mps2-an500", "mps2-an505", "mps3-an547", "nucleo-l4r5zi"):
        assert rules_for(load_board(name).mcpu).core.startswith("cortex-m")
    with pytest.raises(TinymlError, match="no cycle model for mcpu 'cortex-a7'"):
        rules_for("cortex-a7")


@pytest.mark.slow
def test_bench_reports_est_cycles_per_run_and_per_layer(refdata, artifacts):
    model = refdata / "models" / "person_detect.tflite"
    r = bench_model(
        model,
        "cortex-m",
        random=2,
        runs=2,
        warmup=1,
        per_layer=True,
        cycles=True,
        flash_wait_states=5,
        build_dir=artifacts / "fw-person-profile",
    )
    cy = r.cycles
    assert r.bit_exact and cy is not None and len(cy.runs) == len(r.counts) == 4
    # the plugin counts exactly the instructions SysTick counts, up to a constant: the call and timer glue
    diffs = {int(d) - c for d, c in zip(cy.instructions, r.counts)}
    assert len(diffs) == 1 and abs(diffs.pop()) <= 16
    # deterministic: the same input gives the same estimate every run
    assert cy.runs[0] == cy.runs[1] and cy.runs[2] == cy.runs[3]
    # an M4 spends more than one cycle per instruction on these kernels (loads, taken branches; 1.16 today)
    assert 1.05 < cy.mean / r.mean < 2.0
    assert cy.band[0] < cy.mean < cy.band[1]
    assert abs(sum(cy.layers) - cy.mean) < 0.001 * cy.mean  # layer spans leave out only the marks
    assert cy.upper_bound(cy.mean) > cy.mean and cy.flash_reads > 0  # weights are read from flash
    doc = r.to_json()
    assert doc["est_cycles"]["min"] <= doc["est_cycles"]["mean"] <= doc["est_cycles"]["max"]
    assert doc["cycle_model"]["core"] == "cortex-m4" and doc["cycle_model"]["rules"] == "cortex-m4/trm-r0p1"
    assert doc["est_cycles"]["with_flash_wait_states"]["wait_states"] == 5
    assert doc["est_cycles"]["functions"][0]["est_cycles"] == cy.functions[0][1]
    assert all("est_cycles_per_mac" in la for la in doc["per_layer"])
    text = r.summary()
    assert "est. cycles" in text and "cycles/MAC" in text and "an estimate, not a measurement" in text
    assert cy.functions[0][0] in text  # the per-function table
    assert "model_invoke:" in cy.listing and "smlad" in cy.listing  # the annotated listing for kernel tuning


def test_cycles_listing_without_cycles_is_refused(refdata, capsys):
    from tinyml import cli

    model = str(refdata / "models" / "person_detect.tflite")
    assert cli.main(["bench", "--model", model, "--cycles-listing", "x.txt"]) == 2
    assert "--cycles-listing needs --cycles" in capsys.readouterr().err


def test_cycles_need_an_emulated_board(refdata):
    with pytest.raises(TinymlError, match="--cycles needs an emulated board"):
        bench_model(
            refdata / "models" / "person_detect.tflite", "cortex-m", port="socket://127.0.0.1:1", cycles=True
        )


def test_plugin_builds_with_the_host_gcc_and_says_so_when_there_is_none(tmp_path, monkeypatch):
    from tinyml.cycles import plugin

    lib = plugin.build_plugin(tmp_path / "libprof.so")
    assert lib.stat().st_size > 0 and b"qemu_plugin_install" in lib.read_bytes()
    monkeypatch.setenv("PATH", str(tmp_path))  # no compiler on PATH
    with pytest.raises(TinymlError, match="needs a host C compiler .*apt-get install gcc"):
        plugin.build_plugin(tmp_path / "other.so")
