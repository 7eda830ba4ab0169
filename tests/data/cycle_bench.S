@ Micro-benchmarks for the cycle model (tests/test_cycles.py): each runs from its `b_NAME` label (the plugin's open
@ mark) to `b_NAME_end` (close mark); the test works out each one's cycles on paper from the TRM tables.
@ Thumb-2 (ARMv7-M and later), except the v6m block, which an ARMv6-M core also runs.
    .syntax unified
    .thumb
    .text
    .word __stack_top           @ initial SP
    .word reset + 1             @ reset vector

    .thumb_func
    .global reset
reset:
    ldr r4, =buf
    mov r5, r4
    movs r6, #8
    ldr r7, =buf + 16
    str r4, [r4, #16]           @ buf[4] = &buf: a pointer to load through

@ ALU loop with a conditional branch: 10 iterations of 3 ALU + bne (9 taken)
b_alu:
    movs r0, #10
1:  adds r1, r1, r2
    eors r3, r3, r1
    subs r0, r0, #1
    bne 1b
b_alu_end:
    nop

@ loads and stores, 5 iterations
b_ldst:
    movs r0, #5
1:  ldr r1, [r4]                @ single load
    ldr r2, [r4, #4]            @ pipelined after a load: 1
    str r1, [r4, #8]            @ store, immediate offset: 1
    ldr r3, [r7]                @ after a store: not pipelined, 2
    ldr r1, [r3]                @ address is the register the load wrote: not pipelined, 2
    str r2, [r4, r6]            @ register offset after a load: pipelined, 1
    adds r3, r4, #0             @ data processing writing r3 ...
    ldr r2, [r3, #4]            @ ... the next address: +1 stall, 3
    ldrd r1, r2, [r4]           @ 3
    adds r3, r4, #4
    str r1, [r4, r6]            @ register offset after data processing (no dependency): 2
    subs r0, r0, #1
    bne 1b
b_ldst_end:
    nop

@ load/store multiple, 4 iterations
b_ldm:
    movs r0, #4
1:  push {r4, r5, r6, r7}       @ 1 + 4
    pop {r4, r5, r6, r7}        @ 1 + 4
    ldm r4, {r1, r2, r3}        @ 1 + 3
    stmia r5!, {r1, r2}         @ 1 + 2
    mov r5, r4
    subs r0, r0, #1
    bne 1b
b_ldm_end:
    nop

@ calls and returns, 3 iterations
b_call:
    movs r0, #3
1:  bl leaf                     @ 1 + P
    bl frame                    @ 1 + P
    subs r0, r0, #1
    bne 1b
b_call_end:
    nop

@ multiplies: the M3 and M4 differ
b_mul:
    movs r0, #2
1:  mul r1, r2, r3              @ 1
    mla r1, r2, r3, r1          @ M4 1, M3 2
    smull r1, r2, r3, r6        @ M4 1, M3 3-5 (5)
    smlal r1, r2, r3, r6        @ M4 1, M3 4-7 (5)
    subs r0, r0, #1
    bne 1b
b_mul_end:

    movs r0, #0x18              @ semihosting SYS_EXIT
    ldr r1, =0x20026            @ ADP_Stopped_ApplicationExit
    bkpt 0xab
    b .

    .thumb_func
leaf:
    bx lr                       @ 1 + P

    .thumb_func
frame:
    push {r4, lr}               @ 1 + 2
    adds r4, r4, #0
    pop {r4, pc}                @ 1 + 2 + 3
    .ltorg

    .data
    .balign 8
buf:
    .space 64
