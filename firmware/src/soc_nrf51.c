/* Nordic nRF51 (QEMU `microbit`): the core runs from the 16 MHz clock at reset and the UART selects its pins
 * itself (uart_nrf51.c), so there is nothing to set up. */
#include "runtime.h"

void soc_init(void) {
}
