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

/* A run of interior pixels of one output row, TINYML_FULL_RELU: the window loads, the SXTB16s and channels_full's
 * channel loop for every pixel in one routine, no call, push or argument passing per pixel (that took about 100
 * est. M4 cycles a pixel, the run about 30). Registers: the widened window r0-r5 (e0, o0, e1, o1, e2, o2), acc
 * r6, loads r7-r9, weights r10, channels r11, out r12, channel count lr: the run's state lives in the frame
 * (this struct, copied there by LDM/PUSH). */
typedef struct {
    const int8_t *x;             /* [sp, #0]  the first pixel's window (its top-left input byte) */
    int32_t in_w, step;          /* [sp, #4]  row stride, [sp, #8] window step (stride_w), bytes */
    const int16_t *w;            /* [sp, #12] weights16 */
    const tinyml_channel_t *ch;  /* [sp, #16] channel table */
    int8_t *out;                 /* [sp, #20] the first pixel's output */
    int32_t out_c, pixels;       /* [sp, #24], [sp, #28] */
} c1_run_args_t;

__attribute__((naked, noinline)) static void run_full_relu(__attribute__((unused)) const c1_run_args_t *a) {
    __asm__ volatile(
        "push   {r4-r11, lr}\n\t"
        "ldm    r0, {r4-r11}\n\t"
        "push   {r4-r11}\n\t"
        "1:\n\t"                               /* per pixel: its window's three rows, widened */
        "ldr    r12, [sp]\n\t"
        "ldr    lr, [sp, #4]\n\t"
        "ldr    r0, [r12]\n\t"
        "ldr    r2, [r12, lr]\n\t"
        "ldr    r4, [r12, lr, lsl #1]\n\t"
        "ldr    r6, [sp, #8]\n\t"
        "ldr    r10, [sp, #12]\n\t"
        "ldr    r11, [sp, #16]\n\t"
        "add    r12, r12, r6\n\t"
        "str    r12, [sp]\n\t"
        "sxtb16 r1, r0, ror #8\n\t"
        "sxtb16 r0, r0\n\t"
        "sxtb16 r3, r2, ror #8\n\t"
        "sxtb16 r2, r2\n\t"
        "sxtb16 r5, r4, ror #8\n\t"
        "sxtb16 r4, r4\n\t"
        "ldr    r12, [sp, #20]\n\t"
        "ldr    lr, [sp, #24]\n\t"
        "2:\n\t"                               /* per output channel: as channels_full */
        "ldr    r6, [r11], #4\n\t"
        "ldr    r7, [r10], #4\n\t"
        "ldr    r8, [r10], #4\n\t"
        "ldr    r9, [r10], #4\n\t"
        "smlad  r6, r0, r7, r6\n\t"
        "smlad  r6, r1, r8, r6\n\t"
        "smlad  r6, r2, r9, r6\n\t"
        "ldr    r7, [r10], #4\n\t"
        "ldr    r8, [r10], #4\n\t"
        "ldr    r9, [r10], #4\n\t"
        "smlad  r6, r3, r7, r6\n\t"
        "smlad  r6, r4, r8, r6\n\t"
        "smlad  r6, r5, r9, r6\n\t"
        "ldr    r7, [r11], #4\n\t"            /* M */
        "ldr    r8, [r11], #4\n\t"            /* rshift */
        "ldr    r9, [r11], #4\n\t"            /* radd */
        TINYML_RQ_MUL_RELU("r6", "r7", "", "r9")
        "asr    r6, r6, r8\n\t"
        "ssat   r6, #8, r6\n\t"
        "strb   r6, [r12], #1\n\t"
        "subs   lr, lr, #1\n\t"
        "bne    2b\n\t"
        "ldr    r6, [sp, #28]\n\t"            /* next pixel (out moved by out_c) */
        "str    r12, [sp, #20]\n\t"
        "subs   r6, r6, #1\n\t"
        "str    r6, [sp, #28]\n\t"
        "bne    1b\n\t"
        "add    sp, sp, #32\n\t"
        "pop    {r4-r11, pc}\n\t");
}

/* The 3x4 window at (iy0, ix0) as three words, taps outside the image reading in_zp (border pixels). */
static void window_border(const conv2d_params_t *p, const int8_t *input, int32_t iy0, int32_t ix0, int32_t v[3]) {
    for (int32_t ky = 0; ky < 3; ++ky) {
        int8_t row[4];
        const int32_t iy = iy0 + ky;
        for (int32_t kx = 0; kx < 4; ++kx) {
            const int32_t ix = ix0 + kx;
            const int inside = iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w;
            row[kx] = inside ? input[iy * p->in_w + ix] : (int8_t)p->q.in_zp;
        }
        v[ky] = tinyml_load32(row);
    }
}
#endif

#if TINYML_ARMV6M
void tinyml_conv3x3_1ch_v6m(const conv2d_params_t *p, const tinyml_channel_t *chans, const int8_t *input,
                            int8_t *output);
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
#endif
    for (int32_t oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_top;
        for (int32_t ox = 0; ox < p->out_w; ++ox, output += out_c) {
            const int32_t ix0 = ox * p->stride_w - p->pad_left;
#if defined(__ARM_FEATURE_DSP)
            if (mode == TINYML_FULL_RELU && iy0 >= 0 && iy0 + 3 <= in_h && ix0 >= 0) {
                /* the run of interior pixels from here (their 4-byte row loads inside the input buffer) */
                const int32_t last_ix0 = iy0 + 3 < in_h ? in_w - 3 : in_w - 4;
                int32_t n = last_ix0 < ix0 ? 0 : (last_ix0 - ix0) / p->stride_w + 1;
                n = n < p->out_w - ox ? n : p->out_w - ox;
                if (n > 0) {
                    const c1_run_args_t a = {input + iy0 * in_w + ix0, in_w, p->stride_w,
                                             (const int16_t *)__builtin_assume_aligned(p->weights16, 4), chans,
                                             output, out_c, n};
                    run_full_relu(&a);
                    ox += n - 1;
                    output += (n - 1) * out_c;
                    continue;
                }
            }
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
