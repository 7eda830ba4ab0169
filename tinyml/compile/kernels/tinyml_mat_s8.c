/* The inner product engine of the fast convolutions: two input vectors (two pixels, or two im2col patches)
 * against all output channels, two channels at a time, so every weight is loaded once for two pixels.
 * Weights are pair-blocked: for output channels 2j, 2j+1, each group of 4 depth values holds 4 bytes of
 * channel 2j then 4 bytes of channel 2j+1 (a last odd channel has its groups alone). */
#include "tinyml_kernels.h"

#if defined(__ARM_FEATURE_DSP)
/* All pairs of output channels for two widened vectors s (4 words per group of 4 depth values). `clamp` is NULL
 * for the full int8 range, else the layer's requantization (its activation bounds apply). */
__attribute__((always_inline)) static inline void pairs_dsp(const int32_t *s, int32_t groups, const int8_t *w, int32_t pairs,
                                               const tinyml_channel_t *ch, int8_t *ya, int8_t *yb,
                                               const tinyml_requant_t *clamp) {
    for (; pairs > 0; --pairs, ch += 2, ya += 2, yb += 2) {
        int32_t a0 = ch[0].bias, a1 = ch[1].bias, b0 = a0, b1 = a1;
        const int32_t *x = s;
        int32_t t0, t1, t2, t3, t4, t5;
        /* one group of 4 depth values: 16 MACs in 15 instructions (C gives 20: GCC neither folds the rotate
         * into SXTB16 nor pairs the loads into LDRD) */
#define MAT2_GROUP                                         \
    "ldrd   %[w0], %[w1], [%[wp]], #8\n\t"                \
    "sxtb16 %[w0o], %[w0], ror #8\n\t"                    \
    "sxtb16 %[w0], %[w0]\n\t"                             \
    "sxtb16 %[w1o], %[w1], ror #8\n\t"                    \
    "sxtb16 %[w1], %[w1]\n\t"                             \
    "ldrd   %[x0], %[x1], [%[x]], #8\n\t"                 \
    "smlad  %[a0], %[x0], %[w0], %[a0]\n\t"               \
    "smlad  %[a0], %[x1], %[w0o], %[a0]\n\t"              \
    "smlad  %[a1], %[x0], %[w1], %[a1]\n\t"               \
    "smlad  %[a1], %[x1], %[w1o], %[a1]\n\t"              \
    "ldrd   %[x0], %[x1], [%[x]], #8\n\t"                 \
    "smlad  %[b0], %[x0], %[w0], %[b0]\n\t"               \
    "smlad  %[b0], %[x1], %[w0o], %[b0]\n\t"              \
    "smlad  %[b1], %[x0], %[w1], %[b1]\n\t"               \
    "smlad  %[b1], %[x1], %[w1o], %[b1]\n\t"
#define MAT2_OPERANDS                                                                                        \
    : [a0] "+r"(a0), [a1] "+r"(a1), [b0] "+r"(b0), [b1] "+r"(b1), [x] "+r"(x), [wp] "+r"(w), [n] "+r"(n),    \
      [w0] "=&r"(t0), [w1] "=&r"(t1), [w0o] "=&r"(t2), [w1o] "=&r"(t3), [x0] "=&r"(t4), [x1] "=&r"(t5)      \
    :                                                                                                        \
    : "cc", "memory"
        int32_t n = groups >> 1;
        if (groups & 1) {
            __asm__ volatile(MAT2_GROUP MAT2_OPERANDS);
        }
        if (n) { /* two groups per iteration */
            __asm__ volatile("1:\n\t" MAT2_GROUP MAT2_GROUP "subs   %[n], %[n], #1\n\t"
                             "bne    1b\n\t" MAT2_OPERANDS);
        }
#undef MAT2_OPERANDS
#undef MAT2_GROUP
        if (!clamp) {
            tinyml_out2x2_full(a0, a1, b0, b1, ch, ya, yb);
        } else {
            const int32_t lo = clamp->act_min, hi = clamp->act_max;
            ya[0] = tinyml_out8(a0, &ch[0], lo, hi, 0);
            ya[1] = tinyml_out8(a1, &ch[1], lo, hi, 0);
            yb[0] = tinyml_out8(b0, &ch[0], lo, hi, 0);
            yb[1] = tinyml_out8(b1, &ch[1], lo, hi, 0);
        }
    }
}
#endif

