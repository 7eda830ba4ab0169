/* CONV_2D, any kernel size, stride, dilation and padding (no groups): each output pixel's receptive field is
 * gathered into a patch (taps outside the image read the input zero point, matching the folded bias), then
 * three patches at a time go through tinyml_mat3_s8 (out_c even; patch padded to a multiple of 8, of 4 for
 * TINYML_FULL_RELU), else two through tinyml_mat2_s8 (padded to a multiple of 4). Weights: pair-blocked over
 * the padded patch.
 * scratch: the channel table (16 * out_c bytes), three (two) patches, then the widened vectors (6 (4) bytes per
 * patch byte); the gather of a patch may write up to 3 bytes past it. */
#include "tinyml_kernels.h"

/* Copy n bytes, a word at a time then the tail (patches are short: a memcpy call per tap costs more). */
static inline void copy_small(int8_t *dst, const int8_t *src, int32_t n) {
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const int32_t v = tinyml_load32(src + i);
        memcpy(dst + i, &v, 4);
    }
    for (; i < n; ++i) {
        const int8_t v = src[i];
        __asm__("" : : "r"(v)); /* keeps GCC from turning this loop into a memcpy call */
        dst[i] = v;
    }
}

/* k_h kernel rows of 9 to 12 bytes, `stride` apart, into dst (row bytes apart), three words a row: may write up
 * to 3 bytes past a row (see gather). */
static inline void copy_rows_words3(const int8_t *src, int32_t stride, int32_t k_h, int8_t *dst, int32_t row) {
    for (int32_t ky = 0; ky < k_h; ++ky, src += stride, dst += row) {
        const int32_t v0 = tinyml_load32(src), v1 = tinyml_load32(src + 4), v2 = tinyml_load32(src + 8);
        memcpy(dst, &v0, 4);
        memcpy(dst + 4, &v1, 4);
        memcpy(dst + 8, &v2, 4);
    }
}

static void gather(const conv2d_params_t *p, const int8_t *input, int32_t i, int8_t *patch, int32_t depth) {
    const int32_t oy = i / p->out_w, ox = i - oy * p->out_w, c = p->in_c;
    const int32_t iy0 = oy * p->stride_h - p->pad_top, ix0 = ox * p->stride_w - p->pad_left;
    const int8_t zp = (int8_t)p->q.in_zp;
    int8_t *dst = patch;
    if (p->dil_h == 1 && p->dil_w == 1 && iy0 >= 0 && iy0 + p->k_h <= p->in_h && ix0 >= 0 &&
        ix0 + p->k_w <= p->in_w) {
        /* whole window inside: each kernel row is k_w * c contiguous bytes, copied a word at a time. A row's
         * last word may run up to 3 bytes past it: into the next row (copied after it), or past the patch
         * (into the next patch or the widened vectors, written later; the padding to a multiple of 4 meets
         * zero weights, so its bytes need not be zero). The source may not run past the input. */
        const int32_t row = p->k_w * c, words = (row + 3) >> 2, stride = p->in_w * c;
        const int8_t *src = input + (iy0 * p->in_w + ix0) * c;
        if (src + (p->k_h - 1) * stride + 4 * words <= input + p->in_h * stride) {
            if (words == 3) { /* e.g. 3x3 on RGB: 9 bytes a row, straight-line */
                copy_rows_words3(src, stride, p->k_h, dst, row);
                return;
            }
            for (int32_t ky = 0; ky < p->k_h; ++ky, src += stride, dst += row) {
                for (int32_t j = 0; j < words; ++j) {
                    const int32_t v = tinyml_load32(src + 4 * j);
                    memcpy(dst + 4 * j, &v, 4);
                }
            }
            return;
        }
    }
    for (int32_t ky = 0; ky < p->k_h; ++ky) {
        const int32_t iy = iy0 + ky * p->dil_h;
        const int row_inside = iy >= 0 && iy < p->in_h;
        if (row_inside && p->dil_w == 1 && ix0 >= 0 && ix0 + p->k_w <= p->in_w) { /* whole kernel row */
            copy_small(dst, input + (iy * p->in_w + ix0) * c, p->k_w * c);
            dst += p->k_w * c;
            continue;
        }
        for (int32_t kx = 0; kx < p->k_w; ++kx, dst += c) {
            const int32_t ix = ix0 + kx * p->dil_w;
            if (!row_inside || ix < 0 || ix >= p->in_w) {
                for (int32_t j = 0; j < c; ++j) {
                    dst[j] = zp; /* the padding reads the input zero point */
                }
            } else {
                copy_small(dst, input + (iy * p->in_w + ix) * c, c);
            }
        }
    }
    while (dst < patch + depth) {
        *dst++ = 0; /* pad to a multiple of 4: zero weights there */
    }
}

