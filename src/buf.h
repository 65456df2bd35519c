/*
 * Growable byte buffers and string vectors, and allocation that never
 * returns NULL.
 *
 * A struct buf always holds a NUL-terminated string once anything has
 * been added (data is NULL only while empty and never grown). The buffer
 * owns data until buf_detach() hands it to the caller. xmalloc() and
 * friends abort the process with a message when memory runs out: the
 * journal, not the heap, is what makes a run recoverable.
 */
#ifndef RUNBOOK_BUF_H
#define RUNBOOK_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Grows *p (an array of *cap elements of size sz) to hold at least need. */
void *xgrow(void *p, size_t *cap, size_t need, size_t sz);

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT { NULL, 0, 0 }

void buf_grow(struct buf *b, size_t extra);
void buf_add(struct buf *b, const void *data, size_t len);
void buf_adds(struct buf *b, const char *s);
void buf_addc(struct buf *b, char c);
void buf_addf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void buf_vaddf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Empties the buffer but keeps its memory. */
/*
 * Appends s (n bytes) with every control character shown as \xNN (C0,
 * DEL) or \u00NN (C1, in UTF-8), so recorded text cannot drive a
 * terminal; newlines and tabs are kept when keep_lines is set.
 */
void buf_add_visible(struct buf *b, const char *s, size_t n, bool keep_lines);
void buf_reset(struct buf *b);
/* Returns the bytes (never NULL) and leaves the buffer empty. */
char *buf_detach(struct buf *b);
/* Frees the memory; the buffer is empty and reusable afterwards. */
void buf_release(struct buf *b);
/* Text for reading: "" while nothing was added. */
const char *buf_str(const struct buf *b);

/* A NULL-terminated vector of owned strings, for argv and envp. */
struct strvec {
	char **v;
	size_t n;
	size_t cap;
};

#define STRVEC_INIT { NULL, 0, 0 }

void strvec_push(struct strvec *sv, const char *s);
void strvec_push_owned(struct strvec *sv, char *s);
void strvec_release(struct strvec *sv);

#endif
