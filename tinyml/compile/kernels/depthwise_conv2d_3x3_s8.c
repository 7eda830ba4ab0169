/* DEPTHWISE_CONV_2D 3x3, depth multiplier 1, no dilation, any stride and padding.
 * Stride 1 with ReLU (out_zp -128) and in_c % 4 == 0 on DSP cores: window_s1, a window of three input rows in a
 * pixel-pair interleaved layout so that SMLAD takes two horizontally adjacent taps of a channel (below).
 * Otherwise channels go in groups of four (tinyml_dw_group_t: biases, requantization, doubled int16 weights, so
 * the accumulators come out as the 2 * acc the fast requantization takes), built in scratch when the layer
 * starts from the 18 bytes a channel kept in flash. On DSP cores an interior pixel runs each group in one block
 * of 105 instructions for 36 MACs (SXTB16 splits an input word into lanes 0,2 and 1,3; SMLABB/SMLATT multiply
 * them by the weights); border pixels read taps in the padding from a row of in_zp bytes in scratch (ReLU with
 * out_zp -128: through a table of 9 tap pointers, border_full). Pixels (window_s1: output rows) are processed in
 * order, so the output may overlap the input as far as the planner allows. Needs the fast requantization (the
 * compiler checks). */
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
#if defined(__ARM_FEATURE_DSP)
        if (full) { /* lanes 0, 2 and 1, 3 of the word, doubled: as SXTB16 gives them (a loop of its own: the
                     * test of full out of it) */
            for (int32_t tap = 0; tap < 9; ++tap, w += c) {
                const int32_t v = tinyml_load32(w), e = __sxtb16(v), o = tinyml_sxtb16_hi(v);
                const int32_t we = __sadd16(e, e), wo = __sadd16(o, o);
                memcpy(&g->w[tap][0], &we, 4);
                memcpy(&g->w[tap][2], &wo, 4);
            }
            continue;
        }
