/*
 * tinyml int8 kernels: bit-exact with TensorFlow Lite Micro's reference kernels.
 *
 * One function per op (and per specialized variant), each taking a const params struct, then its input(s),
 * then its output. Tensors are int8 NHWC, row-major. Kernels never allocate and keep no state.
 * All quantization parameters are integers computed at compile time by `tinyml compile`; see
 * shared/INT8.md for the arithmetic (double rounding: SRDHM then a rounding divide by a power of two).
 *
 * Kernel functions are weak symbols so that two models compiled separately (each directory carries its own
 * copy of these files) can be linked into one firmware: the copies are identical for one tinyml version.
 * Requires arithmetic right shift of negative integers (true for GCC and Clang on every target).
 */
#ifndef TINYML_KERNELS_H
#define TINYML_KERNELS_H

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#endif

#if defined(__GNUC__)
#define TINYML_KERNEL __attribute__((weak))
#else
#define TINYML_KERNEL
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Per output channel: folded bias and requantization (one 16-byte row, loaded together).
 * bias  = the model's bias - in_zp * sum(weights of the channel): taps in the padding read in_zp.
 * mult  = TFLM's multiplier M in [2^30, 2^31) (or 0), rshift = -e for its exponent e:
 *         real multiplier = M * 2^(-rshift - 31) (rshift < 0 shifts left).
 * radd  = 2^(rshift-1) + out_zp * 2^rshift: the rounding addend of the fast path (see tinyml_requant_fast).
 * The fast kernels accumulate 2 * acc (doubled inputs or weights), so their tables hold 2 * bias. */
typedef struct {
    int32_t bias, mult, rshift, radd;
} tinyml_channel_t;

/* The fast kernels' per-channel parameters as stored in flash (9 bytes a channel instead of 16): bm[2c] is the
 * doubled folded bias, bm[2c+1] the multiplier M, rshift[c] the shift; radd follows from rshift and out_zp.
 * A constant channel (M = 0) keeps its radd in bm[2c]. Kernels unpack it into a tinyml_channel_t table in
 * their scratch when they start (tinyml_unpack_channels). */
typedef struct {
    const int32_t *bm;     /* [channels][2] */
    const uint8_t *rshift; /* [channels] */
} tinyml_chpack_t;

/* Requantization shared by conv, depthwise and FC. */
typedef struct {
    int32_t in_zp;               /* input zero point */
    int32_t out_zp;              /* output zero point */
    int32_t act_min;             /* fused activation clamp, in output int8 units */
    int32_t act_max;
    const tinyml_channel_t *ch;  /* [out channels] */
} tinyml_requant_t;

/* CONV_2D. Reference kernel conv2d_s8: weights [out_c][k_h][k_w][filter_c] (filter_c < in_c: groups).
 * conv2d_1x1_s8 (pointwise; in_c % 4 == 0): weights in blocks of two output channels, 4 input channels at a
 * time: [oc/2][in_c/4][2][4] (a last odd channel alone). conv2d_im2col_s8: the same blocking over the patch
 * (k_h*k_w*in_c) zero-padded to a multiple of 8 (out_c even: three patches at a time) or 4; scratch holds the
 * patches and their widened int16 pairs.
 * conv2d_3x3_1ch_s8 (3x3, in_c 1, no dilation): weights16 [out_c][3 rows][(w0, w2), (w1, 0)] int16 doubled, and
 * the channel table holds doubled biases (the kernel accumulates 2 * acc).
 * The fast kernels (all but conv2d_s8) unpack their channels into the first 16 * out_c bytes of scratch. */
typedef struct {
    int16_t in_h, in_w, in_c, out_h, out_w, out_c; /* geometry: int16 (the compiler checks), flash is scarce */
    int16_t k_h, k_w, filter_c;
    int16_t stride_h, stride_w, dil_h, dil_w, pad_top, pad_left;
    const int8_t *weights;
    const int16_t *weights16;
    tinyml_requant_t q;          /* the fast kernels: q.ch is NULL, the channels come from pack */
    tinyml_chpack_t pack;
    void *scratch;               /* arena scratch for the fast kernels (NULL for the reference kernel) */
} conv2d_params_t;

