/* CONV_2D with a 1x1 kernel over all input channels (pointwise), any stride: a matrix product, three pixels at a
 * time (tinyml_mat3_s8) when in_c % 8 == 0 and out_c is even (first, where in_c is 8, pairs of pixels with their
 * whole input in registers: tinyml_thin_run_s8; then, stride 1 on DSP cores up to depth 128, four pixels at a
 * time: tinyml_mat4_run_s8), else two (tinyml_mat2_s8). A 1x1 kernel never reads padding, so the folded bias is
 * exact everywhere. Needs in_c % 4 == 0, pair-blocked weights and the fast requantization (the compiler checks).
 * Pixels are processed in order, in blocks of four, three or two (tinyml_thin_run_s8: 128 / out_c), so the output
 * may overlap the input as far as the planner allows. */
#include "tinyml_kernels.h"

static const int8_t *pixel(const conv2d_params_t *p, const int8_t *input, int32_t i) {
    if (p->stride_h == 1 && p->stride_w == 1) {
        return input + i * p->in_c;
    }
    const int32_t oy = i / p->out_w, ox = i - oy * p->out_w;
    return input + (oy * p->stride_h * p->in_w + ox * p->stride_w) * p->in_c;
}

/* Blocks of four for n pixels, leaving a remainder that blocks of three take (n % 4 == 1: nine, 2: six, 3: three;
 * a block of two or one pixel costs more per MAC than threes: see tinyml_mat4_run_s8). */
static int32_t blocks4(int32_t n) {
    const int32_t r = n % 4, b = n / 4 - (r == 1 ? 2 : r == 2 ? 1 : 0);
    return b > 0 ? b : 0;
}

TINYML_KERNEL void conv2d_1x1_s8(const conv2d_params_t *p, const int8_t *input, int8_t *output) {
    const int32_t n = p->out_h * p->out_w, out_c = p->out_c;
    const int unit = p->stride_h == 1 && p->stride_w == 1;
    tinyml_requant_t q = p->q;
    int32_t i = 0;
    if (!TINYML_ARMV6M && unit) { /* thin layers: pairs of pixels with their input in registers, where it can */
        i = tinyml_thin_run_s8(input, n, p->in_c, p->weights, out_c, &p->pack, &q, p->scratch, output);
    }
    if (i == n) {
        return;
    }
    q.ch = tinyml_unpack_channels(&p->pack, out_c, q.out_zp, (tinyml_channel_t *)p->scratch);
    void *scratch = (tinyml_channel_t *)p->scratch + out_c;
    /* three pixels at a time (the compiler plans blocks of three); ARMv6-M: two, its engine pairs pixels (its
     * inputs are read before outputs are written, so smaller blocks keep the planner's overlap safe) */
    if (!TINYML_ARMV6M && p->in_c % 8 == 0 && out_c % 2 == 0) {
        if (unit) { /* consecutive pixels: blocks of four where the kernel has them, then one run of threes */
            i += 4 * tinyml_mat4_run_s8(input + i * p->in_c, blocks4(n - i), p->in_c, p->weights, out_c, &q,
                                        output + i * out_c);
            i += 3 * tinyml_mat3_run_s8(input + i * p->in_c, (n - i) / 3, p->in_c, p->weights, out_c, &q, scratch,
                                        output + i * out_c);
        }
        for (; i + 3 <= n; i += 3) {
            tinyml_mat3_s8(pixel(p, input, i), pixel(p, input, i + 1), pixel(p, input, i + 2), p->in_c, p->weights,
                           out_c, &q, scratch, output + i * out_c, output + (i + 1) * out_c,
                           output + (i + 2) * out_c);
        }
    }
    for (; i < n; i += 2) {
        const int32_t j = i + 1 < n ? i + 1 : i; /* odd pixel count: the last pixel twice */
        tinyml_mat2_s8(pixel(p, input, i), pixel(p, input, j), p->in_c, p->weights, out_c, &q, scratch,
                       output + i * out_c, output + j * out_c);
    }
}
