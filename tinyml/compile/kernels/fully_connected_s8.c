/* FULLY_CONNECTED (per-tensor parameters arrive broadcast to every output channel). */
#include "tinyml_kernels.h"

TINYML_KERNEL void fully_connected_s8(const fully_connected_params_t *p, const int8_t *input, int8_t *output) {
    const int32_t d = p->in_depth;
    for (int32_t b = 0; b < p->batches; ++b, input += d) {
        const int8_t *w = p->weights;
        for (int32_t n = 0; n < p->out_depth; ++n, w += d) {
            int32_t acc = p->q.ch[n].bias;
            for (int32_t i = 0; i < d; ++i) {
                acc = tinyml_add_wrap(acc, w[i] * input[i]);
            }
            acc = tinyml_add_wrap(tinyml_requant(acc, p->q.ch[n].mult, -p->q.ch[n].rshift), p->q.out_zp);
            *output++ = (int8_t)tinyml_clamp(acc, p->q.act_min, p->q.act_max);
        }
    }
}
