/* The few Cortex-M core registers the runtime touches (same address on every Armv7-M / Armv8-M core; ARMv6-M
 * has only ICSR, AIRCR, SysTick and, on the M0+ as an option, VTOR). */
#ifndef TINYML_CORTEX_M_H
#define TINYML_CORTEX_M_H

#include <stdint.h>

/* Cortex-M0/M0+ (ARMv6-M): no fault status registers, no IT blocks, no divide, no VTOR on the M0. */
#if defined(__ARM_ARCH_6M__)
#define TINYML_ARMV6M 1
#else
#define TINYML_ARMV6M 0
#endif

#define REG32(addr) (*(volatile uint32_t *)(addr))

/* System Control Block */
#define SCB_ICSR  REG32(0xE000ED04u)
#define SCB_VTOR  REG32(0xE000ED08u)
#define SCB_AIRCR REG32(0xE000ED0Cu)
#define SCB_SHCSR REG32(0xE000ED24u)
#define SCB_CFSR  REG32(0xE000ED28u)
#define SCB_HFSR  REG32(0xE000ED2Cu)
#define SCB_MMFAR REG32(0xE000ED34u)
#define SCB_BFAR  REG32(0xE000ED38u)
#define SCB_CPACR REG32(0xE000ED88u)

/* SysTick (24-bit down counter) */
#define SYST_CSR REG32(0xE000E010u)
#define SYST_RVR REG32(0xE000E014u)
#define SYST_CVR REG32(0xE000E018u)

/* Data Watchpoint and Trace unit: the cycle counter on silicon (QEMU reads it as 0) */
#define DEM_CR     REG32(0xE000EDFCu)
#define DWT_CTRL   REG32(0xE0001000u)
#define DWT_CYCCNT REG32(0xE0001004u)
#define DWT_LAR    REG32(0xE0001FB0u)

static inline void dsb_isb(void) {
    __asm volatile("dsb\n\tisb" ::: "memory");
}

#endif
