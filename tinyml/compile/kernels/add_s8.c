/* ADD: both inputs rescaled to a common scale with a left shift of 20, summed, then requantized. */
#include "tinyml_kernels.h"

static inline int8_t add_one(const add_params_t *p, int32_t a, int32_t b) {
    const int32_t x1 = tinyml_rdbpot(tinyml_srdhm((a - p->in1_zp) * (1 << 20), p->in1_mult), -p->in1_shift);
    const int32_t x2 = tinyml_rdbpot(tinyml_srdhm((b - p->in2_zp) * (1 << 20), p->in2_mult), -p->in2_shift);
    const int32_t y = tinyml_rdbpot(tinyml_srdhm(x1 + x2, p->out_mult), -p->out_shift) + p->out_zp;
    return (int8_t)tinyml_clamp(y, p->act_min, p->act_max);
}

TINYML_KERNEL void add_s8(const add_params_t *p, const int8_t *input1, const int8_t *input2, int8_t *output) {
    if (!p->broadcast) {
        for (int32_t i = 0; i < p->size; ++i) {
            output[i] = add_one(p, input1[i], input2[i]);
        }
        return;
    }
    const int32_t *d = p->out_dims, *s1 = p->in1_strides, *s2 = p->in2_strides;
    for (int32_t i0 = 0; i0 < d[0]; ++i0) {
        for (int32_t i1 = 0; i1 < d[1]; ++i1) {
            for (int32_t i2 = 0; i2 < d[2]; ++i2) {
                const int8_t *a = input1 + i0 * s1[0] + i1 * s1[1] + i2 * s1[2];
                const int8_t *b = input2 + i0 * s2[0] + i1 * s2[1] + i2 * s2[2];
                for (int32_t i3 = 0; i3 < d[3]; ++i3) {
                    *output++ = add_one(p, a[i3 * s1[3]], b[i3 * s2[3]]);
                }
            }
        }
    }
}
