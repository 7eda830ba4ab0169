/* DEPTHWISE_CONV_2D 3x3, depth multiplier 1, no dilation, any stride and padding.
 * Channels go in groups of four (tinyml_dw_group_t: biases, requantization, doubled int16 weights, so the
 * accumulators come out as the 2 * acc the fast requantization takes), built in scratch when the layer starts
 * from the 18 bytes a channel kept in flash. On DSP cores an interior pixel runs each group in one block of
 * 105 instructions for 36 MACs (SXTB16 splits an input word into lanes 0,2 and 1,3; SMLABB/SMLATT multiply
 * them by the weights), stride-1 runs in pairs of pixels (dw_pairs_relu); border pixels read taps in the padding
 * from a row of in_zp bytes in scratch (ReLU with out_zp -128: through a table of 9 tap pointers, border_full).
 * Pixels are processed in order (pairs: both pixels' outputs group by group), so the output may overlap the input
 * as far as the planner allows. Needs the fast requantization (the compiler checks). */
#include "tinyml_kernels.h"

static const int32_t lane[4] = {0, 2, 1, 3};

static inline int8_t out8(int32_t acc2, const int32_t rq[3], const tinyml_requant_t *q) {
    const tinyml_channel_t c = {0, rq[0], rq[1], rq[2]};
    return (int8_t)tinyml_clamp(tinyml_requant_fast2(acc2, &c), q->act_min, q->act_max);
}

/* The group records from the packed flash form (int8 weights [9][in_c], tinyml_chpack_t): 18 bytes a channel in
 * flash, 34 in scratch while the layer runs. Channels past in_c: zero weights, M = 0 (their outputs are never
 * stored). */
static const tinyml_dw_group_t *unpack_groups(const depthwise_conv2d_params_t *p, tinyml_dw_group_t *groups) {
    const int32_t c = p->in_c, n = (c + 3) / 4;
    tinyml_channel_t t[4];
    for (int32_t gi = 0; gi < n; ++gi) {
        tinyml_dw_group_t *g = &groups[gi];
        const int32_t c0 = 4 * gi, full = c0 + 4 <= c;
        const tinyml_chpack_t pk = {p->pack.bm + 2 * c0, p->pack.rshift + c0};
        const int8_t *w = p->weights + c0;
        if (full) {
            tinyml_unpack_channels(&pk, 4, p->q.out_zp, t);
        } else {
            for (int32_t j = 0; j < 4; ++j) {
                t[j] = (tinyml_channel_t){0, 0, 1, 1};
            }
            tinyml_unpack_channels(&pk, c - c0, p->q.out_zp, t);
        }
        for (int32_t j = 0; j < 4; ++j) {
            g->bias[j] = t[j].bias;
            g->rq[j][0] = t[j].mult;
            g->rq[j][1] = t[j].rshift;
            g->rq[j][2] = t[j].radd;
        }
        for (int32_t tap = 0; tap < 9; ++tap, w += c) {
#if defined(__ARM_FEATURE_DSP)
            if (full) { /* lanes 0, 2 and 1, 3 of the word, doubled: as SXTB16 gives them */
                const int32_t v = tinyml_load32(w), e = __sxtb16(v), o = tinyml_sxtb16_hi(v);
                const int32_t we = __sadd16(e, e), wo = __sadd16(o, o);
                memcpy(&g->w[tap][0], &we, 4);
                memcpy(&g->w[tap][2], &wo, 4);
                continue;
            }
#endif
            for (int32_t j = 0; j < 4; ++j) {
                g->w[tap][lane[j]] = (int16_t)(c0 + j < c ? 2 * w[j] : 0);
            }
        }
    }
    return groups;
}

/* Channels [c0, in_c) of one output pixel, plain C; taps outside the image read in_zp. */
static void pixel_plain(const depthwise_conv2d_params_t *p, const tinyml_dw_group_t *groups, const int8_t *input,
                        int32_t iy0, int32_t ix0, int32_t c0, int8_t *out) {
    for (int32_t c = c0; c < p->in_c; ++c) {
        const tinyml_dw_group_t *g = &groups[c / 4];
        int32_t acc2 = g->bias[c & 3];
        for (int32_t t = 0; t < 9; ++t) {
            const int32_t iy = iy0 + t / 3, ix = ix0 + t % 3;
            const int32_t inside = iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w;
            acc2 += g->w[t][lane[c & 3]] * (inside ? input[(iy * p->in_w + ix) * p->in_c + c] : p->q.in_zp);
        }
        out[c] = out8(acc2, g->rq[c & 3], &p->q);
    }
}

