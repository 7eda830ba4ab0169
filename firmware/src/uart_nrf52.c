/* Nordic nRF52 UARTE (UART with EasyDMA: nRF52832/52833/52840). Every transfer goes through RAM, one byte at a
 * time: TX waits for ENDTX; RX keeps a one-byte reception running and restarts it after each byte. The UARTE
 * holds further bytes in its RX FIFO meanwhile, and the serving loop polls far faster than 115200 baud delivers.
 * Pins come from the board file (soc.uart_tx / soc.uart_rx = "P1.03"). */
#include "tinyml_board.h"
#include "uart.h"

#define UARTE_REG(off)       (*(volatile uint32_t *)(TINYML_UART_BASE + (off)))
#define UARTE_TASKS_STARTRX  UARTE_REG(0x000u)
#define UARTE_TASKS_STARTTX  UARTE_REG(0x008u)
#define UARTE_EVENTS_ENDRX   UARTE_REG(0x110u)
#define UARTE_EVENTS_ENDTX   UARTE_REG(0x120u)
#define UARTE_EVENTS_ERROR   UARTE_REG(0x124u)
#define UARTE_ERRORSRC       UARTE_REG(0x480u)
#define UARTE_ENABLE         UARTE_REG(0x500u)
#define UARTE_PSEL_RTS       UARTE_REG(0x508u)
#define UARTE_PSEL_TXD       UARTE_REG(0x50Cu)
#define UARTE_PSEL_CTS       UARTE_REG(0x510u)
#define UARTE_PSEL_RXD       UARTE_REG(0x514u)
#define UARTE_BAUDRATE       UARTE_REG(0x524u)
#define UARTE_RXD_PTR        UARTE_REG(0x534u)
#define UARTE_RXD_MAXCNT     UARTE_REG(0x538u)
#define UARTE_TXD_PTR        UARTE_REG(0x544u)
#define UARTE_TXD_MAXCNT     UARTE_REG(0x548u)
#define UARTE_CONFIG         UARTE_REG(0x56Cu)

#define ENABLE_UARTE     8u
#define PSEL_DISCONNECTED 0xFFFFFFFFu
#define PSEL(port, pin)  (((port) << 5) | (pin))
#define BAUD_115200      0x01D60000u /* UARTE value (the legacy UART's is 0x01D7E000) */

static volatile uint8_t tx_byte; /* EasyDMA reads and writes RAM only */
static volatile uint8_t rx_byte;

static void start_rx(void) {
    UARTE_RXD_PTR = (uint32_t)(uintptr_t)&rx_byte;
    UARTE_RXD_MAXCNT = 1u;
    UARTE_TASKS_STARTRX = 1u;
}

void uart_init(void) {
    UARTE_ENABLE = 0;
    UARTE_PSEL_TXD = PSEL(TINYML_SOC_UART_TX_PORT, TINYML_SOC_UART_TX_PIN);
    UARTE_PSEL_RXD = PSEL(TINYML_SOC_UART_RX_PORT, TINYML_SOC_UART_RX_PIN);
    UARTE_PSEL_RTS = PSEL_DISCONNECTED;
    UARTE_PSEL_CTS = PSEL_DISCONNECTED;
    UARTE_BAUDRATE = BAUD_115200;
    UARTE_CONFIG = 0; /* 8N1, no flow control */
    UARTE_ENABLE = ENABLE_UARTE;
    UARTE_EVENTS_ENDRX = 0;
    UARTE_EVENTS_ENDTX = 0;
    start_rx();
}

void uart_putc(uint8_t c) {
    tx_byte = c;
    UARTE_TXD_PTR = (uint32_t)(uintptr_t)&tx_byte;
    UARTE_TXD_MAXCNT = 1u;
    UARTE_EVENTS_ENDTX = 0;
    UARTE_TASKS_STARTTX = 1u;
    while (!UARTE_EVENTS_ENDTX) {
    }
}

int uart_getc(void) {
    if (UARTE_EVENTS_ERROR) { /* framing/overrun: the lost byte shows up as a CRC error upstream */
        UARTE_ERRORSRC = UARTE_ERRORSRC; /* write 1 to clear */
        UARTE_EVENTS_ERROR = 0;
    }
    if (!UARTE_EVENTS_ENDRX) return -1;
    UARTE_EVENTS_ENDRX = 0;
    uint8_t c = rx_byte;
    start_rx();
    return c;
}
