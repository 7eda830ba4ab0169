/* Fault handling: a crash is reported over serial as a MSG_FAULT frame (registers that say where and why),
 * so the host prints a diagnosis instead of timing out. Then QEMU exits; silicon parks the core. */
#include <stdint.h>

#include "cortex_m.h"
#include "protocol.h"
#include "runtime.h"
#include "semihost.h"
#include "text.h"
#include "tinyml_board.h"

#define FAULT_EXIT_CODE 3

static const char *exception_name(uint32_t n) {
    switch (n) {
    case 2: return "NMI";
    case 3: return "HardFault";
    case 4: return "MemManage";
    case 5: return "BusFault";
    case 6: return "UsageFault";
    case 7: return "SecureFault";
    case 11: return "SVCall";
    case 14: return "PendSV";
    default: return n >= 16 ? "unexpected IRQ" : "reserved exception";
    }
}

void runtime_exit(int code) {
#if TINYML_SEMIHOSTING
    semihost_exit(code);
#else
    (void)code;
    for (;;) {
        __asm volatile("wfi");
    }
#endif
}

/* frame: the registers the core stacked (r0-r3, r12, lr, pc, xpsr). */
__attribute__((used, noreturn)) void fault_report(const uint32_t *frame, uint32_t exc_return) {
    uint32_t ipsr;
    __asm volatile("mrs %0, ipsr" : "=r"(ipsr));
    ipsr &= 0x1FFu;
    char buf[256];
    text_t t = {buf, 0, sizeof buf};
    text_str(&t, exception_name(ipsr));
    text_str(&t, " (exception ");
    text_u64(&t, ipsr);
    text_str(&t, ") pc=");
    text_hex32(&t, frame[6]);
    text_str(&t, " lr=");
    text_hex32(&t, frame[5]);
    text_str(&t, " xpsr=");
    text_hex32(&t, frame[7]);
#if !TINYML_ARMV6M /* ARMv6-M has no fault status or address registers: the stacked frame is all there is */
    text_str(&t, " cfsr=");
    text_hex32(&t, SCB_CFSR);
    text_str(&t, " hfsr=");
    text_hex32(&t, SCB_HFSR);
    text_str(&t, " mmfar=");
    text_hex32(&t, SCB_MMFAR);
    text_str(&t, " bfar=");
    text_hex32(&t, SCB_BFAR);
#endif
    text_str(&t, " exc_return=");
    text_hex32(&t, exc_return);
    proto_send(MSG_FAULT, 0, buf, (uint16_t)t.len, 0, 0);
    runtime_exit(FAULT_EXIT_CODE);
}

/* Every fault and stray exception lands here: pick the stack the core pushed to (EXC_RETURN bit 2) and report. */
__attribute__((naked)) void Fault_Handler(void) {
#if TINYML_ARMV6M /* Thumb-1: no IT blocks, no TST with an immediate */
    __asm volatile(
        "movs r0, #4\n\t"
        "mov r1, lr\n\t"
        "tst r0, r1\n\t"
        "bne 1f\n\t"
        "mrs r0, msp\n\t"
        "b 2f\n\t"
        "1: mrs r0, psp\n\t"
        "2: mov r1, lr\n\t"
        "ldr r2, =fault_report\n\t" /* a Thumb-1 B reaches only +-2 KiB */
        "bx r2\n\t"
        ".ltorg\n\t");
#else
    __asm volatile(
        "tst lr, #4\n\t"
        "ite eq\n\t"
        "mrseq r0, msp\n\t"
        "mrsne r0, psp\n\t"
        "mov r1, lr\n\t"
        "b fault_report\n\t");
#endif
}
