/* Nordic nRF52840 (nRF52832/52833 alike): the core always runs at 64 MHz; this starts the crystal oscillator
 * (HFXO) so the UART's baud rate is accurate, and turns on the flash instruction cache. The wait is bounded: a
 * crystal that never starts leaves the internal oscillator running, not a hung board. */
#include "cortex_m.h"
#include "runtime.h"

#define CLOCK_TASKS_HFCLKSTART   REG32(0x40000000u)
#define CLOCK_EVENTS_HFCLKSTARTED REG32(0x40000100u)
#define NVMC_ICACHECNF           REG32(0x4001E540u)
#define ICACHECNF_CACHEEN        (1u << 0)
#define HFXO_WAIT_POLLS          1000000u /* ~60 ms at 64 MHz; the crystal starts in well under 1 ms */

void soc_init(void) {
    NVMC_ICACHECNF |= ICACHECNF_CACHEEN;
    CLOCK_EVENTS_HFCLKSTARTED = 0;
    CLOCK_TASKS_HFCLKSTART = 1u;
    for (uint32_t i = 0; i < HFXO_WAIT_POLLS && !CLOCK_EVENTS_HFCLKSTARTED; i++) {
    }
}
