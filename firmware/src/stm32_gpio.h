/* STM32 GPIO: the register layout shared by the F2/F4/F7/L4/L4+/H7/G4 families (only the base differs). */
#ifndef TINYML_STM32_GPIO_H
#define TINYML_STM32_GPIO_H

#include "cortex_m.h"

#define GPIO_MODER(base)   REG32((base) + 0x00u)
#define GPIO_OSPEEDR(base) REG32((base) + 0x08u)
#define GPIO_PUPDR(base)   REG32((base) + 0x0Cu)
#define GPIO_AFR(base, i)  REG32((base) + 0x20u + 4u * (i))

/* Puts one pin in alternate function `af`, high speed, with a pull-up (idle-high UART lines). */
static inline void gpio_alternate(uint32_t base, unsigned pin, unsigned af) {
    GPIO_AFR(base, pin / 8u) = (GPIO_AFR(base, pin / 8u) & ~(0xFu << (4u * (pin % 8u)))) | (af << (4u * (pin % 8u)));
    GPIO_OSPEEDR(base) |= 0x3u << (2u * pin);
    GPIO_PUPDR(base) = (GPIO_PUPDR(base) & ~(0x3u << (2u * pin))) | (0x1u << (2u * pin));
    GPIO_MODER(base) = (GPIO_MODER(base) & ~(0x3u << (2u * pin))) | (0x2u << (2u * pin));
}

#endif
