/* firmware/src/protocol.c built on the host (tests/test_fuzz_protocol.py), under ASan/UBSan.
 *
 *   protocol_host fuzz   < bytes   the whole input is the line: every frame parsed is answered (echoed), every
 *                                  malformed one gets the firmware's error reply; exits when the input has
 *                                  run dry. Prints "frames N errors M" on stderr.
 *   protocol_host device           a minimal device on stdin/stdout: HELLO answered like the firmware, every
 *                                  other command with an empty reply (the host's handshake tests).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol.h"
#include "timer.h"
#include "uart.h"

static int device_mode;
static unsigned char *in_data;
static size_t in_len, in_pos;
static uint64_t ticks, idle_polls;
static unsigned long sent_bytes;

uint64_t timer_now(void) { return ++ticks; }
uint64_t timer_ticks_per_ms(void) { return 1; }

int uart_getc(void) {
    if (device_mode) {
        unsigned char c;
        if (read(0, &c, 1) != 1) exit(0);
        return c;
    }
    if (in_pos < in_len) {
        idle_polls = 0;
        return in_data[in_pos++];
    }
    if (++idle_polls > 100000) { /* the input ran dry and the parser is hunting: done */
        fprintf(stderr, "sent %lu\n", sent_bytes);
        exit(0);
    }
    return -1;
}

void uart_putc(uint8_t c) {
    ++sent_bytes;
    if (device_mode) fputc(c, stdout);
}

static unsigned char *read_all(size_t *len) {
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, stdin)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    *len = n;
    return buf;
}

int main(int argc, char **argv) {
    static proto_frame_t frame;
    device_mode = argc > 1 && strcmp(argv[1], "device") == 0;
    if (!device_mode) in_data = read_all(&in_len);
    for (;;) {
        proto_receive(&frame);
        if (device_mode && frame.cmd == CMD_HELLO) {
            const uint8_t hello[9] = {'T', 'I', 'N', 'Y', 'M', 'L', PROTO_VERSION, PROTO_MAX_PAYLOAD & 0xFF,
                                      PROTO_MAX_PAYLOAD >> 8};
            proto_reply(&frame, hello, sizeof hello);
        } else {
            proto_reply(&frame, device_mode ? 0 : frame.payload, device_mode ? 0 : frame.len);
        }
        if (device_mode) fflush(stdout);
    }
}