/* depthwise_conv2d_3x3_s8: everything a group of four channels needs, in the order the kernel reads it. */
typedef struct {
    int32_t bias[4];  /* 2 x folded bias (the kernel accumulates 2 * acc) */
    int32_t rq[4][3]; /* per channel: M, rshift, radd (see tinyml_channel_t) */
    int16_t w[9][4];  /* per tap: doubled weights of the four channels, lanes in the order 0, 2, 1, 3 */
} tinyml_dw_group_t;

/* DEPTHWISE_CONV_2D, out_c = in_c * depth_mult; output channel c reads input channel c / depth_mult.
 * weights [k_h][k_w][out_c] int8 (the model's layout). Reference kernel depthwise_conv2d_s8: q.ch per channel.
 * depthwise_conv2d_3x3_s8 (3x3, depth_mult 1, dilation 1): q.ch NULL, the channels in pack; it builds its
 * tinyml_dw_group_t records (in_c / 4 rounded up) in scratch, then a row of in_c bytes of in_zp (rounded up to
 * 4), then 9 * (in_c rounded down to 4) bytes (a border pixel's window, on ARMv6-M). */
typedef struct {
    int16_t in_h, in_w, in_c, out_h, out_w, out_c;
    int16_t k_h, k_w, depth_mult;
    int16_t stride_h, stride_w, dil_h, dil_w, pad_top, pad_left;
    const int8_t *weights;
    tinyml_requant_t q;
    tinyml_chpack_t pack;
    void *scratch;
} depthwise_conv2d_params_t;

/* FULLY_CONNECTED. weights [out_depth][in_depth]; input read as [batches][in_depth]. */
typedef struct {
    int32_t batches, in_depth, out_depth;
    const int8_t *weights;
    tinyml_requant_t q;
} fully_connected_params_t;

/* AVERAGE_POOL_2D and MAX_POOL_2D (input and output share their quantization). */
typedef struct {
    int32_t in_h, in_w, ch, out_h, out_w;
    int32_t k_h, k_w, stride_h, stride_w, pad_top, pad_left;
    int32_t act_min, act_max;
} pool2d_params_t;

/* MEAN over n contiguous elements: input viewed as [outer][n][inner], output [outer][inner].
 * mult/shift already include 1/n (TFLM folds it into a truncated multiplier). */
typedef struct {
    int32_t outer, n, inner;
    int32_t in_zp, out_zp;
    int32_t mult, shift;
} mean_params_t;

/* SOFTMAX over the last dimension; output quantization is fixed by TFLM: scale 1/256, zero point -128. */
typedef struct {
    int32_t rows, depth;
    int32_t mult, left_shift, diff_min;
} softmax_params_t;

/* ADD with optional 4-D broadcasting (strides 0 along broadcast dimensions). */
typedef struct {
    int32_t size, broadcast;
    int32_t out_dims[4], in1_strides[4], in2_strides[4];
    int32_t in1_zp, in2_zp, out_zp;
    int32_t in1_mult, in1_shift, in2_mult, in2_shift, out_mult, out_shift;
    int32_t act_min, act_max;
} add_params_t;

/* PAD / PADV2 of up to 4 dimensions; `pre` leading pads, the rest of out_dims is trailing padding. */
typedef struct {
    int32_t in_dims[4], out_dims[4], pre[4];
    int32_t value;
} pad_params_t;

