/* The benchmark server: boots, then answers the host's frames forever (see protocol.h).
 *
 * The compiled model (model.h, from `tinyml compile`) owns the only large buffer, its arena, and the input and
 * output tensors live in it: SET_INPUT writes straight into model_input(), GET_OUTPUT reads model_output().
 * Replies are built in the request frame's payload (its arguments are read first). Nothing is allocated at
 * run time.
 */
#include <stdint.h>
#include <string.h>

#include "model.h"
#include "protocol.h"
#include "runtime.h"
#include "text.h"
#include "timer.h"
#include "tinyml_board.h"
#include "tinyml_config.h"
#include "uart.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#define MAX_RUNS ((PROTO_MAX_PAYLOAD - 2u) / 8u)
#define PROFILE_PER_FRAME ((PROTO_MAX_PAYLOAD - 6u) / 8u)

/* Defined by link.ld: their addresses are the image's flash and RAM use and the board's sizes. */
extern const uint8_t __tinyml_flash_used[], __tinyml_ram_used[], __tinyml_flash_size[], __tinyml_ram_size[];
#define LINKER_VALUE(sym) ((uint64_t)(uintptr_t)(sym))

static proto_frame_t frame;
#define reply (frame.payload) /* replies reuse the request's payload */
/* The arena reuses the input's bytes when MODEL_INPUT_PRESERVED is 0: then every inference needs a fresh input. */
static int input_fresh;
static uint64_t timer_overhead; /* the count of two back-to-back timer_now() calls: taken out of every run */