#if defined(__ARM_FEATURE_DSP)
/* One tap for four channels, accumulating into a0..a3; `then` (an instruction or "") runs after the loads.
 * Cortex-M4 cycles (CYCLES.md rules): the three loads back to back pipeline (2 + 1 + 1; an LDRD for the weights
 * would take 3 and not pipeline), 2 SXTB16, 4 multiply-accumulates: 10 per tap. The window pointer moves to the
 * next row in `then` of a row's last tap, so no load uses an address written by the instruction just before. */
#define DW_TAP(addr, woff, then)                       \
    "ldr    %[v], " addr "\n\t"                        \
    "ldr    %[we], [%[g], #" woff "]\n\t"              \
    "ldr    %[wo], [%[g], #" woff " + 4]\n\t"          \
    then                                               \
    "sxtb16 %[vo], %[v], ror #8\n\t"                   \
    "sxtb16 %[v], %[v]\n\t"                            \
    "smlabb %[a0], %[v], %[we], %[a0]\n\t"             \
    "smlatt %[a2], %[v], %[we], %[a2]\n\t"             \
    "smlabb %[a1], %[vo], %[wo], %[a1]\n\t"            \
    "smlatt %[a3], %[vo], %[wo], %[a3]\n\t"
/* Requantize an accumulator (full int8 range; MUL: TINYML_RQ_MUL_SIGN or _RELU) and store it at `at`: M,
 * rshift and radd by three pipelined loads. The first store post-increments out past the group's four bytes. */
#define DW_RQ(acc, mk, ra, at, MUL)                    \
    "ldr    %[we], [%[g], #" mk "]\n\t"                \
    "ldr    %[wo], [%[g], #" mk " + 4]\n\t"            \
    "ldr    %[v], [%[g], #" ra "]\n\t"                 \
    MUL(acc, "%[we]", "%[v]", "%[v]")                  \
    "asr    " acc ", " acc ", %[wo]\n\t"               \
    "ssat   " acc ", #8, " acc "\n\t"                  \
    "strb   " acc ", " at "\n\t"
#define DW_NEXT_ROW "add    %[x], %[x], %[row]\n\t"
#define DW_GROUP(MUL)                                                                                           \
    __asm__ volatile(                                                                                           \
        "ldr    %[a0], [%[g]]\n\t"          /* four LDRs: with the first tap's three, 8 cycles (LDRDs: 10) */     \
        "ldr    %[a1], [%[g], #4]\n\t"                                                                          \
        "ldr    %[a2], [%[g], #8]\n\t"                                                                          \
        "ldr    %[a3], [%[g], #12]\n\t"                                                                         \
        DW_TAP("[%[x]]", "64", "") DW_TAP("[%[x], %[c]]", "72", "")                                              \
        DW_TAP("[%[x], %[c], lsl #1]", "80", DW_NEXT_ROW)                                                       \
        DW_TAP("[%[x]]", "88", "") DW_TAP("[%[x], %[c]]", "96", "")                                              \
        DW_TAP("[%[x], %[c], lsl #1]", "104", DW_NEXT_ROW)                                                      \
        DW_TAP("[%[x]]", "112", "") DW_TAP("[%[x], %[c]]", "120", "")                                            \
        DW_TAP("[%[x], %[c], lsl #1]", "128", "sub    %[x], %[x], %[row], lsl #1\n\t")                          \
        DW_RQ("%[a0]", "16", "24", "[%[out]], #4", MUL) DW_RQ("%[a1]", "28", "36", "[%[out], #-3]", MUL)        \
        DW_RQ("%[a2]", "40", "48", "[%[out], #-2]", MUL) DW_RQ("%[a3]", "52", "60", "[%[out], #-1]", MUL)       \
        : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [v] "=&r"(v), [vo] "=&r"(vo),         \
          [we] "=&r"(we), [wo] "=&r"(wo), [x] "+r"(x), [out] "+r"(out)                                          \
        : [c] "r"(c), [row] "r"(row), [g] "r"(g)                                                                \
        : "memory")

