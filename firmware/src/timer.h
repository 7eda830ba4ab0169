/* Elapsed time for benchmarks and timeouts.
 *
 * On silicon the timer is the DWT cycle counter and counts are CPU cycles. Under QEMU DWT->CYCCNT reads 0, so
 * the timer is SysTick and QEMU runs with `-icount shift=TINYML_ICOUNT_SHIFT`: every guest instruction then
 * advances virtual time by exactly 2^shift ns, and SysTick ticks convert back to an exact instruction count.
 */
#ifndef TINYML_TIMER_H
#define TINYML_TIMER_H

#include <stdint.h>

#include "tinyml_board.h"

#ifdef TINYML_ICOUNT_SHIFT /* emulated: SysTick under -icount counts exact instructions */
#define TIMER_UNIT "instructions"
#else
#define TIMER_UNIT "cycles"
#endif

void timer_init(void);
/* Raw monotonic ticks since timer_init() (64-bit: never wraps in practice). */
uint64_t timer_now(void);
/* Ticks per millisecond, for timeouts. */
uint64_t timer_ticks_per_ms(void);
/* The work done between two timer_now() readings, in TIMER_UNIT. */
uint64_t timer_count(uint64_t t0, uint64_t t1);

#endif
