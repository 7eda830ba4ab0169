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

#if defined(__GNUC__)
#define TINYML_KERNEL __attribute__((weak))
#else
#define TINYML_KERNEL
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Requantization of an int32 accumulator to int8, per output channel. */
typedef struct {
    int32_t in_zp;        /* input zero point (folded into the bias where the kernel allows) */
    int32_t out_zp;       /* output zero point */
    int32_t act_min;      /* fused activation clamp, in output int8 units */
    int32_t act_max;
    const int32_t *mult;  /* per output channel: M in [2^30, 2^31) (0 for a zero scale) */
    const int32_t *shift; /* per output channel: e; real multiplier = M * 2^(e - 31) */
} tinyml_requant_t;

/* CONV_2D. weights [out_c][k_h][k_w][filter_c]; filter_c < in_c means grouped convolution.
 * bias[c] is the model's bias minus in_zp * sum(weights[c]): taps that fall in the padding read in_zp. */
typedef struct {
    int32_t in_h, in_w, in_c, out_h, out_w, out_c;
    int32_t k_h, k_w, filter_c;
    int32_t stride_h, stride_w, dil_h, dil_w, pad_top, pad_left;
    const int8_t *weights;
    const int32_t *bias;
    tinyml_requant_t q;
} conv2d_params_t;

/* DEPTHWISE_CONV_2D. weights [k_h][k_w][out_c], out_c = in_c * depth_mult; output c reads input c / depth_mult.
 * bias folded as for conv2d. */
typedef struct {
    int32_t in_h, in_w, in_c, out_h, out_w, out_c;
    int32_t k_h, k_w, depth_mult;
    int32_t stride_h, stride_w, dil_h, dil_w, pad_top, pad_left;
    const int8_t *weights;
    const int32_t *bias;
    tinyml_requant_t q;
} depthwise_conv2d_params_t;

/* FULLY_CONNECTED. weights [out_depth][in_depth]; input read as [batches][in_depth]; bias folded. */
typedef struct {
    int32_t batches, in_depth, out_depth;
    const int8_t *weights;
    const int32_t *bias;
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
void depthwise_conv2d_s8(const depthwise_conv2d_params_t *p, const int8_t *input, int8_t *output);
void depthwise_conv2d_3x3_s8(const depthwise_conv2d_params_t *p, const int8_t *input, int8_t *output);
void fully_connected_s8(const fully_connected_params_t *p, const int8_t *input, int8_t *output);
void avg_pool2d_s8(const pool2d_params_t *p, const int8_t *input, int8_t *output);
void max_pool2d_s8(const pool2d_params_t *p, const int8_t *input, int8_t *output);
void mean_s8(const mean_params_t *p, const int8_t *input, int8_t *output);
void softmax_s8(const softmax_params_t *p, const int8_t *input, int8_t *output);
void add_s8(const add_params_t *p, const int8_t *input1, const int8_t *input2, int8_t *output);
void pad_s8(const pad_params_t *p, const int8_t *input, int8_t *output);

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

/* MultiplyByQuantizedMultiplier with TFLM's double rounding. m is never INT32_MIN, so no saturation case. */
static inline int32_t tinyml_requant(int32_t x, int32_t m, int32_t shift) {
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const int32_t xl = (int32_t)((uint32_t)x << left);
    return tinyml_rdbpot((int32_t)(((int64_t)xl * m + ((int64_t)1 << 30)) >> 31), right);
}

static inline int32_t tinyml_clamp(int32_t v, int32_t lo, int32_t hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

#ifdef __cplusplus
}
#endif

#endif /* TINYML_KERNELS_H */