/* n interior pixels whose windows start at x, step bytes apart (a run along a row: one call, so no call, push and
 * pop per pixel; n > 1 needs in_c % 4 == 0, the outputs then follow each other), mode TINYML_FULL_RELU (full int8
 * range, out_zp -128; other ranges take pixel_simd, which keeps the flash small): every group of four channels in
 * one asm block (the offsets are those of tinyml_dw_group_t: bias 0, rq 16, w 64). */
static void interior_full(const int8_t *x, int32_t c, int32_t row, const tinyml_dw_group_t *first, int32_t groups,
                          int8_t *out, int32_t n, int32_t step) {
    int32_t a0, a1, a2, a3, v, vo, we, wo;
    const tinyml_dw_group_t *const end = first + groups;
    for (; n > 0; --n, x += step - 4 * groups) {
        for (const tinyml_dw_group_t *g = first; g < end; ++g, x += 4) {
            DW_GROUP(TINYML_RQ_MUL_RELU);
        }
    }
}

#undef DW_GROUP

/* Pairs of horizontally adjacent interior pixels (stride 1, in_c % 4 == 0, TINYML_FULL_RELU): the four input
 * columns of a window row serve both pixels (A reads columns 0-2, B columns 1-3), so each word is loaded and
 * widened once for up to two taps, and each weight word once for two pixels. Per group of four channels two
 * passes of two channels (lanes 0,2 then 1,3 of SXTB16): accumulators A and B of both channels (r4-r7), two
 * input columns (r8, r9), the row's three weight words (r10-r12), x (r0), c (r1), row (r2), the group (r3), lr
 * the output pointer: all 14 registers, so the loop bounds live in the frame (this struct, copied there by
 * LDM/PUSH). Cortex-M4 cycles (CYCLES.md rules) per window row and pass: 7 loads in 9, 4 SXTB16, 12 MACs, 2
 * address adds = 27 for 12 MACs (interior_full: 30); per pass biases 5 and four requantized stores sharing their
 * parameters 25; group loop 9: 231 per 72 MACs, 3.2 cycles/MAC (interior_full about 3.6). Group records:
 * tinyml_dw_group_t (bias 0, rq 16, w 64, 136 bytes). */
typedef struct {
    const int8_t *x;                 /* [sp, #0]  window of pixel A of the first pair */
    int32_t c, row;                  /* [sp, #4]  channel stride, [sp, #8] row stride (bytes) */
    const tinyml_dw_group_t *g;      /* [sp, #12] first group */
    int8_t *out;                     /* [sp, #16] output of pixel A (kept in lr) */
    const tinyml_dw_group_t *g_end;  /* [sp, #20] past the last group */
    int32_t pairs;                   /* [sp, #24] pairs left */
    int32_t pad;                     /* [sp, #28] */
} dw_pairs_args_t;

/* One window row of one pass: ROT "" (lanes 0,2) or ", ror #8" (1,3); W the offset of its first tap's weight word;
 * NEXT moves x to the next row (after the row's last address use). */
#define DWP_ROW(ROT, W, NEXT)                    \
    "ldr    r8, [r0]\n\t"                        \
    "ldr    r9, [r0, r1]\n\t"                    \
    "ldr    r10, [r3, #" W "]\n\t"               \
    "ldr    r11, [r3, #" W " + 8]\n\t"           \
    "ldr    r12, [r3, #" W " + 16]\n\t"          \
    "sxtb16 r8, r8" ROT "\n\t"                   \
    "sxtb16 r9, r9" ROT "\n\t"                   \
    "smlabb r4, r8, r10, r4\n\t"                 \
    "smlatt r5, r8, r10, r5\n\t"                 \
    "smlabb r4, r9, r11, r4\n\t"                 \
    "smlatt r5, r9, r11, r5\n\t"                 \
    "smlabb r6, r9, r10, r6\n\t"                 \
    "smlatt r7, r9, r10, r7\n\t"                 \
    "add    r10, r0, r1, lsl #1\n\t"             \
    "ldr    r8, [r0, r1, lsl #1]\n\t"            \
    "ldr    r9, [r10, r1]\n\t"                   \
    NEXT                                         \
    "sxtb16 r8, r8" ROT "\n\t"                   \
    "sxtb16 r9, r9" ROT "\n\t"                   \
    "smlabb r4, r8, r12, r4\n\t"                 \
    "smlatt r5, r8, r12, r5\n\t"                 \
    "smlabb r6, r8, r11, r6\n\t"                 \
    "smlatt r7, r8, r11, r7\n\t"                 \
    "smlabb r6, r9, r12, r6\n\t"                 \
    "smlatt r7, r9, r12, r7\n\t"
