/* CONV_2D, any kernel size, stride, dilation, padding and groups: the general (reference) kernel. */
#include "tinyml_kernels.h"

TINYML_KERNEL void conv2d_s8(const conv2d_params_t *p, const int8_t *input, int8_t *output) {
    const int32_t fc = p->filter_c;
    const int32_t per_group = p->out_c / (p->in_c / fc);
    const int32_t in_zp = p->q.in_zp;
    for (int32_t oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_top;
        for (int32_t ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_left;
            for (int32_t oc = 0; oc < p->out_c; ++oc) {
                const int8_t *w = p->weights + oc * p->k_h * p->k_w * fc;
                const int32_t c0 = (oc / per_group) * fc;
                int32_t acc = p->q.ch[oc].bias;
                for (int32_t ky = 0; ky < p->k_h; ++ky) {
                    const int32_t iy = iy0 + ky * p->dil_h;
                    for (int32_t kx = 0; kx < p->k_w; ++kx, w += fc) {
                        const int32_t ix = ix0 + kx * p->dil_w;
                        if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
                            /* padding reads the input zero point: undo the bias folding for this tap */
                            for (int32_t c = 0; c < fc; ++c) {
                                acc = tinyml_add_wrap(acc, w[c] * in_zp);
                            }
                            continue;
                        }
                        const int8_t *x = input + ((iy * p->in_w + ix) * p->in_c + c0);
                        for (int32_t c = 0; c < fc; ++c) {
                            acc = tinyml_add_wrap(acc, w[c] * x[c]);
                        }
                    }
                }
                acc = tinyml_add_wrap(tinyml_requant(acc, p->q.ch[oc].mult, -p->q.ch[oc].rshift), p->q.out_zp);
                *output++ = (int8_t)tinyml_clamp(acc, p->q.act_min, p->q.act_max);
            }
        }
    }
}