/* gather's whole-window-inside case for kernel rows of 9 to 12 bytes (3x3 on RGB), inlined in the three-patch
 * loop: three words a row, no call (the call, its division and checks cost about 4x the copy). Returns 0 where
 * gather must do it (border, or the last word would read past the input). */
static inline int gather_words3(const conv2d_params_t *p, const int8_t *input, int32_t oy, int32_t ox,
                                int8_t *dst) {
    const int32_t iy0 = oy * p->stride_h - p->pad_top, ix0 = ox * p->stride_w - p->pad_left;
    if (iy0 < 0 || iy0 + p->k_h > p->in_h || ix0 < 0 || ix0 + p->k_w > p->in_w) {
        return 0;
    }
    const int32_t stride = p->in_w * p->in_c, row = p->k_w * p->in_c;
    const int8_t *src = input + (iy0 * p->in_w + ix0) * p->in_c;
    if (src + (p->k_h - 1) * stride + 12 > input + p->in_h * stride) {
        return 0;
    }
    copy_rows_words3(src, stride, p->k_h, dst, row);
    return 1;
}

/* The three patches of output pixels (oy, ox..ox+2) when all three windows are inside (one output row) and their
 * kernel rows are 9 to 12 bytes: one pointer walk, stepping stride_w pixels a patch, no per-patch checks.
 * Returns 0 where the caller gathers them one by one. */
static inline int gather3_words3(const conv2d_params_t *p, const int8_t *input, int32_t oy, int32_t ox, int8_t *dst,
                                 int32_t depth) {
    const int32_t iy0 = oy * p->stride_h - p->pad_top, ix0 = ox * p->stride_w - p->pad_left;
    if (ox + 2 >= p->out_w || iy0 < 0 || iy0 + p->k_h > p->in_h || ix0 < 0 ||
        ix0 + 2 * p->stride_w + p->k_w > p->in_w) {
        return 0;
    }
    const int32_t c = p->in_c, stride = p->in_w * c, row = p->k_w * c, step = p->stride_w * c;
    const int8_t *src = input + (iy0 * p->in_w + ix0) * c;
    if (src + 2 * step + (p->k_h - 1) * stride + 12 > input + p->in_h * stride) {
        return 0;
    }
    for (int32_t k = 0; k < 3; ++k, src += step, dst += depth) {
        copy_rows_words3(src, stride, p->k_h, dst, row);
    }
    return 1;
}

#if defined(__ARM_FEATURE_DSP)
/* 3x3 on RGB (in_c 3, no dilation, out_c even, full int8 range) through the first-layer engine
 * (tinyml_first_s8.c): the 27 taps (r * 9 + j, j = kx * 3 + c) as K = 14 words of int16 pairs. Per window row
 * r, its bytes 0-3 and 4-7 as two words, SXTB16 each: (x0, x2), (x1, x3), (x4, x6), (x5, x7); the rows' bytes 8
 * as (x8 row 0, x8 row 1) and (x8 row 2, its sign meeting a zero weight). */
