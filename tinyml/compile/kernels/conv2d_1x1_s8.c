/* CONV_2D with a 1x1 kernel over all input channels (pointwise): a matrix product, pixel by pixel.
 * A 1x1 kernel never reads padding, so the folded bias is exact everywhere. */
#include "tinyml_kernels.h"

TINYML_KERNEL void conv2d_1x1_s8(const conv2d_params_t *p, const int8_t *input, int8_t *output) {
    const int32_t in_c = p->in_c, out_c = p->out_c;
    const tinyml_requant_t q = p->q;
    for (int32_t oy = 0; oy < p->out_h; ++oy) {
        for (int32_t ox = 0; ox < p->out_w; ++ox) {
            const int8_t *x = input + ((oy * p->stride_h) * p->in_w + ox * p->stride_w) * in_c;
            const int8_t *w = p->weights;
            for (int32_t oc = 0; oc < out_c; ++oc, w += in_c) {
                int32_t acc = p->bias[oc];
                for (int32_t c = 0; c < in_c; ++c) {
                    acc += w[c] * x[c];
                }
                acc = tinyml_requant(acc, q.mult[oc], q.shift[oc]) + q.out_zp;
                *output++ = (int8_t)tinyml_clamp(acc, q.act_min, q.act_max);
            }
        }
    }
}
