/* DEPTHWISE_CONV_2D, any kernel size, stride, dilation, padding and depth multiplier: the general kernel. */
#include "tinyml_kernels.h"

TINYML_KERNEL void depthwise_conv2d_s8(const depthwise_conv2d_params_t *p, const int8_t *input,
                                       int8_t *output) {
    const int32_t dm = p->depth_mult, out_c = p->out_c, in_zp = p->q.in_zp;
    for (int32_t oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_top;
        for (int32_t ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_left;
            for (int32_t oc = 0; oc < out_c; ++oc) {
                const int32_t ic = oc / dm;
                int32_t acc = p->q.ch[oc].bias;
                for (int32_t ky = 0; ky < p->k_h; ++ky) {
                    const int32_t iy = iy0 + ky * p->dil_h;
                    for (int32_t kx = 0; kx < p->k_w; ++kx) {
                        const int32_t ix = ix0 + kx * p->dil_w;
                        const int32_t w = p->weights[(ky * p->k_w + kx) * out_c + oc];
                        if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
                            acc = tinyml_add_wrap(acc, w * in_zp); /* padding reads the input zero point */
                        } else {
                            acc = tinyml_add_wrap(acc, w * input[(iy * p->in_w + ix) * p->in_c + ic]);
                        }
                    }
                }
                acc = tinyml_add_wrap(tinyml_requant(acc, p->q.ch[oc].mult, -p->q.ch[oc].rshift), p->q.out_zp);
                *output++ = (int8_t)tinyml_clamp(acc, p->q.act_min, p->q.act_max);
            }
        }
    }
}
