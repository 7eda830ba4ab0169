/* The inner product engine of the fast convolutions on ARMv6-M (Cortex-M0/M0+: no DSP, 8 low registers, a
 * 1-cycle MULS on most parts): tinyml_mat2_s8 and tinyml_mat3_s8 for those cores (tinyml_mat_s8.c has the others).
 *
 * Two pixels share one multiply: their inputs are widened once into lane words X[k] = xa[k] + xb[k] * 2^16 (in
 * scratch, before any output is written, so the output may overlap the input as the planner allows), and
 * X[k] * w = xa[k]*w + xb[k]*w * 2^16. Two such products summed keep each lane exact, since
 * |xa*w0 + xa'*w1| <= 2 * 128 * 127 < 2^15 (the compiler takes this kernel only when no weight is -128): the low
 * lane is then the sign-extended low half, the high lane what remains shifted down by 16. Per group of 4 depth
 * values and a pair of output channels: 16 MACs in 8 MULS and 53 cycles on a Cortex-M0+ (loads 2 cycles, LDM
 * 1 + N), against about 76 for a MUL per MAC. The four sums live in r8-r11 (ADD reaches high registers). */
#include "tinyml_kernels.h"

#if TINYML_ARMV6M

typedef struct {
    const int32_t *x, *x_end; /* lane words, 4 per group of depth values */
    const int8_t *w;          /* pair-blocked weights (tinyml_pw_byte): c0d0 c1d0 c0d2 c1d2 c0d1 c1d1 c0d3 c1d3 */
    int32_t pairs;            /* channel pairs to run (>= 1) */
    int32_t *sums;            /* out: per pair a0, a1, b0, b1 (pixel a: low lane, b: high lane) */
} dot_args_t;

/* One channel and two depth values k, k+1 (words r4, r5) times the weights extracted by EXT0/EXT1 from a weight
 * word, into the lane sum r6, then split into the low-lane (ACC_A) and high-lane (ACC_B) accumulators. */
#define LANE_PAIR(EXT0, EXT1, ACC_A, ACC_B) \
    EXT0 "muls   r6, r4, r6\n\t" EXT1 "muls   r7, r5, r7\n\t" \
    "adds   r6, r6, r7\n\t"                                   \
    "sxth   r7, r6\n\t"                                       \
    "add    " ACC_A ", r7\n\t"                                \
    "subs   r6, r6, r7\n\t"                                   \
    "asrs   r6, r6, #16\n\t"                                  \
    "add    " ACC_B ", r6\n\t"
/* byte 0..3 of word w, sign-extended into d */
#define B0(w, d) "sxtb   " d ", " w "\n\t"
#define B1(w, d) "lsls   " d ", " w ", #16\n\t" "asrs   " d ", " d ", #24\n\t"
#define B2(w, d) "lsls   " d ", " w ", #8\n\t" "asrs   " d ", " d ", #24\n\t"
#define B3(w, d) "asrs   " d ", " w ", #24\n\t"

#define UNUSED __attribute__((unused)) /* a naked function reads its argument in r0 */
__attribute__((naked, noinline)) static void dot2x2(UNUSED const dot_args_t *args) {
    __asm__ volatile(
        ".syntax unified\n\t" /* GCC wraps Thumb-1 inline asm in divided syntax unless -masm-syntax-unified */
        "push   {r4-r7, lr}\n\t"
        "mov    r4, r8\n\t"
        "mov    r5, r9\n\t"
        "mov    r6, r10\n\t"
        "mov    r7, r11\n\t"
        "push   {r4-r7}\n\t"
        "ldm    r0, {r0-r4}\n\t" /* x, x_end, w, pairs, sums */
        "mov    r12, r1\n\t"
        "mov    lr, r0\n\t"
        "push   {r3, r4}\n\t"    /* [sp]: pairs left, [sp, #4]: where the next sums go */
        "mov    r1, r2\n\t"
        "1:\n\t"
        "movs   r2, #0\n\t"
        "mov    r8, r2\n\t"
        "mov    r9, r2\n\t"
        "mov    r10, r2\n\t"
        "mov    r11, r2\n\t"
        "mov    r0, lr\n\t"
        "2:\n\t"
        "ldm    r1!, {r2, r3}\n\t" /* weights of the group: c0d0 c1d0 c0d2 c1d2 in r2, c0d1 c1d1 c0d3 c1d3 in r3 */
        "ldm    r0!, {r4, r5}\n\t"
        LANE_PAIR(B0("r2", "r6"), B0("r3", "r7"), "r8", "r10")
        LANE_PAIR(B1("r2", "r6"), B1("r3", "r7"), "r9", "r11")
        "ldm    r0!, {r4, r5}\n\t"
        LANE_PAIR(B2("r2", "r6"), B2("r3", "r7"), "r8", "r10")
        LANE_PAIR(B3("r2", "r6"), B3("r3", "r7"), "r9", "r11")
        "cmp    r0, r12\n\t"
        "bne    2b\n\t"
        "ldr    r2, [sp, #4]\n\t"
        "mov    r3, r8\n\t"
        "mov    r4, r9\n\t"
        "mov    r5, r10\n\t"
        "mov    r6, r11\n\t"
        "stm    r2!, {r3-r6}\n\t"
        "str    r2, [sp, #4]\n\t"
        "ldr    r2, [sp]\n\t"
        "subs   r2, r2, #1\n\t"
        "str    r2, [sp]\n\t"
        "bne    1b\n\t"
        "add    sp, #8\n\t"
        "pop    {r4-r7}\n\t"
        "mov    r8, r4\n\t"
        "mov    r9, r5\n\t"
        "mov    r10, r6\n\t"
        "mov    r11, r7\n\t"
        "pop    {r4-r7, pc}\n\t");
}
#undef UNUSED
#undef B0
#undef B1
#undef B2
#undef B3
#undef LANE_PAIR

