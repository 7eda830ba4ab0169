/* The first-layer engine of the DSP cores (conv2d_3x3_1ch_s8 and conv2d_im2col_s8's 3x3 RGB path): their weights
 * are tiny (out_c x 9 or x 27), so each pixel's patch is widened once into K words of int16 pairs (shared by all
 * output channels) and the weights, doubled int16 pairs in the same pairing, sit with each pair of channels'
 * folded biases and requantization parameters in one record (built in scratch when the layer starts). The engine
 * then runs blocks of 3 pixels x 2 channels: per pair word 5 loads and 6 SMLADs, no SXTB16 on the weights.
 *
 * Widened patches: [block][pixel 0..2][word k < K], each pixel's K words contiguous. Records, one per pair of
 * channels (2j, 2j+1): [bias0, bias1], [w0 word k, w1 word k] for k < K, [M0, radd0, rshift0, M1, radd1,
 * rshift1]: 8 + 2K words. */
#include "tinyml_kernels.h"

#if defined(__ARM_FEATURE_DSP)
void tinyml_first_records(int32_t *rec, const tinyml_channel_t *ch, int32_t out_c, int32_t k) {
    for (int32_t c = 0; c + 1 < out_c; c += 2, rec += TINYML_FIRST_REC(k), ch += 2) {
        int32_t *q = rec + 2 + 2 * k;
        rec[0] = ch[0].bias;
        rec[1] = ch[1].bias;
        q[0] = ch[0].mult;
        q[1] = ch[0].radd;
        q[2] = ch[0].rshift;
        q[3] = ch[1].mult;
        q[4] = ch[1].radd;
        q[5] = ch[1].rshift;
    }
}

void tinyml_first_weights(int32_t *rec, int32_t c, int32_t k, const int16_t *taps, const int8_t (*pairs)[2]) {
    int32_t *w = rec + (c / 2) * TINYML_FIRST_REC(k) + 2 + (c & 1);
    for (int32_t j = 0; j < k; ++j) {
        const int32_t lo = taps[pairs[j][0]], hi = pairs[j][1] < 0 ? 0 : taps[pairs[j][1]];
        w[2 * j] = tinyml_pack16(lo, hi);
    }
}

/* Word k of a block: 3 activation words (r6-r8, LDRs on r12) and the pair's 2 weight words (r9, r10; r11 already
 * points past the record, hence the negative offsets); 6 SMLADs into the accumulators r0-r2 (channel 2j, pixels
 * 0-2) and r3-r5 (channel 2j+1). 5 LDRs back to back (2+1+1+1+1) + 6 = 12 cycles for 12 MACs. */
#define FIRST_WORD(k, K)                                                                      \
    "ldr    r6, [r12, #4*" #k "]\n\t"                                                         \
    "ldr    r7, [r12, #4*" #K "+4*" #k "]\n\t"                                                 \
    "ldr    r8, [r12, #8*" #K "+4*" #k "]\n\t"                                                 \
    "ldr    r9, [r11, #8+8*" #k "-(32+8*" #K ")]\n\t"                                         \
    "ldr    r10, [r11, #12+8*" #k "-(32+8*" #K ")]\n\t"                                       \
    "smlad  r0, r6, r9, r0\n\t"                                                               \
    "smlad  r1, r7, r9, r1\n\t"                                                               \
    "smlad  r2, r8, r9, r2\n\t"                                                               \
    "smlad  r3, r6, r10, r3\n\t"                                                              \
    "smlad  r4, r7, r10, r4\n\t"                                                              \
    "smlad  r5, r8, r10, r5\n\t"

/* Requantize three accumulators with M r6, radd r7, rshift r8 (full int8 range: SSAT clamps). ReLU form (out_zp
 * -128, TINYML_RQ_MUL_RELU): SMMLAR, ASR, SSAT, 3 cycles an output; sign form (TINYML_RQ_MUL_SIGN without its
 * scratch register: t + (t >> 31) + radd): 5. */
#define FIRST_RQ_RELU(a, b, c)                                                                \
    "smmlar " a ", " a ", r6, r7\n\t" "smmlar " b ", " b ", r6, r7\n\t"                       \
    "smmlar " c ", " c ", r6, r7\n\t" "asr    " a ", " a ", r8\n\t"                           \
    "asr    " b ", " b ", r8\n\t" "asr    " c ", " c ", r8\n\t"                               \
    "ssat   " a ", #8, " a "\n\t" "ssat   " b ", #8, " b "\n\t" "ssat   " c ", #8, " c "\n\t"
#define FIRST_RQ_SIGN1(a)                                                                     \
    "smmulr " a ", " a ", r6\n\t" "add    " a ", " a ", " a ", asr #31\n\t"                  \
    "add    " a ", " a ", r7\n\t" "asr    " a ", " a ", r8\n\t" "ssat   " a ", #8, " a "\n\t"
#define FIRST_RQ_SIGN(a, b, c) FIRST_RQ_SIGN1(a) FIRST_RQ_SIGN1(b) FIRST_RQ_SIGN1(c)

