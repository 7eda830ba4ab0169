/* Raspberry Pi RP2040 (Pico): the second-stage boot (boot2) the bootrom runs from the first 256 bytes of flash,
 * then clocks to 125 MHz and UART0 on GP0 (TX) / GP1 (RX).
 *
 * boot2: the bootrom copies flash bytes 0-255 to SRAM, checks that bytes 252-255 hold the CRC-32/MPEG-2 of bytes
 * 0-251 (patched in after linking: uf2.py boot2-crc) and runs it. It sets up the XIP SSI for the 03h serial read
 * command, which every SPI NOR flash answers (slower than quad XIP, but it needs nothing chip-specific), then
 * points VTOR at the vector table at flash + 0x100, loads the stack pointer and jumps to Reset_Handler.
 * Position-independent (it runs from SRAM at 0x20041F00): PC-relative literals only.
 *
 * Clocks: 12 MHz crystal -> PLL_SYS (REFDIV 1, FBDIV 125: VCO 1500 MHz, POSTDIV 6 x 2) -> clk_sys 125 MHz;
 * clk_peri = clk_sys feeds the UART. Every wait is bounded: a part whose crystal never starts keeps running on
 * its ring oscillator (slower, and the UART baud rate is then wrong) instead of hanging. */
#include "cortex_m.h"
#include "runtime.h"

/* Top-level asm in a non-executable section: boot2 is not part of this program's call graph (it runs before, from
 * SRAM), so the stack derivation and the disassembly checks leave it out; its bytes are Thumb code all the same. */
__asm__(
    ".section .boot2, \"a\"\n\t"
    ".syntax unified\n\t"
    ".thumb\n\t"
    ".balign 4\n"
    "tinyml_boot2:\n\t"
    "push   {lr}\n\t"              /* entered by the bootrom with LR 0; a caller with LR set gets it back */
    "ldr    r3, =0x18000000\n\t"   /* XIP_SSI */
    "movs   r1, #0\n\t"
    "str    r1, [r3, #0x08]\n\t"   /* SSIENR: off while configuring */
    "movs   r1, #4\n\t"
    "str    r1, [r3, #0x14]\n\t"   /* BAUDR: SCK = clk_sys / 4 (31.25 MHz at 125 MHz) */
    "ldr    r1, =0x001F0300\n\t"
    "str    r1, [r3, #0x00]\n\t"   /* CTRLR0: standard SPI, 32-bit frames, TMOD EEPROM read */
    "ldr    r1, =0x03000218\n\t"
    "ldr    r0, =0x180000F4\n\t"
    "str    r1, [r0]\n\t"          /* SPI_CTRLR0: command 03h, 8-bit instruction, 24-bit address */
    "movs   r1, #0\n\t"
    "str    r1, [r3, #0x04]\n\t"   /* CTRLR1: one data frame per read */
    "movs   r1, #1\n\t"
    "str    r1, [r3, #0x08]\n\t"   /* SSIENR: on; flash is now mapped at 0x10000000 */
    "pop    {r0}\n\t"
    "cmp    r0, #0\n\t"
    "beq    1f\n\t"
    "bx     r0\n"
    "1:\n\t"
    "ldr    r0, =0x10000100\n\t"   /* the vector table, after boot2 */
    "ldr    r1, =0xE000ED08\n\t"
    "str    r0, [r1]\n\t"          /* VTOR */
    "ldmia  r0, {r0, r1}\n\t"
    "msr    msp, r0\n\t"
    "bx     r1\n\t"
    ".ltorg\n\t"
    ".previous\n");

#define RESETS_RESET      REG32(0x4000C000u)
#define RESETS_RESET_SET  REG32(0x4000E000u) /* +0x2000: atomic set alias */
#define RESETS_RESET_CLR  REG32(0x4000F000u) /* +0x3000: atomic clear alias */
#define RESETS_RESET_DONE REG32(0x4000C008u)
#define RESET_IO_BANK0    (1u << 5)
#define RESET_PADS_BANK0  (1u << 8)
#define RESET_PLL_SYS     (1u << 12)
#define RESET_UART0       (1u << 22)

