/* Glue between the startup code, the SoC bring-up and main. */
#ifndef TINYML_RUNTIME_H
#define TINYML_RUNTIME_H

#include <stdint.h>

/* Clocks, power and UART pins: soc_<family>.c, per the board file's soc.family. */
void soc_init(void);
/* Leaves QEMU with `code` on emulated boards; parks the core on silicon. */
__attribute__((noreturn)) void runtime_exit(int code);

uint32_t stack_peak_bytes(void);
uint32_t stack_size_bytes(void);

#endif