/* A pair's sums: word 0 starts from the biases (7 LDRs 8, 6 SMLADs), then the further words; r11 moves past the
 * record. 12K + 2 cycles. */
#define FIRST_SUMS(K, WORDS)                                                                  \
    "ldr    r6, [r12]\n\t"                                                                    \
    "ldr    r7, [r12, #4*" #K "]\n\t"                                                          \
    "ldr    r8, [r12, #8*" #K "]\n\t"                                                          \
    "ldr    r2, [r11], #(32+8*" #K ")\n\t"                                                    \
    "ldr    r5, [r11, #4-(32+8*" #K ")]\n\t"                                                  \
    "ldr    r9, [r11, #8-(32+8*" #K ")]\n\t"                                                  \
    "ldr    r10, [r11, #12-(32+8*" #K ")]\n\t"                                                \
    "smlad  r0, r6, r9, r2\n\t"                                                               \
    "smlad  r1, r7, r9, r2\n\t"                                                               \
    "smlad  r3, r6, r10, r5\n\t"                                                              \
    "smlad  r4, r7, r10, r5\n\t"                                                              \
    "smlad  r2, r8, r9, r2\n\t"                                                               \
    "smlad  r5, r8, r10, r5\n\t"                                                              \
    WORDS

/* One engine: `blocks` blocks of 3 pixels, every pair of channels each. Registers: accumulators r0-r5, activations
 * r6-r8, weights r9-r10, record r11, patch block r12, output lr; frame [sp]: ostride, rec_end, rec, blocks left.
 * Cortex-M4 cycles per pair (ReLU form): word 0 with the biases (7 LDRs 8, 6 SMLADs) 14, each further word 12,
 * requantize and store 6 outputs 36 (parameters, ostride and rec_end in two runs of 4 LDRs 10, the two pixel
 * pointers 2, 18 + 6 STRBs), loop 4: 12K + 42, i.e. 102 for 54 MACs at K = 5, 210 for 162 at K = 14. */
#define FIRST_ENGINE(NAME, K, WORDS, RQ)                                                      \
    __attribute__((naked, noinline)) void NAME(__attribute__((unused)) const tinyml_first_run_t *r) { \
        __asm__ volatile(                                                                     \
            "push   {r4-r11, lr}\n\t"                                                         \
            "ldm    r0, {r1-r6}\n\t"     /* ostride, rec_end, rec, blocks, act, out */        \
            "push   {r1-r4}\n\t"                                                              \
            "mov    r12, r5\n\t"                                                              \
            "sub    lr, r6, #1\n\t"    /* lr: the byte before the next output of pixel 0 */   \
            "1:\n\t"                     /* per block of 3 pixels */                          \
            "ldr    r11, [sp, #8]\n\t"                                                        \
            "2:\n\t"                     /* per pair of channels */                           \
            FIRST_SUMS(K, WORDS)                                                              \
            "ldr    r6, [r11, #-24]\n\t" /* M0, radd0, rshift0; ostride */                    \
            "ldr    r7, [r11, #-20]\n\t"                                                      \
            "ldr    r8, [r11, #-16]\n\t"                                                      \
            "ldr    r9, [sp]\n\t"                                                             \
            "add    r9, lr, r9\n\t"      /* pixel 1's output */                               \
            "rsb    r10, lr, r9, lsl #1\n\t" /* pixel 2's */                                  \
            RQ("r0", "r1", "r2")                                                              \
            "strb   r0, [lr, #1]!\n\t"                                                        \
            "strb   r1, [r9, #1]\n\t"                                                         \
            "strb   r2, [r10, #1]\n\t"                                                        \
            "ldr    r6, [r11, #-12]\n\t" /* M1, radd1, rshift1; rec_end */                    \
            "ldr    r7, [r11, #-8]\n\t"                                                       \
            "ldr    r8, [r11, #-4]\n\t"                                                       \
            "ldr    r0, [sp, #4]\n\t"                                                         \
            RQ("r3", "r4", "r5")                                                              \
            "strb   r4, [r9, #2]\n\t"                                                         \
            "strb   r5, [r10, #2]\n\t"                                                        \
            "strb   r3, [lr, #1]!\n\t"                                                        \
            "cmp    r11, r0\n\t"                                                              \
            "bne    2b\n\t"                                                                   \
            "ldr    r0, [sp]\n\t"        /* next block: out += 3 ostride (out_c done) */      \
            "ldr    r1, [sp, #12]\n\t"                                                        \
            "add    r12, r12, #12*" #K "\n\t"                                                 \
            "add    lr, lr, r0, lsl #1\n\t"                                                   \
            "subs   r1, r1, #1\n\t"                                                           \
            "str    r1, [sp, #12]\n\t"                                                        \
            "bne    1b\n\t"                                                                   \
            "add    sp, sp, #16\n\t"                                                          \
            "pop    {r4-r11, pc}\n\t");                                                       \
    }

