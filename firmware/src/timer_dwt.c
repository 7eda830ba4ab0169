/* DWT->CYCCNT: the core's own cycle counter (silicon only; QEMU does not implement it). */
#include "cortex_m.h"
#include "timer.h"

#define DEMCR_TRCENA   (1u << 24)
#define DWT_CYCCNTENA  (1u << 0)
#define DWT_UNLOCK_KEY 0xC5ACCE55u

void timer_init(void) {
    DEM_CR |= DEMCR_TRCENA;
    DWT_LAR = DWT_UNLOCK_KEY; /* Cortex-M7 locks DWT after reset; other cores ignore this write */
    DWT_CYCCNT = 0;
    DWT_CTRL |= DWT_CYCCNTENA;
}

/* Extends the 32-bit counter; correct as long as it is read at least once per 2^32 cycles
 * (36 s at 120 MHz), which the serving loop and every benchmark do. */
uint64_t timer_now(void) {
    static uint32_t last;
    static uint64_t high;
    uint32_t now = DWT_CYCCNT;
    if (now < last) high += 1ull << 32;
    last = now;
    return high | now;
}

uint64_t timer_ticks_per_ms(void) {
    return TINYML_CLOCK_HZ / 1000u;
}

uint64_t timer_count(uint64_t t0, uint64_t t1) {
    return t1 - t0;
}
