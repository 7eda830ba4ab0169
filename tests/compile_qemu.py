"""Run compiled models on an emulated Cortex-M (QEMU mps2 boards) for the compiler tests (outputs, cost).

Test-only bare-metal harness (vector table, semihosting output and exit, SysTick): the product's firmware
lives in tinyml/firmware; this exists so the kernels' SIMD paths, which the host cannot run, are checked bit
for bit.
With `-icount shift=0` one instruction is one virtual nanosecond and SysTick runs at 25 MHz, so
instructions = ticks x 40 (FACTS.md), exact and repeatable. The Cortex-M0 (micro:bit) counts at 16 MHz:
there shift 7 (128 ns an instruction, 2.048 ticks) makes round(ticks x 62.5 / 128) exact, and a wrap interrupt
extends SysTick's 24 bits (its few instructions, one wrap per 8.2 M instructions, are left in: a guard only).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

BOARDS = {  # name -> (QEMU machine and its options, gcc CPU flags, icount shift, SysTick ns per tick)
    "cortex-m4": (["mps2-an386"], ["-mcpu=cortex-m4", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"], 0, 40.0),
    "cortex-m3": (["mps2-an385"], ["-mcpu=cortex-m3", "-mfloat-abi=soft"], 0, 40.0),
    "cortex-m7": (["mps2-an500"], ["-mcpu=cortex-m7", "-mfloat-abi=hard", "-mfpu=fpv5-d16"], 0, 40.0),
    "cortex-m0": (
        ["microbit", "-global", "nrf51-soc.flash-size=0x400000", "-global", "nrf51-soc.sram-size=0x400000"],
        ["-mcpu=cortex-m0plus", "-mfloat-abi=soft", "-masm-syntax-unified"],
        7,
        62.5,
    ),
}

LINK_LD = """
MEMORY { FLASH (rx) : ORIGIN = 0x00000000, LENGTH = 4M
         RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 4M }
ENTRY(reset_handler)
SECTIONS {
  .text : { KEEP(*(.vectors)) *(.text*) *(.rodata*) . = ALIGN(4); } > FLASH
  .ARM.exidx : { *(.ARM.exidx*) } > FLASH
  _sidata = LOADADDR(.data);
  .data : { _sdata = .; *(.data*) . = ALIGN(4); _edata = .; } > RAM AT > FLASH
  .bss (NOLOAD) : { _sbss = .; *(.bss*) *(COMMON) . = ALIGN(4); _ebss = .; } > RAM
  _estack = ORIGIN(RAM) + LENGTH(RAM);
}
"""

MAIN_C = r"""
#include <stdint.h>
%(includes)s
extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);
void reset_handler(void) {
    uint32_t *s = &_sidata, *d = &_sdata;
    while (d < &_edata) *d++ = *s++;
    for (d = &_sbss; d < &_ebss;) *d++ = 0;
#if defined(__ARM_FP)
    *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20; /* enable the FPU */
#endif
    main();
    for (;;) {}
}
void default_handler(void) { for (;;) {} }
static volatile uint32_t wraps;
void systick_handler(void) { wraps = wraps + 1; }
__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))&_estack, reset_handler, default_handler, default_handler, default_handler,
    default_handler, default_handler, 0, 0, 0, 0, default_handler, default_handler, 0, default_handler,
    systick_handler};