/* Lane words of two int8 vectors: X[k] = xa[k] + xb[k] * 2^16 (mod 2^32). */
static void widen(const int8_t *xa, const int8_t *xb, int32_t depth, int32_t *x) {
    for (int32_t k = 0; k < depth; ++k) {
        x[k] = (int32_t)((uint32_t)(int32_t)xa[k] + ((uint32_t)(int32_t)xb[k] << 16));
    }
}

#define CHUNK 8 /* channel pairs per engine call: 128 bytes of sums on the stack */

/* All output channels of the two pixels in the lane words x (depth % 4 == 0). */
static void lanes_out(const int32_t *x, int32_t depth, const int8_t *w, int32_t out_c, const tinyml_requant_t *q,
                      int8_t *ya, int8_t *yb) {
    const tinyml_channel_t *ch = q->ch;
    const int32_t lo = q->act_min, hi = q->act_max;
    int32_t sums[4 * CHUNK];
    int32_t oc = 0;
    while (oc + 1 < out_c) {
        int32_t n = (out_c - oc) / 2;
        n = n < CHUNK ? n : CHUNK;
        const dot_args_t args = {x, x + depth, w, n, sums};
        dot2x2(&args);
        for (int32_t j = 0; j < n; ++j, oc += 2) {
            const int32_t *s = &sums[4 * j];
            ya[oc] = tinyml_out8(ch[oc].bias + 2 * s[0], &ch[oc], lo, hi, 0);
            ya[oc + 1] = tinyml_out8(ch[oc + 1].bias + 2 * s[1], &ch[oc + 1], lo, hi, 0);
            yb[oc] = tinyml_out8(ch[oc].bias + 2 * s[2], &ch[oc], lo, hi, 0);
            yb[oc + 1] = tinyml_out8(ch[oc + 1].bias + 2 * s[3], &ch[oc + 1], lo, hi, 0);
        }
        w += 2 * depth * n;
    }
    if (oc < out_c) { /* a last odd channel: its groups alone, the lanes split per term */
        int32_t a = 0, b = 0;
        for (int32_t k = 0; k < depth; ++k) {
            const int32_t xa = (int16_t)x[k], xb = (x[k] - xa) >> 16;
            a += xa * w[k];
            b += xb * w[k];
        }
        ya[oc] = tinyml_out8(ch[oc].bias + 2 * a, &ch[oc], lo, hi, 0);
        yb[oc] = tinyml_out8(ch[oc].bias + 2 * b, &ch[oc], lo, hi, 0);
    }
}

TINYML_KERNEL void tinyml_mat2_s8(const int8_t *xa, const int8_t *xb, int32_t depth, const int8_t *weights,
                                  int32_t out_c, const tinyml_requant_t *q, void *scratch, int8_t *ya, int8_t *yb) {
    int32_t *x = (int32_t *)scratch; /* 4 * depth bytes */
    widen(xa, xb, depth, x);
    lanes_out(x, depth, weights, out_c, q, ya, yb);
}

/* Pixels a and b in the lanes, then c in both lanes of a second pass (its input copied first: the outputs of
 * a and b may overwrite it). scratch: 5 * depth bytes of the 6 the compiler gives. */
TINYML_KERNEL void tinyml_mat3_s8(const int8_t *xa, const int8_t *xb, const int8_t *xc, int32_t depth,
                                  const int8_t *weights, int32_t out_c, const tinyml_requant_t *q, void *scratch,
                                  int8_t *ya, int8_t *yb, int8_t *yc) {
    int32_t *x = (int32_t *)scratch;
    int8_t *c = (int8_t *)(x + depth);
    memcpy(c, xc, (size_t)depth);
    widen(xa, xb, depth, x);
    lanes_out(x, depth, weights, out_c, q, ya, yb);
    widen(c, c, depth, x);
    lanes_out(x, depth, weights, out_c, q, yc, yc);
}

#endif /* TINYML_ARMV6M */
