#include "model.h"

const model_layer_info_t model_layers[MODEL_NUM_LAYERS] = {{"COPY", "copy", 0u}, {"SUM4", "sum4", 16u}};

static int8_t arena[MODEL_ARENA_BYTES];

int8_t *model_input(void) {
    return arena;
}

const int8_t *model_output(void) {
    return arena + MODEL_INPUT_BYTES;
}

int model_invoke(const int8_t *input, int8_t *output) {
    MODEL_MARK(-1);
    for (int i = 0; i < MODEL_INPUT_BYTES; i++) arena[i] = input[i];
    MODEL_MARK(0);
    int8_t *y = arena + MODEL_INPUT_BYTES;
    for (int j = 0; j < MODEL_OUTPUT_BYTES; j++) {
        int sum = arena[4 * j] + arena[4 * j + 1] + arena[4 * j + 2] + arena[4 * j + 3];
        y[j] = (int8_t)((sum >> 2) ^ 0x55);
    }
    for (int j = 0; j < MODEL_OUTPUT_BYTES; j++) output[j] = y[j];
    MODEL_MARK(1);
    return 0;
}