void conv2d_s8(const conv2d_params_t *p, const int8_t *input, int8_t *output);
void conv2d_1x1_s8(const conv2d_params_t *p, const int8_t *input, int8_t *output);
void conv2d_im2col_s8(const conv2d_params_t *p, const int8_t *input, int8_t *output);
void conv2d_3x3_1ch_s8(const conv2d_params_t *p, const int8_t *input, int8_t *output);
void depthwise_conv2d_s8(const depthwise_conv2d_params_t *p, const int8_t *input, int8_t *output);
void depthwise_conv2d_3x3_s8(const depthwise_conv2d_params_t *p, const int8_t *input, int8_t *output);
void fully_connected_s8(const fully_connected_params_t *p, const int8_t *input, int8_t *output);
void avg_pool2d_s8(const pool2d_params_t *p, const int8_t *input, int8_t *output);
void max_pool2d_s8(const pool2d_params_t *p, const int8_t *input, int8_t *output);
void mean_s8(const mean_params_t *p, const int8_t *input, int8_t *output);
void softmax_s8(const softmax_params_t *p, const int8_t *input, int8_t *output);
void add_s8(const add_params_t *p, const int8_t *input1, const int8_t *input2, int8_t *output);
void pad_s8(const pad_params_t *p, const int8_t *input, int8_t *output);

/* The fast convolutions' weights, pair-blocked: per pair of output channels and group of 4 depth values, 8 bytes
 * c0d0 c1d0 c0d2 c1d2 c0d1 c1d1 c0d3 c1d3 (SXTB16 of either word gives one channel's (d0, d2) or (d1, d3), both
 * channels' halves of one activation word coming from one word); a last odd channel's groups alone, in order.
 * The byte of channel c (0, 1) of the pair and depth value j (0..3) in its group: */
static inline int32_t tinyml_pw_byte(int32_t c, int32_t j) {
    return (j & 1) * 4 + (j >> 1) * 2 + c;
}

/* Shared by the fast convolutions (tinyml_mat_s8.c): two input vectors xa, xb of `depth` int8 (depth % 4 == 0)
 * times pair-blocked weights (above) -> two output vectors. scratch: 4 * depth bytes. */
void tinyml_mat2_s8(const int8_t *xa, const int8_t *xb, int32_t depth, const int8_t *weights, int32_t out_c,
                    const tinyml_requant_t *q, void *scratch, int8_t *ya, int8_t *yb);

/* `blocks` x three consecutive vectors of x (depth % 4 == 0, out_c even), their outputs consecutive from y: the
 * same as tinyml_mat3_s8 per block, with the per-block set-up done once. Returns the blocks done: all of them,
 * or 0 where only tinyml_mat3_s8 can (no DSP extension, or not TINYML_FULL_RELU). */
int32_t tinyml_mat3_run_s8(const int8_t *x, int32_t blocks, int32_t depth, const int8_t *weights, int32_t out_c,
                        const tinyml_requant_t *q, void *scratch, int8_t *y);

/* `blocks` x four consecutive vectors of x (depth % 4 == 0, depth <= 128, out_c even), their outputs consecutive
 * from y: four pixels x two channels per pass, the widened block in the routine's stack frame (about 1.1 KB).
 * Returns the blocks done: all of them, or 0 where it does not apply (no DSP extension, not TINYML_FULL_RELU,
 * deeper). q->ch must have 32 readable bytes after the table (the kernels' scratch). */
int32_t tinyml_mat4_run_s8(const int8_t *x, int32_t blocks, int32_t depth, const int8_t *weights, int32_t out_c,
                           const tinyml_requant_t *q, int8_t *y);

/* Thin layers, depth 8, stride 1: the first pixels of x (n of them, consecutive) in blocks of 128 / out_c, two
 * pixels' whole input in registers against every channel (out_c a multiple of 8 dividing 64; TINYML_FULL_RELU;
 * DSP cores). Channels from the packed table pk (q->ch is not read). Returns the pixels done (0 where it does not
 * apply); scratch: 32 * out_c bytes (the channel records). */
int32_t tinyml_thin_run_s8(const int8_t *x, int32_t n, int32_t depth, const int8_t *weights, int32_t out_c,
                           const tinyml_chpack_t *pk, const tinyml_requant_t *q, void *scratch, int8_t *y);

/* Three input vectors (depth % 8 == 0, or % 4 for TINYML_FULL_RELU; out_c even) at a time; scratch: 6 * depth
 * bytes. */
void tinyml_mat3_s8(const int8_t *xa, const int8_t *xb, const int8_t *xc, int32_t depth, const int8_t *weights,
                    int32_t out_c, const tinyml_requant_t *q, void *scratch, int8_t *ya, int8_t *yb, int8_t *yc);

