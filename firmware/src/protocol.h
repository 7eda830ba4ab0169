/* The serial protocol between `tinyml bench` and the firmware.
 *
 * Every message, both ways, is one frame:
 *
 *   0xA5 0x5A | cmd (1) | seq (1) | len (2, LE) | payload (len) | crc (2, LE)
 *
 * crc is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over cmd, seq, len and payload. A reply echoes the
 * request's seq with cmd | 0x80; an error reply is cmd 0xFF with payload [code, request cmd, message...].
 * A frame that is oversized, fails its CRC or stalls mid-way gets an error reply and the device goes back to
 * hunting for the sync bytes, so a confused host can always recover by sending a fresh frame.
 * tinyml/device/protocol.py is the host side; keep the two in step.
 */
#ifndef TINYML_PROTOCOL_H
#define TINYML_PROTOCOL_H

#include <stdint.h>

#include "tinyml_board.h"

#define PROTO_VERSION 1u
#define PROTO_SYNC0 0xA5u
#define PROTO_SYNC1 0x5Au
#define PROTO_MAX_PAYLOAD 1024u
/* A frame whose next byte takes longer than this is dropped (with an error reply). Under QEMU the timer
 * runs on virtual time, which advances with every instruction the polling loop executes, so emulated boards
 * set a much larger figure (tinyml_board.h) to stay clear of host scheduling hiccups. */
#ifndef TINYML_FRAME_TIMEOUT_MS
#define TINYML_FRAME_TIMEOUT_MS 500u
#endif

enum proto_cmd {
    CMD_HELLO = 0x01,      /* -> "TINYML", version u8, max payload u16 */
    CMD_INFO = 0x02,       /* -> key=value lines */
    CMD_SET_INPUT = 0x03,  /* offset u32, bytes -> (empty) */
    CMD_INVOKE = 0x04,     /* runs u16 -> runs u16, count u64 per run */
    CMD_GET_OUTPUT = 0x05, /* offset u32, length u16 -> bytes */
    CMD_PROFILE = 0x06,    /* first layer u16 -> layers u16, first u16, n u16, count u64 per layer */
    CMD_EXIT = 0x07,       /* emulated boards: leave QEMU with exit code 0 */
    CMD_CRASH = 0x08,      /* executes an undefined instruction: exercises the fault handler */
    CMD_DUMP = 0x09,       /* built with -DTINYML_DEBUG: one inference on the current input, sending every
                            * layer's output as MSG_TENSOR frames (same seq) before the reply -> layers u16 */
};

#define PROTO_REPLY 0x80u
#define MSG_FAULT 0xFEu /* unsolicited: the fault handler's report (text) */
/* During CMD_DUMP: layer u16, offset u32, total bytes u32, data (at most PROTO_MAX_PAYLOAD - 10 bytes). */
#define MSG_TENSOR 0xFDu
#define TENSOR_HEAD 10u
#define MSG_ERROR 0xFFu

enum proto_error {
    ERR_CRC = 1,
    ERR_TOO_LONG = 2,
    ERR_TIMEOUT = 3,
    ERR_UNKNOWN_CMD = 4,
    ERR_BAD_ARG = 5,
    ERR_MODEL = 6,
    ERR_UNSUPPORTED = 7,
};

typedef struct {
    uint8_t cmd;
    uint8_t seq;
    uint16_t len;
    uint8_t payload[PROTO_MAX_PAYLOAD];
} proto_frame_t;

/* Blocks until a well-formed frame arrives; malformed ones are answered with error replies on the way. */
void proto_receive(proto_frame_t *frame);
/* Sends one frame whose payload is head followed by tail (either may be empty). */
void proto_send(uint8_t cmd, uint8_t seq, const void *head, uint16_t head_len, const void *tail,
                uint16_t tail_len);
void proto_reply(const proto_frame_t *request, const void *payload, uint16_t len);
void proto_error(uint8_t seq, uint8_t code, uint8_t cmd, const char *message);

uint16_t crc16_ccitt(uint16_t crc, const uint8_t *data, uint32_t len);

#endif
