/*
 * Writing JSON text into a struct buf. Strings are escaped, and bytes
 * that are not UTF-8 become U+FFFD so every line we print parses.
 */
#ifndef RUNBOOK_JSON_H
#define RUNBOOK_JSON_H

#include <stddef.h>

struct buf;

/* Appends s (len bytes) as a JSON string literal. */
void json_str_n(struct buf *b, const char *s, size_t len);
void json_str(struct buf *b, const char *s);
/* Appends "key": "value" with a leading comma unless first. */
void json_kv(struct buf *b, const char *key, const char *value, int first);

#endif