/* The engine for exactly 8 output channels (ostride 8, ReLU form): two pairs a loop, each pixel's outputs at
 * fixed offsets from lr (pixel p, channel c: lr + 1 + 8p + c), so no pixel pointers and half the loop tests.
 * Cortex-M4 cycles per two pairs: 2 (12K + 2) sums, requantize and store 12 outputs 4 x (3 LDRs 4 + 9 + 3 STRBs)
 * + 1 (rec_end) = 65, loop 4: 12K + 36.5 a pair (the general engine 12K + 42), 96.5 for 54 MACs at K = 5, 204.5
 * for 162 at K = 14. */
#define FIRST_STORE8(a, b, c, o)                                                               \
    "strb   " a ", [lr, #" #o "]\n\t" "strb   " b ", [lr, #8+" #o "]\n\t"                       \
    "strb   " c ", [lr, #16+" #o "]\n\t"
#define FIRST_RQ8(a, b, c, off)                                                               \
    "ldr    r6, [r11, #" #off "]\n\t" "ldr    r7, [r11, #" #off "+4]\n\t"                        \
    "ldr    r8, [r11, #" #off "+8]\n\t" FIRST_RQ_RELU(a, b, c)
#define FIRST_ENGINE8(NAME, K, WORDS)                                                         \
    __attribute__((naked, noinline)) void NAME(__attribute__((unused)) const tinyml_first_run_t *r) { \
        __asm__ volatile(                                                                     \
            "push   {r4-r11, lr}\n\t"                                                         \
            "ldm    r0, {r1-r6}\n\t"     /* ostride (8), rec_end, rec, blocks, act, out */    \
            "push   {r1-r4}\n\t"                                                              \
            "mov    r12, r5\n\t"                                                              \
            "sub    lr, r6, #1\n\t"    /* lr: the byte before pixel 0's next pair of outputs */ \
            "1:\n\t"                     /* per block of 3 pixels */                          \
            "ldr    r11, [sp, #8]\n\t"                                                        \
            "2:\n\t"                     /* per two pairs of channels */                      \
            FIRST_SUMS(K, WORDS)                                                              \
            FIRST_RQ8("r0", "r1", "r2", -24) FIRST_STORE8("r0", "r1", "r2", 1)                \
            FIRST_RQ8("r3", "r4", "r5", -12) FIRST_STORE8("r3", "r4", "r5", 2)                \
            FIRST_SUMS(K, WORDS)                                                              \
            FIRST_RQ8("r0", "r1", "r2", -24) FIRST_STORE8("r0", "r1", "r2", 3)                \
            "ldr    r6, [r11, #-12]\n\t"                                                      \
            "ldr    r7, [r11, #-8]\n\t"                                                       \
            "ldr    r8, [r11, #-4]\n\t"                                                       \
            "ldr    r0, [sp, #4]\n\t"  /* rec_end */                                          \
            FIRST_RQ_RELU("r3", "r4", "r5")                                                   \
            "strb   r4, [lr, #12]\n\t"                                                        \
            "strb   r5, [lr, #20]\n\t"                                                        \
            "strb   r3, [lr, #4]!\n\t"                                                        \
            "cmp    r11, r0\n\t"                                                              \
            "bne    2b\n\t"                                                                   \
            "ldr    r1, [sp, #12]\n\t"  /* next block: out += 16 more (out_c done) */         \
            "add    r12, r12, #12*" #K "\n\t"                                                 \
            "add    lr, lr, #16\n\t"                                                          \
            "subs   r1, r1, #1\n\t"                                                           \
            "str    r1, [sp, #12]\n\t"                                                        \
            "bne    1b\n\t"                                                                   \
            "add    sp, sp, #16\n\t"                                                          \
            "pop    {r4-r11, pc}\n\t");                                                       \
    }

#define FIRST_WORDS5(K) FIRST_WORD(1, K) FIRST_WORD(2, K) FIRST_WORD(3, K) FIRST_WORD(4, K)
#define FIRST_WORDS14(K)                                                                      \
    FIRST_WORDS5(K) FIRST_WORD(5, K) FIRST_WORD(6, K) FIRST_WORD(7, K) FIRST_WORD(8, K) FIRST_WORD(9, K) \
    FIRST_WORD(10, K) FIRST_WORD(11, K) FIRST_WORD(12, K) FIRST_WORD(13, K)

FIRST_ENGINE(tinyml_first5_relu, 5, FIRST_WORDS5(5), FIRST_RQ_RELU)
FIRST_ENGINE(tinyml_first5_sign, 5, FIRST_WORDS5(5), FIRST_RQ_SIGN)
FIRST_ENGINE(tinyml_first14_relu, 14, FIRST_WORDS14(14), FIRST_RQ_RELU)
FIRST_ENGINE(tinyml_first14_sign, 14, FIRST_WORDS14(14), FIRST_RQ_SIGN)
FIRST_ENGINE8(tinyml_first5_relu8, 5, FIRST_WORDS5(5))
FIRST_ENGINE8(tinyml_first14_relu8, 14, FIRST_WORDS14(14))
#else
typedef int tinyml_first_unused_t; /* no DSP extension: nothing here (ISO C wants a declaration) */
#endif
