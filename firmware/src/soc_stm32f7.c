/* STM32F7 (F746/F767/F769...): 216 MHz from HSI through the PLL with over-drive, the Cortex-M7 caches, and the
 * UART's clock and pins. The steps follow the reference manual (RM0410): scale 1, PLL on, over-drive on and
 * switched, 7 flash wait states with ART, APB1 = HCLK/4 (54 MHz), APB2 = HCLK/2. */
#include "cortex_m.h"
#include "runtime.h"
#include "stm32_gpio.h"
#include "stm32f_rcc.h"
#include "tinyml_board.h"

#define PWR_BASE  0x40007000u
#define PWR_CR1   REG32(PWR_BASE + 0x00u)
#define PWR_CSR1  REG32(PWR_BASE + 0x04u)

#define PWR_CR1_VOS     (0x3u << 14)
#define PWR_CR1_ODEN    (1u << 16)
#define PWR_CR1_ODSWEN  (1u << 17)
#define PWR_CSR1_ODRDY  (1u << 16)
#define PWR_CSR1_ODSWRDY (1u << 17)
#define FLASH_ACR_LATENCY 0xFu
#define FLASH_ACR_ARTEN  (1u << 9)

/* PLL: HSI 16 MHz / M(8) = 2 MHz, * N(216) = 432 MHz VCO, / P(2) = 216 MHz, / Q(9) = 48 MHz, R = 2 (reset) */
#define PLLCFGR_216MHZ ((2u << 28) | (9u << 24) | (0u << 22) /* HSI */ | (0u << 16) /* P = 2 */ | (216u << 6) | 8u)

#define SCB_CCR    REG32(0xE000ED14u)
#define SCB_CCSIDR REG32(0xE000ED80u)
#define SCB_CSSELR REG32(0xE000ED84u)
#define SCB_ICIALLU REG32(0xE000EF50u)
#define SCB_DCISW  REG32(0xE000EF60u)
#define SCB_CCR_DC (1u << 16)
#define SCB_CCR_IC (1u << 17)

static void clock_216mhz(void) {
    RCC_CR |= RCC_CR_HSION;
    while (!(RCC_CR & RCC_CR_HSIRDY)) {
    }
    RCC_APB1ENR |= RCC_APB1ENR_PWR;
    (void)RCC_APB1ENR;
    PWR_CR1 |= PWR_CR1_VOS; /* scale 1: only writable while the PLL is off */
    RCC_CR &= ~RCC_CR_PLLON;
    while (RCC_CR & RCC_CR_PLLRDY) {
    }
    RCC_PLLCFGR = PLLCFGR_216MHZ;
    RCC_CR |= RCC_CR_PLLON;
    PWR_CR1 |= PWR_CR1_ODEN;
    while (!(PWR_CSR1 & PWR_CSR1_ODRDY)) {
    }
    PWR_CR1 |= PWR_CR1_ODSWEN;
    while (!(PWR_CSR1 & PWR_CSR1_ODSWRDY)) {
    }
    while (!(RCC_CR & RCC_CR_PLLRDY)) {
    }
    FLASH_ACR = (FLASH_ACR & ~FLASH_ACR_LATENCY) | 7u | FLASH_ACR_PRFTEN | FLASH_ACR_ARTEN;
    while ((FLASH_ACR & FLASH_ACR_LATENCY) != 7u) {
    }
    RCC_CFGR = CFGR_PRESCALERS | CFGR_SW_PLL;
    while (((RCC_CFGR >> 2) & 0x3u) != CFGR_SW_PLL) {
    }
}

static void caches_on(void) {
    SCB_ICIALLU = 0;
    dsb_isb();
    SCB_CCR |= SCB_CCR_IC;
    dsb_isb();
    SCB_CSSELR = 0; /* level 1 data cache */
    dsb_isb();
    uint32_t ccsidr = SCB_CCSIDR;
    uint32_t sets = (ccsidr >> 13) & 0x7FFFu;
    do {
        uint32_t ways = (ccsidr >> 3) & 0x3FFu;
        do {
            SCB_DCISW = ((sets & 0x1FFu) << 5) | ((ways & 0x3u) << 30);
        } while (ways-- != 0u);
    } while (sets-- != 0u);
    dsb_isb();
    SCB_CCR |= SCB_CCR_DC;
    dsb_isb();
}

void soc_init(void) {
    caches_on();
    clock_216mhz();
    RCC_AHB1ENR |= (1u << TINYML_SOC_UART_TX_PORT) | (1u << TINYML_SOC_UART_RX_PORT);
    TINYML_SOC_UART_CLOCK_ENABLE_REG |= 1u << TINYML_SOC_UART_CLOCK_ENABLE_BIT;
    (void)TINYML_SOC_UART_CLOCK_ENABLE_REG;
    gpio_alternate(GPIO_PORT_BASE(TINYML_SOC_UART_TX_PORT), TINYML_SOC_UART_TX_PIN, TINYML_SOC_UART_AF);
    gpio_alternate(GPIO_PORT_BASE(TINYML_SOC_UART_RX_PORT), TINYML_SOC_UART_RX_PIN, TINYML_SOC_UART_AF);
}
