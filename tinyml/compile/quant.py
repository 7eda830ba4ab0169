"""TFLM's integer requantization parameters, computed exactly as the interpreter does (see shared/INT8.md).

Everything that involves floats happens here, once, at compile time; the C kernels only see integers.
"""

from __future__ import annotations

import math

import numpy as np

from tinyml.errors import TinymlError

INT32_MAX = 2**31 - 1
ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


def round_half_away(x: float) -> int:
    """C round(): halves go away from zero."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(r: float) -> tuple[int, int]:
    """QuantizeMultiplier: r ~= M * 2^(e-31), M in [2^30, 2^31); (0, 0) for r == 0 or tiny r (INT8.md §1)."""
    if not math.isfinite(r) or r < 0:
        raise TinymlError(f"invalid requantization multiplier {r} (corrupt or negative scales?)")
    if r == 0:
        return 0, 0
    f, e = math.frexp(r)
    m = round_half_away(f * 2.0**31)
    if m == 2**31:
        m //= 2
        e += 1
    if e < -31:
        return 0, 0
    if e > 31:
        raise TinymlError(f"requantization multiplier {r:g} is too large (>= 2^31)")
    return m, e


def quantize_multipliers(rs: np.ndarray) -> tuple[list[int], list[int]]:
    pairs = [quantize_multiplier(float(r)) for r in rs]
    return [m for m, _ in pairs], [e for _, e in pairs]


def _q(f: float, scale: float, zp: int) -> int:
    """Q(f) of INT8.md §3: the division is float32, like TFLM's CalculateActivationRangeQuantized."""
    return zp + round_half_away(float(np.float32(f) / np.float32(scale)))


def activation_range(act: int, scale: float, zp: int, what: str) -> tuple[int, int]:
    """Clamp bounds of a fused activation on an int8 output."""
    if act == 0:
        return -128, 127
    if act == 1:
        return max(-128, _q(0.0, scale, zp)), 127
    if act == 3:
        return max(-128, _q(0.0, scale, zp)), min(127, _q(6.0, scale, zp))
    if act == 2:
        return max(-128, _q(-1.0, scale, zp)), min(127, _q(1.0, scale, zp))
    raise TinymlError(
        f"{what}: fused activation {ACTIVATIONS.get(act, act)} is not supported "
        f"(supported: NONE, RELU, RELU6, RELU_N1_TO_1)"
    )


def mean_multiplier(s_in: float, s_out: float, n: int) -> tuple[int, int]:
    """MEAN folds 1/n into a truncated multiplier (INT8.md §9)."""
    m, e = quantize_multiplier(float(s_in) / float(s_out))
    k = min(n.bit_length() - 1, 32, 31 + e)  # floor(log2 n), exactly
    return (m * (1 << k)) // n, e - k


def softmax_params(beta: float, s_in: float) -> tuple[int, int, int]:
    """(M, L, diff_min) of int8 softmax (INT8.md §10)."""
    real = min(float(np.float32(beta)) * float(s_in) * 2.0**26, float(INT32_MAX))
    m, shift = quantize_multiplier(real)
    diff_min = -math.floor(31.0 * 2.0**26 / 2.0**shift)
    return m, shift, diff_min


def add_params(
    s1: float, s2: float, s_out: float
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Multipliers of int8 ADD with its left shift of 20 (INT8.md §11)."""
    twice_max = 2.0 * float(max(np.float32(s1), np.float32(s2)))
    p1 = quantize_multiplier(float(s1) / twice_max)
    p2 = quantize_multiplier(float(s2) / twice_max)
    po = quantize_multiplier(twice_max / (2.0**20 * float(s_out)))
    for m, e in (p1, p2, po):
        if e > 0:
            raise TinymlError(f"ADD multiplier {m}*2^{e} >= 1 (output scale too small)")
    return p1, p2, po


def _srdhm(a: int, b: int) -> int:
    if a == b == -(2**31):
        return 2**31 - 1
    p = a * b
    return (p + 2**30) >> 31  # nearest, ties toward +inf (INT8.md §2)


def _rdbpot(x: int, k: int) -> int:
    mask = (1 << k) - 1
    return (x >> k) + (1 if (x & mask) > (mask >> 1) + (1 if x < 0 else 0) else 0)


def requantize(acc: int, m: int, e: int) -> int:
    """MultiplyByQuantizedMultiplier exactly as TFLM computes it (double rounding, int32 left shift)."""
    left, right = max(e, 0), max(-e, 0)
    x = ((acc << left) + 2**31) % 2**32 - 2**31
    return _rdbpot(_srdhm(x, m), right)