static void calibrate_timer(void) {
    uint64_t t0 = timer_now();
    uint64_t t1 = timer_now();
    timer_overhead = timer_count(t0, t1);
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint16_t get_u16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

static void put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- per-layer profile: model_invoke() calls tinyml_profile_mark() when built with -DTINYML_PROFILE ---- */
#ifdef TINYML_PROFILE
static uint64_t marks[MODEL_NUM_LAYERS + 1];
static uint64_t layer_counts[MODEL_NUM_LAYERS];
static volatile int profiling;

void tinyml_profile_mark(int layer) {
    if (profiling) marks[layer + 1] = timer_now();
}

/* One invoke with marks; the cost of a mark itself (measured back to back) is taken out of every layer. */
static int profile_run(void) {
    profiling = 1;
    tinyml_profile_mark(-1);
    tinyml_profile_mark(0);
    uint64_t overhead = timer_count(marks[0], marks[1]);
    int status = model_invoke(model_input(), (int8_t *)model_output());
    profiling = 0;
    for (unsigned i = 0; i < MODEL_NUM_LAYERS; i++) {
        uint64_t c = timer_count(marks[i], marks[i + 1]);
        layer_counts[i] = c > overhead ? c - overhead : 0u;
    }
    return status;
}
#endif

/* ---- layer dumps (`tinyml bench --find-layer`): model_invoke() calls tinyml_debug_tensor() after every
 * layer when built with -DTINYML_DEBUG; the tensor is sent straight from the arena, nothing is copied ---- */
#ifdef TINYML_DEBUG
static int dumping;
static uint16_t dumped;

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

void tinyml_debug_tensor(int layer, const int8_t *data, uint32_t bytes) {
#ifdef TINYML_CORRUPT_LAYER /* tests only: break layer k on the device, so that find-layer must name it */
    if (layer == TINYML_CORRUPT_LAYER) {
        for (uint32_t i = 0; i < bytes; i += 2u) ((int8_t *)(uintptr_t)data)[i] ^= 0x55;
    }
#endif
    if (!dumping) return;
    uint8_t head[TENSOR_HEAD];
    put_u16(head, (uint16_t)layer);
    put_u32(head + 6, bytes);
    uint32_t off = 0;
    do {
        uint32_t n = bytes - off;
        if (n > PROTO_MAX_PAYLOAD - TENSOR_HEAD) n = PROTO_MAX_PAYLOAD - TENSOR_HEAD;
        put_u32(head + 2, off);
        proto_send(MSG_TENSOR, frame.seq, head, TENSOR_HEAD, data + off, (uint16_t)n);
        off += n;
    } while (off < bytes);
    ++dumped;
}
#endif

static void cmd_hello(void) {
    uint8_t p[9] = {'T', 'I', 'N', 'Y', 'M', 'L', PROTO_VERSION, 0, 0};
    put_u16(p + 7, PROTO_MAX_PAYLOAD);
    proto_reply(&frame, p, sizeof p);
}

static void cmd_info(void) {
    text_t t = {(char *)reply, 0, PROTO_MAX_PAYLOAD};
    text_kv(&t, "board", TINYML_BOARD_NAME);
    text_kv(&t, "cpu", TINYML_CPU);
    text_kv_u64(&t, "clock_hz", TINYML_CLOCK_HZ);
    text_kv(&t, "unit", TIMER_UNIT);
    text_kv(&t, "model", TINYML_MODEL_NAME);
    text_kv(&t, "model_sha256", TINYML_MODEL_SHA256);
    text_kv_u64(&t, "input_bytes", MODEL_INPUT_BYTES);
    text_kv_u64(&t, "output_bytes", MODEL_OUTPUT_BYTES);
    text_kv(&t, "input_scale", STR(MODEL_INPUT_SCALE));
    text_kv(&t, "input_zero_point", STR(MODEL_INPUT_ZERO_POINT));
    text_kv(&t, "output_scale", STR(MODEL_OUTPUT_SCALE));
    text_kv(&t, "output_zero_point", STR(MODEL_OUTPUT_ZERO_POINT));
    text_kv_u64(&t, "arena_bytes", MODEL_ARENA_BYTES);
    text_kv_u64(&t, "input_preserved", MODEL_INPUT_PRESERVED);
    text_kv_u64(&t, "num_layers", MODEL_NUM_LAYERS);
#ifdef TINYML_PROFILE
    text_kv(&t, "profile", "1");
#else
    text_kv(&t, "profile", "0");
#endif
#ifdef TINYML_DEBUG
    text_kv(&t, "dump", "1"); /* absent: a normal build, byte for byte as without this line */
#endif
    text_kv_u64(&t, "flash_bytes", LINKER_VALUE(__tinyml_flash_used));
    text_kv_u64(&t, "flash_size", LINKER_VALUE(__tinyml_flash_size));
    text_kv_u64(&t, "ram_bytes", LINKER_VALUE(__tinyml_ram_used));
    text_kv_u64(&t, "ram_size", LINKER_VALUE(__tinyml_ram_size));
    text_kv_u64(&t, "stack_bytes", stack_size_bytes());
    text_kv_u64(&t, "stack_peak_bytes", stack_peak_bytes());
    text_kv(&t, "cflags", TINYML_CFLAGS);
    text_kv(&t, "compiler", "gcc " __VERSION__);
    text_kv_u64(&t, "protocol", PROTO_VERSION);
    proto_reply(&frame, reply, (uint16_t)t.len);
}

static void cmd_set_input(void) {
    if (frame.len < 4u) {
        proto_error(frame.seq, ERR_BAD_ARG, frame.cmd, "SET_INPUT needs offset u32 + data");
        return;
    }
    uint32_t offset = get_u32(frame.payload);
    uint32_t n = frame.len - 4u;
    if (offset > MODEL_INPUT_BYTES || n > MODEL_INPUT_BYTES - offset) {
        proto_error(frame.seq, ERR_BAD_ARG, frame.cmd, "input chunk beyond MODEL_INPUT_BYTES");
        return;
    }
    memcpy(model_input() + offset, frame.payload + 4, n);
    input_fresh = 1;
    proto_reply(&frame, 0, 0);
}

/* A model whose plan reuses the input's bytes runs once per SET_INPUT: refuse anything else, loudly. */
static int consume_input(uint16_t runs) {
    if (MODEL_INPUT_PRESERVED) return 1;
    if (!input_fresh || runs > 1u) {
        proto_error(frame.seq, ERR_BAD_ARG, frame.cmd,
                    "input consumed (MODEL_INPUT_PRESERVED 0): SET_INPUT per run");
        return 0;
    }
    input_fresh = 0;
    return 1;
}

static void cmd_invoke(void) {
    uint16_t runs = frame.len >= 2u ? get_u16(frame.payload) : 0u;
    if (runs == 0u || runs > MAX_RUNS) {
        proto_error(frame.seq, ERR_BAD_ARG, frame.cmd, "INVOKE runs out of range (1 to (max payload - 2) / 8)");
        return;
    }
    if (!consume_input(runs)) return;
    put_u16(reply, runs);
    for (uint16_t i = 0; i < runs; i++) {
        uint64_t t0 = timer_now();
        int status = model_invoke(model_input(), (int8_t *)model_output());
        uint64_t t1 = timer_now();
        if (status != 0) {
            proto_error(frame.seq, ERR_MODEL, frame.cmd, "model_invoke returned an error");
            return;
        }
        uint64_t count = timer_count(t0, t1);
        put_u64(reply + 2 + 8u * i, count > timer_overhead ? count - timer_overhead : 0u);
    }
    proto_reply(&frame, reply, (uint16_t)(2u + 8u * runs));
}

static void cmd_get_output(void) {
    if (frame.len != 6u) {
        proto_error(frame.seq, ERR_BAD_ARG, frame.cmd, "GET_OUTPUT needs offset u32 + length u16");
        return;
    }
    uint32_t offset = get_u32(frame.payload);
    uint32_t n = get_u16(frame.payload + 4);
    if (offset > MODEL_OUTPUT_BYTES || n > MODEL_OUTPUT_BYTES - offset || n > PROTO_MAX_PAYLOAD) {
        proto_error(frame.seq, ERR_BAD_ARG, frame.cmd, "output range beyond MODEL_OUTPUT_BYTES");
        return;
    }
    proto_reply(&frame, model_output() + offset, (uint16_t)n);
}

static void cmd_profile(void) {
#ifdef TINYML_PROFILE
    uint16_t first = frame.len >= 2u ? get_u16(frame.payload) : 0u;
    if (first == 0u && !consume_input(1u)) return;
    if (first == 0u && profile_run() != 0) {
        proto_error(frame.seq, ERR_MODEL, frame.cmd, "model_invoke returned an error");
        return;
    }
    if (first > MODEL_NUM_LAYERS) {
        proto_error(frame.seq, ERR_BAD_ARG, frame.cmd, "first layer beyond MODEL_NUM_LAYERS");
        return;
    }
    uint16_t n = (uint16_t)(MODEL_NUM_LAYERS - first);
    if (n > PROFILE_PER_FRAME) n = PROFILE_PER_FRAME;
    put_u16(reply, MODEL_NUM_LAYERS);
    put_u16(reply + 2, first);
    put_u16(reply + 4, n);
    for (uint16_t i = 0; i < n; i++) put_u64(reply + 6 + 8u * i, layer_counts[first + i]);
    proto_reply(&frame, reply, (uint16_t)(6u + 8u * n));
#else
    proto_error(frame.seq, ERR_UNSUPPORTED, frame.cmd, "built without per-layer profiling (export with --profile)");
#endif
}

#ifdef TINYML_DEBUG
static void cmd_dump(void) {
    if (!consume_input(1u)) return;
    dumping = 1;
    dumped = 0;
    int status = model_invoke(model_input(), (int8_t *)model_output());
    dumping = 0;
    if (status != 0) {
        proto_error(frame.seq, ERR_MODEL, frame.cmd, "model_invoke returned an error");
        return;
    }
    put_u16(reply, dumped);
    proto_reply(&frame, reply, 2u);
}
#endif

static void cmd_exit(void) {
#if TINYML_SEMIHOSTING
    proto_reply(&frame, 0, 0);
    runtime_exit(0);
#else
    proto_error(frame.seq, ERR_UNSUPPORTED, frame.cmd, "EXIT only exists on emulated boards");
#endif
}

static void cmd_crash(void) {
    __asm volatile("udf #0");
}

int main(void) {
    uart_init();
    timer_init();
    calibrate_timer();
    for (;;) {
        proto_receive(&frame);
        switch (frame.cmd) {
        case CMD_HELLO: cmd_hello(); break;
        case CMD_INFO: cmd_info(); break;
        case CMD_SET_INPUT: cmd_set_input(); break;
        case CMD_INVOKE: cmd_invoke(); break;
        case CMD_GET_OUTPUT: cmd_get_output(); break;
        case CMD_PROFILE: cmd_profile(); break;
        case CMD_EXIT: cmd_exit(); break;
        case CMD_CRASH: cmd_crash(); break;
#ifdef TINYML_DEBUG
        case CMD_DUMP: cmd_dump(); break;
#endif
        default: proto_error(frame.seq, ERR_UNKNOWN_CMD, frame.cmd, "unknown command"); break;
        }
    }
}