#define RGB_K 14
#define RGB_BLOCKS 16 /* blocks of 3 pixels widened per engine call, an output row of 48 (ops.py sizes the scratch) */
static const int8_t rgb_pairs[RGB_K][2] = {{0, 2},   {1, 3},   {4, 6},   {5, 7},   {9, 11},  {10, 12}, {13, 15},
                                           {14, 16}, {18, 20}, {19, 21}, {22, 24}, {23, 25}, {8, 17},  {26, -1}};

/* One window (rows `rs` bytes apart) into d, RGB_K words, d moving on post-indexed by its first store (the others
 * at negative offsets), x by `step`. Cortex-M4 cycles: per row 2 LDRs and an LDRSB (4), 4 SXTB16s and 4 STRs; the
 * bytes 8 a PKHBT and 2 STRs, row pointers 2, the step 1: 42. */
#define RGB_ROW(W)                                                                                             \
    "sxtb16 %[t], %[a]\n\t"                                                                                   \
    "str    %[t], [%[d], #" W "-56]\n\t"                                                                      \
    "sxtb16 %[a], %[a], ror #8\n\t"                                                                           \
    "str    %[a], [%[d], #" W "-52]\n\t"                                                                      \
    "sxtb16 %[t], %[b]\n\t"                                                                                   \
    "str    %[t], [%[d], #" W "-48]\n\t"                                                                      \
    "sxtb16 %[b], %[b], ror #8\n\t"                                                                           \
    "str    %[b], [%[d], #" W "-44]\n\t"
#define RGB_WINDOW                                                                                             \
    "add    %[x1], %[x], %[rs]\n\t"                                                                           \
    "ldr    %[a], [%[x]]\n\t"                                                                                 \
    "ldr    %[b], [%[x], #4]\n\t"                                                                             \
    "ldrsb  %[e], [%[x], #8]\n\t"                                                                             \
    "sxtb16 %[t], %[a]\n\t"                                                                                   \
    "str    %[t], [%[d]], #56\n\t"              /* word 0: d moves on */                                      \
    "sxtb16 %[a], %[a], ror #8\n\t"                                                                           \
    "str    %[a], [%[d], #4-56]\n\t"                                                                          \
    "sxtb16 %[t], %[b]\n\t"                                                                                   \
    "str    %[t], [%[d], #8-56]\n\t"                                                                          \
    "sxtb16 %[b], %[b], ror #8\n\t"                                                                           \
    "str    %[b], [%[d], #12-56]\n\t"                                                                         \
    "ldr    %[a], [%[x1]]\n\t"                                                                                \
    "ldr    %[b], [%[x1], #4]\n\t"                                                                            \
    "ldrsb  %[t], [%[x1], #8]\n\t"                                                                            \
    "pkhbt  %[e], %[e], %[t], lsl #16\n\t" /* (x8 row 0, x8 row 1) */                                         \
    "str    %[e], [%[d], #48-56]\n\t"                                                                         \
    "add    %[x1], %[x1], %[rs]\n\t"                                                                          \
    RGB_ROW("16")                                                                                              \
    "ldr    %[a], [%[x1]]\n\t"                                                                                \
    "ldr    %[b], [%[x1], #4]\n\t"                                                                            \
    "ldrsb  %[t], [%[x1], #8]\n\t"                                                                            \
    "str    %[t], [%[d], #52-56]\n\t"           /* (x8 row 2, its sign: a zero weight) */                     \
    RGB_ROW("32")                                                                                              \
    "add    %[x], %[x], %[step]\n\t"
#define RGB_OPERANDS                                                                                           \
    : [a] "=&r"(a), [b] "=&r"(b), [t] "=&r"(t), [e] "=&r"(e), [x1] "=&r"(x1), [x] "+&r"(x), [d] "+&r"(d),         \
      [n] "+&r"(count)                                                                                         \
    : [rs] "r"(rs), [step] "r"(step)                                                                           \
    : "cc", "memory"

/* `count` (>= 1) windows `step` bytes apart into d: an odd one first, then two a loop (42 + 42 + 4: 44 cycles a
 * window). */
