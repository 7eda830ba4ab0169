/* CONV_2D 3x3 on a single input channel (e.g. a grayscale first layer, or DEPTHWISE_CONV_2D with one input
 * channel and depth multiplier M), any stride and padding, no dilation. On DSP cores each kernel row of an
 * interior pixel is one word load: SXTB16 gives (x0, x2) and (x1, x3), and the weights (w0, w2), (w1, 0) make
 * two SMLADs per row and output channel (x3 meets a zero weight). Weights and bias are doubled, so the
 * accumulator is already the 2 * acc the fast requantization takes. */
#include "tinyml_kernels.h"

/* Any pixel, plain C: taps outside the image read in_zp. */
static void pixel_plain(const conv2d_params_t *p, const tinyml_channel_t *ch, const int8_t *input, int32_t iy0,
                        int32_t ix0, int8_t *out) {
    const int16_t *w = p->weights16;
    for (int32_t oc = 0; oc < p->out_c; ++oc, w += 12) {
        int32_t acc2 = ch[oc].bias;
        for (int32_t ky = 0; ky < 3; ++ky) {
            const int32_t iy = iy0 + ky;
            for (int32_t kx = 0; kx < 3; ++kx) {
                const int32_t ix = ix0 + kx;
                const int32_t inside = iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w;
                const int32_t wk = w[4 * ky + (kx == 0 ? 0 : kx == 1 ? 2 : 1)];
                acc2 += wk * (inside ? input[iy * p->in_w + ix] : p->q.in_zp);
            }
        }
        out[oc] = (int8_t)tinyml_clamp(tinyml_requant_fast2(acc2, &ch[oc]), p->q.act_min, p->q.act_max);
    }
}

#if defined(__ARM_FEATURE_DSP)
/* All output channels of one pixel (full int8 range): 9 MACs + requantization in 21 instructions per channel
 * (20 for TINYML_FULL_RELU). A function of its own so the 14 registers the loop needs are free. Cortex-M4 cycles
 * (CYCLES.md rules): the bias and weight words, then the requantization parameters, come in runs of LDRs that
 * pipeline (13 cycles for 10 words; LDRD pairs took 16), all post-indexed. */
#define CH_LOOP(MUL)                                                                                            \
    __asm__ volatile("1:\n\t"                                                                                   \
                     "ldr    %[acc], [%[ch]], #4\n\t"                                                          \
                     "ldr    %[k], [%[w]], #4\n\t"                                                             \
                     "ldr    %[ra], [%[w]], #4\n\t"                                                            \
                     "ldr    %[t], [%[w]], #4\n\t"                                                             \
                     "smlad  %[acc], %[e0], %[k], %[acc]\n\t"                                                  \
                     "smlad  %[acc], %[o0], %[ra], %[acc]\n\t"                                                 \
                     "smlad  %[acc], %[e1], %[t], %[acc]\n\t"                                                  \
                     "ldr    %[k], [%[w]], #4\n\t"                                                             \
                     "ldr    %[ra], [%[w]], #4\n\t"                                                            \
                     "ldr    %[t], [%[w]], #4\n\t"                                                             \
                     "smlad  %[acc], %[o1], %[k], %[acc]\n\t"                                                  \
                     "smlad  %[acc], %[e2], %[ra], %[acc]\n\t"                                                 \
                     "smlad  %[acc], %[o2], %[t], %[acc]\n\t"                                                  \
                     "ldr    %[k], [%[ch]], #4\n\t"              /* M */                                       \
                     "ldr    %[ra], [%[ch]], #4\n\t"             /* rshift */                                  \
                     "ldr    %[t], [%[ch]], #4\n\t"              /* radd */                                    \
                     MUL("%[acc]", "%[k]", "%[t]", "%[t]")                                                      \
                     "asr    %[acc], %[acc], %[ra]\n\t"                                                        \
                     "ssat   %[acc], #8, %[acc]\n\t"                                                           \
                     "strb   %[acc], [%[out]], #1\n\t"                                                         \
                     "subs   %[n], %[n], #1\n\t"                                                               \
                     "bne    1b\n\t"                                                                           \
                     : [w] "+r"(w), [ch] "+r"(ch), [out] "+r"(out), [n] "+r"(n), [acc] "=&r"(acc), [k] "=&r"(k), \
                       [ra] "=&r"(ra), [t] "=&r"(t)                                                             \
                     : [e0] "r"(e0), [o0] "r"(o0), [e1] "r"(e1), [o1] "r"(o1), [e2] "r"(e2), [o2] "r"(o2)      \
                     : "cc", "memory")