/* Requantize (SMMLAR by M plus radd, >> rshift, saturate) accumulators a (pixel A) and b (pixel B) of the
 * channel whose rq row is at RQ. */
#define DWP_RQ2(a, b, RQ)                        \
    "ldr    r10, [r3, #" RQ "]\n\t"              \
    "ldr    r11, [r3, #" RQ " + 4]\n\t"          \
    "ldr    r12, [r3, #" RQ " + 8]\n\t"          \
    "smmlar " a ", " a ", r10, r12\n\t"           \
    "asr    " a ", " a ", r11\n\t"                \
    "ssat   " a ", #8, " a "\n\t"                 \
    "smmlar " b ", " b ", r10, r12\n\t"           \
    "asr    " b ", " b ", r11\n\t"                \
    "ssat   " b ", #8, " b "\n\t"
/* One pass: channels LO and HI of the group (bias offsets BL, BH; rq rows RL, RH; output bytes OL, OH). */
#define DWP_PASS(ROT, W, BL, BH, RL, RH, OL, OH)                                        \
    "ldr    r4, [r3, #" BL "]\n\t"                                                      \
    "ldr    r5, [r3, #" BH "]\n\t"                                                      \
    "mov    r6, r4\n\t"                                                                 \
    "mov    r7, r5\n\t"                                                                 \
    DWP_ROW(ROT, W, "add    r0, r0, r2\n\t") DWP_ROW(ROT, W " + 24", "add    r0, r0, r2\n\t") \
    DWP_ROW(ROT, W " + 48", "")                                                         \
    "sub    r0, r0, r2, lsl #1\n\t"                                                     \
    DWP_RQ2("r4", "r6", RL) DWP_RQ2("r5", "r7", RH)                                     \
    "add    r8, lr, r1\n\t"                                                             \
    "strb   r4, [lr, #" OL "]\n\t"                                                      \
    "strb   r5, [lr, #" OH "]\n\t"                                                      \
    "strb   r6, [r8, #" OL "]\n\t"                                                      \
    "strb   r7, [r8, #" OH "]\n\t"
__attribute__((naked, noinline)) static void dw_pairs_relu(__attribute__((unused)) const dw_pairs_args_t *a) {
    __asm__ volatile(
        "push   {r4-r11, lr}\n\t"
        "ldm    r0, {r4-r11}\n\t"
        "push   {r4-r11}\n\t"                 /* the frame: the struct above */
        "mov    r0, r4\n\t"
        "mov    r1, r5\n\t"
        "mov    r2, r6\n\t"
        "mov    r3, r7\n\t"
        "mov    lr, r8\n\t"                   /* out: lr is free of the rows' work, so it stays there */
        "1:\n\t"                              /* per group of four channels */
        DWP_PASS("", "64", "0", "8", "16", "40", "0", "2")
        DWP_PASS(", ror #8", "68", "4", "12", "28", "52", "1", "3")
        "add    r0, r0, #4\n\t"
        "add    r3, r3, #136\n\t"
        "add    lr, lr, #4\n\t"
        "ldr    r8, [sp, #20]\n\t"
        "cmp    r3, r8\n\t"
        "bne    1b\n\t"
        "ldr    r3, [sp, #12]\n\t"            /* next pair: x and out one more pixel on (they moved by c) */
        "add    r0, r0, r1\n\t"
        "add    lr, lr, r1\n\t"
        "ldr    r8, [sp, #24]\n\t"
        "subs   r8, r8, #1\n\t"
        "str    r8, [sp, #24]\n\t"
        "bne    1b\n\t"
        "add    sp, sp, #32\n\t"
        "pop    {r4-r11, pc}\n\t");
}
#undef DWP_PASS
#undef DWP_RQ2
#undef DWP_ROW
/* A border pixel (TINYML_FULL_RELU): tap t of every group of four channels at tap[t] + off, where tap[t] is the
 * input pixel or, in the padding, the row of in_zp bytes; no window copy. Cortex-M4 cycles per tap of four
 * channels: the tap's pointer and its word (2 + 2: the second load's address is the first's result), the two
 * weight words 2, 2 SXTB16, 4 MACs = 12 (interior_full 10, but a copied window cost about 8 more a tap). */
