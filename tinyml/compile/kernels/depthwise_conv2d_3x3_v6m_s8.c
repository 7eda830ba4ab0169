/* DEPTHWISE_CONV_2D 3x3 (depth multiplier 1, no dilation) on ARMv6-M (Cortex-M0/M0+), called by
 * depthwise_conv2d_3x3_s8 on those cores. No division anywhere (ARMv6-M has no divide instruction: `/` and `%`
 * become library calls): taps are addressed by pointers stepped per channel, and a border pixel's 3x3 window is
 * first copied into a patch with in_zp where it lies in the padding, so every pixel runs the same unrolled code.
 * Per channel, a 32-byte record in scratch holds the doubled bias, the nine doubled weights (int16) and the
 * requantization, so the accumulator comes out as the 2 * acc the fast requantization takes. Pixels are processed
 * in order and each window is read before its output is written: the output may overlap the input as the
 * planner allows. */
#include "tinyml_kernels.h"

#if TINYML_ARMV6M

typedef struct {
    int32_t bias;  /* 2 x folded bias */
    int16_t w[9];  /* doubled weights, taps in row order */
    int16_t rshift;
    int32_t mult, radd;
} dw_chan_t; /* 32 bytes: within the 34 a channel has in the compiler's scratch for this kernel */

static void unpack(const depthwise_conv2d_params_t *p, dw_chan_t *r) {
    const int32_t c = p->in_c;
    for (int32_t i = 0; i < c; ++i, ++r) {
        tinyml_channel_t t;
        const tinyml_chpack_t pk = {p->pack.bm + 2 * i, p->pack.rshift + i};
        tinyml_unpack_channels(&pk, 1, p->q.out_zp, &t);
        r->bias = t.bias;
        r->mult = t.mult;
        r->rshift = (int16_t)t.rshift;
        r->radd = t.radd;
        const int8_t *w = p->weights + i;
        for (int32_t tap = 0; tap < 9; ++tap, w += c) {
            r->w[tap] = (int16_t)(2 * *w);
        }
    }
}

/* All channels of one output pixel whose window starts at x (rows `row` bytes apart, channels 1 apart). */
static void pixel(const int8_t *x, int32_t c, int32_t row, const dw_chan_t *r, const tinyml_requant_t *q,
                  int8_t *out) {
    const int8_t *x1 = x + row, *x2 = x1 + row;
    const int32_t c2 = 2 * c, lo = q->act_min, hi = q->act_max;
    for (int8_t *end = out + c; out < end; ++out, ++r, ++x, ++x1, ++x2) {
        int32_t acc2 = r->bias;
        acc2 += x[0] * r->w[0] + x[c] * r->w[1] + x[c2] * r->w[2];
        acc2 += x1[0] * r->w[3] + x1[c] * r->w[4] + x1[c2] * r->w[5];
        acc2 += x2[0] * r->w[6] + x2[c] * r->w[7] + x2[c2] * r->w[8];
        const tinyml_channel_t ch = {0, r->mult, r->rshift, r->radd};
        *out = (int8_t)tinyml_clamp(tinyml_requant_fast2(acc2, &ch), lo, hi);
    }
}

void tinyml_dw3x3_v6m(const depthwise_conv2d_params_t *p, const int8_t *input, int8_t *output);
void tinyml_dw3x3_v6m(const depthwise_conv2d_params_t *p, const int8_t *input, int8_t *output) {
    const int32_t c = p->in_c, in_h = p->in_h, in_w = p->in_w, row = in_w * c;
    dw_chan_t *recs = (dw_chan_t *)p->scratch;
    unpack(p, recs);
    int8_t *patch = (int8_t *)(recs + c); /* 9 * c bytes */
    const int8_t zp = (int8_t)p->q.in_zp;
    int32_t iy0 = -p->pad_top;
    for (int32_t oy = 0; oy < p->out_h; ++oy, iy0 += p->stride_h) {
        int32_t ix0 = -p->pad_left;
        const int8_t *xrow = input + iy0 * row;
        for (int32_t ox = 0; ox < p->out_w; ++ox, ix0 += p->stride_w, output += c) {
            if (iy0 >= 0 && iy0 + 3 <= in_h && ix0 >= 0 && ix0 + 3 <= in_w) {
                pixel(xrow + ix0 * c, c, row, recs, &p->q, output);
                continue;
            }
            int8_t *dst = patch;
            for (int32_t iy = iy0; iy < iy0 + 3; ++iy) {
                for (int32_t ix = ix0; ix < ix0 + 3; ++ix, dst += c) {
                    if (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) {
                        memcpy(dst, input + iy * row + ix * c, (size_t)c);
                    } else {
                        memset(dst, zp, (size_t)c);
                    }
                }
            }
            pixel(patch, c, 3 * c, recs, &p->q, output);
        }
    }
}

#endif /* TINYML_ARMV6M */
