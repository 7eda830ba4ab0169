/* Reset handler and vector table: the first code that runs, before main().
 * Memory layout symbols come from the linker script tinyml renders from the board file. */
#include <stdint.h>
#include <string.h>

#include "cortex_m.h"
#include "runtime.h"
#include "tinyml_board.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _sstack, _estack;

int main(void);
void Reset_Handler(void);
void SysTick_Handler(void);
void Fault_Handler(void);

#define STACK_PAINT 0x5EEDF00Du
#define NUM_EXTERNAL_IRQS 64 /* none are enabled; a stray one still lands in the fault report */

typedef void (*vector_t)(void);

__attribute__((section(".isr_vector"), used)) const vector_t vector_table[16 + NUM_EXTERNAL_IRQS] = {
    [0] = (vector_t)(uintptr_t)&_estack,
    [1] = Reset_Handler,
    [2 ... 14] = Fault_Handler, /* NMI, the faults, SVCall, PendSV: none is used, all are reported */
    [15] = SysTick_Handler,
    [16 ... 15 + NUM_EXTERNAL_IRQS] = Fault_Handler,
};

/* Boards timed by DWT never enable SysTick: if it fires anyway, it is reported like a fault. */
__attribute__((weak, naked)) void SysTick_Handler(void) {
    __asm volatile("ldr r0, =Fault_Handler\n\t" /* any distance, on ARMv6-M too (its B reaches +-2 KiB) */
                   "bx r0\n\t"
                   ".ltorg\n\t");
}

/* Fills the unused stack with a pattern so stack_peak_bytes() can tell how deep it ever went. */
static void paint_stack(void) {
    uint32_t *p = &_sstack;
    uint32_t *sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    while (p < sp - 16) *p++ = STACK_PAINT;
}

uint32_t stack_peak_bytes(void) {
    const uint32_t *p = &_sstack;
    while (p < &_estack && *p == STACK_PAINT) p++;
    return (uint32_t)((uintptr_t)&_estack - (uintptr_t)p);
}

uint32_t stack_size_bytes(void) {
    return (uint32_t)((uintptr_t)&_estack - (uintptr_t)&_sstack);
}

__attribute__((noreturn)) void Reset_Handler(void) {
#if !TINYML_ARMV6M /* ARMv6-M: the table sits where the core (or the RP2040's boot2, which sets VTOR) looks */
    SCB_VTOR = (uint32_t)(uintptr_t)vector_table;
#endif
#if TINYML_HAS_FPU
    SCB_CPACR |= 0xFu << 20; /* CP10 and CP11 full access: before any float instruction */
    dsb_isb();
#endif
    memcpy(&_sdata, &_sidata, (size_t)((uintptr_t)&_edata - (uintptr_t)&_sdata));
    memset(&_sbss, 0, (size_t)((uintptr_t)&_ebss - (uintptr_t)&_sbss));
    paint_stack();
    soc_init();
    int code = main();
    runtime_exit(code);
}
