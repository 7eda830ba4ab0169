@ ARMv6-M micro-benchmark for the Cortex-M0+ rules (tests/test_cycles.py): the same instruction stream runs on any
@ Cortex-M, so it runs on an emulated M4 and is priced with the M0+ table.
    .syntax unified
    .thumb
    .text
    .word __stack_top
    .word reset + 1

    .thumb_func
    .global reset
reset:
    ldr r4, =buf
    movs r6, #8

b_v6m:
    movs r0, #4
1:  adds r1, r1, r2             @ 1
    muls r1, r2, r1             @ 1 (fast multiplier)
    ldr r3, [r4]                @ 2
    ldr r2, [r4, #4]            @ 2 (no pipelining on the M0+)
    str r3, [r4, r6]            @ 2
    push {r4, r5}               @ 1 + 2
    pop {r4, r5}                @ 1 + 2
    bl leaf                     @ 3
    bl frame                    @ 3
    subs r0, r0, #1             @ 1
    bne 1b                      @ 2 taken, 1 not
    b 2f                        @ 2
2:
b_v6m_end:
    movs r0, #0x18
    ldr r1, =0x20026
    bkpt 0xab
    b .

    .thumb_func
leaf:
    bx lr                       @ 2

    .thumb_func
frame:
    push {r4, lr}               @ 1 + 2
    pop {r4, pc}                @ 3 + 2
    .ltorg

    .data
    .balign 8
buf:
    .space 16