#define DW_BTAP(t, woff) "ldr    %[v], [%[tp], #" t "]\n\t" DW_TAP("[%[v], %[off]]", woff, "")
static void border_full(const int8_t *const tap[9], const tinyml_dw_group_t *g, int32_t groups, int8_t *out) {
    int32_t a0, a1, a2, a3, v, vo, we, wo;
    for (int32_t off = 0; off < 4 * groups; off += 4, ++g) {
        __asm__ volatile(
            "ldr    %[a0], [%[g]]\n\t"
            "ldr    %[a1], [%[g], #4]\n\t"
            "ldr    %[a2], [%[g], #8]\n\t"
            "ldr    %[a3], [%[g], #12]\n\t"
            DW_BTAP("0", "64") DW_BTAP("4", "72") DW_BTAP("8", "80") DW_BTAP("12", "88") DW_BTAP("16", "96")
            DW_BTAP("20", "104") DW_BTAP("24", "112") DW_BTAP("28", "120") DW_BTAP("32", "128")
            DW_RQ("%[a0]", "16", "24", "[%[out]], #4", TINYML_RQ_MUL_RELU)
            DW_RQ("%[a1]", "28", "36", "[%[out], #-3]", TINYML_RQ_MUL_RELU)
            DW_RQ("%[a2]", "40", "48", "[%[out], #-2]", TINYML_RQ_MUL_RELU)
            DW_RQ("%[a3]", "52", "60", "[%[out], #-1]", TINYML_RQ_MUL_RELU)
            : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [v] "=&r"(v), [vo] "=&r"(vo),
              [we] "=&r"(we), [wo] "=&r"(wo), [out] "+r"(out)
            : [tp] "r"(tap), [off] "r"(off), [g] "r"(g)
            : "memory");
    }
}
#undef DW_BTAP

#undef DW_NEXT_ROW
#undef DW_RQ
#undef DW_TAP

/* One output pixel, groups of four channels, SIMD in C (border pixels and bounded activations).
 * tap[t] + c addresses tap t of channel c. Returns the first channel left for the plain path. */
static int32_t pixel_simd(const depthwise_conv2d_params_t *p, const tinyml_dw_group_t *g, const int8_t *const tap[9],
                          int8_t *out) {
    int32_t c = 0;
    for (; c + 4 <= p->in_c; c += 4, ++g) {
        int32_t a0 = g->bias[0], a1 = g->bias[1], a2 = g->bias[2], a3 = g->bias[3];
        for (int32_t t = 0; t < 9; ++t) {
            const int32_t v = tinyml_load32(tap[t] + c);
            const int32_t ve = __sxtb16(v), vo = tinyml_sxtb16_hi(v);
            const int32_t we = tinyml_load32(&g->w[t][0]), wo = tinyml_load32(&g->w[t][2]);
            a0 = __smlabb(ve, we, a0);
            a2 = __smlatt(ve, we, a2);
            a1 = __smlabb(vo, wo, a1);
            a3 = __smlatt(vo, wo, a3);
        }
        out[c] = out8(a0, g->rq[0], &p->q);
        out[c + 1] = out8(a1, g->rq[1], &p->q);
        out[c + 2] = out8(a2, g->rq[2], &p->q);
        out[c + 3] = out8(a3, g->rq[3], &p->q);
    }
    return c;
}
#endif

