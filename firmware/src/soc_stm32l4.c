/* STM32L4+ (L4R5/L4R9/L4S5...): 120 MHz from HSI16 through the PLL, and the UART's clock and pins.
 * The steps follow the reference manual (RM0432): range 1 boost mode with HCLK halved while switching,
 * 5 flash wait states, then HCLK back to SYSCLK. Board pins and clock enables come from the board file. */
#include "cortex_m.h"
#include "runtime.h"
#include "stm32_gpio.h"
#include "tinyml_board.h"

#define RCC_BASE     0x40021000u
#define RCC_CR       REG32(RCC_BASE + 0x00u)
#define RCC_CFGR     REG32(RCC_BASE + 0x08u)
#define RCC_PLLCFGR  REG32(RCC_BASE + 0x0Cu)
#define RCC_AHB2ENR  REG32(RCC_BASE + 0x4Cu)
#define RCC_APB1ENR1 REG32(RCC_BASE + 0x58u)
#define RCC_APB1ENR2 REG32(RCC_BASE + 0x5Cu)
#define RCC_APB2ENR  REG32(RCC_BASE + 0x60u)

#define PWR_BASE  0x40007000u
#define PWR_CR2   REG32(PWR_BASE + 0x04u)
#define PWR_SR2   REG32(PWR_BASE + 0x14u)
#define PWR_CR5   REG32(PWR_BASE + 0x80u)
#define FLASH_ACR REG32(0x40022000u)

#define GPIO_PORT_BASE(port) (0x48000000u + 0x400u * (port))
#define GPIO_PORT_G 6u

#define RCC_CR_HSION     (1u << 8)
#define RCC_CR_HSIRDY    (1u << 10)
#define RCC_CR_PLLON     (1u << 24)
#define RCC_CR_PLLRDY    (1u << 25)
#define RCC_CFGR_SW_PLL  0x3u
#define RCC_CFGR_HPRE    (0xFu << 4)
#define RCC_CFGR_HPRE_2  (0x8u << 4)
#define RCC_APB1ENR1_PWR (1u << 28)
#define PWR_CR2_IOSV     (1u << 9)
#define PWR_SR2_VOSF     (1u << 10)
#define PWR_CR5_R1MODE   (1u << 8)
#define FLASH_ACR_LATENCY 0xFu
#define FLASH_ACR_PRFTEN (1u << 8)
#define FLASH_ACR_ICEN   (1u << 9)
#define FLASH_ACR_DCEN   (1u << 10)

/* PLL: HSI16 / M(1) * N(15) = 240 MHz VCO, / R(2) = 120 MHz */
#define PLLCFGR_120MHZ (0x2u /* PLLSRC = HSI16 */ | (0u << 4) /* M = 1 */ | (15u << 8) /* N */ | \
                        (1u << 24) /* PLLREN */ | (0u << 25) /* R = 2 */)

static void clock_120mhz(void) {
    RCC_APB1ENR1 |= RCC_APB1ENR1_PWR;
    (void)RCC_APB1ENR1;
    RCC_CR |= RCC_CR_HSION;
    while (!(RCC_CR & RCC_CR_HSIRDY)) {
    }
    RCC_CFGR = (RCC_CFGR & ~RCC_CFGR_HPRE) | RCC_CFGR_HPRE_2; /* halve HCLK while switching up */
    PWR_CR5 &= ~PWR_CR5_R1MODE;                                /* range 1 boost: needed above 80 MHz */
    while (PWR_SR2 & PWR_SR2_VOSF) {
    }
    FLASH_ACR = (FLASH_ACR & ~FLASH_ACR_LATENCY) | 5u | FLASH_ACR_PRFTEN | FLASH_ACR_ICEN | FLASH_ACR_DCEN;
    while ((FLASH_ACR & FLASH_ACR_LATENCY) != 5u) {
    }
    RCC_CR &= ~RCC_CR_PLLON;
    while (RCC_CR & RCC_CR_PLLRDY) {
    }
    RCC_PLLCFGR = PLLCFGR_120MHZ;
    RCC_CR |= RCC_CR_PLLON;
    while (!(RCC_CR & RCC_CR_PLLRDY)) {
    }
    RCC_CFGR = (RCC_CFGR & ~0x3u) | RCC_CFGR_SW_PLL;
    while (((RCC_CFGR >> 2) & 0x3u) != RCC_CFGR_SW_PLL) {
    }
    for (volatile int i = 0; i < 200; i++) { /* >= 1 us at 60 MHz before HCLK goes to full speed */
    }
    RCC_CFGR &= ~RCC_CFGR_HPRE; /* HCLK = PCLK1 = PCLK2 = 120 MHz */
}

void soc_init(void) {
    clock_120mhz();
    RCC_AHB2ENR |= (1u << TINYML_SOC_UART_TX_PORT) | (1u << TINYML_SOC_UART_RX_PORT);
    if (TINYML_SOC_UART_TX_PORT == GPIO_PORT_G || TINYML_SOC_UART_RX_PORT == GPIO_PORT_G) {
        PWR_CR2 |= PWR_CR2_IOSV; /* port G pins 2..15 are powered from VDDIO2, off until declared valid */
    }
    TINYML_SOC_UART_CLOCK_ENABLE_REG |= 1u << TINYML_SOC_UART_CLOCK_ENABLE_BIT;
    (void)TINYML_SOC_UART_CLOCK_ENABLE_REG;
    gpio_alternate(GPIO_PORT_BASE(TINYML_SOC_UART_TX_PORT), TINYML_SOC_UART_TX_PIN, TINYML_SOC_UART_AF);
    gpio_alternate(GPIO_PORT_BASE(TINYML_SOC_UART_RX_PORT), TINYML_SOC_UART_RX_PIN, TINYML_SOC_UART_AF);
}
