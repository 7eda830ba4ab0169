/* Nordic nRF51 UART (micro:bit UART0; QEMU's `microbit` model). Polled with the TXDRDY / RXDRDY events. */
#include "tinyml_board.h"
#include "uart.h"

#define UART_REG(off)        (*(volatile uint32_t *)(TINYML_UART_BASE + (off)))
#define UART_TASKS_STARTRX   UART_REG(0x000u)
#define UART_TASKS_STARTTX   UART_REG(0x008u)
#define UART_EVENTS_RXDRDY   UART_REG(0x108u)
#define UART_EVENTS_TXDRDY   UART_REG(0x11Cu)
#define UART_ENABLE          UART_REG(0x500u)
#define UART_PSELTXD         UART_REG(0x50Cu)
#define UART_PSELRXD         UART_REG(0x514u)
#define UART_RXD             UART_REG(0x518u)
#define UART_TXD             UART_REG(0x51Cu)
#define UART_BAUDRATE        UART_REG(0x524u)

#define ENABLE_UART    4u           /* any other value: the peripheral reads 0 and ignores writes */
#define PIN_TX         24u          /* micro:bit edge connector USB serial: P0.24 TX, P0.25 RX */
#define PIN_RX         25u
#define BAUD_115200    0x01D7E000u  /* QEMU ignores PSEL and BAUDRATE; silicon needs them */

void uart_init(void) {
    UART_PSELTXD = PIN_TX;
    UART_PSELRXD = PIN_RX;
    UART_BAUDRATE = BAUD_115200;
    UART_ENABLE = ENABLE_UART;
    UART_EVENTS_TXDRDY = 0;
    UART_EVENTS_RXDRDY = 0;
    /* RX first: bytes the host sent before STARTRX are kept but arrive late */
    UART_TASKS_STARTRX = 1;
    UART_TASKS_STARTTX = 1;
}

void uart_putc(uint8_t c) {
    UART_EVENTS_TXDRDY = 0;
    UART_TXD = c;
    while (!UART_EVENTS_TXDRDY) {
    }
}

int uart_getc(void) {
    if (!UART_EVENTS_RXDRDY) return -1;
    /* clear the event before reading RXD: QEMU raises it again during the read when more bytes are queued
     * (read-then-clear loses that and stalls) */
    UART_EVENTS_RXDRDY = 0;
    return (int)(UART_RXD & 0xFFu);
}
