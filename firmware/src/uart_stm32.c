/* STM32 USART / LPUART with the ISR/RDR/TDR register layout (STM32F7, L4, L4+, H7, G4...).
 * Pins and clocks are set up by soc_init(); this file only programs the peripheral. */
#include "tinyml_board.h"
#include "uart.h"

#define USART_CR1 (*(volatile uint32_t *)(TINYML_UART_BASE + 0x00u))
#define USART_CR2 (*(volatile uint32_t *)(TINYML_UART_BASE + 0x04u))
#define USART_CR3 (*(volatile uint32_t *)(TINYML_UART_BASE + 0x08u))
#define USART_BRR (*(volatile uint32_t *)(TINYML_UART_BASE + 0x0Cu))
#define USART_ISR (*(volatile uint32_t *)(TINYML_UART_BASE + 0x1Cu))
#define USART_ICR (*(volatile uint32_t *)(TINYML_UART_BASE + 0x20u))
#define USART_RDR (*(volatile uint32_t *)(TINYML_UART_BASE + 0x24u))
#define USART_TDR (*(volatile uint32_t *)(TINYML_UART_BASE + 0x28u))

#define CR1_UE   (1u << 0)
#define CR1_RE   (1u << 2)
#define CR1_TE   (1u << 3)
#define ISR_ORE  (1u << 3)
#define ISR_RXNE (1u << 5)
#define ISR_TXE  (1u << 7)
#define ICR_ALL  0x00121BDFu /* clear every error/event flag (overrun, framing, noise, parity...) */

void uart_init(void) {
    USART_CR1 = 0;
#if TINYML_UART_LPUART
    /* LPUART: BRR = 256 * fck / baud (needs fck <= 4096 * baud) */
    USART_BRR = (uint32_t)(((uint64_t)TINYML_UART_CLOCK_HZ * 256u + TINYML_UART_BAUD / 2u) / TINYML_UART_BAUD);
#else
    /* USART, 16x oversampling: BRR = fck / baud */
    USART_BRR = (TINYML_UART_CLOCK_HZ + TINYML_UART_BAUD / 2u) / TINYML_UART_BAUD;
#endif
    USART_CR2 = 0;
    USART_CR3 = 0;
    USART_ICR = ICR_ALL;
    USART_CR1 = CR1_TE | CR1_RE | CR1_UE;
}

void uart_putc(uint8_t c) {
    while (!(USART_ISR & ISR_TXE)) {
    }
    USART_TDR = c;
}

int uart_getc(void) {
    uint32_t isr = USART_ISR;
    if (isr & ISR_ORE) USART_ICR = ICR_ALL; /* a lost byte shows up as a CRC error upstream */
    if (!(isr & ISR_RXNE)) return -1;
    return (int)(USART_RDR & 0xFFu);
}
