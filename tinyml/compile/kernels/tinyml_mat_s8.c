/* The inner product engine of the fast convolutions: two input vectors (two pixels, or two im2col patches)
 * against all output channels, two channels at a time, so every weight is loaded once for two pixels.
 * Weights are pair-blocked (tinyml_pw_byte): for output channels 2j, 2j+1, each group of 4 depth values holds
 * the 8 bytes c0d0 c1d0 c0d2 c1d2 (word W02) c0d1 c1d1 c0d3 c1d3 (W13): SXTB16 W02 is channel 2j's (d0, d2),
 * SXTB16 W02, ROR #8 channel 2j+1's, matching one widened activation word (a last odd channel has its groups
 * alone, in order). */
#include "tinyml_kernels.h"

#if !TINYML_ARMV6M /* ARMv6-M: tinyml_mat_v6m_s8.c */

#if defined(__ARM_FEATURE_DSP)
/* All pairs of output channels for two widened vectors s (4 words per group of 4 depth values). `mode`
 * (tinyml_rq_mode) selects the requantization; TINYML_CLAMP applies the layer's activation bounds. */
__attribute__((always_inline)) static inline void pairs_dsp(const int32_t *s, int32_t groups, const int8_t *w,
                                                            int32_t pairs, const tinyml_channel_t *ch, int8_t *ya,
                                                            int8_t *yb, const tinyml_requant_t *q, int mode) {
    for (; pairs > 0; --pairs, ch += 2, ya += 2, yb += 2) {
        int32_t a0 = ch[0].bias, a1 = ch[1].bias, b0 = a0, b1 = a1;
        const int32_t *x = s;
        int32_t t0, t1, t2, t3, t4, t5;
        /* one group of 4 depth values: 16 MACs in 15 instructions (C gives 20: GCC neither folds the rotate
         * into SXTB16 nor pairs the loads into LDRD) */
#define MAT2_GROUP                                         \
    "ldrd   %[w0], %[w1o], [%[wp]], #8\n\t"               \
    "sxtb16 %[w1], %[w0], ror #8\n\t"                     \
    "sxtb16 %[w0], %[w0]\n\t"                             \
    "sxtb16 %[w0o], %[w1o]\n\t"                           \
    "sxtb16 %[w1o], %[w1o], ror #8\n\t"                   \
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
        if (n) { /* two groups per iteration (deep layers go through tinyml_mat3_s8) */
            __asm__ volatile("1:\n\t" MAT2_GROUP MAT2_GROUP "subs   %[n], %[n], #1\n\t"
                             "bne    1b\n\t" MAT2_OPERANDS);
        }
#undef MAT2_OPERANDS
#undef MAT2_GROUP
        if (mode != TINYML_CLAMP) {
            tinyml_out2x2_full(a0, a1, b0, b1, ch, ya, yb, mode);
        } else {
            const int32_t lo = q->act_min, hi = q->act_max;
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
                                                       void *scratch, int8_t *ya, int8_t *yb, int mode) {
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
        pairs_dsp(s, groups, w, pairs, ch, ya, yb, q, mode);
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
        ya[oc] = tinyml_out8(a0, &ch[0], lo, hi, mode);
        yb[oc] = tinyml_out8(b0, &ch[0], lo, hi, mode);
    }
#else
    (void)scratch;
    (void)groups;
    for (; oc + 1 < out_c; oc += 2, ch += 2) {
        int32_t a0 = 0, a1 = 0, b0 = 0, b1 = 0;
        for (int32_t g = 0; g < depth; g += 4, w += 8) {
#pragma GCC unroll 4 /* constant byte offsets: the pair-blocked order costs no address arithmetic */
            for (int32_t j = 0; j < 4; ++j) {
                const int32_t u = xa[g + j], v = xb[g + j], w0 = w[tinyml_pw_byte(0, j)];
                const int32_t w1 = w[tinyml_pw_byte(1, j)];
                a0 += u * w0;
                a1 += u * w1;
                b0 += v * w0;
                b1 += v * w1;
            }
        }
        ya[oc] = tinyml_out8(ch[0].bias + 2 * a0, &ch[0], lo, hi, mode);
        ya[oc + 1] = tinyml_out8(ch[1].bias + 2 * a1, &ch[1], lo, hi, mode);
        yb[oc] = tinyml_out8(ch[0].bias + 2 * b0, &ch[0], lo, hi, mode);
        yb[oc + 1] = tinyml_out8(ch[1].bias + 2 * b1, &ch[1], lo, hi, mode);
    }
    if (oc < out_c) {
        int32_t a0 = 0, b0 = 0;
        for (int32_t c = 0; c < depth; ++c) {
            a0 += xa[c] * w[c];
            b0 += xb[c] * w[c];
        }
        ya[oc] = tinyml_out8(ch[0].bias + 2 * a0, &ch[0], lo, hi, mode);
        yb[oc] = tinyml_out8(ch[0].bias + 2 * b0, &ch[0], lo, hi, mode);
    }
#endif
}

TINYML_KERNEL void tinyml_mat2_s8(const int8_t *xa, const int8_t *xb, int32_t depth, const int8_t *weights,
                                  int32_t out_c, const tinyml_requant_t *q, void *scratch, int8_t *ya, int8_t *yb) {
    /* two instances only (flash): TINYML_FULL layers (full range, out_zp != -128: rare, e.g. a last layer
     * without activation) take the general path, exact for any range */
    if (tinyml_rq_mode(q) == TINYML_FULL_RELU) {
        mat2(xa, xb, depth, weights, out_c, q, scratch, ya, yb, TINYML_FULL_RELU);
    } else {
        mat2(xa, xb, depth, weights, out_c, q, scratch, ya, yb, TINYML_CLAMP);
    }
}

/* ---- three vectors at a time (depth % 8 == 0, or % 4 for TINYML_FULL_RELU; out_c even): every weight word serves
 * three pixels ---- */

#if defined(__ARM_FEATURE_DSP)
/* One group's work once its words are loaded (weights r2, r3; pixel a's input r12, lr): the weights widened
 * into halves (SXTB16), then 24 MACs into acc r4-r9 (SMLAD), loading pixels b and c on the way. Shared by
 * dot3x2 and pw3x2_relu, which differ only in how they load the first words. */
#define WIDEN_W                            \
    "sxtb16 r10, r3\n\t"                  \
    "sxtb16 r11, r3, ror #8\n\t"          \
    "sxtb16 r3, r2, ror #8\n\t"           \
    "sxtb16 r2, r2\n\t"
#define MAC3X2                             \
    "smlad  r4, r12, r2, r4\n\t"          \
    "smlad  r4, lr, r10, r4\n\t"          \
    "smlad  r5, r12, r3, r5\n\t"          \
    "smlad  r5, lr, r11, r5\n\t"          \
    "ldrd   r12, lr, [r0], #8\n\t"        \
    "smlad  r6, r12, r2, r6\n\t"          \
    "smlad  r6, lr, r10, r6\n\t"          \
    "smlad  r7, r12, r3, r7\n\t"          \
    "smlad  r7, lr, r11, r7\n\t"          \
    "ldrd   r12, lr, [r0], #8\n\t"        \
    "smlad  r8, r12, r2, r8\n\t"          \
    "smlad  r8, lr, r10, r8\n\t"          \
    "smlad  r9, r12, r3, r9\n\t"          \
    "smlad  r9, lr, r11, r9\n\t"

/* acc[0..5] (channels 2j, 2j+1 of pixels a, b, c; in: the biases, out: the sums) += the widened vectors s
 * (6 words per group of 4 depth values: a even, a odd, b even, b odd, c even, c odd) times one pair-blocked
 * weight pair, `iters` times 4 groups (dot3x2_half: groups % 4 == 2). 24 MACs in 20 instructions: six accumulators, four weight halves, two
 * input halves and the two pointers take all 14 registers, so the loop counter lives on the stack. */
#define UNUSED __attribute__((unused)) /* a naked function reads its arguments in registers r0-r3 */
__attribute__((naked, noinline)) static void dot3x2(UNUSED const int32_t *s, UNUSED const int8_t *w,
                                                    UNUSED int32_t iters, UNUSED int32_t *acc) {
#define DOT3X2_GROUP                       \
    "ldrd   r2, r3, [r1], #8\n\t"         \
    WIDEN_W                                \
    "ldrd   r12, lr, [r0], #8\n\t"        \
    MAC3X2
    __asm__ volatile("push   {r4-r11, lr}\n\t"
                     "push   {r2, r3}\n\t"
                     "ldm    r3, {r4-r9}\n\t"
                     "1:\n\t" DOT3X2_GROUP DOT3X2_GROUP
                     ".Ltinyml_dot3x2_half:\n\t" DOT3X2_GROUP DOT3X2_GROUP
                     "ldr    r2, [sp]\n\t"
                     "subs   r2, r2, #1\n\t"
                     "str    r2, [sp]\n\t"
                     "bne    1b\n\t"
                     "pop    {r2, r3}\n\t"
                     "stm    r3, {r4-r9}\n\t"
                     "pop    {r4-r11, pc}\n\t");
#undef DOT3X2_GROUP
}

/* The same for groups % 4 == 2: enters dot3x2's loop at its second half; iters = (groups + 2) / 4. */
__attribute__((naked, noinline)) static void dot3x2_half(UNUSED const int32_t *s, UNUSED const int8_t *w,
                                                         UNUSED int32_t iters, UNUSED int32_t *acc) {
    __asm__ volatile("push   {r4-r11, lr}\n\t"
                     "push   {r2, r3}\n\t"
                     "ldm    r3, {r4-r9}\n\t"
                     "b      .Ltinyml_dot3x2_half\n\t");
}

/* One group of the three vectors widened (pw3x2_relu between blocks, widen3): raw words a in r5, b in r7, c in r9
 * -> a02, a13, b02, b13, c02, c13 doubled in r4-r9, stored at r3 (advanced by 24). */
#define WIDEN_GROUP                        \
    "sxtb16 r4, r5\n\t"                   \
    "sxtb16 r5, r5, ror #8\n\t"           \
    "sxtb16 r6, r7\n\t"                   \
    "sxtb16 r7, r7, ror #8\n\t"           \
    "sxtb16 r8, r9\n\t"                   \
    "sxtb16 r9, r9, ror #8\n\t"           \
    "sadd16 r4, r4, r4\n\t"               \
    "sadd16 r5, r5, r5\n\t"               \
    "sadd16 r6, r6, r6\n\t"               \
    "sadd16 r7, r7, r7\n\t"               \
    "sadd16 r8, r8, r8\n\t"               \
    "sadd16 r9, r9, r9\n\t"               \
    "stm    r3!, {r4-r9}\n\t"

/* The whole 3-pixel product of a TINYML_FULL_RELU layer in one asm routine: for every pair of output channels,
 * the biases, the depth loop (up to 31 groups of 4 depth values per pass after the first group; 4 and 8 groups
 * without a pass test), the requantization and the six stores: no call, push or pop per pair and no
 * accumulator round trip through memory. The routine copies this struct into its stack frame once (LDM, PUSH) and
 * keeps the weight stream in r1 across pairs (the pairs' weights follow each other). After the last pair of a
 * block it widens the next block of three vectors itself (as widen3; the caller widens the first), so a layer's
 * run of blocks costs one call. */
typedef struct {
    const int32_t *s_end;           /* [sp, #0]  end of the widened vectors: the last pass ends there */
    const int32_t *s;               /* [sp, #4]  widened vectors (tinyml_mat3_s8) */
    int32_t skip;                   /* [sp, #8]  groups the first pass leaves out (after the first group);
                                                 replaced by the entry address */
    const tinyml_channel_t *ch;     /* [sp, #12] channel table rows of the next pair */
    int8_t *ya;                     /* [sp, #16] where its outputs go for pixel a */
    int32_t db, dc;                 /* [sp, #20] yb - ya, [sp, #24] yc - ya = 2 db (bytes) */
    const tinyml_channel_t *ch_end; /* [sp, #28] ch + out_c: no pair left */
    int32_t blocks;                 /* [sp, #32] blocks of three vectors left, this one included */
    const int8_t *x;                /* [sp, #36] the next block's three vectors: x, x + depth, x + 2 depth */
    int32_t depth;                  /* [sp, #40] */
    const tinyml_channel_t *ch0;    /* [sp, #44] the first pair's channel rows (each block starts there) */
    int32_t w_bytes;                /* [sp, #48] depth * out_c: the weights of a block, rewound after it */
    int32_t pad;                    /* [sp, #52] keeps sp 8-byte aligned */
} pw3x2_args_t;

/* Cortex-M4 cycles (CYCLES.md rules) per group (4 depth values x 2 channels x 3 pixels = 24 MACs): four LDRs
 * back to back (5: each one after the first pipelines), 4 SXTB16, 2 LDRD (6), 12 SMLAD = 27 (1.125 per MAC, the
 * floor of this block). Per pass the end test against s_end on the stack (LDR, CMP, BNE: 6 taken, over 288
 * MACs); per pair 51: the biases and s 3 (loaded with the previous pair's stores), the entry jump 5 (LDR PC: the
 * first group needs all 14 registers), six requantizations 18 with their parameters 7, the output and channel
 * pointers through the frame 8 (outputs evenly spaced: yc - yb = yb - ya), six stores 6, the end test 4. The biases start the accumulators in the first
 * group (PW_GROUP0: pixels c and b before a, so r4 and r5 still hold them), no copies. All 14 registers hold the
 * accumulators (r4-r9), the widened weight halves (r2, r3, r10, r11), two activation words (r12, lr) and the two
 * streams (r0 = s, r1 = w), hence the state in the frame. Every other group is 88 bytes of 32-bit instructions (checked at assembly), so after the
 * first group a pair enters the unrolled ones `skip` groups late by a computed jump, not a remainder loop; the
 * jump is the loop's back edge (the pair loop falls through into the next pair's first group). */
#define PW_GROUP                           \
    "ldr    r2, [r1], #4\n\t"             \
    "ldr    r3, [r1], #4\n\t"             \
    "ldr    r12, [r0], #4\n\t"            \
    "ldr    lr, [r0], #4\n\t"             \
    WIDEN_W                                \
    MAC3X2
/* The first group of a pair, its biases in r4 (channel 2j) and r5 (2j+1): the same 27 cycles */
#define PW_GROUP0                          \
    "ldr    r2, [r1], #4\n\t"             \
    "ldr    r3, [r1], #4\n\t"             \
    "ldr    r12, [r0, #16]\n\t"           \
    "ldr    lr, [r0, #20]\n\t"            \
    WIDEN_W                                \
    "smlad  r8, r12, r2, r4\n\t"          \
    "smlad  r8, lr, r10, r8\n\t"          \
    "smlad  r9, r12, r3, r5\n\t"          \
    "smlad  r9, lr, r11, r9\n\t"          \
    "ldrd   r12, lr, [r0, #8]\n\t"        \
    "smlad  r6, r12, r2, r4\n\t"          \
    "smlad  r6, lr, r10, r6\n\t"          \
    "smlad  r7, r12, r3, r5\n\t"          \
    "smlad  r7, lr, r11, r7\n\t"          \
    "ldrd   r12, lr, [r0], #24\n\t"       \
    "smlad  r4, r12, r2, r4\n\t"          \
    "smlad  r4, lr, r10, r4\n\t"          \
    "smlad  r5, r12, r3, r5\n\t"          \
    "smlad  r5, lr, r11, r5\n\t"
/* requantize acc (TINYML_FULL_RELU: SMMLAR by M in r0 plus radd in r3, >> rshift in r2, saturate) */
#define PW_RQ(acc) TINYML_RQ_MUL_RELU(acc, "r0", "", "r3") \
                   "asr    " acc ", " acc ", r2\n\t" "ssat   " acc ", #8, " acc "\n\t"
/* The routine: after the first group (PW_GROUP0), ENTER (the jump to the entry), the unrolled group at 2, GROUPS
 * more, then PASS_END (the test for another pass, or nothing when one pass always covers the depth); after the
 * pair's end test NEXT (the next pair's first group and jump, or a branch back to the first group). */
#define PW3X2_ASM(GROUPS, PASS_END, ENTER, NEXT)                                                                   \
    __asm__ volatile(                                                                                              \
        "push   {r4-r11, lr}\n\t"                                                                                  \
        "add    r0, r0, #40\n\t"                                                                                   \
        "ldm    r0, {r2-r5}\n\t"                                                                                   \
        "push   {r2-r5}\n\t"                                                                                       \
        "sub    r0, r0, #40\n\t"                                                                                   \
        "ldm    r0, {r2-r11}\n\t"                                                                                  \
        "push   {r2-r11}\n\t"                 /* the frame: the struct above */                                    \
        "movs   r3, #88\n\t"                  /* entry = top + skip * 88 bytes (checked below) */                  \
        "muls   r4, r3, r4\n\t"                                                                                    \
        "adr    r3, 2f\n\t"                   /* (the fixed-depth routines do not use it) */                       \
        "add    r3, r3, r4\n\t"                                                                                    \
        "adds   r3, r3, #1\n\t"                 /* Thumb bit: LDR PC interworks */                                   \
        "str    r3, [sp, #8]\n\t"                                                                                  \
        "mov    r12, r5\n\t"                  /* ch */                                                             \
        "1:\n\t"                              /* a block's first pair: r12 = ch, r1 = its weights */               \
        "ldr    r4, [r12]\n\t"                /* doubled biases of both channels */                                \
        "ldr    r5, [r12, #16]\n\t"                                                                                \
        "ldr    r0, [sp, #4]\n\t"             /* s */                                                              \
        "7:\n\t" PW_GROUP0 ENTER                                                                                    \
        "2:\n\t" PW_GROUP "3:\n\t"                                                                                 \
        ".if 3b - 2b - 88\n\t.error \"pw3x2_relu: a group is not 88 bytes\"\n\t.endif\n\t"                         \
        GROUPS PASS_END                                                                                            \
        "ldr    r12, [sp, #12]\n\t"           /* ch, ya; channel 0: M, rshift, radd (loads back to back) */        \
        "ldr    lr, [sp, #16]\n\t"                                                                                 \
        "ldr    r0, [r12, #4]\n\t"                                                                                 \
        "ldr    r2, [r12, #8]\n\t"                                                                                 \
        "ldr    r3, [r12, #12]\n\t"                                                                                \
        PW_RQ("r4") PW_RQ("r6") PW_RQ("r8")                                                                        \
        "ldr    r0, [r12, #20]\n\t"           /* channel 1; yb - ya */                                             \
        "ldr    r2, [r12, #24]\n\t"                                                                                \
        "ldr    r3, [r12, #28]\n\t"                                                                                \
        "ldr    r10, [sp, #20]\n\t"                                                                                \
        "add    r11, lr, r10, lsl #1\n\t"       /* yc = ya + 2 (yb - ya) */                                         \
        "add    r10, r10, lr\n\t"                                                                                  \
        PW_RQ("r5") PW_RQ("r7") PW_RQ("r9")                                                                        \
        "strb   r6, [r10]\n\t"                                                                                     \
        "strb   r7, [r10, #1]\n\t"                                                                                 \
        "strb   r8, [r11]\n\t"                                                                                     \
        "strb   r9, [r11, #1]\n\t"                                                                                 \
        "strb   r5, [lr, #1]\n\t"                                                                                  \
        "strb   r4, [lr], #2\n\t"             /* ya on to the next pair */                                         \
        "ldr    r2, [sp, #28]\n\t"            /* ch_end */                                                         \
        "ldr    r4, [r12, #32]!\n\t"          /* the next pair: ch, its biases (after the last pair: the scratch */ \
        "ldr    r5, [r12, #16]\n\t"           /* after the table, read but unused), s */                           \
        "ldr    r0, [sp, #4]\n\t"                                                                                  \
        "str    lr, [sp, #16]\n\t"                                                                                 \
        "str    r12, [sp, #12]\n\t"                                                                                \
        "cmp    r12, r2\n\t"                                                                                       \
        NEXT                                                                                                       \
        "6:\n\t"                                                                                                   \
        "ldr    r2, [sp, #32]\n\t"            /* another block? */                                                 \
        "subs   r2, r2, #1\n\t"                                                                                    \
        "beq    5f\n\t"                                                                                            \
        "str    r2, [sp, #32]\n\t"                                                                                 \
        "ldr    r0, [sp, #36]\n\t"            /* widen its three vectors (as widen3) */                            \
        "ldr    r2, [sp, #40]\n\t"                                                                                 \
        "ldr    r3, [sp, #4]\n\t"                                                                                  \
        "lsr    r12, r2, #2\n\t"                                                                                   \
        "4:\n\t"                                                                                                   \
        "ldr    r7, [r0, r2]\n\t"                                                                                  \
        "ldr    r9, [r0, r2, lsl #1]\n\t"                                                                          \
        "ldr    r5, [r0], #4\n\t"                                                                                  \
        WIDEN_GROUP                                                                                                \
        "subs   r12, r12, #1\n\t"                                                                                  \
        "bne    4b\n\t"                                                                                            \
        "add    r0, r0, r2, lsl #1\n\t"       /* x: the block after (r0 has moved by depth) */                     \
        "ldr    r12, [sp, #44]\n\t"           /* ch back to the first pair, ya on by 2 out_c (it moved out_c), */  \
        "ldr    lr, [sp, #16]\n\t"            /* w back by the block's weights */                                  \
        "ldr    r3, [sp, #24]\n\t"                                                                                 \
        "ldr    r4, [sp, #48]\n\t"                                                                                 \
        "str    r0, [sp, #36]\n\t"                                                                                 \
        "add    lr, lr, r3\n\t"                                                                                    \
        "sub    r1, r1, r4\n\t"                                                                                    \
        "str    lr, [sp, #16]\n\t"                                                                                 \
        "str    r12, [sp, #12]\n\t"                                                                                \
        "b      1b\n\t"                                                                                            \
        "5:\n\t"                                                                                                   \
        "add    sp, sp, #56\n\t"                                                                                   \
        "pop    {r4-r11, pc}\n\t");

/* A computed entry (ENTER): the jump from the first group into the unrolled ones; the pair loop falls through into
 * the next pair's first group and jumps (NEXT). */
#define PW_JUMP "ldr    pc, [sp, #8]\n\t"
#define PW_ENTER PW_JUMP ".p2align 2\n\t" /* (padding never runs: after the jump) */
#define PW_NEXT "beq    6f\n\t" PW_GROUP0 PW_JUMP
/* Any depth: the first group, then passes of 31 groups (2.7 KB of code), the first entered `skip` =
 * 30 - (groups - 2) % 31 late (31 with no group after the first: straight to the pass test), so up to 32 groups
 * (depth 128) in one pass: 4 est. M4 cycles per pair of channels for the pass test (LDR, CMP, BNE not taken), 6 more
 * per extra pass (depth 256: 16 a pair, against no test for a fully unrolled 64 groups, 5.5 KB of code that the
 * four-pixel routine's flash takes: person_detect +6 k est. M4 cycles at its 3x3x256 layer). */
#define PW_GROUPS8 PW_GROUP PW_GROUP PW_GROUP PW_GROUP PW_GROUP PW_GROUP PW_GROUP PW_GROUP
__attribute__((naked, noinline)) static void pw3x2_relu(UNUSED const pw3x2_args_t *a, UNUSED const int8_t *w) {
    PW3X2_ASM(PW_GROUPS8 PW_GROUPS8 PW_GROUPS8 PW_GROUP PW_GROUP PW_GROUP PW_GROUP PW_GROUP PW_GROUP,
              "ldr    r2, [sp]\n\t"             /* s_end: another pass? */
              "cmp    r0, r2\n\t"
              "bne    2b\n\t", PW_ENTER, PW_NEXT);
}

/* Exactly 4 or 8 groups (depth 16 or 32: the thin layers): the groups straight after the first, no entry jump,
 * and the pair loop branches back to the first group: 3 est. M4 cycles less per pair of channels (BNE taken 3
 * instead of BEQ 1 and LDR PC 5), 0.6 KB and 0.95 KB of code. */
__attribute__((naked, noinline)) static void pw3x2_relu4(UNUSED const pw3x2_args_t *a, UNUSED const int8_t *w) {
    PW3X2_ASM(PW_GROUP PW_GROUP, "", "", "bne    7b\n\t");
}
__attribute__((naked, noinline)) static void pw3x2_relu8(UNUSED const pw3x2_args_t *a, UNUSED const int8_t *w) {
    PW3X2_ASM(PW_GROUP PW_GROUP PW_GROUP PW_GROUP PW_GROUP PW_GROUP, "", "", "bne    7b\n\t");
}
#undef PW_NEXT
#undef PW_ENTER
#undef PW_JUMP
#undef PW_GROUPS8
#undef PW3X2_ASM
#undef PW_RQ
#undef PW_GROUP0
#undef PW_GROUP
#undef MAC3X2
#undef WIDEN_W

/* The routine for `groups` and the entry offset it takes. */
static inline int32_t pw3x2_skip(int32_t groups) {
    return groups == 1 ? 31 : 30 - (groups - 2) % 31;
}
static inline void pw3x2_call(const pw3x2_args_t *a, const int8_t *w, int32_t groups) {
    if (groups == 4) {
        pw3x2_relu4(a, w);
    } else if (groups == 8) {
        pw3x2_relu8(a, w);
    } else {
        pw3x2_relu(a, w);
    }
}
/* The three vectors widened into s as the 3-pixel routines read them: per group of 4 depth values the words
 * a02, a13, b02, b13, c02, c13 (lanes 0,2 and 1,3 as SXTB16 gives them), doubled so the sums come out as the
 * 2 * acc the requantization takes. `groups` (> 0) is the fifth argument, on the stack. Cortex-M4 cycles per
 * group: three LDRs back to back 4, 6 SXTB16, 6 SADD16, one STM of the six words 7, SUBS + BNE 4 = 27 (GCC's
 * code for the same loop: 38). */
__attribute__((naked, noinline)) static void widen3(UNUSED const int8_t *xa, UNUSED const int8_t *xb,
                                                    UNUSED const int8_t *xc, UNUSED int32_t *s,
                                                    UNUSED int32_t groups) {
    __asm__ volatile("ldr    r12, [sp]\n\t"
                     "push   {r4-r9}\n\t"
                     "1:\n\t"
                     "ldr    r5, [r0], #4\n\t"
                     "ldr    r7, [r1], #4\n\t"
                     "ldr    r9, [r2], #4\n\t"
                     WIDEN_GROUP
                     "subs   r12, r12, #1\n\t"
                     "bne    1b\n\t"
                     "pop    {r4-r9}\n\t"
                     "bx     lr\n\t");
}
#undef WIDEN_GROUP

/* ---- depth 8 (thin layers): two pixels' whole widened input in registers, the channels streamed past it ---- */

/* Per output channel, 8 words in the order the loop reads them: the doubled bias, the weights widened and doubled
 * as int16 pairs (w0,w2), (w1,w3), (w4,w6), (w5,w7) (the lanes SXTB16 gives the input), M, radd, and rshift with
 * bit 8 set on the last channel of eight that more channels follow (ASR reads only its low byte). (Depth 16 the
 * same way, two halves with the partial sums through the records, is 1.60 est. cycles/MAC against pw3x2's 1.76,
 * but its 56-byte records cost 1.2 KB more scratch at person_detect's layer 4, which moves --patch auto to a plan
 * with more bands: slower there.) */
enum { PW8_REC_WORDS = 8 };

/* The routine's frame (copied to the stack). Pixels go in pairs k = 64 / out_c apart (pixel a, pixel a + k), so
 * pixel b's output is always 64 bytes after pixel a's (one STRB immediate offset, no pointer for it); a block of
 * 2k pixels is k such pairs. */
typedef struct {
    const int8_t *x;      /* [sp, #0]  pixel a of the next pair (8 bytes), pixel b kb bytes on */
    const int8_t *x_end;  /* [sp, #4]  the end of the whole blocks' input */
    int8_t *y;            /* [sp, #8]  pixel a's output (kept in r0) */
    const int32_t *rec;   /* [sp, #12] the channel records */
    int32_t kb;           /* [sp, #16] 8 k = 512 / out_c */
    const int8_t *xa_end; /* [sp, #20] x + kb: the end of this block's pixels a */
} pw8x2_args_t;

/* Cortex-M4 cycles (CYCLES.md rules) per channel of a pair of pixels (16 MACs): LDM of the bias and two weight
 * words 4, 8 SMLAD (the first of pixel b adds the bias), LDM of two weight words 3, LDM of M and radd 3, LDR
 * rshift 2, two SMMLAR, ASR, SSAT 6, two STRB 2 = 28, plus the loop test (CMP, BHS: 4) per eight channels: 1.78
 * per MAC. The two pixels' 16 input values (8 words of int16 pairs: a in r2-r5, b in r6-r9) stay in registers for all
 * channels; r1 streams the records, r0 the output; r10/lr accumulate pixels a/b, r11/r12 carry the loaded words.
 * Per pair of pixels 27 (loading and widening the input, the pair and block tests). Acts are not doubled: the
 * records' weights are. */
#define PW8_CH                             \
    "ldm    r1!, {r10, r11, r12}\n\t"     \
    "smlad  lr, r6, r11, r10\n\t"         \
    "smlad  r10, r2, r11, r10\n\t"        \
    "smlad  r10, r3, r12, r10\n\t"        \
    "smlad  lr, r7, r12, lr\n\t"          \
    "ldm    r1!, {r11, r12}\n\t"          \
    "smlad  r10, r4, r11, r10\n\t"        \
    "smlad  lr, r8, r11, lr\n\t"          \
    "smlad  r10, r5, r12, r10\n\t"        \
    "smlad  lr, r9, r12, lr\n\t"          \
    "ldm    r1!, {r11, r12}\n\t"          \
    "smmlar r10, r10, r11, r12\n\t"       \
    "smmlar lr, lr, r11, r12\n\t"         \
    "ldr    r11, [r1], #4\n\t"            \
    "asr    r10, r10, r11\n\t"            \
    "asr    lr, lr, r11\n\t"              \
    "ssat   r10, #8, r10\n\t"             \
    "ssat   lr, #8, lr\n\t"               \
    "strb   lr, [r0, #64]\n\t"            \
    "strb   r10, [r0], #1\n\t"
__attribute__((naked, noinline)) static void pw8x2_relu(UNUSED const pw8x2_args_t *a) {
    __asm__ volatile("push   {r4-r11, lr}\n\t"
                     "ldm    r0, {r1-r6}\n\t"
                     "push   {r1-r6}\n\t"
                     "mov    r0, r3\n\t"
                     "1:\n\t"                         /* a pair: r1 = pixel a's input, r0 its output */
                     "ldr    r12, [sp, #16]\n\t"
                     "add    r12, r1, r12\n\t"
                     "ldrd   r2, r4, [r1], #8\n\t"
                     "ldrd   r6, r8, [r12]\n\t"
                     "str    r1, [sp]\n\t"
                     "sxtb16 r3, r2, ror #8\n\t"
                     "sxtb16 r2, r2\n\t"
                     "sxtb16 r5, r4, ror #8\n\t"
                     "sxtb16 r4, r4\n\t"
                     "sxtb16 r7, r6, ror #8\n\t"
                     "sxtb16 r6, r6\n\t"
                     "sxtb16 r9, r8, ror #8\n\t"
                     "sxtb16 r8, r8\n\t"
                     "ldr    r1, [sp, #12]\n\t"
                     "2:\n\t" PW8_CH PW8_CH PW8_CH PW8_CH PW8_CH PW8_CH PW8_CH PW8_CH
                     "cmp    r11, #256\n\t"           /* another eight channels? */
                     "bhs    2b\n\t"
                     "ldr    r1, [sp]\n\t"            /* another pair of pixels in this block? */
                     "ldr    r3, [sp, #20]\n\t"
                     "cmp    r1, r3\n\t"
                     "bne    1b\n\t"
                     "ldr    r12, [sp, #16]\n\t"      /* the next block: past this one's pixels b */
                     "ldr    r2, [sp, #4]\n\t"
                     "add    r1, r1, r12\n\t"
                     "add    r3, r1, r12\n\t"
                     "add    r0, r0, #64\n\t"
                     "str    r1, [sp]\n\t"
                     "str    r3, [sp, #20]\n\t"
                     "cmp    r1, r2\n\t"
                     "bne    1b\n\t"
                     "add    sp, sp, #24\n\t"
                     "pop    {r4-r11, pc}\n\t");
}
#undef PW8_CH
#undef UNUSED

/* ---- four pixels x two channels (depth <= 128, TINYML_FULL_RELU): the widened block in the routine's frame ---- */

/* The frame of pw4x2_relu (copied to the stack, above the widened block of 1 KB at [sp, #0]). */
typedef struct {
    const int8_t *x;                /* [sp, #1024] this block's four vectors: x, x + depth, x + 2 depth, x + 3 depth */
    int32_t depth;                  /* [sp, #1028] */
    int32_t dst1;                   /* [sp, #1032] where group 1 is widened: 32 (33 - groups) bytes above sp */
    const tinyml_channel_t *ch;     /* [sp, #1036] channel table rows of the current pair */
    int8_t *ya;                     /* [sp, #1040] their outputs for pixel a (b, c, d: out_c bytes apart each) */
    int32_t out_c;                  /* [sp, #1044] */
    const tinyml_channel_t *ch_end; /* [sp, #1048] ch + out_c: no pair left */
    int32_t blocks;                 /* [sp, #1052] blocks of four vectors left, this one included */
    const tinyml_channel_t *ch0;    /* [sp, #1056] the first pair's rows (each block starts there) */
    const int8_t *w0;               /* [sp, #1060] the weights (each block starts there) */
    int32_t entry;                  /* [sp, #1064] groups the first pass leaves out; replaced by the entry address */
    int32_t pad;                    /* [sp, #1068] keeps sp 8-byte aligned */
} pw4x2_args_t;
enum { PW4_GROUPS = 32 }; /* groups of 4 depth values the frame holds (1 KB) and the routine unrolls */

/* Four vectors' group of 4 depth values widened (doubled int16 pairs, as widen3) into the 8 words of a slot at r3
 * (advanced by 32): lanes (0, 2) of pixels a-d, then lanes (1, 3). r0 = pixel a (advanced by 4), r2 = depth,
 * r1 = 3 depth. Cortex-M4 cycles: four LDRs back to back 5, 8 SXTB16, 8 SADD16, STM 9 = 30. */
#define PW4_WIDEN1(lo, hi) /* raw word hi -> doubled lanes (0, 2) in lo, (1, 3) in hi */ \
    "sxtb16 " lo ", " hi "\n\t" "sxtb16 " hi ", " hi ", ror #8\n\t"                       \
    "sadd16 " lo ", " lo ", " lo "\n\t" "sadd16 " hi ", " hi ", " hi "\n\t"
#define PW4_WIDEN                          \
    "ldr    r9, [r0, r2]\n\t"             \
    "ldr    r10, [r0, r2, lsl #1]\n\t"    \
    "ldr    r11, [r0, r1]\n\t"            \
    "ldr    r8, [r0], #4\n\t"             \
    PW4_WIDEN1("r4", "r8") PW4_WIDEN1("r5", "r9") PW4_WIDEN1("r6", "r10") PW4_WIDEN1("r7", "r11") \
    "stm    r3!, {r4-r11}\n\t"
/* requantize acc (TINYML_FULL_RELU: SMMLAR by M in r1 plus radd in r3, >> rshift in r2, saturate) */
#define PW4_RQ(acc) TINYML_RQ_MUL_RELU(acc, "r1", "", "r3") \
                    "asr    " acc ", " acc ", r2\n\t" "ssat   " acc ", #8, " acc "\n\t"

/* All pairs of output channels for `blocks` blocks of four consecutive vectors, in one asm routine. A block's four
 * vectors are widened into the routine's own stack frame and read as [sp, #imm] with immediates fixed in the
 * unrolled code, which frees the register an activation pointer would take: 8 accumulators (r4-r7 channel 2j of
 * pixels a-d, r8-r11 channel 2j+1), the weight stream r0, two weight halves and three activation words (r1, r2,
 * r3, r12, lr). SP does not move inside the loops (exceptions stack below it). The weights are pair-blocked
 * (tinyml_pw_byte): SXTB16 of the word W02 gives channel 2j's (d0, d2), with ROR #8 channel 2j+1's, both against
 * the activation word (d0, d2) of each pixel; then W13 against (d1, d3).
 * Cortex-M4 cycles (CYCLES.md rules) per half group (one weight word, 4 pixels x 2 channels x 2 depth values = 16
 * MACs): four LDRs back to back 5 (the weight word and three activations), 2 SXTB16, 2 SMLAD, the fourth
 * activation's LDR 2 (after an SMLAD: not pipelined), 6 SMLAD = 17; a group of 32 MACs 34 (1.0625 per MAC, the
 * floor of this block; pw3x2's is 1.125). Per pair 60: the channel and output pointers through the frame and the
 * first parameters 6, eight requantizations 24, the second parameters 4, the output addresses 4, eight stores 8,
 * the next pair's biases and end test 8, the entry jump 5 (LDR PC). Per block the widening: 34 per group (PW4_WIDEN
 * 30, the loop test 4) and about 30 more (frame, pointers). The first group of a pair (slot 0) starts the accumulators from the biases (r7
 * channel 2j, r11 channel 2j+1, written last); groups 1 .. groups - 1 sit in the tail slots 33 - groups .. 31 so
 * that the computed entry (PW4_GROUPS - groups slots late, 120 bytes each, checked at assembly) reads them with
 * the unrolled code's immediates. */
#define UNUSED __attribute__((unused))
__attribute__((naked, noinline)) static void pw4x2_relu(UNUSED const pw4x2_args_t *a) {
    __asm__ volatile(
        /* half a group: weight word into r1, slot s's activations at offset o (0: lanes 0,2; 16: lanes 1,3) */
        ".macro tinyml_pw4_half s, o\n\t"
        "ldr.w  r1, [r0], #4\n\t"
        "ldr.w  r2, [sp, #(\\s * 32 + \\o)]\n\t"
        "ldr.w  r3, [sp, #(\\s * 32 + \\o + 4)]\n\t"
        "ldr.w  r12, [sp, #(\\s * 32 + \\o + 8)]\n\t"
        "sxtb16 lr, r1, ror #8\n\t"
        "sxtb16 r1, r1\n\t"
        "smlad  r4, r2, r1, r4\n\t"
        "smlad  r8, r2, lr, r8\n\t"
        "ldr.w  r2, [sp, #(\\s * 32 + \\o + 12)]\n\t"
        "smlad  r5, r3, r1, r5\n\t"
        "smlad  r9, r3, lr, r9\n\t"
        "smlad  r6, r12, r1, r6\n\t"
        "smlad  r10, r12, lr, r10\n\t"
        "smlad  r7, r2, r1, r7\n\t"
        "smlad  r11, r2, lr, r11\n\t"
        ".endm\n\t"
        /* a pair's first group (slot 0), the accumulators started from the biases in r7 and r11 */
        ".macro tinyml_pw4_first\n\t"
        "ldr.w  r1, [r0], #4\n\t"
        "ldr.w  r2, [sp, #0]\n\t"
        "ldr.w  r3, [sp, #4]\n\t"
        "ldr.w  r12, [sp, #8]\n\t"
        "sxtb16 lr, r1, ror #8\n\t"
        "sxtb16 r1, r1\n\t"
        "smlad  r4, r2, r1, r7\n\t"
        "smlad  r8, r2, lr, r11\n\t"
        "ldr.w  r2, [sp, #12]\n\t"
        "smlad  r5, r3, r1, r7\n\t"
        "smlad  r9, r3, lr, r11\n\t"
        "smlad  r6, r12, r1, r7\n\t"
        "smlad  r10, r12, lr, r11\n\t"
        "smlad  r7, r2, r1, r7\n\t"
        "smlad  r11, r2, lr, r11\n\t"
        "tinyml_pw4_half 0, 16\n\t"
        ".endm\n\t"
        "push   {r4-r11, lr}\n\t"
        "ldm    r0, {r1-r12}\n\t"
        "push   {r1-r12}\n\t"                 /* the frame: the struct above */
        "sub    sp, sp, #1024\n\t"            /* the widened block */
        "movs   r3, #120\n\t"                 /* entry = top + skip * 120 bytes (checked below) */
        "mul    r11, r3, r11\n\t"
        "adr    r3, 2f\n\t"
        "add    r3, r3, r11\n\t"
        "adds   r3, r3, #1\n\t"               /* Thumb bit: LDR PC interworks */
        "str    r3, [sp, #1064]\n\t"
        "1:\n\t"                              /* a block: widen its four vectors */
        "ldr    r0, [sp, #1024]\n\t"
        "ldr    r2, [sp, #1028]\n\t"
        "add    r1, r2, r2, lsl #1\n\t"
        "mov    r3, sp\n\t"
        PW4_WIDEN                             /* group 0 into slot 0, the others into the tail slots */
        "ldr    r12, [sp, #1032]\n\t"
        "add    r3, sp, r12\n\t"
        "lsrs   r12, r2, #2\n\t"
        "subs   r12, r12, #1\n\t"
        "beq    9f\n\t"
        "8:\n\t" PW4_WIDEN
        "subs   r12, r12, #1\n\t"
        "bne    8b\n\t"
        "9:\n\t"
        "ldr    r12, [sp, #1056]\n\t"         /* the first pair: its biases, the weights */
        "ldr    r0, [sp, #1060]\n\t"
        "ldr    r7, [r12]\n\t"
        "ldr    r11, [r12, #16]\n\t"
        "str    r12, [sp, #1036]\n\t"
        "tinyml_pw4_first\n\t"
        "ldr    pc, [sp, #1064]\n\t"
        ".p2align 2\n\t"                      /* (padding never runs: after the jump) */
        "2:\n\t"
        "tinyml_pw4_half 1, 0\n\t"
        "tinyml_pw4_half 1, 16\n\t"
        "3:\n\t"
        ".if 3b - 2b - 120\n\t.error \"pw4x2_relu: a group is not 120 bytes\"\n\t.endif\n\t"
        ".irp s, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, "
        "29, 30, 31\n\t"
        "tinyml_pw4_half \\s, 0\n\t"
        "tinyml_pw4_half \\s, 16\n\t"
        ".endr\n\t"
        "4:\n\t"
        ".if 4b - 2b - 120 * 31\n\t.error \"pw4x2_relu: the groups are not 31 x 120 bytes\"\n\t.endif\n\t"
        "ldr    r12, [sp, #1036]\n\t"         /* ch, ya; channel 2j: M, rshift, radd (loads back to back) */
        "ldr    lr, [sp, #1040]\n\t"
        "ldr    r1, [r12, #4]\n\t"
        "ldr    r2, [r12, #8]\n\t"
        "ldr    r3, [r12, #12]\n\t"
        PW4_RQ("r4") PW4_RQ("r5") PW4_RQ("r6") PW4_RQ("r7")
        "ldr    r1, [r12, #20]\n\t"           /* channel 2j+1 */
        "ldr    r2, [r12, #24]\n\t"
        "ldr    r3, [r12, #28]\n\t"
        PW4_RQ("r8") PW4_RQ("r9") PW4_RQ("r10") PW4_RQ("r11")
        "ldr    r1, [sp, #1044]\n\t"          /* out_c: pixels b, c, d */
        "add    r2, lr, r1\n\t"
        "add    r3, r2, r1\n\t"
        "strb   r8, [lr, #1]\n\t"
        "strb   r4, [lr], #2\n\t"             /* ya on to the next pair */
        "add    r1, r3, r1\n\t"
        "strb   r5, [r2]\n\t"
        "strb   r9, [r2, #1]\n\t"
        "strb   r6, [r3]\n\t"
        "strb   r10, [r3, #1]\n\t"
        "strb   r7, [r1]\n\t"
        "strb   r11, [r1, #1]\n\t"
        "ldr    r2, [sp, #1048]\n\t"          /* ch_end */
        "ldr    r7, [r12, #32]!\n\t"          /* the next pair: ch, its biases (after the last pair: the scratch */
        "ldr    r11, [r12, #16]\n\t"          /* after the table, read but unused) */
        "str    lr, [sp, #1040]\n\t"
        "str    r12, [sp, #1036]\n\t"
        "cmp    r12, r2\n\t"
        "beq    6f\n\t"
        "tinyml_pw4_first\n\t"
        "ldr    pc, [sp, #1064]\n\t"
        "6:\n\t"
        "ldr    r2, [sp, #1052]\n\t"          /* another block? */
        "subs   r2, r2, #1\n\t"
        "beq    5f\n\t"
        "str    r2, [sp, #1052]\n\t"
        "ldr    r1, [sp, #1044]\n\t"          /* ya on by 4 out_c (it moved out_c), x by 4 depth */
        "ldr    r0, [sp, #1024]\n\t"
        "ldr    r2, [sp, #1028]\n\t"
        "add    lr, lr, r1, lsl #1\n\t"
        "add    lr, lr, r1\n\t"
        "add    r0, r0, r2, lsl #2\n\t"
        "str    lr, [sp, #1040]\n\t"
        "str    r0, [sp, #1024]\n\t"
        "b      1b\n\t"
        "5:\n\t"
        "add    sp, sp, #1072\n\t"
        "pop    {r4-r11, pc}\n\t"
        ".purgem tinyml_pw4_first\n\t"
        ".purgem tinyml_pw4_half\n\t");
}
#undef PW4_RQ
#undef PW4_WIDEN
#undef PW4_WIDEN1
#undef UNUSED

/* Any other activation range: dot3x2 per pair of channels, requantized and clamped in C. */
__attribute__((always_inline)) static inline void mat3(const int32_t *s, int32_t groups, const int8_t *w,
                                                       int32_t out_c, const tinyml_requant_t *q, int8_t *ya,
                                                       int8_t *yb, int8_t *yc) {
    const tinyml_channel_t *ch = q->ch;
    const int32_t lo = q->act_min, hi = q->act_max;
    void (*const dot)(const int32_t *, const int8_t *, int32_t, int32_t *) = groups & 2 ? dot3x2_half : dot3x2;
    const int32_t iters = (groups + 2) >> 2;
    int32_t acc[6];
    for (int32_t oc = 0; oc < out_c; oc += 2, ch += 2, ya += 2, yb += 2, yc += 2, w += 8 * groups) {
        acc[0] = acc[2] = acc[4] = ch[0].bias;
        acc[1] = acc[3] = acc[5] = ch[1].bias;
        dot(s, w, iters, acc);
        ya[0] = tinyml_out8(acc[0], &ch[0], lo, hi, 0);
        ya[1] = tinyml_out8(acc[1], &ch[1], lo, hi, 0);
        yb[0] = tinyml_out8(acc[2], &ch[0], lo, hi, 0);
        yb[1] = tinyml_out8(acc[3], &ch[1], lo, hi, 0);
        yc[0] = tinyml_out8(acc[4], &ch[0], lo, hi, 0);
        yc[1] = tinyml_out8(acc[5], &ch[1], lo, hi, 0);
    }
}
#endif

TINYML_KERNEL void tinyml_mat3_s8(const int8_t *xa, const int8_t *xb, const int8_t *xc, int32_t depth,
                                  const int8_t *weights, int32_t out_c, const tinyml_requant_t *q, void *scratch,
                                  int8_t *ya, int8_t *yb, int8_t *yc) {
#if defined(__ARM_FEATURE_DSP)
    const int rq_mode = tinyml_rq_mode(q);
    if (rq_mode == TINYML_FULL_RELU && yc - yb != yb - ya) { /* pw3x2 takes evenly spaced outputs (always so far) */
        tinyml_mat2_s8(xa, xb, depth, weights, out_c, q, scratch, ya, yb);
        tinyml_mat2_s8(xc, xc, depth, weights, out_c, q, scratch, yc, yc);
        return;
    }
    /* widen the three vectors once (as tinyml_mat2_s8 does), interleaved per group of 4 depth values */
    const int32_t groups = depth / 4;
    int32_t *const s = (int32_t *)scratch;
    widen3(xa, xb, xc, s, groups);
    const int8_t *w = (const int8_t *)__builtin_assume_aligned(weights, 4);
    if (rq_mode == TINYML_FULL_RELU) {
        const pw3x2_args_t a = {s + 6 * groups, s, pw3x2_skip(groups), q->ch, ya,
                                (int32_t)((uintptr_t)yb - (uintptr_t)ya), (int32_t)((uintptr_t)yc - (uintptr_t)ya),
                                q->ch + out_c, 1, NULL, depth, q->ch, depth * out_c, 0};
        pw3x2_call(&a, w, groups);
    } else {
        mat3(s, groups, w, out_c, q, ya, yb, yc);
    }
#else
    /* plain C: pairs of channels (pair-blocked weights, 8 bytes per group of 4 depth values) for three pixels */
    const tinyml_channel_t *ch = q->ch;
    const int32_t lo = q->act_min, hi = q->act_max;
    (void)scratch;
    for (int32_t oc = 0; oc < out_c; oc += 2, weights += 2 * depth) {
        int32_t a0 = 0, a1 = 0, b0 = 0, b1 = 0, c0 = 0, c1 = 0;
        for (int32_t g = 0; g < depth; g += 4) {
#pragma GCC unroll 4 /* constant byte offsets (as in tinyml_mat2_s8) */
            for (int32_t j = 0; j < 4; ++j) {
                const int32_t u = xa[g + j], v = xb[g + j], x = xc[g + j];
                const int32_t w0 = weights[2 * g + tinyml_pw_byte(0, j)];
                const int32_t w1 = weights[2 * g + tinyml_pw_byte(1, j)];
                a0 += u * w0;
                a1 += u * w1;
                b0 += v * w0;
                b1 += v * w1;
                c0 += x * w0;
                c1 += x * w1;
            }
        }
        ya[oc] = tinyml_out8(ch[oc].bias + 2 * a0, &ch[oc], lo, hi, 0);
        ya[oc + 1] = tinyml_out8(ch[oc + 1].bias + 2 * a1, &ch[oc + 1], lo, hi, 0);
        yb[oc] = tinyml_out8(ch[oc].bias + 2 * b0, &ch[oc], lo, hi, 0);
        yb[oc + 1] = tinyml_out8(ch[oc + 1].bias + 2 * b1, &ch[oc + 1], lo, hi, 0);
        yc[oc] = tinyml_out8(ch[oc].bias + 2 * c0, &ch[oc], lo, hi, 0);
        yc[oc + 1] = tinyml_out8(ch[oc + 1].bias + 2 * c1, &ch[oc + 1], lo, hi, 0);
    }
#endif
}

TINYML_KERNEL int32_t tinyml_mat3_run_s8(const int8_t *x, int32_t blocks, int32_t depth, const int8_t *weights,
                                         int32_t out_c, const tinyml_requant_t *q, void *scratch, int8_t *y) {
#if defined(__ARM_FEATURE_DSP)
    if (tinyml_rq_mode(q) == TINYML_FULL_RELU) { /* the arguments once per run, not once per block */
        const int32_t groups = depth / 4;
        int32_t *const s = (int32_t *)scratch;
        const int8_t *w = (const int8_t *)__builtin_assume_aligned(weights, 4);
        if (blocks > 0) { /* the first block widened here, the others by pw3x2_relu as it goes */
            const pw3x2_args_t a = {s + 6 * groups, s, pw3x2_skip(groups), q->ch, y, out_c, 2 * out_c,
                                    q->ch + out_c, blocks, x + 3 * depth, depth, q->ch, depth * out_c, 0};
            widen3(x, x + depth, x + 2 * depth, s, groups);
            pw3x2_call(&a, w, groups);
        }
        return blocks;
    }
#endif
    (void)x, (void)blocks, (void)depth, (void)weights, (void)out_c, (void)q, (void)scratch, (void)y;
    return 0;
}

TINYML_KERNEL int32_t tinyml_mat4_run_s8(const int8_t *x, int32_t blocks, int32_t depth, const int8_t *weights,
                                         int32_t out_c, const tinyml_requant_t *q, int8_t *y) {
#if defined(__ARM_FEATURE_DSP)
    if (blocks > 0 && depth % 4 == 0 && depth <= 4 * PW4_GROUPS && out_c % 2 == 0 &&
        tinyml_rq_mode(q) == TINYML_FULL_RELU) {
        const int32_t groups = depth / 4;
        const pw4x2_args_t a = {x,     depth,  32 * (PW4_GROUPS + 1 - groups), q->ch, y, out_c, q->ch + out_c,
                                blocks, q->ch, weights, PW4_GROUPS - groups, 0};
        pw4x2_relu(&a);
        return blocks;
    }
#endif
    (void)x, (void)blocks, (void)depth, (void)weights, (void)out_c, (void)q, (void)y;
    return 0;
}

TINYML_KERNEL int32_t tinyml_thin_run_s8(const int8_t *x, int32_t n, int32_t depth, const int8_t *weights,
                                         int32_t out_c, const tinyml_chpack_t *pk, const tinyml_requant_t *q,
                                         void *scratch, int8_t *y) {
#if defined(__ARM_FEATURE_DSP)
    const int32_t k = depth == 8 && out_c > 0 && out_c % 8 == 0 && 64 % out_c == 0 ? 64 / out_c : 0;
    if (k && n >= 2 * k && tinyml_rq_mode(q) == TINYML_FULL_RELU) {
        const int32_t blocks = n / (2 * k);
        int32_t *rec = (int32_t *)scratch;
        for (int32_t c = 0; c < out_c; ++c, rec += PW8_REC_WORDS) {
            const int8_t *w = weights + 16 * (c / 2); /* pair-blocked: group 1 is 8 bytes on */
            const int32_t h = c % 2;
            tinyml_channel_t ch;
            tinyml_channel(pk, c, q->out_zp, &ch);
            rec[0] = ch.bias;
            rec[1] = tinyml_pack16(2 * w[tinyml_pw_byte(h, 0)], 2 * w[tinyml_pw_byte(h, 2)]);
            rec[2] = tinyml_pack16(2 * w[tinyml_pw_byte(h, 1)], 2 * w[tinyml_pw_byte(h, 3)]);
            rec[3] = tinyml_pack16(2 * w[8 + tinyml_pw_byte(h, 0)], 2 * w[8 + tinyml_pw_byte(h, 2)]);
            rec[4] = tinyml_pack16(2 * w[8 + tinyml_pw_byte(h, 1)], 2 * w[8 + tinyml_pw_byte(h, 3)]);
            rec[5] = ch.mult;
            rec[6] = ch.radd;
            rec[7] = ch.rshift | (c % 8 == 7 && c + 1 < out_c ? 256 : 0);
        }
        const pw8x2_args_t a = {x, x + 16 * k * blocks, y, (const int32_t *)scratch, 8 * k, x + 8 * k};
        pw8x2_relu(&a);
        return 2 * k * blocks;
    }
#endif
    (void)x, (void)n, (void)depth, (void)weights, (void)out_c, (void)pk, (void)q, (void)scratch, (void)y;
    return 0;
}

#endif /* !TINYML_ARMV6M */
