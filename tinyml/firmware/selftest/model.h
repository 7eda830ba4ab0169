/* A hand-written model that follows the `tinyml compile` contract, for `tinyml doctor` and protocol tests:
 * it builds in a second with no TensorFlow. output[j] = ((input[4j] + ... + input[4j+3]) >> 2) ^ 0x55. */
#ifndef MODEL_H
#define MODEL_H

#include <stdint.h>

#define MODEL_INPUT_BYTES 16
#define MODEL_OUTPUT_BYTES 4
#define MODEL_ARENA_BYTES 20 /* the input at 0, the output at 16 */
#define MODEL_INPUT_PRESERVED 1
#define MODEL_NUM_LAYERS 2
#define MODEL_MACS 16u
#define MODEL_INPUT_SCALE 1.0f
#define MODEL_INPUT_ZERO_POINT 0
#define MODEL_OUTPUT_SCALE 1.0f
#define MODEL_OUTPUT_ZERO_POINT 0

typedef struct {
    const char *op;
    const char *kernel;
    uint32_t macs;
} model_layer_info_t;

extern const model_layer_info_t model_layers[MODEL_NUM_LAYERS];

int8_t *model_input(void);
const int8_t *model_output(void);
int model_invoke(const int8_t *input, int8_t *output);

#ifdef TINYML_PROFILE
void tinyml_profile_mark(int layer);
#define MODEL_MARK(i) tinyml_profile_mark(i)
#else
#define MODEL_MARK(i) ((void)0)
#endif

#endif