__attribute__((noinline)) static void channels_full(int32_t e0, int32_t o0, int32_t e1, int32_t o1, int32_t e2,
                                                    int32_t o2, const int16_t *w, const tinyml_channel_t *ch,
                                                    int8_t *out, int32_t n, int mode) {
    int32_t acc, k, ra, t;
    if (mode == TINYML_FULL_RELU) {
        CH_LOOP(TINYML_RQ_MUL_RELU);
    } else {
        CH_LOOP(TINYML_RQ_MUL_SIGN);
    }
}
#undef CH_LOOP

/* The 3x4 window at (iy0, ix0) as three words, taps outside the image reading in_zp (border pixels): rows
 * outside are in_zp in every byte, rows whose 4 bytes are inside one word load, rows with their first 2 bytes
 * inside (the right edge) a halfword load over in_zp. */
static void window_border(const conv2d_params_t *p, const int8_t *input, int32_t iy0, int32_t ix0, int32_t v[3]) {
    const int8_t zp = (int8_t)p->q.in_zp;
    const uint32_t zp4 = (uint8_t)zp * 0x01010101u;
    const int32_t in_w = p->in_w;
    for (int32_t ky = 0; ky < 3; ++ky) {
        const int32_t iy = iy0 + ky;
        uint32_t word = zp4;
        if ((uint32_t)iy < (uint32_t)p->in_h) {
            const int8_t *const r = input + iy * in_w;
            if (ix0 >= 0 && ix0 + 4 <= in_w) {
                word = (uint32_t)tinyml_load32(r + ix0);
            } else if (ix0 >= 0 && ix0 + 2 <= in_w) {
                uint16_t lo;
                memcpy(&lo, r + ix0, sizeof lo);
                word = (zp4 & 0xFFFF0000u) | lo;
                if (ix0 + 3 <= in_w) {
                    word = (word & 0xFF00FFFFu) | (uint32_t)(uint8_t)r[ix0 + 2] << 16;
                }
            } else {
                int8_t row[4] = {zp, zp, zp, zp};
#pragma GCC unroll 4
                for (int32_t kx = 0; kx < 4; ++kx) {
                    const int32_t ix = ix0 + kx;
                    row[kx] = (uint32_t)ix < (uint32_t)in_w ? r[ix] : zp;
                }
                word = (uint32_t)tinyml_load32(row);
            }
        }
        v[ky] = (int32_t)word;
    }
}
#endif

#if TINYML_ARMV6M
void tinyml_conv3x3_1ch_v6m(const conv2d_params_t *p, const tinyml_channel_t *chans, const int8_t *input,
                            int8_t *output);
#endif

#if defined(__ARM_FEATURE_DSP)
/* The first-layer engine's form (tinyml_first_s8.c, K = 5 words): (x00, x02), (x10, x12), (x20, x22),
 * (x01, x11), (x21, x23 meeting a zero weight), from the window's three row words; taps in ky * 3 + kx. */
#define C1_K 5
#define C1_BLOCKS 16 /* blocks of 3 pixels widened per engine call, an output row of 48 (ops.py sizes the scratch) */
static const int8_t c1_pairs[C1_K][2] = {{0, 2}, {3, 5}, {6, 8}, {1, 4}, {7, -1}};

/* One window into d (post-indexed), C1_K words, from its rows' words (x, x + w, x + 2w); x moves on by step.
 * Cortex-M4 cycles: 3 LDRs back to back (4), the step 1, 6 SXTB16s and a PKHBT, 5 STRs: 17. */