static inline void rgb_widen_run(const int8_t *x, int32_t rs, int32_t step, int32_t count, int32_t *d) {
    int32_t a, b, t, e;
    const int8_t *x1;
    __asm__ volatile("lsrs   %[n], %[n], #1\n\t" /* pairs of windows; C: an odd one */
                     "bcc    1f\n\t"
                     RGB_WINDOW
                     "cmp    %[n], #0\n\t"
                     "beq    2f\n\t"
                     "1:\n\t"
                     RGB_WINDOW
                     RGB_WINDOW
                     "subs   %[n], %[n], #1\n\t"
                     "bne    1b\n\t"
                     "2:\n\t"
                     RGB_OPERANDS);
}

/* One window (the border's gathered rows). */
static inline void rgb_widen_one(const int8_t *x, int32_t rs, int32_t *d) {
    int32_t a, b, t, e, count = 0;
    const int32_t step = 0;
    const int8_t *x1;
    __asm__ volatile(RGB_WINDOW RGB_OPERANDS);
    (void)count;
}
#undef RGB_ROW
#undef RGB_WINDOW
#undef RGB_OPERANDS

/* tinyml_first_border_t: the window's rows copied whole where inside the image, else its taps of 3 bytes
 * copied, or in_zp outside the image. */
static inline void rgb_border(const conv2d_params_t *p, const int8_t *input, int32_t iy0, int32_t ix0, int32_t *d) {
    const int8_t zp[3] = {(int8_t)p->q.in_zp, (int8_t)p->q.in_zp, (int8_t)p->q.in_zp};
    const int cols_inside = ix0 >= 0 && ix0 + 3 <= p->in_w;
    int8_t win[27], *dst = win;
    for (int32_t iy = iy0; iy < iy0 + 3; ++iy, dst += 9) {
        const int row_inside = (uint32_t)iy < (uint32_t)p->in_h;
        if (row_inside && cols_inside) {
            memcpy(dst, input + (iy * p->in_w + ix0) * 3, 9);
            continue;
        }
#pragma GCC unroll 3
        for (int32_t ix = ix0; ix < ix0 + 3; ++ix) {
            const int8_t *src =
                row_inside && (uint32_t)ix < (uint32_t)p->in_w ? input + (iy * p->in_w + ix) * 3 : zp;
            memcpy(dst + 3 * (ix - ix0), src, 3);
        }
    }
    rgb_widen_one(win, 9, d);
}

/* tinyml_first_edge_t: column 2 (bytes 6-8 of each row) is the high half of words 4r + 2 and 4r + 3, and words
 * 12 and 13. */
static void rgb_edge(int32_t *d, int32_t zp) {
    const int16_t z = (int16_t)zp;
    for (int32_t r = 0; r < 3; ++r) {
        memcpy((int16_t *)(d + 4 * r + 2) + 1, &z, sizeof z);
        memcpy((int16_t *)(d + 4 * r + 3) + 1, &z, sizeof z);
    }
    d[12] = d[13] = tinyml_pack16(z, z);
}

/* tinyml_first_widen_t: windows inside the input read in place, others gathered. */
__attribute__((noinline)) static void rgb_widen(const conv2d_params_t *p, const int8_t *input, int32_t oy, int32_t ox,
                                                int32_t count, int32_t *d) {
    tinyml_first_widen3x3(p, input, oy, ox, count, d, RGB_K, 0, rgb_widen_run, rgb_border, rgb_edge);
}

