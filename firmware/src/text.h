/* A bounded string builder for INFO replies and fault reports (no printf, no heap). */
#ifndef TINYML_TEXT_H
#define TINYML_TEXT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *buf;
    size_t len;
    size_t cap;
} text_t;

void text_str(text_t *t, const char *s);
void text_u64(text_t *t, uint64_t v);
void text_i32(text_t *t, int32_t v);
void text_hex32(text_t *t, uint32_t v);
/* Appends "key=value\n". */
void text_kv(text_t *t, const char *key, const char *value);
void text_kv_u64(text_t *t, const char *key, uint64_t value);

#endif