#define C1_WINDOW                                                                                              \
    "ldr    %[t0], [%[x]]\n\t"                                                                                 \
    "ldr    %[t1], [%[x], %[w]]\n\t"                                                                           \
    "ldr    %[t2], [%[x], %[w], lsl #1]\n\t"                                                                   \
    "add    %[x], %[x], %[step]\n\t"                                                                           \
    "sxtb16 %[t3], %[t0]\n\t"             /* word 0, stored last (post-indexed) */                             \
    "sxtb16 %[t4], %[t1]\n\t"                                                                                  \
    "str    %[t4], [%[d], #4]\n\t"                                                                             \
    "sxtb16 %[t4], %[t2]\n\t"                                                                                  \
    "str    %[t4], [%[d], #8]\n\t"                                                                             \
    "sxtb16 %[t0], %[t0], ror #8\n\t"                                                                          \
    "sxtb16 %[t1], %[t1], ror #8\n\t"                                                                          \
    "pkhbt  %[t0], %[t0], %[t1], lsl #16\n\t"                                                                  \
    "str    %[t0], [%[d], #12]\n\t"                                                                            \
    "sxtb16 %[t2], %[t2], ror #8\n\t"                                                                          \
    "str    %[t2], [%[d], #16]\n\t"                                                                            \
    "str    %[t3], [%[d]], #20\n\t"

/* `count` (>= 1) windows `step` bytes apart into d: an odd one first, then two a loop (17 + 17 + 4: 19 cycles a
 * window). */
static inline void c1_widen_run(const int8_t *x, int32_t w, int32_t step, int32_t count, int32_t *d) {
    int32_t t0, t1, t2, t3, t4;
    __asm__ volatile("lsrs   %[n], %[n], #1\n\t" /* pairs of windows; C: an odd one */
                     "bcc    1f\n\t"
                     C1_WINDOW
                     "cmp    %[n], #0\n\t"
                     "beq    2f\n\t"
                     "1:\n\t"
                     C1_WINDOW
                     C1_WINDOW
                     "subs   %[n], %[n], #1\n\t"
                     "bne    1b\n\t"
                     "2:\n\t"
                     : [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3), [t4] "=&r"(t4), [x] "+&r"(x),
                       [d] "+&r"(d), [n] "+&r"(count)
                     : [w] "r"(w), [step] "r"(step)
                     : "cc", "memory");
}

/* One window (the border's gathered rows: w 4). */
static inline void c1_widen_one(const int8_t *x, int32_t w, int32_t *d) {
    int32_t t0, t1, t2, t3, t4;
    __asm__ volatile(C1_WINDOW
                     : [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3), [t4] "=&r"(t4), [x] "+&r"(x),
                       [d] "+&r"(d)
                     : [w] "r"(w), [step] "r"(0)
                     : "memory");
}
#undef C1_WINDOW

/* tinyml_first_border_t: the window gathered into three row words. */
static inline void c1_border(const conv2d_params_t *p, const int8_t *input, int32_t iy0, int32_t ix0, int32_t *d) {
    int32_t v[3];
    window_border(p, input, iy0, ix0, v);
    c1_widen_one((const int8_t *)v, 4, d);
}

/* tinyml_first_edge_t: column 2 is the high half of words 0-2. */
static void c1_edge(int32_t *d, int32_t zp) {
    const int16_t z = (int16_t)zp;
    for (int32_t j = 0; j < 3; ++j) {
        memcpy((int16_t *)(d + j) + 1, &z, sizeof z);
    }
}

/* tinyml_first_widen_t: interior windows read in place (their 4-byte row loads, 1 byte past the window, inside
 * the input), others gathered. */
__attribute__((noinline)) static void c1_widen(const conv2d_params_t *p, const int8_t *input, int32_t oy, int32_t ox,
                                               int32_t count, int32_t *d) {
    tinyml_first_widen3x3(p, input, oy, ox, count, d, C1_K, 1, c1_widen_run, c1_border, c1_edge);
}

/* Every pixel through the engine (out_c even, mode not TINYML_CLAMP). scratch after the channel table: the
 * records, then tinyml_first_conv's. */
