#include "protocol.h"

#include <string.h>

#include "timer.h"
#include "uart.h"

#ifndef POLL_PAUSE_SPINS
#define POLL_PAUSE_SPINS 64
#endif

uint16_t crc16_ccitt(uint16_t crc, const uint8_t *data, uint32_t len) {
    for (uint32_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(data[i] << 8);
        for (int bit = 0; bit < 8; bit++) crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
    }
    return crc;
}

void proto_send(uint8_t cmd, uint8_t seq, const void *head, uint16_t head_len, const void *tail,
                uint16_t tail_len) {
    uint16_t len = (uint16_t)(head_len + tail_len);
    uint8_t header[6] = {PROTO_SYNC0, PROTO_SYNC1, cmd, seq, (uint8_t)(len & 0xFFu), (uint8_t)(len >> 8)};
    uint16_t crc = crc16_ccitt(0xFFFFu, header + 2, 4);
    crc = crc16_ccitt(crc, (const uint8_t *)head, head_len);
    crc = crc16_ccitt(crc, (const uint8_t *)tail, tail_len);
    uint8_t trailer[2] = {(uint8_t)(crc & 0xFFu), (uint8_t)(crc >> 8)};
    uart_write(header, sizeof header);
    uart_write(head, head_len);
    uart_write(tail, tail_len);
    uart_write(trailer, sizeof trailer);
}

void proto_reply(const proto_frame_t *request, const void *payload, uint16_t len) {
    proto_send((uint8_t)(request->cmd | PROTO_REPLY), request->seq, payload, len, 0, 0);
}

void proto_error(uint8_t seq, uint8_t code, uint8_t cmd, const char *message) {
    uint8_t head[2] = {code, cmd};
    uint16_t len = 0;
    while (message[len]) ++len; /* not strlen: newlib's costs 220 B of flash */
    proto_send(MSG_ERROR, seq, head, sizeof head, message, len);
}

/* Between polls of an empty UART, spin in registers for a while. Under QEMU every poll of the status
 * register takes the emulator's global lock, and polling back to back starves the thread that delivers the
 * next byte from the host; on silicon the pause is far shorter than one character time. */
static void poll_pause(void) {
    for (volatile int i = 0; i < POLL_PAUSE_SPINS; i++) {
    }
}

/* Next byte, or -1 once `deadline` (timer ticks) has passed. */
static int getc_before(uint64_t deadline) {
    for (;;) {
        int c = uart_getc();
        if (c >= 0) return c;
        if (timer_now() > deadline) return -1;
        poll_pause();
    }
}

static int getc_blocking(void) {
    for (;;) {
        int c = uart_getc();
        if (c >= 0) return c;
        poll_pause();
    }
}

void proto_receive(proto_frame_t *frame) {
    const uint64_t timeout = timer_ticks_per_ms() * TINYML_FRAME_TIMEOUT_MS;
    for (;;) {
        /* Hunt for the sync pair; anything else is line noise and is skipped silently. */
        int c = getc_blocking();
        if (c != PROTO_SYNC0) continue;
        do {
            c = getc_before(timer_now() + timeout);
        } while (c == PROTO_SYNC0);
        if (c != PROTO_SYNC1) continue;

        uint8_t header[4];
        int ok = 1;
        for (unsigned i = 0; i < sizeof header && ok; i++) {
            c = getc_before(timer_now() + timeout);
            ok = c >= 0;
            header[i] = (uint8_t)c;
        }
        if (!ok) {
            proto_error(0, ERR_TIMEOUT, 0, "incomplete frame header");
            continue;
        }
        frame->cmd = header[0];
        frame->seq = header[1];
        frame->len = (uint16_t)(header[2] | (header[3] << 8));
        if (frame->len > PROTO_MAX_PAYLOAD) {
            proto_error(frame->seq, ERR_TOO_LONG, frame->cmd, "payload longer than PROTO_MAX_PAYLOAD");
            continue;
        }
        uint8_t trailer[2];
        for (unsigned i = 0; i < frame->len + 2u && ok; i++) {
            c = getc_before(timer_now() + timeout);
            ok = c >= 0;
            if (i < frame->len) frame->payload[i] = (uint8_t)c;
            else trailer[i - frame->len] = (uint8_t)c;
        }
        if (!ok) {
            proto_error(frame->seq, ERR_TIMEOUT, frame->cmd, "incomplete frame payload");
            continue;
        }
        uint16_t crc = crc16_ccitt(0xFFFFu, header, sizeof header);
        crc = crc16_ccitt(crc, frame->payload, frame->len);
        if (crc != (uint16_t)(trailer[0] | (trailer[1] << 8))) {
            proto_error(frame->seq, ERR_CRC, frame->cmd, "CRC mismatch");
            continue;
        }
        return;
    }
}
