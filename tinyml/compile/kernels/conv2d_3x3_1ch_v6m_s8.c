/* CONV_2D 3x3 on a single input channel on ARMv6-M (Cortex-M0/M0+), called by conv2d_3x3_1ch_s8 on those
 * cores: each output pixel's nine inputs are read once (in_zp where the window lies in the padding, no division
 * anywhere), then every output channel takes them against its doubled int16 weights, two per word load
 * ([3 rows][(w0, w2), (w1, 0)], as the compiler lays them out for all cores). */
#include "tinyml_kernels.h"

#if TINYML_ARMV6M

static void channels(const int32_t x[9], const int16_t *w, const tinyml_channel_t *ch, int32_t out_c,
                     const tinyml_requant_t *q, int8_t *out) {
    const int32_t lo = q->act_min, hi = q->act_max;
    for (int8_t *end = out + out_c; out < end; ++out, ++ch, w += 12) {
        int32_t acc2 = ch->bias;
        for (int32_t r = 0; r < 3; ++r) {
            const int32_t a = tinyml_load32(w + 4 * r), b = tinyml_load32(w + 4 * r + 2); /* (w0, w2), (w1, 0) */
            acc2 += x[3 * r] * (int16_t)a + x[3 * r + 2] * (a >> 16) + x[3 * r + 1] * (int16_t)b;
        }
        *out = (int8_t)tinyml_clamp(tinyml_requant_fast2(acc2, ch), lo, hi);
    }
}

void tinyml_conv3x3_1ch_v6m(const conv2d_params_t *p, const tinyml_channel_t *chans, const int8_t *input,
                            int8_t *output);
void tinyml_conv3x3_1ch_v6m(const conv2d_params_t *p, const tinyml_channel_t *chans, const int8_t *input,
                            int8_t *output) {
    const int32_t in_h = p->in_h, in_w = p->in_w, out_c = p->out_c, zp = p->q.in_zp;
    const int16_t *w = (const int16_t *)__builtin_assume_aligned(p->weights16, 4);
    int32_t x[9];
    int32_t iy0 = -p->pad_top;
    for (int32_t oy = 0; oy < p->out_h; ++oy, iy0 += p->stride_h) {
        int32_t ix0 = -p->pad_left;
        for (int32_t ox = 0; ox < p->out_w; ++ox, ix0 += p->stride_w, output += out_c) {
            if (iy0 >= 0 && iy0 + 3 <= in_h && ix0 >= 0 && ix0 + 3 <= in_w) {
                const int8_t *s = input + iy0 * in_w + ix0;
                for (int32_t r = 0; r < 3; ++r, s += in_w) {
                    x[3 * r] = s[0];
                    x[3 * r + 1] = s[1];
                    x[3 * r + 2] = s[2];
                }
            } else {
                for (int32_t r = 0, iy = iy0; r < 3; ++r, ++iy) {
                    for (int32_t k = 0, ix = ix0; k < 3; ++k, ++ix) {
                        const int inside = iy >= 0 && iy < in_h && ix >= 0 && ix < in_w;
                        x[3 * r + k] = inside ? input[iy * in_w + ix] : zp;
                    }
                }
            }
            channels(x, w, chans, out_c, &p->q, output);
        }
    }
}

#endif /* TINYML_ARMV6M */
