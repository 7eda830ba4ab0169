#include <stdint.h>

#include "semihost.h"

#define SYS_EXIT_EXTENDED 0x20u
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u

void semihost_exit(int code) {
    volatile uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
    register uint32_t r0 __asm("r0") = SYS_EXIT_EXTENDED;
    register uint32_t r1 __asm("r1") = (uint32_t)(uintptr_t)block;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    for (;;) {
    }
}
