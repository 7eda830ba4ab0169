"""Compiled models on emulated Cortex-M cores (QEMU): bit-exact with TFLM; the reference models' M4 cost.

The host cannot run the SIMD (DSP) kernel paths; here every op case and both reference models run on the
Cortex-M4 and Cortex-M7 (DSP), Cortex-M3 (plain C on Arm) and Cortex-M0 (ARMv6-M) boards, all models linked
into one firmware per core.
"""

from __future__ import annotations

import compile_qemu as cq
import numpy as np
import pytest
from compile_cases import CASES, PER_TENSOR_FC, case_models  # noqa: F401 (fixture)

from tinyml.compile import compile_tflite
from tinyml.errors import TinymlError
from tinyml.tflm import TflmReference

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not cq.available(), reason="needs arm-none-eabi-gcc and QEMU"),
]

SHARED = ("person_detect", "vww_96_int8")
# emulated Cortex-M4 instructions per inference (issue 8 targets: 11.5 M and 12.0 M; TFLM+CMSIS-NN: 22.9 M and
# 24.1 M): a regression guard at today's figures. Issue 16 optimizes M4 cycles (pipelined loads, fused
# requantization, a pixel-pair window for stride-1 depthwise, four-pixel pointwise blocks, a thin depth-8
# kernel, a first-layer engine): 10.79 M -> 9.10 M and 11.44 M -> 9.47 M instructions for 15.96 M ->
# 10.56 M and 16.86 M -> 10.95 M estimated cycles (tinyml bench --cycles).
MAX_INSTRUCTIONS = {"person_detect": 9_130_000, "vww_96_int8": 9_500_000}
MAX_ARENA = {"person_detect": 40_000, "vww_96_int8": 48_000}  # issue 8 RAM targets
# person_detect firmware (tinyml export, cortex-m): issue 8 asked for 250,000 B; issue 16 allows its faster
# kernels the flash at its filing (248,344 B) + 10%
MAX_FLASH = 273_000
# emulated Cortex-M0 (ARMv6-M) instructions per inference (issue 18; plain C before: 128.2 M and 126.6 M): a
# regression guard at today's figures
MAX_INSTRUCTIONS_M0 = {"person_detect": 40_100_000, "vww_96_int8": 43_500_000}


@pytest.fixture(scope="module")
def arm_models(case_models, refdata, artifacts):  # noqa: F811
    """name -> (Compiled, dir, inputs, TFLM outputs): every case and both reference models, own prefixes."""
    paths = {**case_models, **{n: refdata / "models" / f"{n}.tflite" for n in SHARED}}
    out = {}
    for i, (name, path) in enumerate(sorted(paths.items())):
        prefix = f"m{i}"
        d = artifacts / "arm" / prefix
        c = compile_tflite(path, d, prefix)
        t_in = c.model.tensors[c.model.inputs[0]]
        xs = np.random.default_rng(i).integers(-128, 128, (4, t_in.nbytes), np.int8)
        xs[0] = -128
        ref = TflmReference(c.model.data)
        want = np.stack([ref.invoke(x).reshape(-1).view(np.int8) for x in xs])
        out[name] = (c, d, xs, want)
    return out


@pytest.mark.parametrize("board", ["cortex-m4", "cortex-m7", "cortex-m3", "cortex-m0"])
def test_all_models_bit_exact_on_arm(arm_models, artifacts, board):
    names = sorted(arm_models)
    models = [(d, c.name, xs, want.shape[1]) for c, d, xs, want in (arm_models[n] for n in names)]
    elf = cq.build(models, board, artifacts / "arm" / f"fw-{board}")
    res = cq.run(elf, board)
    for i, name in enumerate(names):
        want = arm_models[name][3]
        np.testing.assert_array_equal(res[i]["outputs"], want, err_msg=f"{name} on {board}")


@pytest.mark.parametrize("name", SHARED)
def test_shared_model_cost_on_cortex_m4(arm_models, artifacts, name):
    c, d, xs, want = arm_models[name]
    elf = cq.build(
        [(d, c.name, xs[:2], want.shape[1])], "cortex-m4", artifacts / "arm" / f"cost-{name}", profile=True
    )
    res = cq.run(elf, "cortex-m4")[0]
    np.testing.assert_array_equal(res["outputs"], want[:2])
    instructions = res["instructions"][0]
    print(f"{name}: {instructions:,} instructions on the emulated Cortex-M4, arena {c.plan.arena_bytes:,} B")
    assert len(res["layers"]) == len(c.layers)
    assert instructions <= MAX_INSTRUCTIONS[name]
    assert c.plan.arena_bytes <= MAX_ARENA[name]


