/* Arm CMSDK APB UART (MPS2/MPS3 FPGA images, and QEMU's models of them). */
#include "tinyml_board.h"
#include "uart.h"

#define UART_DATA     (*(volatile uint32_t *)(TINYML_UART_BASE + 0x00u))
#define UART_STATE    (*(volatile uint32_t *)(TINYML_UART_BASE + 0x04u))
#define UART_CTRL     (*(volatile uint32_t *)(TINYML_UART_BASE + 0x08u))
#define UART_BAUDDIV  (*(volatile uint32_t *)(TINYML_UART_BASE + 0x10u))

#define STATE_TX_FULL 0x1u
#define STATE_RX_FULL 0x2u
#define CTRL_TX_EN    0x1u
#define CTRL_RX_EN    0x2u

void uart_init(void) {
    uint32_t div = TINYML_UART_CLOCK_HZ / TINYML_UART_BAUD;
    UART_BAUDDIV = div < 16u ? 16u : div; /* the hardware needs >= 16 */
    UART_CTRL = CTRL_TX_EN | CTRL_RX_EN;
}

void uart_putc(uint8_t c) {
    while (UART_STATE & STATE_TX_FULL) {
    }
    UART_DATA = c;
}

int uart_getc(void) {
    if (!(UART_STATE & STATE_RX_FULL)) return -1;
    return (int)(UART_DATA & 0xFFu);
}
