/* STM32F405/F407/F415/F417: 168 MHz from HSI through the PLL, and the UART's clock and pins.
 * The steps follow the reference manual (RM0090): voltage scale 1, 5 flash wait states with prefetch and caches,
 * PLL 16 MHz / M(16) * N(336) / P(2) = 168 MHz (Q(7) = 48 MHz), APB1 = HCLK/4 (42 MHz), APB2 = HCLK/2 (84 MHz).
 * Every wait is bounded: a clock that never becomes ready leaves the core on HSI instead of hanging. QEMU does not
 * model the RCC (its registers read 0), so board files for it set soc.clock_setup = false. */
#include <stdbool.h>

#include "cortex_m.h"
#include "runtime.h"
#include "stm32_gpio.h"
#include "stm32f_rcc.h"
#include "tinyml_board.h"

#define PWR_CR REG32(0x40007000u)

#define PWR_CR_VOS       (1u << 14)
#define FLASH_ACR_LATENCY 0x7u
#define FLASH_ACR_ICEN   (1u << 9)
#define FLASH_ACR_DCEN   (1u << 10)

/* PLLCFGR: Q = 7, source HSI (bit 22 = 0), P = 2 (00), N = 336, M = 16 */
#define PLLCFGR_168MHZ ((7u << 24) | (0u << 16) | (336u << 6) | 16u)

#define CLOCK_WAIT_POLLS 1000000u /* about 60 ms at 16 MHz: far longer than HSI (2 us) or the PLL (100 us) */

/* Polls until (reg & mask) == want; false if it never gets there. */
static bool wait_bits(volatile uint32_t *reg, uint32_t mask, uint32_t want) {
    for (uint32_t i = 0; i < CLOCK_WAIT_POLLS; i++) {
        if ((*reg & mask) == want) return true;
    }
    return false;
}

static void clock_168mhz(void) {
    RCC_CR |= RCC_CR_HSION;
    if (!wait_bits(&RCC_CR, RCC_CR_HSIRDY, RCC_CR_HSIRDY)) return;
    RCC_APB1ENR |= RCC_APB1ENR_PWR;
    (void)RCC_APB1ENR;
    PWR_CR |= PWR_CR_VOS; /* scale 1: needed above 144 MHz */
    FLASH_ACR = 5u | FLASH_ACR_PRFTEN | FLASH_ACR_ICEN | FLASH_ACR_DCEN;
    if (!wait_bits(&FLASH_ACR, FLASH_ACR_LATENCY, 5u)) return;
    RCC_CR &= ~RCC_CR_PLLON;
    RCC_PLLCFGR = PLLCFGR_168MHZ;
    RCC_CR |= RCC_CR_PLLON;
    if (!wait_bits(&RCC_CR, RCC_CR_PLLRDY, RCC_CR_PLLRDY)) return;
    RCC_CFGR = CFGR_PRESCALERS | CFGR_SW_PLL;
    (void)wait_bits(&RCC_CFGR, 0x3u << 2, CFGR_SW_PLL << 2);
}

void soc_init(void) {
    if (TINYML_SOC_CLOCK_SETUP) clock_168mhz();
    RCC_AHB1ENR |= (1u << TINYML_SOC_UART_TX_PORT) | (1u << TINYML_SOC_UART_RX_PORT);
    (void)RCC_AHB1ENR;
    TINYML_SOC_UART_CLOCK_ENABLE_REG |= 1u << TINYML_SOC_UART_CLOCK_ENABLE_BIT;
    (void)TINYML_SOC_UART_CLOCK_ENABLE_REG;
    gpio_alternate(GPIO_PORT_BASE(TINYML_SOC_UART_TX_PORT), TINYML_SOC_UART_TX_PIN, TINYML_SOC_UART_AF);
    gpio_alternate(GPIO_PORT_BASE(TINYML_SOC_UART_RX_PORT), TINYML_SOC_UART_RX_PIN, TINYML_SOC_UART_AF);
}