@pytest.mark.parametrize("name", SHARED)
def test_shared_model_cost_on_cortex_m0(arm_models, artifacts, name):
    """ARMv6-M (no DSP, no divide): bit-exact, per-layer counts add up, and the instruction guard."""
    c, d, xs, want = arm_models[name]
    work = artifacts / "arm" / f"m0-{name}"
    elf = cq.build([(d, c.name, xs[:1], want.shape[1])], "cortex-m0", work, profile=True)
    res = cq.run(elf, "cortex-m0")[0]
    np.testing.assert_array_equal(res["outputs"], want[:1])
    instructions = res["instructions"][0]
    print(f"{name}: {instructions:,} instructions on the emulated Cortex-M0")
    assert len(res["layers"]) == len(c.layers)
    assert abs(sum(res["layers"]) - instructions) < 0.001 * instructions
    assert instructions <= MAX_INSTRUCTIONS_M0[name]


def test_person_detect_firmware_flash(refdata, tmp_path):
    """The product firmware (runtime + model) for person_detect on cortex-m fits the issue 8 flash target."""
    from tinyml.firmware.boards import load_board
    from tinyml.firmware.project import build_project, export_project

    project = export_project(
        refdata / "models" / "person_detect.tflite", load_board("cortex-m"), tmp_path / "p"
    )
    fp = build_project(project).footprint
    print(f"person_detect firmware on cortex-m: flash {fp.flash_bytes:,} B, RAM {fp.ram_bytes:,} B")
    assert fp.flash_bytes <= MAX_FLASH


MULHR_TEST = r"""
#include <stdint.h>
#include "tinyml_kernels.h"
int32_t ref_mulhr(int32_t a, int32_t m);
extern uint32_t _estack;
static void semihost_exit(uint32_t code) {
    uint32_t block[2] = {0x20026, code};
    register int r0 __asm__("r0") = 0x20;
    register void *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
}
void reset_handler(void) {
    static const int32_t ea[] = {0, 1, -1, 32767, -32768, 65535, 65536, -65536, -65537, INT32_MAX, INT32_MIN,
                                 INT32_MIN + 1, 1 << 30, -(1 << 30)};
    static const int32_t em[] = {0, 1, 65535, 65536, 1 << 30, (1 << 30) + 1, INT32_MAX, 0x7FFF8000,
                                 1924145349};
    uint32_t x = 2463534242u, bad = 0;
    for (unsigned i = 0; i < sizeof ea / 4; i++)
        for (unsigned j = 0; j < sizeof em / 4; j++)
            bad += tinyml_mulhr_v6m(ea[i], em[j]) != ref_mulhr(ea[i], em[j]);
    for (uint32_t i = 0; i < 1000000u; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        int32_t a = (int32_t)x;
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        const int32_t m = (int32_t)(x >> 1);
        if (i & 1) a >>= (x & 31);
        bad += tinyml_mulhr_v6m(a, m) != ref_mulhr(a, m);
    }
    semihost_exit(bad ? 1 : 0);
    for (;;) {}
}
__attribute__((section(".vectors"), used)) static void (*const vectors[2])(void) = {
    (void (*)(void))&_estack, reset_handler};
"""
MULHR_REF = "#define TINYML_MULHR_C 1\n#include \"tinyml_kernels.h\"\n" \
    "int32_t ref_mulhr(int32_t a, int32_t m);\n" \
    "int32_t ref_mulhr(int32_t a, int32_t m) { return tinyml_mulhr_v6m(a, m); }\n"