__attribute__((always_inline)) static inline void mat2(const int8_t *xa, const int8_t *xb, int32_t depth,
                                                       const int8_t *w, int32_t out_c, const tinyml_requant_t *q,
                                                       void *scratch, int8_t *ya, int8_t *yb, int full) {
    const int32_t groups = depth / 4, lo = q->act_min, hi = q->act_max;
    const tinyml_channel_t *ch = q->ch;
    int32_t oc = 0;
#if defined(__ARM_FEATURE_DSP)
    /* widen both vectors once to doubled int16 pairs: lanes (0,2) and (1,3) of each word, as SXTB16 gives
     * them, times 2 so the sums come out as the 2 * acc the requantization takes */
    int32_t *s = (int32_t *)scratch;
    for (int32_t g = 0; g < groups; ++g) {
        const int32_t a = tinyml_load32(xa + 4 * g), b = tinyml_load32(xb + 4 * g);
        const int32_t a02 = __sxtb16(a), a13 = tinyml_sxtb16_hi(a), b02 = __sxtb16(b), b13 = tinyml_sxtb16_hi(b);
        s[4 * g + 0] = __sadd16(a02, a02);
        s[4 * g + 1] = __sadd16(a13, a13);
        s[4 * g + 2] = __sadd16(b02, b02);
        s[4 * g + 3] = __sadd16(b13, b13);
    }
    w = (const int8_t *)__builtin_assume_aligned(w, 4); /* the compiler aligns weight arrays to 4 */
    const int32_t pairs = out_c / 2;
    if (pairs) {
        pairs_dsp(s, groups, w, pairs, ch, ya, yb, full ? 0 : q);
        oc = 2 * pairs;
        w += 8 * groups * pairs;
        ch += 2 * pairs;
    }
    if (oc < out_c) {
        int32_t a0 = ch[0].bias, b0 = a0;
        const int32_t *x = s;
        do {
            const int32_t w0 = tinyml_load32(w);
            const int32_t w0e = __sxtb16(w0), w0o = tinyml_sxtb16_hi(w0);
            a0 = __smlad(x[0], w0e, a0);
            a0 = __smlad(x[1], w0o, a0);
            b0 = __smlad(x[2], w0e, b0);
            b0 = __smlad(x[3], w0o, b0);
            w += 4;
            x += 4;
        } while (x < s + 4 * groups);
        ya[oc] = tinyml_out8(a0, &ch[0], lo, hi, full);
        yb[oc] = tinyml_out8(b0, &ch[0], lo, hi, full);
    }
#else
    (void)scratch;
    (void)groups;
    for (; oc + 1 < out_c; oc += 2, ch += 2) {
        int32_t a0 = 0, a1 = 0, b0 = 0, b1 = 0;
        for (int32_t g = 0; g < depth; g += 4, w += 8) {
            for (int32_t j = 0; j < 4; ++j) {
                const int32_t u = xa[g + j], v = xb[g + j], w0 = w[j], w1 = w[4 + j];
                a0 += u * w0;
                a1 += u * w1;
                b0 += v * w0;
                b1 += v * w1;
            }
        }
        ya[oc] = tinyml_out8(ch[0].bias + 2 * a0, &ch[0], lo, hi, full);
        ya[oc + 1] = tinyml_out8(ch[1].bias + 2 * a1, &ch[1], lo, hi, full);
        yb[oc] = tinyml_out8(ch[0].bias + 2 * b0, &ch[0], lo, hi, full);
        yb[oc + 1] = tinyml_out8(ch[1].bias + 2 * b1, &ch[1], lo, hi, full);
    }
    if (oc < out_c) {
        int32_t a0 = 0, b0 = 0;
        for (int32_t c = 0; c < depth; ++c) {
            a0 += xa[c] * w[c];
            b0 += xb[c] * w[c];
        }
        ya[oc] = tinyml_out8(ch[0].bias + 2 * a0, &ch[0], lo, hi, full);
        yb[oc] = tinyml_out8(ch[0].bias + 2 * b0, &ch[0], lo, hi, full);
    }
#endif
}

TINYML_KERNEL void tinyml_mat2_s8(const int8_t *xa, const int8_t *xb, int32_t depth, const int8_t *weights,
                                  int32_t out_c, const tinyml_requant_t *q, void *scratch, int8_t *ya, int8_t *yb) {
    if (q->act_min == -128 && q->act_max == 127) {
        mat2(xa, xb, depth, weights, out_c, q, scratch, ya, yb, 1);
    } else {
        mat2(xa, xb, depth, weights, out_c, q, scratch, ya, yb, 0);
    }
}