#if defined(__ARM_FEATURE_DSP)
/* The first-layer engine (tinyml_first_s8.c; out_c even): `blocks` x 3 pixels, each pixel's patch widened into
 * K words of int16 pairs at act[block][pixel][word], against the records of tinyml_first_records (8 + 2K words
 * a pair of channels, with the weight words of tinyml_first_weights); pixel p's outputs at out + p * ostride. */
typedef struct {
    int32_t ostride;
    const int32_t *rec_end, *rec;
    int32_t blocks;
    const int32_t *act;
    int8_t *out;
} tinyml_first_run_t;
#define TINYML_FIRST_REC(k) (8 + 2 * (k))
void tinyml_first_records(int32_t *rec, const tinyml_channel_t *ch, int32_t out_c, int32_t k);
/* Channel c's weight words: word j pairs taps[pairs[j][0]] (low half) with taps[pairs[j][1]] (-1: zero). */
void tinyml_first_weights(int32_t *rec, int32_t c, int32_t k, const int16_t *taps, const int8_t (*pairs)[2]);
/* Widen `count` pixels of output row oy from column ox into act, K words a pixel. */
typedef void (*tinyml_first_widen_t)(const conv2d_params_t *p, const int8_t *input, int32_t oy, int32_t ox,
                                     int32_t count, int32_t *act);
/* A kernel's pieces of a widen: `count` windows inside the input, `step` bytes apart from x (rows rs bytes apart),
 * into d; one border window at (iy0, ix0) into d, in_zp for the padding; a right-edge window (its column 2 just
 * past the row) widened by `interior` from the bytes that follow, its column 2 then set to zp in d. */
typedef void (*tinyml_first_interior_t)(const int8_t *x, int32_t rs, int32_t step, int32_t count, int32_t *d);
typedef void (*tinyml_first_border_t)(const conv2d_params_t *p, const int8_t *input, int32_t iy0, int32_t ix0,
                                      int32_t *d);
typedef void (*tinyml_first_edge_t)(int32_t *d, int32_t zp);

/* The body of a 3x3 kernel's tinyml_first_widen_t: runs of interior windows, border windows one at a time.
 * `over`: bytes the interior loads read past a window row (allowed but on the input's last row). A run whose
 * rows are not the input's last takes the right-edge window too (ix0 = in_w - 2: its loads read at most
 * 1 + over pixels into the next row), then `edge` fixes its column 2. */
__attribute__((always_inline)) static inline void
tinyml_first_widen3x3(const conv2d_params_t *p, const int8_t *input, int32_t oy, int32_t ox, int32_t count,
                      int32_t *d, int32_t k, int32_t over, tinyml_first_interior_t interior,
                      tinyml_first_border_t border, tinyml_first_edge_t edge) {
    const int32_t in_w = p->in_w, in_h = p->in_h, c = p->in_c, sw = p->stride_w;
    const int32_t iy0 = oy * p->stride_h - p->pad_top;
    /* interior columns: 0 <= ix0 < end */
    const int32_t end = iy0 >= 0 && iy0 + 3 <= in_h ? (iy0 + 3 < in_h ? in_w - 1 : in_w - 2 - over) : 0;
    int32_t ix0 = ox * sw - p->pad_left;
    while (count > 0) {
        int32_t run = 1;
        if ((uint32_t)ix0 < (uint32_t)end) {
            run = (end - 1 - ix0) / sw + 1;
            run = run < count ? run : count;
            interior(input + (iy0 * in_w + ix0) * c, in_w * c, sw * c, run, d);
            if (ix0 + (run - 1) * sw == in_w - 2) {
                edge(d + (run - 1) * k, p->q.in_zp);
            }
        } else {
            border(p, input, iy0, ix0, d);
        }
        d += run * k;
        ix0 += run * sw;
        count -= run;
    }
}
void tinyml_first5_relu(const tinyml_first_run_t *r);  /* K = 5, TINYML_FULL_RELU */
void tinyml_first5_sign(const tinyml_first_run_t *r);  /* K = 5, TINYML_FULL */
void tinyml_first14_relu(const tinyml_first_run_t *r);
void tinyml_first14_sign(const tinyml_first_run_t *r);
void tinyml_first5_relu8(const tinyml_first_run_t *r);  /* out_c 8 exactly, TINYML_FULL_RELU */
void tinyml_first14_relu8(const tinyml_first_run_t *r);
/* Every output pixel of p through `engine`, max_blocks blocks of 3 pixels a call; rec: the records, then scratch
 * for the widened patches of max_blocks blocks and 3 * out_c bytes. Inlined where widen and engine are known
 * (the firmware's stack check follows no call through a pointer it cannot resolve). */
