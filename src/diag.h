/*
 * Diagnostics about a runbook file: every problem is collected with its
 * position, then printed together, sorted by position, as
 * "file:line:col: message". The list owns its messages.
 */
#ifndef RUNBOOK_DIAG_H
#define RUNBOOK_DIAG_H

#include <stddef.h>
#include <stdio.h>

/* Positions count from 1; line 0 means "the file as a whole". */
struct src_pos {
	unsigned line;
	unsigned col;
};

struct diag_entry {
	struct src_pos pos;
	size_t seq;
	char *msg;
};

struct diag {
	const char *file;	/* borrowed; as the user named it */
	struct diag_entry *v;
	size_t n;
	size_t cap;
};

void diag_init(struct diag *d, const char *file);
void diag_release(struct diag *d);

struct buf;
/*
 * Appends s (len bytes) for a message: control characters escaped (a
 * message stays one line), cut after max characters on a UTF-8
 * boundary with "..." appended.
 */
void diag_quote(struct buf *b, const char *s, size_t len, size_t max);
void diag_at(struct diag *d, const struct src_pos *pos, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
size_t diag_count(const struct diag *d);
/* Sorts by position and prints one line per problem. */
void diag_print(struct diag *d, FILE *fp);

#endif
