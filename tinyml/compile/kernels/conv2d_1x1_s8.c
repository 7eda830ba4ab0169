/* CONV_2D with a 1x1 kernel over all input channels (pointwise), any stride: a matrix product, two pixels at a
 * time (tinyml_mat2_s8). A 1x1 kernel never reads padding, so the folded bias is exact everywhere.
 * Needs in_c % 4 == 0, pair-blocked weights and the fast requantization (the compiler checks). Pixels are
 * processed in order, two at a time, so the output may overlap the input as far as the planner allows. */
#include "tinyml_kernels.h"

static const int8_t *pixel(const conv2d_params_t *p, const int8_t *input, int32_t i) {
    if (p->stride_h == 1 && p->stride_w == 1) {
        return input + i * p->in_c;
    }
    const int32_t oy = i / p->out_w, ox = i - oy * p->out_w;
    return input + (oy * p->stride_h * p->in_w + ox * p->stride_w) * p->in_c;
}

TINYML_KERNEL void conv2d_1x1_s8(const conv2d_params_t *p, const int8_t *input, int8_t *output) {
    const int32_t n = p->out_h * p->out_w, out_c = p->out_c;
    for (int32_t i = 0; i < n; i += 2) {
        const int32_t j = i + 1 < n ? i + 1 : i; /* odd pixel count: the last pixel twice */
        tinyml_mat2_s8(pixel(p, input, i), pixel(p, input, j), p->in_c, p->weights, out_c, &p->q, p->scratch,
                       output + i * out_c, output + j * out_c);
    }
}
