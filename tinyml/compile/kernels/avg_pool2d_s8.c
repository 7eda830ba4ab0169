/* AVERAGE_POOL_2D: sum of the in-image taps divided by their count, rounding half away from zero. */
#include "tinyml_kernels.h"

TINYML_KERNEL void avg_pool2d_s8(const pool2d_params_t *p, const int8_t *input, int8_t *output) {
    for (int32_t oy = 0; oy < p->out_h; ++oy) {
        const int32_t y0 = oy * p->stride_h - p->pad_top;
        const int32_t ya = y0 < 0 ? 0 : y0;
        const int32_t yb = y0 + p->k_h > p->in_h ? p->in_h : y0 + p->k_h;
        for (int32_t ox = 0; ox < p->out_w; ++ox) {
            const int32_t x0 = ox * p->stride_w - p->pad_left;
            const int32_t xa = x0 < 0 ? 0 : x0;
            const int32_t xb = x0 + p->k_w > p->in_w ? p->in_w : x0 + p->k_w;
            const int32_t n = (yb - ya) * (xb - xa);
            for (int32_t c = 0; c < p->ch; ++c) {
                int32_t sum = 0;
                for (int32_t y = ya; y < yb; ++y) {
                    for (int32_t x = xa; x < xb; ++x) {
                        sum += input[(y * p->in_w + x) * p->ch + c];
                    }
                }
                int32_t avg = 0;
                if (n > 0) {
                    avg = sum > 0 ? (sum + n / 2) / n : (sum - n / 2) / n;
                }
                *output++ = (int8_t)tinyml_clamp(avg, p->act_min, p->act_max);
            }
        }
    }
}