static void c1_engine(const conv2d_params_t *p, const tinyml_channel_t *chans, const int8_t *input,
                      int8_t *output, int mode) {
    const int32_t out_c = p->out_c;
    int32_t *const rec = (int32_t *)(chans + out_c);
    tinyml_first_records(rec, chans, out_c, C1_K);
    for (int32_t c = 0; c < out_c; ++c) {
        const int16_t *w = p->weights16 + 12 * c;
        const int16_t taps[9] = {w[0], w[2], w[1], w[4], w[6], w[5], w[8], w[10], w[9]};
        tinyml_first_weights(rec, c, C1_K, taps, c1_pairs);
    }
    tinyml_first_conv(p, input, output, C1_K, C1_BLOCKS, rec, c1_widen,
                      mode != TINYML_FULL_RELU ? tinyml_first5_sign
                      : out_c == 8 ? tinyml_first5_relu8 : tinyml_first5_relu);
}
#endif

TINYML_KERNEL void conv2d_3x3_1ch_s8(const conv2d_params_t *p, const int8_t *input, int8_t *output) {
    const int32_t out_c = p->out_c;
    const tinyml_channel_t *const chans =
        tinyml_unpack_channels(&p->pack, out_c, p->q.out_zp, (tinyml_channel_t *)p->scratch);
#if TINYML_ARMV6M /* Cortex-M0/M0+: conv2d_3x3_1ch_v6m_s8.c */
    tinyml_conv3x3_1ch_v6m(p, chans, input, output);
    return;
#endif
#if defined(__ARM_FEATURE_DSP)
    const int32_t in_w = p->in_w, in_h = p->in_h;
    const int mode = tinyml_rq_mode(&p->q);
    if (mode != TINYML_CLAMP && out_c % 2 == 0) {
        c1_engine(p, chans, input, output, mode);
        return;
    }
#endif
    for (int32_t oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_top;
        for (int32_t ox = 0; ox < p->out_w; ++ox, output += out_c) {
            const int32_t ix0 = ox * p->stride_w - p->pad_left;
#if defined(__ARM_FEATURE_DSP)
            int32_t v[3];
            /* interior, and the 4-byte row loads stay inside the input buffer; else a gathered window */
            if (iy0 >= 0 && iy0 + 3 <= in_h && ix0 >= 0 && ix0 + 3 <= in_w &&
                (ix0 + 4 <= in_w || iy0 + 3 < in_h)) {
                const int8_t *x = input + iy0 * in_w + ix0;
                v[0] = tinyml_load32(x);
                v[1] = tinyml_load32(x + in_w);
                v[2] = tinyml_load32(x + 2 * in_w);
            } else {
                window_border(p, input, iy0, ix0, v);
            }
            {
                const int32_t e0 = __sxtb16(v[0]), o0 = tinyml_sxtb16_hi(v[0]);
                const int32_t e1 = __sxtb16(v[1]), o1 = tinyml_sxtb16_hi(v[1]);
                const int32_t e2 = __sxtb16(v[2]), o2 = tinyml_sxtb16_hi(v[2]);
                const int16_t *w = (const int16_t *)__builtin_assume_aligned(p->weights16, 4);
                const tinyml_channel_t *ch = chans;
                if (mode != TINYML_CLAMP) {
                    channels_full(e0, o0, e1, o1, e2, o2, w, ch, output, out_c, mode);
                } else {
                    for (int32_t oc = 0; oc < out_c; ++oc, w += 12, ++ch) {
                        int32_t acc2 = ch->bias;
                        acc2 = __smlad(e0, tinyml_load32(w), acc2);
                        acc2 = __smlad(o0, tinyml_load32(w + 2), acc2);
                        acc2 = __smlad(e1, tinyml_load32(w + 4), acc2);
                        acc2 = __smlad(o1, tinyml_load32(w + 6), acc2);
                        acc2 = __smlad(e2, tinyml_load32(w + 8), acc2);
                        acc2 = __smlad(o2, tinyml_load32(w + 10), acc2);
                        output[oc] = (int8_t)tinyml_clamp(tinyml_requant_fast2(acc2, ch), p->q.act_min,
                                                          p->q.act_max);
                    }
                }
                continue;
            }
#endif
            pixel_plain(p, chans, input, iy0, ix0, output);
        }
    }
}