#if TINYML_ARMV6M
void tinyml_dw3x3_v6m(const depthwise_conv2d_params_t *p, const int8_t *input, int8_t *output);
#endif

TINYML_KERNEL void depthwise_conv2d_3x3_s8(const depthwise_conv2d_params_t *p, const int8_t *input,
                                           int8_t *output) {
#if TINYML_ARMV6M /* Cortex-M0/M0+: depthwise_conv2d_3x3_v6m_s8.c */
    tinyml_dw3x3_v6m(p, input, output);
    return;
#endif
    const int32_t c = p->in_c;
    const tinyml_dw_group_t *groups = unpack_groups(p, (tinyml_dw_group_t *)p->scratch);
#if defined(__ARM_FEATURE_DSP)
    const int relu = tinyml_rq_mode(&p->q) == TINYML_FULL_RELU;
    const int32_t row = p->in_w * c;
    int8_t *pad = (int8_t *)p->scratch + sizeof(tinyml_dw_group_t) * ((c + 3) / 4); /* in_zp bytes: what taps in
                                                                                       the padding read */
    memset(pad, (int8_t)p->q.in_zp, (size_t)c);
#endif
    for (int32_t oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_top;
        for (int32_t ox = 0; ox < p->out_w; ++ox, output += c) {
            const int32_t ix0 = ox * p->stride_w - p->pad_left;
            int32_t c0 = 0;
#if defined(__ARM_FEATURE_DSP)
            const int interior = iy0 >= 0 && iy0 + 3 <= p->in_h && ix0 >= 0 && ix0 + 3 <= p->in_w;
            if (interior && relu && c % 4 == 0) { /* the run of interior pixels from here, in one call */
                int32_t n = (p->in_w - 3 - ix0) / p->stride_w + 1;
                n = n < p->out_w - ox ? n : p->out_w - ox;
                const int8_t *x = input + (iy0 * p->in_w + ix0) * c;
                int32_t done = 0;
                if (p->stride_w == 1 && n >= 2) { /* pairs of pixels (the compiler's in-place gap allows it) */
                    const dw_pairs_args_t a = {x, c, row, groups, output, groups + c / 4, n / 2, 0};
                    dw_pairs_relu(&a);
                    done = n & ~1;
                }
                if (done < n) {
                    interior_full(x + done * p->stride_w * c, c, row, groups, c / 4, output + done * c, n - done,
                                  p->stride_w * c);
                }
                ox += n - 1;
                output += (n - 1) * c;
                continue;
            }
            if (interior && relu) {
                interior_full(input + (iy0 * p->in_w + ix0) * c, c, row, groups, c / 4, output, 1, 0);
                c0 = c & ~3;
            } else if (relu && c >= 4) {
                /* border pixel: the groups of four channels read their taps through a table of 9 pointers, the
                 * row of in_zp bytes for taps in the padding */
                const int8_t *tap[9];
                const int32_t in_w = p->in_w, in_h = p->in_h;
                const int col_in[3] = {ix0 >= 0 && ix0 < in_w, ix0 + 1 >= 0 && ix0 + 1 < in_w,
                                       ix0 + 2 >= 0 && ix0 + 2 < in_w};
                for (int32_t ky = 0; ky < 3; ++ky) { /* a row at a time: its pointer and whether it is inside */
                    const int32_t iy = iy0 + ky;
                    const int row_in = iy >= 0 && iy < in_h;
                    const int8_t *px = input + (iy * in_w + ix0) * c;
                    for (int32_t kx = 0; kx < 3; ++kx, px += c) {
                        tap[3 * ky + kx] = row_in && col_in[kx] ? px : pad;
                    }
                }
                border_full(tap, groups, c / 4, output);
                c0 = c & ~3;
            } else {
                const int8_t *tap[9];
                for (int32_t t = 0; t < 9; ++t) {
                    const int32_t iy = iy0 + t / 3, ix = ix0 + t % 3;
                    const int inside = iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w;
                    tap[t] = inside ? input + (iy * p->in_w + ix) * c : pad;
                }
                c0 = pixel_simd(p, groups, tap, output);
            }
#endif
            if (c0 < c) {
                pixel_plain(p, groups, input, iy0, ix0, c0, output);
            }
        }
    }
}
