/* Arm PrimeCell PL011 UART (RP2040 UART0/UART1; also QEMU's lm3s6965evb and virt). Clocks, resets and pins are
 * the SoC's (soc_init). Divisors as the Pico SDK computes them: div = 8 * clk / baud in 1/128ths,
 * IBRD = div >> 7, FBRD = ((div & 0x7F) + 1) / 2. */
#include "tinyml_board.h"
#include "uart.h"

#define UART_REG(off) (*(volatile uint32_t *)(TINYML_UART_BASE + (off)))
#define UART_DR       UART_REG(0x00u)
#define UART_FR       UART_REG(0x18u)
#define UART_IBRD     UART_REG(0x24u)
#define UART_FBRD     UART_REG(0x28u)
#define UART_LCR_H    UART_REG(0x2Cu)
#define UART_CR       UART_REG(0x30u)

#define FR_RXFE      (1u << 4)
#define FR_TXFF      (1u << 5)
#define LCR_H_8N1    0x70u /* 8 data bits, FIFOs on, no parity, one stop bit */
#define CR_ENABLE    ((1u << 0) | (1u << 8) | (1u << 9)) /* UARTEN, TXE, RXE */

void uart_init(void) {
    const uint32_t div = 8u * TINYML_UART_CLOCK_HZ / TINYML_UART_BAUD;
    uint32_t ibrd = div >> 7, fbrd = ((div & 0x7Fu) + 1u) / 2u;
    if (ibrd == 0u) {
        ibrd = 1u;
        fbrd = 0u;
    } else if (ibrd >= 65535u) {
        ibrd = 65535u;
        fbrd = 0u;
    }
    UART_CR = 0;
    UART_IBRD = ibrd;
    UART_FBRD = fbrd;
    UART_LCR_H = LCR_H_8N1; /* writing LCR_H latches the divisors */
    UART_CR = CR_ENABLE;
}

void uart_putc(uint8_t c) {
    while (UART_FR & FR_TXFF) {
    }
    UART_DR = c;
}

int uart_getc(void) {
    if (UART_FR & FR_RXFE) return -1;
    return (int)(UART_DR & 0xFFu);
}