__attribute__((always_inline)) static inline void
tinyml_first_conv(const conv2d_params_t *p, const int8_t *input, int8_t *output, int32_t k, int32_t max_blocks,
                       int32_t *rec, tinyml_first_widen_t widen, void (*engine)(const tinyml_first_run_t *)) {
    const int32_t out_c = p->out_c, out_w = p->out_w;
    int32_t *const act = rec + out_c / 2 * TINYML_FIRST_REC(k);
    int8_t *const tail = (int8_t *)(act + 3 * k * max_blocks);
    tinyml_first_run_t run = {out_c, act, rec, max_blocks, act, output};
    int32_t oy = 0, ox = 0;
    for (int32_t left = p->out_h * out_w; left > 0;) {
        const int32_t m = left < 3 * max_blocks ? left : 3 * max_blocks; /* pixels this call */
        for (int32_t j = 0; j < m;) {                                      /* in runs along an output row */
            const int32_t count = m - j < out_w - ox ? m - j : out_w - ox;
            widen(p, input, oy, ox, count, act + j * k);
            j += count;
            ox += count;
            if (ox == out_w) {
                ox = 0;
                ++oy;
            }
        }
        left -= m;
        if (m < 3 * max_blocks) { /* the last call */
            run.blocks = m / 3;
            if (m % 3) { /* a last block of 1 or 2 pixels: the others zero, its outputs through tail */
                for (int32_t j = m; j < 3 * run.blocks + 3; ++j) {
                    for (int32_t w = 0; w < k; ++w) {
                        act[j * k + w] = 0;
                    }
                }
                if (run.blocks) {
                    engine(&run);
                    run.out += 3 * run.blocks * out_c;
                    run.act += 3 * k * run.blocks;
                }
                run.blocks = 1;
                int8_t *const y = run.out;
                run.out = tail;
                engine(&run);
                memcpy(y, tail, (size_t)(m % 3 * out_c));
                return;
            }
        }
        engine(&run);
        run.out += m * out_c;
    }
}
#endif

/* ---- integer arithmetic shared by the kernels (gemmlowp / TFLM semantics) ---- */

/* Saturating rounding doubling high multiply: nearest integer to a*b/2^31, ties toward +inf. */
static inline int32_t tinyml_srdhm(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 30)) >> 31);
}

/* Rounding divide by 2^k (0 <= k <= 31): nearest integer, ties away from zero. */
static inline int32_t tinyml_rdbpot(int32_t x, int32_t k) {
    const int32_t mask = (int32_t)((1u << k) - 1u);
    const int32_t rem = x & mask;
    const int32_t thr = (mask >> 1) + (x < 0);
    return (x >> k) + (rem > thr);
}

/* a + b modulo 2^32: what TFLM's plain int32 accumulators compute on every target, without C's undefined
 * behaviour on signed overflow. The reference kernels accumulate with it, so a bias at the int32 extremes (which
 * a valid model may hold) wraps exactly as in TFLM and stays UBSan-clean. */
