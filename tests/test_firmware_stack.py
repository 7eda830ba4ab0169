"""The stack reservation is derived (-fstack-usage + the ELF's call graph), and refused when it cannot be."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tinyml.errors import TinymlError
from tinyml.firmware.stack import EXC_FRAME_BYTES, MARGIN_BYTES, derive, read_su

pytestmark = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")

PROGRAM = r"""
#include <stdint.h>
volatile int32_t sink;
__attribute__((noinline)) static void leaf(int32_t n) {
    volatile int32_t buf[32]; /* 128 B of locals */
    for (int32_t i = 0; i < 32; i++) buf[i] = n + i;
    sink = buf[n & 31];
}
__attribute__((noinline)) static void middle(int32_t n) {
    volatile int32_t buf[8];
    for (int32_t i = 0; i < 8; i++) buf[i] = i;
    leaf(n + buf[n & 7]);
}
__attribute__((noinline)) static void pick(int32_t n) { if (n & 1) leaf(n); else middle(n); }
%(extra)s
void SysTick_Handler(void) { sink++; }
__attribute__((noreturn)) void Reset_Handler(void) {
    for (;;) { pick(sink); %(call)s }
}
"""


def _build(tmp: Path, extra: str = "", call: str = "") -> Path:
    src = tmp / "prog.c"
    src.write_text(PROGRAM % {"extra": extra, "call": call})
    elf = tmp / "prog.elf"
    subprocess.run(
        ["arm-none-eabi-gcc", "-mcpu=cortex-m3", "-mthumb", "-O2", "-fstack-usage", "-nostdlib",
         "-Wl,-e,Reset_Handler", "-Wl,-Ttext=0", "-o", str(elf), str(src)],
        cwd=tmp, check=True, capture_output=True, timeout=120,
    )
    return elf


def test_worst_case_follows_the_deepest_call_chain(tmp_path):
    elf = _build(tmp_path)
    su = read_su(tmp_path)
    r = derive(elf, tmp_path, fpu=False)
    assert r.path == ("Reset_Handler", "pick", "middle", "leaf")
    main = sum(su[f][0] for f in r.path)
    assert su["leaf"][0] >= 128
    assert r.handlers == {"SysTick_Handler": su["SysTick_Handler"][0] + EXC_FRAME_BYTES}
    assert r.worst_bytes == main + r.handlers["SysTick_Handler"]
    assert r.reserved_bytes == (r.worst_bytes + 7) // 8 * 8 + MARGIN_BYTES
    assert "leaf" in r.describe() and f"{MARGIN_BYTES} B margin" in r.describe()


REFUSED = [  # (extra C, call in the main loop, the refusal)
    ("__attribute__((noinline)) int32_t rec(int32_t n) {\n"
     "    return n <= 0 ? 0 : rec(n - 1) * sink + rec(n - 2);\n}",
     "sink = rec(sink);", r"stack: recursion rec > rec; refusing to guess"),
    ("__attribute__((noinline)) void run(void (*f)(int32_t)) { f(sink); }\nvoid (*volatile hook)(int32_t);",
     "run(hook);", r"stack: run calls through a function pointer .* refusing to guess"),
]


@pytest.mark.parametrize("extra,call,message", REFUSED, ids=["recursion", "function_pointer"])
def test_what_cannot_be_bounded_is_refused(tmp_path, extra, call, message):
    elf = _build(tmp_path, extra, call)
    with pytest.raises(TinymlError, match=message):
        derive(elf, tmp_path, fpu=False)
