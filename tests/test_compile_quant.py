"""Requantization parameters (Python) and the C rounding primitives against INT8.md's definitions."""

from __future__ import annotations

import subprocess
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from tinyml.compile import quant
from tinyml.compile.host import CFLAGS, host_cc


@pytest.mark.parametrize(
    "r,expected",
    [
        (0.0035, (1924145349, -8)),
        (0.0, (0, 0)),
        (1.0, (2**30, 1)),
        (0.5, (2**30, 0)),
        (2.0**-40, (0, 0)),
        (1153829913 * 2.0**-28, (1153829913, 3)),
    ],
)
def test_quantize_multiplier(r, expected):
    assert quant.quantize_multiplier(r) == expected


def test_mean_multiplier_folds_one_over_n():
    # INT8.md §9: 9x9 global average with r = 4.2984 (M = 1153829913, e = 3) -> k = 6, M' = 911668079, e' = -3
    assert quant.mean_multiplier(1153829913 * 2.0**-28, 1.0, 81) == (911668079, -3)


@pytest.mark.parametrize("s_in,expected", [(1 / 16, (2**30, 23, -248)), (100.0, (2**31 - 1, 31, 0))])
def test_softmax_params(s_in, expected):
    assert quant.softmax_params(1.0, s_in) == expected


def _srdhm(a: int, b: int) -> int:
    if a == b == -(2**31):
        return 2**31 - 1
    p = a * b
    p += 2**30 if p >= 0 else 1 - 2**30
    return int(p / 2**31) if abs(p) < 2**52 else (abs(p) // 2**31) * (1 if p >= 0 else -1)


def _rdbpot(x: int, k: int) -> int:
    mask = (1 << k) - 1
    rem, thr = x & mask, (mask >> 1) + (1 if x < 0 else 0)
    return (x >> k) + (1 if rem > thr else 0)


def _wrap32(v: int) -> int:
    return (v + 2**31) % 2**32 - 2**31


def _mbqm(x: int, m: int, e: int) -> int:
    left, right = max(e, 0), max(-e, 0)
    return _rdbpot(_srdhm(_wrap32(x * 2**left), m), right)


PROBE = r"""
#include <stdio.h>
#include "tinyml_kernels.h"
int main(void) {
    long x, m, e;
    while (scanf("%ld %ld %ld", &x, &m, &e) == 3) {
        printf("%ld %ld\n", (long)tinyml_requant((int32_t)x, (int32_t)m, (int32_t)e),
               (long)tinyml_srdhm((int32_t)x, (int32_t)m));
    }
    return 0;
}
"""


def test_c_requantization_matches_int8_md(tmp_path: Path):
    kdir = Path(str(resources.files("tinyml.compile").joinpath("kernels")))
    (tmp_path / "probe.c").write_text(PROBE)
    exe = tmp_path / "probe"
    subprocess.run(
        [host_cc(), *CFLAGS, "-I", str(kdir), str(tmp_path / "probe.c"), "-o", str(exe)], check=True
    )
    rng = np.random.default_rng(0)
    cases = [(7, 2**30, -3), (-7, 2**30, -3), (-8, 2**30, -3), (-24, 2**30, -3)]  # INT8.md §2 probes
    cases += [(int(x), 2**30, -3) for x in range(-2000, 2001)]
    cases += [(2**31 - 1, 2**31 - 1, 0), (-(2**31), 2**31 - 1, -31), (-(2**31), 2**30, 0), (12345, 0, 0)]
    for _ in range(3000):
        e = int(rng.integers(-31, 8))
        cases.append(
            (
                int(rng.integers(-(2**31), 2**31)) >> int(rng.integers(0, 31)),
                int(rng.integers(2**30, 2**31)),
                e,
            )
        )
    text = "".join(f"{x} {m} {e}\n" for x, m, e in cases)
    out = subprocess.run([str(exe)], input=text, capture_output=True, text=True, check=True).stdout.split(
        "\n"
    )
    got = [tuple(int(v) for v in line.split()) for line in out if line]
    want = [(_mbqm(x, m, e), _srdhm(x, m)) for x, m, e in cases]
    assert got[:4] == [(1, 4), (0, -3), (-1, -4), (-2, -12)]
    bad = [(c, g, w) for c, g, w in zip(cases, got, want, strict=True) if g != w]
    assert not bad, bad[:5]