/* The engine path; scratch after the channel table: the records, then tinyml_first_conv's. */
static void rgb_engine(const conv2d_params_t *p, const tinyml_channel_t *chans, const int8_t *input,
                       int8_t *output, int32_t depth, int mode) {
    const int32_t out_c = p->out_c;
    int32_t *const rec = (int32_t *)(chans + out_c);
    tinyml_first_records(rec, chans, out_c, RGB_K);
    for (int32_t c = 0; c < out_c; ++c) {
        const int8_t *w = p->weights + c / 2 * 2 * depth; /* pair-blocked: groups of 4 (tinyml_pw_byte) */
        int16_t taps[27];
        for (int32_t t = 0; t < 27; ++t) {
            taps[t] = (int16_t)(2 * w[t / 4 * 8 + tinyml_pw_byte(c % 2, t % 4)]); /* doubled: 2 * acc */
        }
        tinyml_first_weights(rec, c, RGB_K, taps, rgb_pairs);
    }
    tinyml_first_conv(p, input, output, RGB_K, RGB_BLOCKS, rec, rgb_widen,
                      mode != TINYML_FULL_RELU ? tinyml_first14_sign
                      : out_c == 8 ? tinyml_first14_relu8 : tinyml_first14_relu);
}
#endif

TINYML_KERNEL void conv2d_im2col_s8(const conv2d_params_t *p, const int8_t *input, int8_t *output) {
    const int32_t n = p->out_h * p->out_w, out_c = p->out_c, patch = p->k_h * p->k_w * p->in_c;
    /* three patches at a time: the compiler pads them to a multiple of 8, of 4 for TINYML_FULL_RELU */
    const int three = out_c % 2 == 0;
    const int32_t depth = three && tinyml_rq_mode(&p->q) != TINYML_FULL_RELU ? (patch + 7) & ~7 : (patch + 3) & ~3;
    tinyml_requant_t q = p->q;
    q.ch = tinyml_unpack_channels(&p->pack, out_c, q.out_zp, (tinyml_channel_t *)p->scratch);
#if defined(__ARM_FEATURE_DSP)
    if (p->in_c == 3 && p->k_h == 3 && p->k_w == 3 && p->dil_h == 1 && p->dil_w == 1 && out_c % 2 == 0 &&
        tinyml_rq_mode(&q) != TINYML_CLAMP) {
        rgb_engine(p, q.ch, input, output, depth, tinyml_rq_mode(&q));
        return;
    }
#endif
    int8_t *pa = (int8_t *)((tinyml_channel_t *)p->scratch + out_c), *pb = pa + depth, *pc = pb + depth;
    int32_t i = 0;
    if (three && !TINYML_ARMV6M) { /* ARMv6-M: two patches at a time (its engine pairs them) */
        const int words3 = p->dil_h == 1 && p->dil_w == 1 && (p->k_w * p->in_c + 3) / 4 == 3;
        int32_t oy = 0, ox = 0; /* of patch i */
        for (; i + 3 <= n; i += 3) {
            if (words3 && gather3_words3(p, input, oy, ox, pa, depth)) {
                ox += 3;
                if (ox == p->out_w) {
                    ox = 0;
                    ++oy;
                }
            } else {
                int8_t *dst = pa;
                for (int32_t k = 0; k < 3; ++k, dst += depth) {
                    if (!words3 || !gather_words3(p, input, oy, ox, dst)) {
                        gather(p, input, i + k, dst, depth);
                    }
                    if (++ox == p->out_w) {
                        ox = 0;
                        ++oy;
                    }
                }
            }
            /* the three patches follow each other, as their outputs do: one block of a run */
            if (!tinyml_mat3_run_s8(pa, 1, depth, p->weights, out_c, &q, pc + depth, output + i * out_c)) {
                tinyml_mat3_s8(pa, pb, pc, depth, p->weights, out_c, &q, pc + depth, output + i * out_c,
                               output + (i + 1) * out_c, output + (i + 2) * out_c);
            }
        }
    }
    for (; i < n; i += 2) {
        const int32_t j = i + 1 < n ? i + 1 : i;
        gather(p, input, i, pa, depth);
        gather(p, input, j, pb, depth);
        tinyml_mat2_s8(pa, pb, depth, p->weights, out_c, &q, pb + depth, output + i * out_c,
                       output + j * out_c);
    }
}
