/* Leaving QEMU with an exit code (Arm semihosting SYS_EXIT_EXTENDED). Only on emulated boards: on silicon
 * without a debugger the BKPT would fault. */
#ifndef TINYML_SEMIHOST_H
#define TINYML_SEMIHOST_H

__attribute__((noreturn)) void semihost_exit(int code);

#endif
