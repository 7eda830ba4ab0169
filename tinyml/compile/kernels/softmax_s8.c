/* SOFTMAX int8 -> int8 with gemmlowp's fixed-point exp and reciprocal (no lookup table), like TFLM. */
#include "tinyml_kernels.h"

/* v * 2^k saturated to int32 (gemmlowp SaturatingRoundingMultiplyByPOT with a positive exponent). */
static int32_t sat_shl(int32_t v, int32_t k) {
    const int32_t thr = (int32_t)((1u << (31 - k)) - 1u);
    if (v > thr) {
        return INT32_MAX;
    }
    if (v < -thr) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)v << k);
}

/* exp(z) for z <= 0 in Q5.26, result in Q0.31 (gemmlowp exp_on_negative_values). */
static int32_t exp_on_negative_values(int32_t z) {
    static const int32_t barrel[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int32_t a = (z & ((1 << 24) - 1)) - (1 << 24);
    const int32_t rem = a - z;
    const int32_t t = a * 32 + (1 << 28);
    const int32_t x2 = tinyml_srdhm(t, t);
    const int32_t x3 = tinyml_srdhm(x2, t);
    const int32_t x4 = tinyml_srdhm(x2, x2);
    const int32_t poly = tinyml_rdbpot(tinyml_srdhm(tinyml_rdbpot(x4, 2) + x3, 715827883) + x2, 1);
    int32_t e = 1895147668 + tinyml_srdhm(1895147668, t + poly);
    for (int32_t j = 0; j < 7; ++j) {
        if (rem & (1 << (24 + j))) {
            e = tinyml_srdhm(e, barrel[j]);
        }
    }
    return z == 0 ? INT32_MAX : e;
}

/* 1 / (1 + u/2^31) in Q0.31 for u in [0, 2^31) (gemmlowp one_over_one_plus_x_for_x_in_0_1). */
static int32_t reciprocal(int32_t u) {
    const int32_t hd = (1 << 30) + (u >> 1);
    int32_t x = 1515870810 + tinyml_srdhm(hd, -1010580540);
    for (int32_t i = 0; i < 3; ++i) {
        const int32_t one_minus = (1 << 29) - tinyml_srdhm(hd, x);
        x = x + sat_shl(tinyml_srdhm(x, one_minus), 2);
    }
    return sat_shl(x, 1);
}

TINYML_KERNEL void softmax_s8(const softmax_params_t *p, const int8_t *input, int8_t *output) {
    const int32_t depth = p->depth;
    for (int32_t r = 0; r < p->rows; ++r, input += depth, output += depth) {
        int32_t mx = -128;
        for (int32_t i = 0; i < depth; ++i) {
            mx = input[i] > mx ? input[i] : mx;
        }
        int32_t sum = 0;
        for (int32_t i = 0; i < depth; ++i) {
            const int32_t d = input[i] - mx;
            if (d >= p->diff_min) {
                const int32_t z = tinyml_srdhm((int32_t)((uint32_t)d << p->left_shift), p->mult);
                sum += tinyml_rdbpot(exp_on_negative_values(z), 12);
            }
        }
        const int32_t h = __builtin_clz((uint32_t)sum);
        const int32_t nb = 12 - h;
        const int32_t rc = reciprocal((int32_t)(((uint32_t)sum << h) - (1u << 31)));
        for (int32_t i = 0; i < depth; ++i) {
            const int32_t d = input[i] - mx;
            int32_t y = -128;
            if (d >= p->diff_min) {
                const int32_t z = tinyml_srdhm((int32_t)((uint32_t)d << p->left_shift), p->mult);
                const int32_t v = tinyml_srdhm(rc, exp_on_negative_values(z));
                /* a shift past 31 leaves less than one half: 0 (TFLM's shift is undefined there) */
                y = (nb + 23 > 31 ? 0 : tinyml_rdbpot(v, nb + 23)) - 128;
            }
            output[i] = (int8_t)tinyml_clamp(y, -128, 127);
        }
    }
}
