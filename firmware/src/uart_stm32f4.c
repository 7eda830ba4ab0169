/* STM32 USART with the SR/DR/BRR/CR1 register layout (STM32F1, F2, F4, L1); uart_stm32.c is the F7/L4 one.
 * Pins and clocks are set up by soc_init(); this file only programs the peripheral.
 * Bytes that arrive before CR1.UE and RE are set are lost (QEMU drops them too): the host retries its HELLO. */
#include "tinyml_board.h"
#include "uart.h"

#define USART_SR  (*(volatile uint32_t *)(TINYML_UART_BASE + 0x00u))
#define USART_DR  (*(volatile uint32_t *)(TINYML_UART_BASE + 0x04u))
#define USART_BRR (*(volatile uint32_t *)(TINYML_UART_BASE + 0x08u))
#define USART_CR1 (*(volatile uint32_t *)(TINYML_UART_BASE + 0x0Cu))
#define USART_CR2 (*(volatile uint32_t *)(TINYML_UART_BASE + 0x10u))
#define USART_CR3 (*(volatile uint32_t *)(TINYML_UART_BASE + 0x14u))

#define SR_ORE  (1u << 3)
#define SR_RXNE (1u << 5)
#define SR_TXE  (1u << 7)
#define CR1_RE  (1u << 2)
#define CR1_TE  (1u << 3)
#define CR1_UE  (1u << 13)

void uart_init(void) {
    USART_CR1 = 0;
    /* 16x oversampling: BRR holds USARTDIV in 12.4 fixed point, which is fck / baud rounded */
    USART_BRR = (TINYML_UART_CLOCK_HZ + TINYML_UART_BAUD / 2u) / TINYML_UART_BAUD;
    USART_CR2 = 0;
    USART_CR3 = 0;
    USART_CR1 = CR1_UE | CR1_TE | CR1_RE;
}

void uart_putc(uint8_t c) {
    while (!(USART_SR & SR_TXE)) {
    }
    USART_DR = c;
}

int uart_getc(void) {
    /* Reading SR then DR also clears an overrun; the lost byte shows up as a CRC error upstream. */
    if (!(USART_SR & (SR_RXNE | SR_ORE))) return -1;
    return (int)(USART_DR & 0xFFu);
}
