/* MEAN: TFLM's single int8 path, requantizing the zero-point-corrected sum with 1/n folded in. */
#include "tinyml_kernels.h"

TINYML_KERNEL void mean_s8(const mean_params_t *p, const int8_t *input, int8_t *output) {
    const int32_t n = p->n, inner = p->inner;
    for (int32_t o = 0; o < p->outer; ++o) {
        const int8_t *base = input + o * n * inner;
        for (int32_t i = 0; i < inner; ++i) {
            int32_t sum = 0;
            for (int32_t k = 0; k < n; ++k) {
                sum += base[k * inner + i];
            }
            const int32_t v = tinyml_requant(sum - p->in_zp * n, p->mult, p->shift) + p->out_zp;
            *output++ = (int8_t)tinyml_clamp(v, -128, 127);
        }
    }
}