#define XOSC_CTRL         REG32(0x40024000u)
#define XOSC_STATUS       REG32(0x40024004u)
#define XOSC_STARTUP      REG32(0x4002400Cu)
#define XOSC_FREQ_1_15MHZ 0xAA0u
#define XOSC_ENABLE       (0xFABu << 12)
#define XOSC_STABLE       (1u << 31)
#define XOSC_DELAY        47u /* (12 MHz / 1000 + 128) / 256: about 1 ms */

#define PLL_SYS_CS        REG32(0x40028000u)
#define PLL_SYS_PWR       REG32(0x40028004u)
#define PLL_SYS_PWR_CLR   REG32(0x4002B004u)
#define PLL_SYS_FBDIV     REG32(0x40028008u)
#define PLL_SYS_PRIM      REG32(0x4002800Cu)
#define PLL_LOCK          (1u << 31)
#define PLL_PWR_PD        (1u << 0)
#define PLL_PWR_POSTDIVPD (1u << 3)
#define PLL_PWR_VCOPD     (1u << 5)

#define CLK_REF_CTRL      REG32(0x40008030u)
#define CLK_REF_SELECTED  REG32(0x40008038u)
#define CLK_SYS_CTRL      REG32(0x4000803Cu)
#define CLK_SYS_SELECTED  REG32(0x40008044u)
#define CLK_PERI_CTRL     REG32(0x40008048u)
#define CLK_REF_SRC_XOSC  2u
#define CLK_SYS_SRC_AUX   1u  /* AUXSRC 0: pll_sys */
#define CLK_PERI_ENABLE   (1u << 11) /* AUXSRC 0: clk_sys */

#define IO_BANK0_GPIO0_CTRL REG32(0x40014004u)
#define IO_BANK0_GPIO1_CTRL REG32(0x4001400Cu)
#define GPIO_FUNC_UART      2u

#define WAIT_POLLS 1000000u /* tens of ms even on the ring oscillator; each wait takes microseconds */

static void wait_set(volatile uint32_t *reg, uint32_t mask) {
    for (uint32_t i = 0; i < WAIT_POLLS && (*reg & mask) != mask; i++) {
    }
}

static void unreset(uint32_t bits) {
    RESETS_RESET_CLR = bits;
    wait_set(&RESETS_RESET_DONE, bits);
}

static void clocks_125mhz(void) {
    XOSC_CTRL = XOSC_FREQ_1_15MHZ;
    XOSC_STARTUP = XOSC_DELAY;
    XOSC_CTRL = XOSC_FREQ_1_15MHZ | XOSC_ENABLE;
    wait_set(&XOSC_STATUS, XOSC_STABLE);
    if (!(XOSC_STATUS & XOSC_STABLE)) {
        return; /* no crystal: stay on the ring oscillator */
    }
    CLK_REF_CTRL = CLK_REF_SRC_XOSC;
    wait_set(&CLK_REF_SELECTED, 1u << CLK_REF_SRC_XOSC);
    CLK_SYS_CTRL = 0; /* clk_sys from clk_ref (the crystal) while the PLL starts */
    wait_set(&CLK_SYS_SELECTED, 1u);

    RESETS_RESET_SET = RESET_PLL_SYS;
    unreset(RESET_PLL_SYS);
    PLL_SYS_CS = 1u;    /* REFDIV 1 */
    PLL_SYS_FBDIV = 125u;
    PLL_SYS_PWR_CLR = PLL_PWR_PD | PLL_PWR_VCOPD;
    wait_set(&PLL_SYS_CS, PLL_LOCK);
    PLL_SYS_PRIM = (6u << 16) | (2u << 12); /* 1500 MHz / 6 / 2 = 125 MHz */
    PLL_SYS_PWR_CLR = PLL_PWR_POSTDIVPD;

    CLK_SYS_CTRL = CLK_SYS_SRC_AUX; /* glitchless switch to pll_sys */
    wait_set(&CLK_SYS_SELECTED, 1u << CLK_SYS_SRC_AUX);
}

void soc_init(void) {
    clocks_125mhz();
    CLK_PERI_CTRL = CLK_PERI_ENABLE;
    unreset(RESET_IO_BANK0 | RESET_PADS_BANK0 | RESET_UART0);
    IO_BANK0_GPIO0_CTRL = GPIO_FUNC_UART; /* GP0: UART0 TX */
    IO_BANK0_GPIO1_CTRL = GPIO_FUNC_UART; /* GP1: UART0 RX */
}