static int semihost(int op, void *arg) {
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}
static char line[%(line)d];
static char *put_u(char *p, uint32_t v) {
    char b[12]; int i = 0;
    do { b[i++] = (char)('0' + v %% 10); v /= 10; } while (v);
    while (i) *p++ = b[--i];
    return p;
}
#define SYST ((volatile uint32_t *)0xE000E010)
/* SysTick ticks since start, counting up (wraps of the 24-bit counter from the interrupt) */
static uint32_t now(void) {
    uint32_t w, v;
    do { w = wraps; v = SYST[2]; } while (w != wraps);
    return (w << 24) + (0xFFFFFFu - v);
}
static uint32_t marks[%(max_layers)d + 1];
#ifdef TINYML_PROFILE
void tinyml_profile_mark(int layer) { marks[layer + 1] = now(); }
#endif
static int8_t output[%(max_out)d];
typedef int (*invoke_fn)(const int8_t *, int8_t *);
static void run(int model, invoke_fn invoke, const int8_t *inputs, uint32_t count, uint32_t in_bytes,
                uint32_t out_bytes, int layers) {
    static const char hex[] = "0123456789abcdef";
    for (uint32_t n = 0; n < count; ++n) {
        const uint32_t t0 = now();
        invoke(inputs + n * in_bytes, output);
        const uint32_t t1 = now();
        char *p = line;
        *p++ = 'Y'; *p++ = ' ';
        p = put_u(p, (uint32_t)model); *p++ = ' ';
        p = put_u(p, t1 - t0); *p++ = ' ';
        for (uint32_t i = 0; i < out_bytes; ++i) {
            *p++ = hex[((uint8_t)output[i]) >> 4]; *p++ = hex[((uint8_t)output[i]) & 15];
        }
        *p++ = '\n'; *p = 0;
        semihost(0x04, line);
        for (int i = 0; n == 0 && i < layers; ++i) {
            p = line; *p++ = 'L'; *p++ = ' ';
            p = put_u(p, (uint32_t)model); *p++ = ' ';
            p = put_u(p, (uint32_t)i); *p++ = ' ';
            p = put_u(p, marks[i + 1] - marks[i]);
            *p++ = '\n'; *p = 0;
            semihost(0x04, line);
        }
    }
}
int main(void) {
    SYST[1] = 0xFFFFFF; SYST[2] = 0; SYST[0] = 7;
    while (SYST[2] == 0) {}
%(calls)s
    uint32_t block[2] = {0x20026, 0};
    semihost(0x20, block);
    return 0;
}
"""


def available() -> bool:
    return bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))


def build(
    models: list[tuple[Path, str, np.ndarray, int]],
    board: str,
    work: Path,
    opt: str = "-O2",
    profile: bool = False,
) -> Path:
    """One firmware ELF that runs every model (dir, name, inputs [N, in_bytes], out_bytes) on its inputs,
    printing outputs and SysTick ticks. Names must differ; the models share their kernels (weak symbols)."""
    work.mkdir(parents=True, exist_ok=True)
    _, cpu, _, _ = BOARDS[board]
    (work / "link.ld").write_text(LINK_LD)
    includes, calls, data = [], [], []
    for i, (_, name, inputs, out_bytes) in enumerate(models):
        includes.append(f'#include "{name}.h"')
        flat = ",".join(str(int(v)) for v in inputs.reshape(-1))
        data.append(f"static const int8_t inputs_{i}[] = {{{flat}}};")
        layers = f"{name.upper()}_NUM_LAYERS" if profile else "0"
        calls.append(
            f"    run({i}, {name}_invoke, inputs_{i}, {len(inputs)}u, {inputs.shape[1]}u, {out_bytes}u, "
            f"{layers});"
        )
    max_out = max(m[3] for m in models)
    text = MAIN_C % {
        "includes": "\n".join(includes) + "\n" + "\n".join(data),
        "calls": "\n".join(calls),
        "line": 2 * max_out + 64,
        "max_out": max_out,
        "max_layers": 256,
    }
    (work / "main.c").write_text(text)
    srcs, seen = [], set()
    for model_dir, _, _, _ in models:
        for p in sorted(model_dir.glob("*.c")):
            if p.name.endswith("_tflite.c") or (p.name.endswith("_s8.c") and p.name in seen):
                continue  # kernels are identical copies: compile one
            seen.add(p.name)
            srcs.append(str(p))
    elf = work / "fw.elf"
    incs = [f"-I{m[0]}" for m in models]
    cmd = [
        "arm-none-eabi-gcc",
        "-std=c11",
        opt,
        "-mthumb",
        *cpu,
        "-Wall",
        "-Wextra",
        "-Werror",
        "-ffunction-sections",
        "-fdata-sections",
        "-Wl,--gc-sections",
        "--specs=nano.specs",
        "-nostartfiles",
        "-T",
        str(work / "link.ld"),
        *incs,
        *(["-DTINYML_PROFILE"] if profile else []),
        *srcs,
        str(work / "main.c"),
        "-o",
        str(elf),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"firmware build failed:\n{r.stderr[:3000]}")
    return elf


def run(elf: Path, board: str, timeout: float = 300) -> dict[int, dict]:
    """model index -> {"outputs": [N, out_bytes] int8, "instructions": [N], "layers": [per layer]}."""
    machine, _, shift, tick_ns = BOARDS[board]
    cmd = [
        "qemu-system-arm",
        "-M",
        *machine,
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        "none",
        "-icount",
        f"shift={shift},align=off,sleep=off",
        "-semihosting-config",
        "enable=on,target=native",
        "-kernel",
        str(elf),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode:
        raise RuntimeError(f"QEMU exited with {r.returncode}: {r.stderr[:500]}")
    res: dict[int, dict] = {}
    for line in (r.stdout + r.stderr).splitlines():  # semihosting console output goes to stderr
        parts = line.split()
        if len(parts) == 4 and parts[0] == "Y":
            m = res.setdefault(int(parts[1]), {"outputs": [], "instructions": [], "layers": []})
            m["instructions"].append(round(int(parts[2]) * tick_ns / (1 << shift)))
            m["outputs"].append(np.frombuffer(bytes.fromhex(parts[3]), np.uint8).view(np.int8))
        elif len(parts) == 4 and parts[0] == "L":
            res[int(parts[1])]["layers"].append(round(int(parts[3]) * tick_ns / (1 << shift)))
    for m in res.values():
        m["outputs"] = np.stack(m["outputs"])
    return res