#endif
        for (int32_t tap = 0; tap < 9; ++tap, w += c) {
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

/* Taps in the padding read in_zp: their doubled weights summed by lanes (SADD16; at most 5 x 254, no overflow),
 * times the in_zp pair z (ZW: an "m" operand) into the four accumulators. 3 taps: loads 5 + 3 + 2, 4 SADD16,
 * 4 MACs = 18 cycles (the pointer table: 36). */
#define DW_PAD_SUM(w, then)                            \
    "ldr    %[v], [%[g], #" w "]\n\t"                  \
    "ldr    %[vo], [%[g], #" w " + 4]\n\t"             \
    then                                               \
    "sadd16 %[we], %[we], %[v]\n\t"                    \
    "sadd16 %[wo], %[wo], %[vo]\n\t"
#define DW_PAD_MAC                                     \
    "ldr    %[v], %[z]\n\t"                             \
    "smlabb %[a0], %[v], %[we], %[a0]\n\t"             \
    "smlatt %[a2], %[v], %[we], %[a2]\n\t"             \
    "smlabb %[a1], %[v], %[wo], %[a1]\n\t"             \
    "smlatt %[a3], %[v], %[wo], %[a3]\n\t"
#define DW_PAD_FIRST(w) "ldr    %[we], [%[g], #" w "]\n\t" "ldr    %[wo], [%[g], #" w " + 4]\n\t"
#define DW_EDGE(TAPS)                                                                                           \
    __asm__ volatile(                                                                                           \
        "ldr    %[a0], [%[g]]\n\t"                                                                              \
        "ldr    %[a1], [%[g], #4]\n\t"                                                                          \
        "ldr    %[a2], [%[g], #8]\n\t"                                                                          \
        "ldr    %[a3], [%[g], #12]\n\t"                                                                         \
        TAPS DW_PAD_MAC                                                                                         \
        DW_RQ("%[a0]", "16", "24", "[%[out]], #4", TINYML_RQ_MUL_RELU)                                          \
        DW_RQ("%[a1]", "28", "36", "[%[out], #-3]", TINYML_RQ_MUL_RELU)                                         \
        DW_RQ("%[a2]", "40", "48", "[%[out], #-2]", TINYML_RQ_MUL_RELU)                                         \
        DW_RQ("%[a3]", "52", "60", "[%[out], #-1]", TINYML_RQ_MUL_RELU)                                         \
        : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [v] "=&r"(v), [vo] "=&r"(vo),         \
          [we] "=&r"(we), [wo] "=&r"(wo), [x] "+r"(x), [out] "+r"(out)                                          \
        : [c] "r"(c), [row] "r"(row), [g] "r"(g), [z] "m"(z)                                                    \
        : "memory")
/* The window's right column in the padding (taps 2, 5, 8), 6 taps read at x. */
#define DW_RIGHT                                                                                                \
    DW_TAP("[%[x]]", "64", "") DW_TAP("[%[x], %[c]]", "72", DW_NEXT_ROW)                                         \
    DW_TAP("[%[x]]", "88", "") DW_TAP("[%[x], %[c]]", "96", DW_NEXT_ROW)                                         \
    DW_TAP("[%[x]]", "112", "") DW_TAP("[%[x], %[c]]", "120", "sub    %[x], %[x], %[row], lsl #1\n\t")           \
    DW_PAD_FIRST("80") DW_PAD_SUM("104", "") DW_PAD_SUM("128", "")
/* The window's bottom row in the padding (taps 6, 7, 8), 6 taps read at x. */
#define DW_BOTTOM                                                                                               \
    DW_TAP("[%[x]]", "64", "") DW_TAP("[%[x], %[c]]", "72", "")                                                  \
    DW_TAP("[%[x], %[c], lsl #1]", "80", DW_NEXT_ROW)                                                           \
    DW_TAP("[%[x]]", "88", "") DW_TAP("[%[x], %[c]]", "96", "")                                                  \
    DW_TAP("[%[x], %[c], lsl #1]", "104", "sub    %[x], %[x], %[row]\n\t")                                     \
    DW_PAD_FIRST("112") DW_PAD_SUM("120", "") DW_PAD_SUM("128", "")

/* n border pixels (TINYML_FULL_RELU, in_c >= 4) whose windows start at x, step bytes apart, with the window's
 * right column (right != 0) or its bottom row in the padding and every other tap inside: the inside taps as
 * interior_full's, the padding's through DW_PAD_SUM, no table of tap pointers. Groups of four channels
 * (in_c / 4; the rest is the caller's); z: in_zp in both int16 halves. */
static void edge_full(const int8_t *x, int32_t c, int32_t row, const tinyml_dw_group_t *first, int32_t groups,
                      int8_t *out, int32_t n, int32_t step, int32_t z, int right) {
    int32_t a0, a1, a2, a3, v, vo, we, wo;
    const tinyml_dw_group_t *const end = first + groups;
    for (; n > 0; --n, x += step - 4 * groups, out += c - 4 * groups) {
        if (right) {
            for (const tinyml_dw_group_t *g = first; g < end; ++g, x += 4) {
                DW_EDGE(DW_RIGHT);
            }
        } else {
            for (const tinyml_dw_group_t *g = first; g < end; ++g, x += 4) {
                DW_EDGE(DW_BOTTOM);
            }
        }
    }
}

/* The pixel at (iy0, ix0) and those after it along the row (left of them: left), when only its window's right
 * column or its bottom row lies outside the image (a bottom row: the run up to the row's last such pixel, in one
 * call); channels past the last group of four by pixel_plain. Returns the pixels done, 0 for another border. */
__attribute__((noinline)) static int32_t edge_run(const depthwise_conv2d_params_t *p,
                                                  const tinyml_dw_group_t *groups, const int8_t *input, int32_t iy0,
                                                  int32_t ix0, int32_t left, int8_t *output) {
    const int32_t c = p->in_c, in_w = p->in_w, in_h = p->in_h;
    const int right = iy0 + 3 <= in_h, bottom = ix0 + 3 <= in_w;
    if (iy0 < 0 || ix0 < 0 || right == bottom || iy0 + 2 > in_h || ix0 + 2 > in_w) {
        return 0;
    }
    int32_t n = 1;
    if (bottom) {
        n = (in_w - 3 - ix0) / p->stride_w + 1;
        n = n < left ? n : left;
    }
    const int32_t z = (int32_t)(((uint32_t)p->q.in_zp & 0xffffu) | ((uint32_t)p->q.in_zp << 16));
    edge_full(input + (iy0 * in_w + ix0) * c, c, in_w * c, groups, c / 4, output, n, p->stride_w * c, z, right);
    for (int32_t i = 0; c % 4 && i < n; ++i) {
        pixel_plain(p, groups, input, iy0, ix0 + i * p->stride_w, c & ~3, output + i * c);
    }
    return n;
}

#undef DW_BOTTOM
#undef DW_RIGHT
#undef DW_EDGE
#undef DW_PAD_FIRST
#undef DW_PAD_MAC
#undef DW_PAD_SUM
#undef DW_GROUP

/* Stride 1 (TINYML_FULL_RELU, in_c % 4 == 0): a window of the three input rows an output row needs, kept in
 * scratch in a pixel-pair interleaved layout, so one SMLAD multiplies two horizontally adjacent taps of one
 * channel. Word i of a row holds padded columns 2i, 2i+1 of channels 2k, 2k+1: bytes [col 2i ch 2k, col 2i ch
 * 2k+1, col 2i+1 ch 2k, col 2i+1 ch 2k+1]; SXTB16 gives (col 2i, col 2i+1) of channel 2k, SXTB16 ROR #8 those of
 * channel 2k+1. Layout [channel pair][3 row slots][column pair]; the padding (and any column past the image) holds
 * in_zp, so every output pixel is interior. Each input row is converted once (fill_row), into the slot of the
 * row the window no longer needs: the output may overwrite input rows already converted (the planner's in-place
 * gap for pixel pairs is more than enough). One record per channel (dw_ch_t). */
typedef struct {
    tinyml_channel_t q; /* offsets 0, 4, 8, 12: 2 x folded bias, M, rshift, radd */
    int32_t w[3][2];    /* offset 16 + 8 x row: doubled int16 pairs (w0, w1), (w1, w2) */
} dw_ch_t;

/* What the row functions take (r0): the registers' starting values, then their frame, pushed as it is. */
typedef struct {
    const int8_t *x0, *x1, *x2; /* window rows 0-2 at the first output pixel's column pair, channel pair 0 */
    const dw_ch_t *g;           /* channel 0's record */
    int8_t *out;                /* output pixel (its channel 0) */
    int32_t c;                  /* [sp, #0]  in_c: bytes between output pixels */
    const int8_t *x0_end;       /* [sp, #4]  x0 after a channel's quads (dw_quads_relu) */
    int32_t back;               /* [sp, #8]  bytes the row pointers move in a channel's quads */
    int32_t out_back;           /* [sp, #12] bytes out moves in a channel's quads, less the next channel's 1 */
    int32_t unused;             /* [sp, #16] (keeps the frame a multiple of 8 bytes) */
    int32_t cp_left;            /* [sp, #20] channel pairs left */
    int32_t cps;                /* [sp, #24] bytes between channel pairs of the window */
} dw_row_args_t;

/* One window row k of four output pixels of one channel (ROT "" or ", ror #8"): three pair words P0, P2, P4 of
 * columns 4q..4q+5 (X post-incremented by 8, to the next quad) and the row's weights (w0, w1),
 * (w1, w2) at W. A0..A3 are the accumulators' addends: themselves, or the bias (r7) in row 0, which B loads.
 *   out0 += P0 . (w0, w1) + P2.lo w2      out1 += P0.hi w0 + P2 . (w1, w2)
 *   out2 += P2 . (w0, w1) + P4.lo w2      out3 += P2.hi w0 + P4 . (w1, w2)
 * Cortex-M4 cycles (CYCLES.md rules): 5 loads back to back 6 (the post-increment's writeback does not stall the
 * next load), 3 SXTB16, 8 MACs = 17 for 12 MACs (row 0: the bias load, one more). */
#define DWQ_ROW(X, W, ROT, B, A0, A1, A2, A3) DWQ_ROW_AT("[" X "], #8", "[" X ", #-4]", "[" X "]", W, ROT, B, A0, A1, A2, A3)
#define DWQ_ROW_AT(M0, M2, M4, W, ROT, B, A0, A1, A2, A3) \
    "ldr    r8, " M0 "\n\t"                      \
    "ldr    r9, " M2 "\n\t"                      \
    "ldr    r10, " M4 "\n\t"                     \
    "ldr    r11, [r3, #" W "]\n\t"               \
    "ldr    r12, [r3, #" W " + 4]\n\t"           \
    B                                            \
    "sxtb16 r8, r8" ROT "\n\t"                   \
    "sxtb16 r9, r9" ROT "\n\t"                   \
    "sxtb16 r10, r10" ROT "\n\t"                 \
    "smlad  r4, r8, r11, " A0 "\n\t"             \
    "smlatb r5, r8, r11, " A1 "\n\t"             \
    "smlabt r4, r9, r12, r4\n\t"                 \
    "smlad  r5, r9, r12, r5\n\t"                 \
    "smlad  r6, r9, r11, " A2 "\n\t"             \
    "smlatb r7, r9, r11, " A3 "\n\t"             \
    "smlabt r6, r10, r12, r6\n\t"                \
    "smlad  r7, r10, r12, r7\n\t"
#define DW_BIAS "ldr    r7, [r3]\n\t"
/* A channel's requantization parameters: M r8, rshift r9, radd r10, and in_c (the output pixel stride) r11. */
#define DWQ_PARAMS                               \
    "ldr    r8, [r3, #4]\n\t"                    \
    "ldr    r9, [r3, #8]\n\t"                    \
    "ldr    r10, [r3, #12]\n\t"                  \
    "ldr    r11, [sp]\n\t"
/* Requantize accumulator A, after its SMMLAR by M plus radd: >> rshift, saturate. */
#define DWQ_RQ(A)                                \
    "asr    " A ", " A ", r9\n\t"                \
    "ssat   " A ", #8, " A "\n\t"
/* The four accumulators requantized (SMMLAR by M plus radd, >> rshift, saturate); r12 = out + 2 in_c. */
#define DWQ_REQUANT4                             \
    DWQ_PARAMS                                   \
    "smmlar r4, r4, r8, r10\n\t"                 \
    "smmlar r5, r5, r8, r10\n\t"                 \
    "smmlar r6, r6, r8, r10\n\t"                 \
    "smmlar r7, r7, r8, r10\n\t"                 \
    "add    r12, lr, r11, lsl #1\n\t"            \
    DWQ_RQ("r4") DWQ_RQ("r5") DWQ_RQ("r6") DWQ_RQ("r7")
/* A channel's quads: per quad the rows 52, requantization 24 (4 parameter loads 5, 4 SMMLAR, the output
 * pointer 1, ASR and SSAT 8, 4 STRB 5: the second's register offset pipelines after the loop's load, advance 1)
 * and the loop 5 (the end from the frame 2, CMP, the taken branch): 81 cycles for 36 MACs, 2.25 cycles/MAC. */
#define DWQ_CHANNEL(ROT, LABEL)                                       \
    LABEL ":\n\t"                                                     \
    DWQ_ROW("r0", "16", ROT, DW_BIAS, "r7", "r7", "r7", "r7")         \
    DWQ_ROW("r1", "24", ROT, "", "r4", "r5", "r6", "r7")              \
    DWQ_ROW("r2", "32", ROT, "", "r4", "r5", "r6", "r7")              \
    DWQ_REQUANT4                                                      \
    "strb   r4, [lr]\n\t"                                             \
    "ldr    r8, [sp, #4]\n\t"                                         \
    "strb   r5, [lr, r11]\n\t"                                        \
    "strb   r6, [r12]\n\t"                                            \
    "strb   r7, [r12, r11]\n\t"                                       \
    "add    lr, lr, r11, lsl #2\n\t"                                  \
    "cmp    r0, r8\n\t"                                               \
    "bne    " LABEL "b\n\t"                                           \
    "ldr    r8, [sp, #8]\n\t"                                         \
    "ldr    r9, [sp, #12]\n\t"                                        \
    "sub    r0, r0, r8\n\t"                                           \
    "sub    r1, r1, r8\n\t"                                           \
    "sub    r2, r2, r8\n\t"                                           \
    "sub    lr, lr, r9\n\t"                                           \
    "add    r3, r3, #40\n\t"
/* Entry of the row functions: the frame (dw_row_args_t from c on) pushed, the registers loaded. */
#define DW_ROW_ENTRY                             \
    "push   {r4-r11, lr}\n\t"                    \
    "add    r12, r0, #20\n\t"                    \
    "ldm    r12, {r4-r10}\n\t"                   \
    "push   {r4-r10}\n\t"                        \
    "ldr    lr, [r0, #16]\n\t"                   \
    "ldr    r3, [r0, #12]\n\t"                   \
    "ldr    r2, [r0, #8]\n\t"                    \
    "ldr    r1, [r0, #4]\n\t"                    \
    "ldr    r0, [r0]\n\t"
/* To the next channel pair (row pointers cps bytes on), back to 1 while pairs are left: 11 cycles. */
#define DW_NEXT_PAIR                             \
    "ldr    r8, [sp, #24]\n\t"                   \
    "ldr    r10, [sp, #20]\n\t"                  \
    "add    r0, r0, r8\n\t"                      \
    "add    r1, r1, r8\n\t"                      \
    "add    r2, r2, r8\n\t"                      \
    "subs   r10, r10, #1\n\t"                    \
    "str    r10, [sp, #20]\n\t"                  \
    "bne    1b\n\t"
#define DW_ROW_EXIT                              \
    "add    sp, sp, #28\n\t"                     \
    "pop    {r4-r11, pc}\n\t"

/* An output row's quads of pixels (at least one): every channel, the quads of channel 2k, then those of 2k+1
 * from the same words (ROR #8). Per channel pair 32 cycles besides the quads (pointers back, next pair). */
__attribute__((naked, noinline)) static void dw_quads_relu(__attribute__((unused)) const dw_row_args_t *a) {
    __asm__ volatile(
        DW_ROW_ENTRY
        "1:\n\t"
        DWQ_CHANNEL("", "2")
        DWQ_CHANNEL(", ror #8", "3")
        "ldr    r8, [sp, #24]\n\t"            /* to the next channel pair: the pointers were moved back */
        "ldr    r9, [sp, #4]\n\t"
        "add    r0, r0, r8\n\t"
        "add    r1, r1, r8\n\t"
        "add    r2, r2, r8\n\t"
        "add    r9, r9, r8\n\t"
        "str    r9, [sp, #4]\n\t"
        "ldr    r10, [sp, #20]\n\t"
        "subs   r10, r10, #1\n\t"
        "str    r10, [sp, #20]\n\t"
        "bne    1b\n\t"
        DW_ROW_EXIT);
}

/* One window row of two output pixels of one channel (X unchanged): pair words P0, P2 of columns 2q..2q+3. */
#define DWP_ROW(X, W, ROT, B, A0, A1) DWP_ROW_AT("[" X "]", "[" X ", #4]", W, ROT, B, A0, A1)
#define DWP_ROW_AT(M0, M2, W, ROT, B, A0, A1)    \
    "ldr    r8, " M0 "\n\t"                      \
    "ldr    r9, " M2 "\n\t"                      \
    "ldr    r11, [r3, #" W "]\n\t"               \
    "ldr    r12, [r3, #" W " + 4]\n\t"           \
    B                                            \
    "sxtb16 r8, r8" ROT "\n\t"                   \
    "sxtb16 r9, r9" ROT "\n\t"                   \
    "smlad  r4, r8, r11, " A0 "\n\t"             \
    "smlatb r5, r8, r11, " A1 "\n\t"             \
    "smlabt r4, r9, r12, r4\n\t"                 \
    "smlad  r5, r9, r12, r5\n\t"
/* Two pixels of one channel: rows 5 + 2 + 4 (row 0: the bias, one more), requantization 15: 49 cycles for 18
 * MACs. */
#define DWP_CHANNEL(ROT)                         \
    DWP_ROW("r0", "16", ROT, DW_BIAS, "r7", "r7") \
    DWP_ROW("r1", "24", ROT, "", "r4", "r5")     \
    DWP_ROW("r2", "32", ROT, "", "r4", "r5")     \
    DWQ_PARAMS                                   \
    "smmlar r4, r4, r8, r10\n\t"                 \
    "smmlar r5, r5, r8, r10\n\t"                 \
    DWQ_RQ("r4") DWQ_RQ("r5")                    \
    "strb   r5, [lr, r11]\n\t"                   \
    "strb   r4, [lr], #1\n\t"                    \
    "add    r3, r3, #40\n\t"

/* Two output pixels (an output row's last two, or the last one and a pixel thrown away), every channel. */
__attribute__((naked, noinline)) static void dw_pair_relu(__attribute__((unused)) const dw_row_args_t *a) {
    __asm__ volatile(
        DW_ROW_ENTRY
        "1:\n\t"
        DWP_CHANNEL("")
        DWP_CHANNEL(", ror #8")
        DW_NEXT_PAIR
        DW_ROW_EXIT);
}

/* Rows of exactly four or six pixels (the small maps; three through tmp): per channel one quad, for six a pair
 * after it from the same row pointers, with no loop and no pointers to move back. Per channel 76 (+ 49 for the
 * pair) + 2 cycles, per channel pair 11 more (dw_quads_relu: 81 + 14 a channel, dw_pair_relu 49 + 5). */
#define DW_QUAD_ONCE(ROT)                                                                                    \
    DWQ_ROW_AT("[r0]", "[r0, #4]", "[r0, #8]", "16", ROT, DW_BIAS, "r7", "r7", "r7", "r7")                   \
    DWQ_ROW_AT("[r1]", "[r1, #4]", "[r1, #8]", "24", ROT, "", "r4", "r5", "r6", "r7")                        \
    DWQ_ROW_AT("[r2]", "[r2, #4]", "[r2, #8]", "32", ROT, "", "r4", "r5", "r6", "r7")                        \
    DWQ_REQUANT4                                                                                             \
    "strb   r4, [lr]\n\t"                                                                                    \
    "strb   r5, [lr, r11]\n\t"                                                                               \
    "strb   r6, [r12]\n\t"                                                                                   \
    "strb   r7, [r12, r11]\n\t"
#define DW_PAIR_AFTER(ROT)                                                                                   \
    DWP_ROW_AT("[r0, #8]", "[r0, #12]", "16", ROT, DW_BIAS, "r7", "r7")                                      \
    DWP_ROW_AT("[r1, #8]", "[r1, #12]", "24", ROT, "", "r4", "r5")                                           \
    DWP_ROW_AT("[r2, #8]", "[r2, #12]", "32", ROT, "", "r4", "r5")                                           \
    DWQ_PARAMS                                                                                               \
    "smmlar r4, r4, r8, r10\n\t"                                                                             \
    "smmlar r5, r5, r8, r10\n\t"                                                                             \
    "add    r12, lr, r11, lsl #2\n\t"                                                                        \
    DWQ_RQ("r4") DWQ_RQ("r5")                                                                                \
    "strb   r4, [r12]\n\t"                                                                                   \
    "strb   r5, [r12, r11]\n\t"
#define DW_NEXT_CHANNEL                          \
    "add    lr, lr, #1\n\t"                      \
    "add    r3, r3, #40\n\t"
__attribute__((naked, noinline)) static void dw_six_relu(__attribute__((unused)) const dw_row_args_t *a) {
    __asm__ volatile(
        DW_ROW_ENTRY
        "1:\n\t"
        DW_QUAD_ONCE("") DW_PAIR_AFTER("") DW_NEXT_CHANNEL
        DW_QUAD_ONCE(", ror #8") DW_PAIR_AFTER(", ror #8") DW_NEXT_CHANNEL
        DW_NEXT_PAIR
        DW_ROW_EXIT);
}
__attribute__((naked, noinline)) static void dw_four_relu(__attribute__((unused)) const dw_row_args_t *a) {
    __asm__ volatile(
        DW_ROW_ENTRY
        "1:\n\t"
        DW_QUAD_ONCE("") DW_NEXT_CHANNEL
        DW_QUAD_ONCE(", ror #8") DW_NEXT_CHANNEL
        DW_NEXT_PAIR
        DW_ROW_EXIT);
}
#undef DW_NEXT_CHANNEL
#undef DW_PAIR_AFTER
#undef DW_QUAD_ONCE
#undef DWP_CHANNEL
#undef DWP_ROW_AT
#undef DWP_ROW
#undef DWQ_ROW_AT
#undef DW_ROW_EXIT
#undef DW_NEXT_PAIR
#undef DW_ROW_ENTRY
#undef DWQ_CHANNEL
#undef DWQ_REQUANT4
#undef DWQ_RQ
#undef DWQ_PARAMS
#undef DW_BIAS
#undef DWQ_ROW

/* Low halves of a and b (PKHBT), high halves (PKHTB): one instruction each (GCC does not always find them). */
static inline uint32_t pack_lo(uint32_t a, uint32_t b) {
    uint32_t r;
    __asm__("pkhbt  %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
static inline uint32_t pack_hi(uint32_t a, uint32_t b) {
    uint32_t r;
    __asm__("pkhtb  %0, %2, %1, asr #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/* The records from the packed flash form (18 bytes a channel in flash, 40 in scratch while the layer runs): the
 * channel table as tinyml_unpack_channels makes it, then per row of taps a, b, c of four channels the doubled
 * int16 pairs (a, b), (b, c) of each. */
static const dw_ch_t *unpack_records(const depthwise_conv2d_params_t *p, dw_ch_t *ch) {
    const int32_t c = p->in_c;
    for (int32_t j = 0; j < c; ++j) {
        tinyml_channel(&p->pack, j, p->q.out_zp, &ch[j].q);
    }
    for (int32_t c0 = 0; c0 < c; c0 += 4) {
        const int8_t *w = p->weights + c0;
        dw_ch_t *r = &ch[c0];
        for (int32_t ky = 0; ky < 3; ++ky, w += 3 * c) {
            const int32_t t0 = tinyml_load32(w), t1 = tinyml_load32(w + c), t2 = tinyml_load32(w + 2 * c);
            const int32_t e0 = __sxtb16(t0), e1 = __sxtb16(t1), e2 = __sxtb16(t2);
            const int32_t o0 = tinyml_sxtb16_hi(t0), o1 = tinyml_sxtb16_hi(t1), o2 = tinyml_sxtb16_hi(t2);
            const uint32_t ae = (uint32_t)__sadd16(e0, e0), be = (uint32_t)__sadd16(e1, e1);
            const uint32_t ce = (uint32_t)__sadd16(e2, e2), ao = (uint32_t)__sadd16(o0, o0);
            const uint32_t bo = (uint32_t)__sadd16(o1, o1), co = (uint32_t)__sadd16(o2, o2);
            r[0].w[ky][0] = (int32_t)pack_lo(ae, be); /* channel 0: the lanes 0 of SXTB16; 2: lanes 1 */
            r[0].w[ky][1] = (int32_t)pack_lo(be, ce);
            r[2].w[ky][0] = (int32_t)pack_hi(ae, be);
            r[2].w[ky][1] = (int32_t)pack_hi(be, ce);
            r[1].w[ky][0] = (int32_t)pack_lo(ao, bo); /* channels 1 and 3: SXTB16 ROR #8 */
            r[1].w[ky][1] = (int32_t)pack_lo(bo, co);
            r[3].w[ky][0] = (int32_t)pack_hi(ao, bo);
            r[3].w[ky][1] = (int32_t)pack_hi(bo, co);
        }
    }
    return ch;
}

/* One column pair of a window row from two pixels pa, pb (or the row of in_zp), every group of four channels:
 * PKHBT gives the words of channels 4k, 4k+1, PKHTB those of 4k+2, 4k+3. Two groups a loop: four loads back to
 * back 5 (the post-increments' writeback does not stall), PKHBT and PKHTB 4, four stores 6 (two register
 * offsets), the two destinations 2, loop 4: 21 cycles for 16 bytes; an odd group first, 9. */
static void fill_pair(const int8_t *pa, const int8_t *pb, int8_t *d, int32_t groups, int32_t cps) {
    uint32_t a0, b0, a1, b1, t;
    int8_t *d2 = d + 2 * cps;
    __asm__ volatile(
        "tst    %[n], #1\n\t"
        "beq    1f\n\t"
        "ldr    %[a0], [%[pa]], #4\n\t"
        "ldr    %[b0], [%[pb]], #4\n\t"
        "pkhbt  %[t], %[a0], %[b0], lsl #16\n\t"
        "pkhtb  %[b0], %[b0], %[a0], asr #16\n\t"
        "str    %[t], [%[d]]\n\t"
        "str    %[b0], [%[d], %[cps]]\n\t"
        "mov    %[d], %[d2]\n\t"
        "add    %[d2], %[d2], %[cps], lsl #1\n\t"
        "subs   %[n], %[n], #1\n\t"
        "beq    2f\n\t"
        "1:\n\t"
        "ldr    %[a0], [%[pa]], #8\n\t"
        "ldr    %[a1], [%[pa], #-4]\n\t"
        "ldr    %[b0], [%[pb]], #8\n\t"
        "ldr    %[b1], [%[pb], #-4]\n\t"
        "pkhbt  %[t], %[a0], %[b0], lsl #16\n\t"
        "pkhtb  %[b0], %[b0], %[a0], asr #16\n\t"
        "pkhbt  %[a0], %[a1], %[b1], lsl #16\n\t"
        "pkhtb  %[b1], %[b1], %[a1], asr #16\n\t"
        "str    %[t], [%[d]]\n\t"
        "str    %[b0], [%[d], %[cps]]\n\t"
        "str    %[a0], [%[d2]]\n\t"
        "str    %[b1], [%[d2], %[cps]]\n\t"
        "add    %[d], %[d], %[cps], lsl #2\n\t"
        "add    %[d2], %[d2], %[cps], lsl #2\n\t"
        "subs   %[n], %[n], #2\n\t"
        "bne    1b\n\t"
        "2:\n\t"
        : [a0] "=&r"(a0), [b0] "=&r"(b0), [a1] "=&r"(a1), [b1] "=&r"(b1), [t] "=&r"(t), [pa] "+r"(pa), [pb] "+r"(pb),
          [d] "+r"(d), [d2] "+r"(d2), [n] "+r"(groups)
        : [cps] "r"(cps)
        : "cc", "memory");
}

/* n (even, > 0) column pairs of one group of four channels from the pixels at s (c bytes apart) into the words at
 * lo (channels 4k, 4k+1) and hi (4k+2, 4k+3): per two pairs four loads back to back 5, the source 1, PKHBT and
 * PKHTB 4, four stores 4, loop 4: 18 cycles for 16 bytes. */
static void fill_run(const int8_t *s, int32_t c, int8_t *lo, int8_t *hi, int32_t n) {
    uint32_t a0, b0, a1, b1, t;
    __asm__ volatile(
        "1:\n\t"
        "ldr    %[a0], [%[s]]\n\t"
        "ldr    %[b0], [%[s], %[c]]\n\t"
        "ldr    %[a1], [%[s], %[c], lsl #1]\n\t"
        "ldr    %[b1], [%[s], %[c3]]\n\t"
        "add    %[s], %[s], %[c], lsl #2\n\t"
        "pkhbt  %[t], %[a0], %[b0], lsl #16\n\t"
        "pkhtb  %[b0], %[b0], %[a0], asr #16\n\t"
        "str    %[t], [%[lo]], #4\n\t"
        "str    %[b0], [%[hi]], #4\n\t"
        "pkhbt  %[t], %[a1], %[b1], lsl #16\n\t"
        "pkhtb  %[b1], %[b1], %[a1], asr #16\n\t"
        "str    %[t], [%[lo]], #4\n\t"
        "str    %[b1], [%[hi]], #4\n\t"
        "subs   %[n], %[n], #2\n\t"
        "bne    1b\n\t"
        : [a0] "=&r"(a0), [b0] "=&r"(b0), [a1] "=&r"(a1), [b1] "=&r"(b1), [t] "=&r"(t), [s] "+r"(s), [lo] "+r"(lo),
          [hi] "+r"(hi), [n] "+r"(n)
        : [c] "r"(c), [c3] "r"(3 * c)
        : "cc", "memory");
}

/* Input row iy (in_zp outside the image) into a window row slot: np words per channel pair, cps bytes apart.
 * Column pairs with both pixels in the image go a group of four channels at a time (fill_run), the others (at
 * most one at each end, one of an odd run, a row in the padding, or all of a short run) a pair at a time
 * (fill_pair). */
static void fill_row(const depthwise_conv2d_params_t *p, const int8_t *input, const int8_t *zp, int32_t iy,
                     int8_t *slot, int32_t np, int32_t cps) {
    const int32_t c = p->in_c, w = p->in_w, pl = p->pad_left, groups = c / 4;
    const int inside = iy >= 0 && iy < p->in_h;
    int32_t i0 = (pl + 1) / 2, i1 = (w + pl) / 2; /* [i0, i1): both pixels in the image */
    if (!inside) {
        i0 = i1 = np;
    }
    i1 = i1 > np ? np : i1 < i0 ? i0 : i1;
    /* a short run over many groups goes a pair at a time too (per pair 10.5 cycles a group and about 15, against
     * per group 9 a pair and about 15) */
    const int32_t n = i1 - i0, by_pair = n * (3 * groups + 30) < 30 * groups;
    const int32_t odd = by_pair ? n : n & 1;
    for (int32_t i = 0; i < np; ++i) {
        if (i == i0 + odd && i1 > i) { /* the even run from here: fill_run */
            i = i1 - 1;
            continue;
        }
        const int32_t xa = 2 * i - pl, xb = xa + 1;
        const int8_t *pa = inside && xa >= 0 && xa < w ? input + (iy * w + xa) * c : zp;
        const int8_t *pb = inside && xb >= 0 && xb < w ? input + (iy * w + xb) * c : zp;
        fill_pair(pa, pb, slot + 4 * i, groups, cps);
    }
    if (i1 - i0 - odd > 0) {
        const int8_t *s = input + (iy * w + 2 * (i0 + odd) - pl) * c;
        for (int32_t k = 0; k < groups; ++k) {
            int8_t *lo = slot + 2 * k * cps + 4 * (i0 + odd);
            fill_run(s + 4 * k, c, lo, lo + cps, i1 - i0 - odd);
        }
    }
}

/* A window row slot all in_zp (a row in the padding): np (>= 2) words per channel pair, cps bytes apart. Per
 * channel pair 5 + 3 a word (two stores a loop test) + 5. */
static void fill_zp(int8_t *slot, uint32_t z, int32_t np, int32_t cps, int32_t pairs) {
    int8_t *d;
    int32_t i;
    __asm__ volatile(
        "1:\n\t"
        "mov    %[d], %[slot]\n\t"
        "mov    %[i], %[np]\n\t"
        "tst    %[i], #1\n\t"
        "itt    ne\n\t"
        "strne  %[z], [%[d]], #4\n\t"
        "subne  %[i], %[i], #1\n\t"
        "2:\n\t"
        "str    %[z], [%[d]], #4\n\t"
        "str    %[z], [%[d]], #4\n\t"
        "subs   %[i], %[i], #2\n\t"
        "bne    2b\n\t"
        "add    %[slot], %[slot], %[cps]\n\t"
        "subs   %[n], %[n], #1\n\t"
        "bne    1b\n\t"
        : [d] "=&r"(d), [i] "=&r"(i), [slot] "+r"(slot), [n] "+r"(pairs)
        : [z] "r"(z), [np] "r"(np), [cps] "r"(cps)
        : "cc", "memory");
}

/* The whole layer, stride 1. Scratch: records (40 x in_c), a row of in_zp (in_c), four pixels' outputs
 * (4 x in_c: a row's last 1 or 3 pixels go there first), the window: per channel pair 3 row slots of np words. */
__attribute__((noinline)) static void window_s1(const depthwise_conv2d_params_t *p, const int8_t *input, int8_t *output) {
    const int32_t c = p->in_c, ow = p->out_w, np = (ow + 1) / 2 + 1, ss = 4 * np, cps = 3 * ss;
    const dw_ch_t *ch = unpack_records(p, (dw_ch_t *)p->scratch);
    int8_t *zp = (int8_t *)(ch + c), *tmp = zp + c, *win = tmp + 4 * c;
    memset(zp, (int8_t)p->q.in_zp, (size_t)c);
    const uint32_t z = 0x01010101u * (uint8_t)p->q.in_zp;
    const int32_t nq = ow / 4;
    int32_t next = 0; /* the next padded input row to convert */
    for (int32_t oy = 0; oy < p->out_h; ++oy, output += ow * c) {
        for (; next <= oy + 2; ++next) { /* padded row next into slot next % 3 */
            const int32_t iy = next - p->pad_top;
            if (iy >= 0 && iy < p->in_h) {
                fill_row(p, input, zp, iy, win + next % 3 * ss, np, cps);
            } else {
                fill_zp(win + next % 3 * ss, z, np, cps, c / 2);
            }
        }
        const int8_t *x0 = win + oy % 3 * ss, *x1 = win + (oy + 1) % 3 * ss, *x2 = win + (oy + 2) % 3 * ss;
        dw_row_args_t a = {x0, x1, x2, ch, output, c, x0 + 8 * nq, 8 * nq, 4 * nq * c - 1, 0, c / 2, cps};
        if (ow == 6 || ow == 4 || ow == 3) { /* one quad per channel, and a pair (six), three through tmp */
            a.out = ow == 3 ? tmp : output;
            (ow == 6 ? dw_six_relu : dw_four_relu)(&a);
            if (ow == 3) {
                memcpy(output, tmp, (size_t)(3 * c));
            }
            continue;
        }
        if (nq > 0) {
            dw_quads_relu(&a);
        }
        const int32_t px = 4 * nq, left = ow - px; /* 0 to 3 pixels: a pair, or through tmp a quad or a pair */
        if (left > 0) {
            a.x0 = x0 + 2 * px;
            a.x1 = x1 + 2 * px;
            a.x2 = x2 + 2 * px;
            a.out = left == 2 ? output + px * c : tmp;
            a.x0_end = a.x0 + 8;
            a.back = 8;
            a.out_back = 4 * c - 1;
            (left == 3 ? dw_quads_relu : dw_pair_relu)(&a);
            if (left != 2) {
                memcpy(output + px * c, tmp, (size_t)(left * c));
            }
        }
    }
}

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
#if defined(__ARM_FEATURE_DSP)
    const int relu = tinyml_rq_mode(&p->q) == TINYML_FULL_RELU;
    if (relu && c % 4 == 0 && p->stride_h == 1 && p->stride_w == 1) {
        window_s1(p, input, output);
        return;
    }
#endif
    const tinyml_dw_group_t *groups = unpack_groups(p, (tinyml_dw_group_t *)p->scratch);
#if defined(__ARM_FEATURE_DSP)
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
            int32_t edge;
            const int interior = iy0 >= 0 && iy0 + 3 <= p->in_h && ix0 >= 0 && ix0 + 3 <= p->in_w;
            if (interior && relu && c % 4 == 0) { /* the run of interior pixels from here, in one call */
                int32_t n = (p->in_w - 3 - ix0) / p->stride_w + 1;
                n = n < p->out_w - ox ? n : p->out_w - ox;
                const int8_t *x = input + (iy0 * p->in_w + ix0) * c;
                interior_full(x, c, row, groups, c / 4, output, n, p->stride_w * c);
                ox += n - 1;
                output += (n - 1) * c;
                continue;
            }
            if (interior && relu) {
                interior_full(input + (iy0 * p->in_w + ix0) * c, c, row, groups, c / 4, output, 1, 0);
                c0 = c & ~3;
            } else if (relu && c >= 4 && (edge = edge_run(p, groups, input, iy0, ix0, p->out_w - ox, output)) > 0) {
                ox += edge - 1; /* a run of pixels with only the window's right column or bottom row outside */
                output += (edge - 1) * c;
                continue;
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
