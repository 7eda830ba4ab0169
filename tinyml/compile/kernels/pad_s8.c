/* PAD / PADV2: copy the input into the middle of the output and fill the rest with a constant. */
#include "tinyml_kernels.h"

#include <string.h>

TINYML_KERNEL void pad_s8(const pad_params_t *p, const int8_t *input, int8_t *output) {
    const int32_t *id = p->in_dims, *od = p->out_dims, *pre = p->pre;
    const int32_t total = od[0] * od[1] * od[2] * od[3];
    memset(output, (int8_t)p->value, (size_t)total);
    for (int32_t i0 = 0; i0 < id[0]; ++i0) {
        for (int32_t i1 = 0; i1 < id[1]; ++i1) {
            for (int32_t i2 = 0; i2 < id[2]; ++i2) {
                const int32_t o = (((i0 + pre[0]) * od[1] + i1 + pre[1]) * od[2] + i2 + pre[2]) * od[3] + pre[3];
                memcpy(output + o, input, (size_t)id[3]);
                input += id[3];
            }
        }
    }
}
