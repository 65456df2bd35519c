/*
 * Collected diagnostics. Entries keep their insertion order as a tie
 * breaker so problems at one position print in the order found.
 */
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>

#include "buf.h"
#include "json.h"

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
	d->files = NULL;
	d->n_files = 0;
	d->refs = NULL;
	d->n_refs = 0;
}

void diag_release(struct diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].msg);
	free(d->v);
	d->v = NULL;
	d->n = d->cap = 0;
	for (size_t i = 0; i < d->n_files; i++)
		free(d->files[i].name);
	free(d->files);
	d->files = NULL;
	d->n_files = 0;
	for (size_t i = 0; i < d->n_refs; i++)
		free(d->refs[i]);
	free(d->refs);
	d->refs = NULL;
	d->n_refs = 0;
}

unsigned diag_add_file(struct diag *d, const char *name,
		       const struct src_pos *from)
{
	if (d->n_files >= DIAG_MAX_FILES)
		return 0;
	d->files = xrealloc(d->files, (d->n_files + 1) * sizeof(*d->files));
	d->files[d->n_files].name = xstrdup(name);
	d->files[d->n_files].from = *from;
	d->n_files++;
	return (unsigned)d->n_files << DIAG_FILE_SHIFT;
}

static size_t file_index(const struct diag *d, struct src_pos pos)
{
	size_t k = pos.line >> DIAG_FILE_SHIFT;

	return k <= d->n_files ? k : 0;
}

const char *diag_file_of(const struct diag *d, struct src_pos pos,
			 unsigned *line)
{
	size_t k = file_index(d, pos);

	*line = pos.line & ((1u << DIAG_FILE_SHIFT) - 1);
	return k ? d->files[k - 1].name : d->file;
}

const char *diag_ref(struct diag *d, struct src_pos of, struct src_pos at)
{
	struct buf b = BUF_INIT;
	unsigned line;
	const char *name = diag_file_of(d, of, &line);

	if (file_index(d, of) == file_index(d, at))
		buf_addf(&b, "line %u", line);
	else
		buf_addf(&b, "%s:%u", name, line);
	d->refs = xrealloc(d->refs, (d->n_refs + 1) * sizeof(*d->refs));
	d->refs[d->n_refs++] = buf_detach(&b);
	return d->refs[d->n_refs - 1];
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
		unsigned line, col = e->pos.col ? e->pos.col : 1;
		const char *name = diag_file_of(d, e->pos, &line);
		size_t k = file_index(d, e->pos), hops = 0;

		fprintf(fp, "%s:%u:%u: %s", name, line ? line : 1, col, e->msg);
		/* the chain of includes; each one's from is in an earlier file */
		while (k && hops++ < DIAG_MAX_FILES) {
			struct src_pos from = d->files[k - 1].from;
			const char *in = diag_file_of(d, from, &line);

			fprintf(fp, "%s%s:%u:%u", hops == 1 ?
				" (included at " : ", included at ", in, line,
				from.col);
			k = file_index(d, from);
		}
		fputs(hops ? ")\n" : "\n", fp);
	}
	if (d->n >= DIAG_MAX)
		fprintf(fp, "%s: stopped after %d problems\n", d->file,
			DIAG_MAX);
}

void diag_json(const struct diag *d, const char *file, bool ok,
	       struct buf *b)
{
	buf_adds(b, "{");
	json_kv(b, "event", "validate", 1);
	json_kv(b, "file", file, 0);
	buf_addf(b, ",\"ok\":%s,\"problems\":[", ok ? "true" : "false");
	for (size_t i = 0; i < d->n; i++) {
		unsigned line;
		const char *in = diag_file_of(d, d->v[i].pos, &line);

		buf_addf(b, "%s{", i ? "," : "");
		if (in != d->file) {	/* an included file (docs/reuse.md) */
			json_kv(b, "file", in, 1);
			buf_addc(b, ',');
		}
		buf_addf(b, "\"line\":%u,\"column\":%u,\"message\":",
			 line ? line : 1, d->v[i].pos.col ? d->v[i].pos.col : 1);
		json_str(b, d->v[i].msg);
		buf_addc(b, '}');
	}
	buf_adds(b, "]}\n");
}
