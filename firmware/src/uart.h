/* Polled UART: one driver per `uart.kind` of the board file, found by its file name uart_<kind>.c. */
#ifndef TINYML_UART_H
#define TINYML_UART_H

#include <stddef.h>
#include <stdint.h>

void uart_init(void);
void uart_putc(uint8_t c);
/* Next received byte, or -1 when none is waiting (never blocks). */
int uart_getc(void);

static inline void uart_write(const void *data, size_t n) {
    const uint8_t *p = (const uint8_t *)data;
    for (size_t i = 0; i < n; i++) uart_putc(p[i]);
}

#endif
