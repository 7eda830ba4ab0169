/* STM32F2/F4/F7: the RCC registers and bits their soc_*.c files share (same base and offsets), and the AHB1
 * GPIO ports. */
#ifndef TINYML_STM32F_RCC_H
#define TINYML_STM32F_RCC_H

#include "cortex_m.h"

#define RCC_BASE    0x40023800u
#define RCC_CR      REG32(RCC_BASE + 0x00u)
#define RCC_PLLCFGR REG32(RCC_BASE + 0x04u)
#define RCC_CFGR    REG32(RCC_BASE + 0x08u)
#define RCC_AHB1ENR REG32(RCC_BASE + 0x30u)
#define RCC_APB1ENR REG32(RCC_BASE + 0x40u)
#define RCC_APB2ENR REG32(RCC_BASE + 0x44u)

#define RCC_CR_HSION    (1u << 0)
#define RCC_CR_HSIRDY   (1u << 1)
#define RCC_CR_PLLON    (1u << 24)
#define RCC_CR_PLLRDY   (1u << 25)
#define RCC_APB1ENR_PWR (1u << 28)
/* CFGR: AHB = SYSCLK, APB1 = HCLK/4 (PPRE1 = 101), APB2 = HCLK/2 (PPRE2 = 100), system clock = PLL (SW = 10) */
#define CFGR_PRESCALERS ((0x5u << 10) | (0x4u << 13))
#define CFGR_SW_PLL 0x2u

#define FLASH_ACR REG32(0x40023C00u)
#define FLASH_ACR_PRFTEN (1u << 8)

#define GPIO_PORT_BASE(port) (0x40020000u + 0x400u * (port))

#endif
