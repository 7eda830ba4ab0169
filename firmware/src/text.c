#include "text.h"

static void put(text_t *t, char c) {
    if (t->len < t->cap) t->buf[t->len++] = c;
}

void text_str(text_t *t, const char *s) {
    while (*s) put(t, *s++);
}

void text_u64(text_t *t, uint64_t v) {
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    while (n) put(t, digits[--n]);
}

void text_i32(text_t *t, int32_t v) {
    if (v < 0) {
        put(t, '-');
        text_u64(t, (uint64_t)(-(int64_t)v));
    } else {
        text_u64(t, (uint64_t)v);
    }
}

void text_hex32(text_t *t, uint32_t v) {
    static const char hex[] = "0123456789abcdef";
    text_str(t, "0x");
    for (int shift = 28; shift >= 0; shift -= 4) put(t, hex[(v >> shift) & 0xFu]);
}

void text_kv(text_t *t, const char *key, const char *value) {
    text_str(t, key);
    put(t, '=');
    text_str(t, value);
    put(t, '\n');
}

void text_kv_u64(text_t *t, const char *key, uint64_t value) {
    text_str(t, key);
    put(t, '=');
    text_u64(t, value);
    put(t, '\n');
}
