/* SysTick as a 64-bit timer: a 24-bit down counter plus an interrupt counting its wraps.
 *
 * Under `-icount shift=S` one instruction takes 2^S ns of virtual time and one SysTick tick takes
 * TINYML_TICK_NS_NUM / TINYML_TICK_NS_DEN ns. With 2^S larger than two ticks, every reading is within one tick
 * of the truth, so rounding ticks * tick_ns / 2^S gives the exact instruction count. The wrap interrupt itself
 * runs SYSTICK_HANDLER_INSNS instructions per wrap, which are taken back out so counts do not depend on where
 * the wraps fall.
 */
#include "cortex_m.h"
#include "timer.h"

#define SYSTICK_RELOAD 0xFFFFFFu
#define SYSTICK_PERIOD_BITS 24
#define SYSTICK_HANDLER_INSNS 5u /* the five instructions of SysTick_Handler below */

#define CSR_ENABLE    (1u << 0)
#define CSR_TICKINT   (1u << 1)
#define CSR_CLKSOURCE (1u << 2)

volatile uint32_t systick_wraps;

/* Written in assembly so its instruction count is fixed whatever the compiler does. */
__attribute__((naked)) void SysTick_Handler(void) {
    __asm volatile(
        "ldr r0, =systick_wraps\n\t"
        "ldr r1, [r0]\n\t"
        "adds r1, r1, #1\n\t"
        "str r1, [r0]\n\t"
        "bx lr\n\t"
        ".ltorg\n\t");
}

void timer_init(void) {
    SYST_CSR = 0;
    SYST_RVR = SYSTICK_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = CSR_CLKSOURCE | CSR_TICKINT | CSR_ENABLE;
    /* QEMU's SysTick reads 0 until its first reload: wait for the counter to run. */
    while (SYST_CVR == 0) {
    }
}

uint64_t timer_now(void) {
    uint32_t wraps, value;
    do {
        wraps = systick_wraps;
        value = SYST_CVR;
    } while (wraps != systick_wraps);
    return ((uint64_t)wraps << SYSTICK_PERIOD_BITS) + (SYSTICK_RELOAD - value);
}

uint64_t timer_ticks_per_ms(void) {
    return TINYML_TIMER_HZ / 1000u;
}

uint64_t timer_count(uint64_t t0, uint64_t t1) {
    uint64_t ticks = t1 - t0;
    uint64_t wraps = (t1 >> SYSTICK_PERIOD_BITS) - (t0 >> SYSTICK_PERIOD_BITS);
#ifdef TINYML_ICOUNT_SHIFT
    uint64_t den = (uint64_t)TINYML_TICK_NS_DEN << TINYML_ICOUNT_SHIFT;
    uint64_t insns = (ticks * TINYML_TICK_NS_NUM + den / 2u) / den;
    uint64_t irq = wraps * SYSTICK_HANDLER_INSNS;
    return insns > irq ? insns - irq : 0u;
#else
    (void)wraps;
    return ticks; /* SysTick on silicon counts core clock cycles */
#endif
}
