/* AVERAGE_POOL_2D: sum of the in-image taps divided by their count, rounding half away from zero. On DSP cores
 * four channels at a time: SXTB16 splits a word of the window into lanes 0,2 and 1,3 and SADD16 sums them in 16
 * bits (exact while taps x 128 < 2^15), a word load per tap instead of a byte load per tap and channel. */
#include "tinyml_kernels.h"

static inline int8_t average(int32_t sum, int32_t n, const pool2d_params_t *p) {
    int32_t avg = 0;
    if (n > 0) {
        avg = sum > 0 ? (sum + n / 2) / n : (sum - n / 2) / n;
    }
    return (int8_t)tinyml_clamp(avg, p->act_min, p->act_max);
}

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
            int32_t c = 0;
#if defined(__ARM_FEATURE_DSP)
            if (n < 256) { /* |sum| <= 128 n < 2^15: the 16-bit lanes cannot overflow */
                for (; c + 4 <= p->ch; c += 4) {
                    int32_t s02 = 0, s13 = 0;
                    for (int32_t y = ya; y < yb; ++y) {
                        const int8_t *px = input + (y * p->in_w + xa) * p->ch + c;
                        for (int32_t x = xa; x < xb; ++x, px += p->ch) {
                            const int32_t v = tinyml_load32(px);
                            s02 = __sadd16(s02, __sxtb16(v));
                            s13 = __sadd16(s13, tinyml_sxtb16_hi(v));
                        }
                    }
                    *output++ = average((int16_t)s02, n, p);
                    *output++ = average((int16_t)s13, n, p);
                    *output++ = average(s02 >> 16, n, p);
                    *output++ = average(s13 >> 16, n, p);
                }
            }
#endif
            for (; c < p->ch; ++c) {
                int32_t sum = 0;
                for (int32_t y = ya; y < yb; ++y) {
                    for (int32_t x = xa; x < xb; ++x) {
                        sum += input[(y * p->in_w + x) * p->ch + c];
                    }
                }
                *output++ = average(sum, n, p);
            }
        }
    }
}