def test_v6m_requant_multiply_matches_the_c_reference_on_cortex_m0(tmp_path):
    """The ARMv6-M asm of SMMULR's rounding high multiply (4 MULS) against its C form (itself checked against
    the int64 product on the host) on a million random and the edge operands, on the emulated Cortex-M0."""
    import subprocess
    from importlib import resources

    kdir = str(resources.files("tinyml.compile").joinpath("kernels"))
    (tmp_path / "t.c").write_text(MULHR_TEST)
    (tmp_path / "r.c").write_text(MULHR_REF)
    (tmp_path / "l.ld").write_text(
        "MEMORY { FLASH (rx) : ORIGIN = 0, LENGTH = 256K\n RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 16K }\n"
        "ENTRY(reset_handler)\nSECTIONS { .text : { KEEP(*(.vectors)) *(.text*) *(.rodata*) } > FLASH\n"
        " .bss : { *(.bss*) *(COMMON) } > RAM\n _estack = ORIGIN(RAM) + LENGTH(RAM); }\n"
    )
    elf = tmp_path / "t.elf"
    cc = ["arm-none-eabi-gcc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-mthumb",
          "-mcpu=cortex-m0plus", "-mfloat-abi=soft", "-I", kdir, "-nostartfiles",
          "-T", str(tmp_path / "l.ld"), str(tmp_path / "t.c"), str(tmp_path / "r.c"), "-o", str(elf)]
    r = subprocess.run(cc, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True).stdout
    assert dis.count("muls") >= 8  # both forms are in the image
    run = subprocess.run(["qemu-system-arm", "-M", "microbit", "-display", "none", "-monitor", "none",
                          "-serial", "none", "-semihosting-config", "enable=on,target=native",
                          "-kernel", str(elf)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, "the asm and the C rounding high multiply differ"


def test_host_c_mulhr_matches_int64(tmp_path):
    """The C form of the ARMv6-M rounding high multiply equals (a * m + 2^31) >> 32 in int64 (on the host)."""
    import subprocess
    from importlib import resources

    kdir = str(resources.files("tinyml.compile").joinpath("kernels"))
    src = tmp_path / "h.c"
    src.write_text(
        "#include <stdio.h>\n#include \"tinyml_kernels.h\"\n"
        "int main(void) { unsigned long long x = 88172645463325252ull, bad = 0;\n"
        "  for (long i = 0; i < 20000000; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17;\n"
        "    int32_t a = (int32_t)x, m = (int32_t)((x >> 32) & 0x7FFFFFFF); if (i & 1) a >>= (x >> 59);\n"
        "    if (i == 0) { a = INT32_MIN; m = INT32_MAX; }\n"
        "    bad += tinyml_mulhr_v6m(a, m) != (int32_t)(((int64_t)a * m + ((int64_t)1 << 31)) >> 32); }\n"
        "  return bad != 0; }\n"
    )
    exe = tmp_path / "h"
    r = subprocess.run(["cc", "-std=c11", "-O2", "-Wall", "-Werror", "-I", kdir, str(src), "-o", str(exe)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert subprocess.run([str(exe)], timeout=120).returncode == 0


def test_a_minus_128_weight_keeps_a_layer_off_the_lane_engine(case_models, artifacts, tmp_path):  # noqa: F811
    """The ARMv6-M engine sums two products per 16-bit lane, exact only for |w| <= 127: a pointwise layer
    with a -128 weight (legal int8, rare from converters) takes the reference kernel, bit-exact on the M0."""
    from tinyml.compile.tflite import parse

    src = case_models["conv1x1_deep_relu6"]
    data = bytearray(src.read_bytes())
    model = parse(bytes(data))
    (conv,) = [op for op in model.operators if op.op == "CONV_2D"]
    w = model.tensors[conv.inputs[1]]
    at = bytes(data).find(w.data)
    assert at > 0 and bytes(data).find(w.data, at + 1) < 0
    data[at + 5] = 0x80  # one weight -> -128
    patched = tmp_path / "m128.tflite"
    patched.write_bytes(bytes(data))
    before = compile_tflite(src, tmp_path / "before", "m1")
    c = compile_tflite(patched, tmp_path / "c", "m128")
    assert [la.kernel for la in before.layers] == ["conv2d_1x1_s8"]
    assert [la.kernel for la in c.layers] == ["conv2d_s8"]
    t_in = c.model.tensors[c.model.inputs[0]]
    xs = np.random.default_rng(7).integers(-128, 128, (3, t_in.nbytes), np.int8)
    xs[0] = -128
    ref = TflmReference(c.model.data)
    want = np.stack([ref.invoke(x).reshape(-1).view(np.int8) for x in xs])
    elf = cq.build([(tmp_path / "c", "m128", xs, want.shape[1])], "cortex-m0", tmp_path / "fw")
    np.testing.assert_array_equal(cq.run(elf, "cortex-m0")[0]["outputs"], want)


@pytest.fixture(scope="module")
def arm_patched(arm_models, artifacts):
    """name -> (Compiled, dir, inputs, TFLM outputs) compiled with patches: every case that has a convolution
    stage in 3 (or 2) row bands, the reference models with --patch auto and 4 bands."""
    out = {}
    for i, (name, (c0, _, xs, want)) in enumerate(sorted(arm_models.items())):
        settings = ["auto", 4] if name in SHARED else [3, 2]
        for setting in settings:
            prefix = f"p{i}_{setting}"
            try:
                c = compile_tflite(c0.model.path, artifacts / "arm" / prefix, prefix, patch_setting=setting)
            except TinymlError:
                continue  # no convolution stage, or fewer rows than bands
            assert c.patch is not None, (name, setting)
            out[f"{name}/{setting}"] = (c, artifacts / "arm" / prefix, xs, want)
            if name not in SHARED:
                break
    return out


@pytest.mark.parametrize("board", ["cortex-m4", "cortex-m3"])
def test_patched_models_bit_exact_on_arm(arm_patched, artifacts, board):
    """Row-band patches recompute their halos with the same integer kernels: outputs equal TFLM's."""
    names = sorted(arm_patched)
    assert len(names) > 15 and {"person_detect/auto", "vww_96_int8/auto", "mini_mobilenet/3"} <= set(names)
    models = [(d, c.name, xs, want.shape[1]) for c, d, xs, want in (arm_patched[n] for n in names)]
    elf = cq.build(models, board, artifacts / "arm" / f"fw-patched-{board}")
    res = cq.run(elf, board)
    for i, name in enumerate(names):
        np.testing.assert_array_equal(res[i]["outputs"], arm_patched[name][3], err_msg=f"{name} on {board}")