static inline int32_t tinyml_add_wrap(int32_t a, int32_t b) {
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

static inline int32_t tinyml_clamp(int32_t v, int32_t lo, int32_t hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

/* ---- ARMv6-M (Cortex-M0/M0+): no 32x32->64 multiply, no DSP; its paths sit beside the others ---- */
#if defined(__ARM_ARCH_6M__)
#define TINYML_ARMV6M 1
#else
#define TINYML_ARMV6M 0
#endif

/* round(a * m / 2^32) = (a * m + 2^31) >> 32 (what SMMULR gives) for 0 <= m < 2^31, in 32-bit arithmetic from
 * four 16x16 partial products: 4 MULS instead of a call to the 64-bit multiply helper (__aeabi_lmul), which
 * ARMv6-M needs for an int64 product. a*m = hi*2^32 + (mid1 + mid2)*2^16 + lo; the low halves of the middle
 * products and the high half of lo are summed with the 2^31 rounding term (as 2^15 in units of 2^16) without
 * overflow, and only their carry reaches the result. */
static inline int32_t tinyml_mulhr_v6m(int32_t a, int32_t m) {
#if defined(__ARM_ARCH_6M__) && !defined(TINYML_MULHR_C)
    /* the same steps in 22 instructions (GCC's schedule of the C below spills: about 40) */
    int32_t hi, ah = a, mh = m, al, ml;
    __asm__(".syntax unified\n\t"
            "asrs   %[ah], %[ah], #16\n\t"
            "uxth   %[al], %[a]\n\t"
            "uxth   %[ml], %[mh]\n\t"
            "lsrs   %[mh], %[mh], #16\n\t"
            "mov    %[hi], %[ah]\n\t"
            "muls   %[hi], %[mh], %[hi]\n\t" /* ah * mh */
            "muls   %[ah], %[ml], %[ah]\n\t" /* mid1 = ah * ml */
            "muls   %[mh], %[al], %[mh]\n\t" /* mid2 = al * mh */
            "muls   %[al], %[ml], %[al]\n\t" /* lo = al * ml */
            "lsrs   %[al], %[al], #16\n\t"
            "uxth   %[ml], %[ah]\n\t"
            "adds   %[al], %[al], %[ml]\n\t"
            "uxth   %[ml], %[mh]\n\t"
            "adds   %[al], %[al], %[ml]\n\t"
            "movs   %[ml], #128\n\t"
            "lsls   %[ml], %[ml], #8\n\t"
            "adds   %[al], %[al], %[ml]\n\t" /* s = the low halves + lo >> 16 + 2^15 */
            "lsrs   %[al], %[al], #16\n\t"
            "asrs   %[ah], %[ah], #16\n\t"
            "asrs   %[mh], %[mh], #16\n\t"
            "adds   %[hi], %[hi], %[ah]\n\t"
            "adds   %[hi], %[hi], %[mh]\n\t"
            "adds   %[hi], %[hi], %[al]\n\t"
            : [hi] "=&l"(hi), [ah] "+&l"(ah), [mh] "+&l"(mh), [al] "=&l"(al), [ml] "=&l"(ml)
            : [a] "l"(a)
            : "cc");
    return hi;
#else
    const int32_t ah = a >> 16, mh = m >> 16;
    const uint32_t al = (uint32_t)a & 0xFFFFu, ml = (uint32_t)m & 0xFFFFu;
    const int32_t mid1 = ah * (int32_t)ml, mid2 = (int32_t)al * mh;
    const uint32_t lo = al * ml;
    const uint32_t s = ((uint32_t)mid1 & 0xFFFFu) + ((uint32_t)mid2 & 0xFFFFu) + (lo >> 16) + 0x8000u;
    return ah * mh + (mid1 >> 16) + (mid2 >> 16) + (int32_t)(s >> 16);
#endif
}

/* MultiplyByQuantizedMultiplier with TFLM's double rounding. m is never INT32_MIN, so no saturation case. */
static inline int32_t tinyml_requant(int32_t x, int32_t m, int32_t shift) {
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const int32_t xl = (int32_t)((uint32_t)x << left);
    return tinyml_rdbpot((int32_t)(((int64_t)xl * m + ((int64_t)1 << 30)) >> 31), right);
}

/* The same result plus out_zp, in fewer instructions, under conditions the compiler checks before it selects a
 * fast kernel: |acc| < 2^30 and 1 <= rshift <= 22. Then SRDHM(acc, M) is the rounded high word of
 * (2*acc) * M (SMMULR), and the rounding divide by 2^k with ties away from zero is
 * (t + 2^(k-1) - (t < 0)) >> k, where adding out_zp * 2^k first adds the zero point for free. */
static inline int32_t tinyml_requant_fast2(int32_t acc2, const tinyml_channel_t *c) {
#if defined(__ARM_FEATURE_DSP)
    int32_t t;
    __asm__("smmulr %0, %1, %2" : "=r"(t) : "r"(acc2), "r"(c->mult));
#elif TINYML_ARMV6M
    const int32_t t = tinyml_mulhr_v6m(acc2, c->mult);
#else
    const int32_t t = (int32_t)(((int64_t)acc2 * c->mult + ((int64_t)1 << 31)) >> 32);
#endif
    return (t + c->radd + (t >> 31)) >> c->rshift;
}

/* acc2 above is twice the accumulator: kernels that can, accumulate it directly (doubled weights and bias). */
static inline int32_t tinyml_requant_fast(int32_t acc, const tinyml_channel_t *c) {
    return tinyml_requant_fast2(acc * 2, c);
}

/* Requantize a doubled accumulator (fast path) and clamp to [lo, hi]; `full` (a constant where inlined) means
 * [-128, 127]. */
__attribute__((always_inline)) static inline int8_t tinyml_out8(int32_t acc2, const tinyml_channel_t *c,
                                                                int32_t lo, int32_t hi, int full) {
    const int32_t y = tinyml_requant_fast2(acc2, c);
#if defined(__ARM_FEATURE_DSP)
    if (full) {
        return (int8_t)__ssat(y, 8);
    }
#endif
    (void)full;
    return (int8_t)tinyml_clamp(y, lo, hi);
}

/* int16 lanes (lo, hi) as one word, as SMLAD reads them. */
static inline int32_t tinyml_pack16(int32_t lo, int32_t hi) {
    return (int32_t)(((uint32_t)hi << 16) | ((uint32_t)lo & 0xFFFFu));
}

/* Channel c of a fast kernel's table from its packed form (see tinyml_chpack_t). */
static inline void tinyml_channel(const tinyml_chpack_t *pk, int32_t c, int32_t out_zp, tinyml_channel_t *t) {
    const int32_t b = pk->bm[2 * c], m = pk->bm[2 * c + 1], k = pk->rshift[c];
    const int live = m != 0; /* else a constant channel: t = 0, output radd >> 1 */
    t->bias = live ? b : 0;
    t->mult = m;
    t->rshift = live ? k : 1;
    /* 2^(k-1) + out_zp 2^k, k >= 1 (no branch: GCC makes it conditional instructions) */
    t->radd = live ? (int32_t)((2u * (uint32_t)out_zp + 1u) << (k - 1)) : b;
}

/* The channel table of a fast kernel from its packed form, into dst[0..n). */
static inline const tinyml_channel_t *tinyml_unpack_channels(const tinyml_chpack_t *pk, int32_t n, int32_t out_zp,
                                                             tinyml_channel_t *dst) {
    for (int32_t c = 0; c < n; ++c) {
        tinyml_channel(pk, c, out_zp, &dst[c]);
    }
    return dst;
}

/* Rotate right by 8 (GCC folds it into SXTB16's rotate operand). */
static inline int32_t tinyml_ror8(int32_t x) {
    return (int32_t)(((uint32_t)x >> 8) | ((uint32_t)x << 24));
}

#if defined(__ARM_FEATURE_DSP)
/* Bytes 1 and 3 sign-extended to two int16 lanes: one SXTB16 with its rotate (GCC does not fold __ror). */
static inline int32_t tinyml_sxtb16_hi(int32_t x) {
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
#endif

/* Fast-path requantization modes of the asm kernels: TINYML_FULL when the activation range is the full int8 range
 * (SSAT does the clamp), TINYML_FULL_RELU when in addition out_zp == -128: then every t < 0 ends at -128 with or
 * without the ties-away-from-zero correction (RDBPOT(t, k) <= 0 and (t + 2^(k-1)) >> k <= 0), so it is dropped
 * (one instruction less per output). TINYML_CLAMP: any other range, plain C. */
enum { TINYML_CLAMP = 0, TINYML_FULL = 1, TINYML_FULL_RELU = 2 };

static inline int tinyml_rq_mode(const tinyml_requant_t *q) {
    if (q->act_min != -128 || q->act_max != 127) {
        return TINYML_CLAMP;
    }
    return q->out_zp == -128 ? TINYML_FULL_RELU : TINYML_FULL;
}

/* The multiply and rounding step of the asm requantization: acc = SMMULR(acc, m) + radd (+ the sign correction;
 * t is a scratch register). Without the correction it is one SMMLAR: radd in the high word of the 64-bit addend
 * adds exactly radd to SMMULR's rounded high word (both wrap mod 2^32), one cycle less per output. */
#define TINYML_RQ_MUL_SIGN(acc, m, t, ra) \
    "smmulr " acc ", " acc ", " m "\n\t" "add    " t ", " ra ", " acc "\n\t" "add    " acc ", " t ", " acc ", asr #31\n\t"
#define TINYML_RQ_MUL_RELU(acc, m, t, ra) "smmlar " acc ", " acc ", " m ", " ra "\n\t"

#if defined(__ARM_FEATURE_DSP)
/* Requantize (fast path, full int8 range) a 2x2 block of doubled accumulators: channels ch[0], ch[1] of two
 * pixels, stored at ya[0..1] and yb[0..1]. 6.5 instructions per output (4.5 for TINYML_FULL_RELU): parameters
 * loaded once per channel. */
#define TINYML_OUT2X2(MUL)                                                                                      \
    do {                                                                                                        \
        int32_t m, k, ra, t;                                                                                    \
        __asm__ volatile("ldrd   %[m], %[k], [%[ch], #4]\n\t"                                                   \
                         "ldr    %[ra], [%[ch], #12]\n\t"                                                       \
                         TINYML_RQ_STORE("%[a0]", "%[ya]", "0", MUL) TINYML_RQ_STORE("%[b0]", "%[yb]", "0", MUL)     \
                         "ldrd   %[m], %[k], [%[ch], #20]\n\t"                                                  \
                         "ldr    %[ra], [%[ch], #28]\n\t"                                                       \
                         TINYML_RQ_STORE("%[a1]", "%[ya]", "1", MUL) TINYML_RQ_STORE("%[b1]", "%[yb]", "1", MUL)     \
                         : [a0] "+r"(a0), [a1] "+r"(a1), [b0] "+r"(b0), [b1] "+r"(b1), [m] "=&r"(m), [k] "=&r"(k), \
                           [ra] "=&r"(ra), [t] "=&r"(t)                                                         \
                         : [ch] "r"(ch), [ya] "r"(ya), [yb] "r"(yb)                                             \
                         : "memory");                                                                           \
    } while (0)
/* Requantize one accumulator in asm (SMMULR and rounding add, shift, saturate) and store its byte at y[j]:
 * the tail of the 2x2 pointwise output block. */
#define TINYML_RQ_STORE(acc, y, j, MUL)               \
    MUL(acc, "%[m]", "%[t]", "%[ra]")                 \
    "asr    " acc ", " acc ", %[k]\n\t"              \
    "ssat   " acc ", #8, " acc "\n\t"                \
    "strb   " acc ", [" y ", #" j "]\n\t"
__attribute__((always_inline)) static inline void tinyml_out2x2_full(int32_t a0, int32_t a1, int32_t b0, int32_t b1,
                                                                     const tinyml_channel_t *ch, int8_t *ya,
                                                                     int8_t *yb, int mode) {
    if (mode == TINYML_FULL_RELU) {
        TINYML_OUT2X2(TINYML_RQ_MUL_RELU);
    } else {
        TINYML_OUT2X2(TINYML_RQ_MUL_SIGN);
    }
}
#undef TINYML_OUT2X2
#endif

/* Four int8 as one word (any alignment; a single LDR on Cortex-M3 and up). */
static inline int32_t tinyml_load32(const void *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

#ifdef __cplusplus
}
#endif

#endif /* TINYML_KERNELS_H */
