/*
 * Collected diagnostics. Entries keep their insertion order as a tie
 * breaker so problems at one position print in the order found.
 */
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>

#include "buf.h"

/* Past this many, more problems add nothing a person can act on. */
#define DIAG_MAX 1000

void diag_quote(struct buf *b, const char *s, size_t len, size_t max)
{
	size_t chars = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c & 0xc0) != 0x80 && chars++ == max) {
			buf_adds(b, "...");
			return;
		}
		if (c == '\n')
			buf_adds(b, "\\n");
		else if (c == '\t')
			buf_adds(b, "\\t");
		else if (c < 0x20 || c == 0x7f)
			buf_addf(b, "\\x%02x", c);
		else
			buf_addc(b, (char)c);
	}
}

void diag_init(struct diag *d, const char *file)
{
	d->file = file;
	d->v = NULL;
	d->n = d->cap = 0;
}

void diag_release(struct diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].msg);
	free(d->v);
	d->v = NULL;
	d->n = d->cap = 0;
}

void diag_at(struct diag *d, const struct src_pos *pos, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	if (d->n >= DIAG_MAX)
		return;
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	d->v = xgrow(d->v, &d->cap, d->n + 1, sizeof(*d->v));
	d->v[d->n].pos = pos ? *pos : (struct src_pos){ 0, 0 };
	d->v[d->n].seq = d->n;
	d->v[d->n].msg = buf_detach(&b);
	d->n++;
}

size_t diag_count(const struct diag *d)
{
	return d->n;
}

static int cmp_entry(const void *pa, const void *pb)
{
	const struct diag_entry *a = pa, *b = pb;

	if (a->pos.line != b->pos.line)
		return a->pos.line < b->pos.line ? -1 : 1;
	if (a->pos.col != b->pos.col)
		return a->pos.col < b->pos.col ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

void diag_print(struct diag *d, FILE *fp)
{
	if (d->n > 1)
		qsort(d->v, d->n, sizeof(*d->v), cmp_entry);
	for (size_t i = 0; i < d->n; i++) {
		const struct diag_entry *e = &d->v[i];
		unsigned line = e->pos.line ? e->pos.line : 1;
		unsigned col = e->pos.col ? e->pos.col : 1;

		fprintf(fp, "%s:%u:%u: %s\n", d->file, line, col, e->msg);
	}
	if (d->n >= DIAG_MAX)
		fprintf(fp, "%s: stopped after %d problems\n", d->file,
			DIAG_MAX);
}
