/*
 * Redaction: secret values become [secret:NAME]; matches of `redact`
 * patterns, of the built-in token patterns and PEM private key blocks
 * become [redacted].
 *
 * Always two passes in this order: secrets on the raw bytes, then
 * patterns on the result, so a pattern only ever sees placeholders where
 * secrets were and can never reveal part of one. The stream runs the same
 * passes as two stages, each with its own hold-back:
 *
 *   raw --(1: secrets)--> mid --(2: whole lines, patterns)--> emit
 *
 * raw keeps the last (longest secret - 1) bytes, the only bytes that can
 * still be the start of a secret; it is the only place the stream keeps
 * unredacted secret bytes, a fixed allocation wiped on free. Stage 1 is
 * exact: the stream masks secrets as redact_str() does however the input
 * is cut. mid is secret-free text, held until its lines are complete (at
 * most 64 KiB of an incomplete line) and while a private key block is
 * open (at most 64 KiB). Stage 2 cuts at line ends, so patterns that
 * match within a line, and whole key blocks, are masked as redact_str()
 * masks them too.
 *
 * A secret reference in the record form, {{ secrets.NAME }} (see
 * TPL_SECRET_KEEP), is never masked, not even in part: it is no secret,
 * and the rollback replayed from the record resolves it again. Patterns
 * see each such reference as blanks (where a value ends, as in
 * "password= "), and no byte of one is ever inside a mask. A reference
 * has no newline, so stage 2 never cuts one at a line end; a forced cut
 * moves past it.
 */
#include "redact.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "match.h"

#define NONE SIZE_MAX
/* Raw bytes taken into stage 1 at a time, so a huge feed is not copied. */
#define SLICE (64u * 1024)
/* Most of an incomplete line, and of an open key block, stage 2 holds. */
#define LINE_HOLD (64u * 1024)
#define PEM_HOLD (64u * 1024)
/*
 * Kept after a forced cut in an overlong line, so a token that is still
 * arriving is not cut in two; longer than any built-in match.
 */
#define CUT_TAIL (4u * 1024)
#define PEM_LABEL_MAX 64

static const char MASK[] = "[redacted]";
static const char MASK_ERROR[] = "[redacted: pattern error]";

struct secret {
	char *value;	/* not NUL-terminated; wiped before free */
	size_t len;
	char *mark;	/* [secret:NAME] */
	size_t marklen;
};

struct redactor {
	struct secret *sec;	/* longest value first, ties in added order */
	size_t nsec, seccap;
	size_t maxlen;
	struct pattern **pat;
	size_t npat, patcap;
	bool builtins;	/* also PEM private key blocks */
};

/*
 * Built-in token forms. Each is specific enough to leave ordinary text
 * alone ("password reset page", "tokens: 5"). Where only a value is
 * masked, \K starts the match at the value, and a value that already is
 * a [secret:NAME] placeholder is left as it is.
 */
/* redacting twice changes nothing: a mark is never masked again */
#define NOT_MARK(after) "(?!(?:\\[secret:[^\\]\\s]+\\]|\\[redacted\\])" after ")"

static const char *const builtin_src[] = {
	/* AWS access key ids (long-term and temporary) */
	"\\bA[KS]IA[0-9A-Z]{16}\\b",
	/* GitHub tokens: classic and fine-grained */
	"\\bgh[pousr]_[A-Za-z0-9]{36,}",
	"\\bgithub_pat_[A-Za-z0-9_]{22,}",
	/* Slack tokens */
	"\\bxox[baprs]-[A-Za-z0-9-]{10,}",
	/* Authorization: Bearer <anything> */
	"(?i)\\bauthorization[\"']?[ \\t]*[:=][ \\t]*[\"']?bearer[ \\t]+\\K"
	NOT_MARK("(?:[\\s\"',;]|$)") "[^\\s\"',;]+",
	/* Bearer <something token-like: a digit or symbol in it> */
	"\\b[Bb]earer[ \\t]+\\K(?=[A-Za-z0-9._~+/-]*[0-9._~+/])"
	"[A-Za-z0-9._~+/-]{12,}=*",
	/*
	 * password=..., DB_PASSWORD=..., --token=..., ?secret=...; starts at
	 * the '=' and looks back, which is several times faster
	 */
	"(?i)=(?<=(?<![a-z0-9])password=|(?<![a-z0-9])passwd=|"
	"(?<![a-z0-9])secret=|(?<![a-z0-9])token=)\\K"
	NOT_MARK("(?:[\\s&\"';]|$)") "[^\\s&\"';]+",
	/* "password": "..." in JSON */
	"(?i)\"(?:password|passwd|secret|token)\"[ \\t]*:[ \\t]*\"\\K"
	NOT_MARK("\"") "[^\"\\n]+",
	/* scheme://user:password@host */
	"://[^/\\s:@]+:\\K" NOT_MARK("@") "[^/\\s@]+(?=@)",
};

struct span {
	size_t a, b;
};

struct spans {
	struct span *v;
	size_t n, cap;
};

/* What collect() reuses between calls. */
struct scratch {
	struct spans refs;	/* secret references in the text */
	struct spans tmp;
	struct buf view;	/* the text with the references blanked */
};

#define SCRATCH_INIT { { NULL, 0, 0 }, { NULL, 0, 0 }, BUF_INIT }

static void scratch_release(struct scratch *sc)
{
	free(sc->refs.v);
	free(sc->tmp.v);
	buf_release(&sc->view);
}

/*
 * Where stage 2 stands in the PEM markers of its text: scanned up to
 * pos, and whether a block is open (BEGIN seen, END not yet). open_line
 * is where the text may be cut before the open block: the start of its
 * line, or if the last block ended on that line, where that one could
 * be cut.
 */
struct pem_scan {
	size_t pos;
	size_t open;		/* start of the BEGIN marker, or NONE */
	size_t open_line;
	size_t last_end;	/* end of the last closed block, or NONE */
	size_t last_line;	/* its open_line */
};

#define PEM_SCAN_INIT { 0, NONE, 0, NONE, 0 }

struct redact_stream {
	const struct redactor *r;
	redact_emit_fn emit;
	void *ctx;
	char *raw;		/* stage 1 input: may hold secret bytes */
	size_t rawlen, rawcap;
	size_t carry;		/* leading raw bytes already masked */
	size_t *next;		/* scratch: next occurrence of each secret */
	size_t nnext;
	struct buf mid;		/* stage 2 input, from moff */
	size_t moff;
	size_t nl_scan;		/* mid scanned for newlines up to here */
	size_t nl_last;		/* just after its last newline, or 0 */
	struct pem_scan pem;
	struct spans sp;
	struct scratch sc;
	struct buf out;
};

struct redactor *redactor_new(void)
{
	return xcalloc(1, sizeof(struct redactor));
}

void redactor_free(struct redactor *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nsec; i++) {
		explicit_bzero(r->sec[i].value, r->sec[i].len);
		free(r->sec[i].value);
		free(r->sec[i].mark);
	}
	free(r->sec);
	for (size_t i = 0; i < r->npat; i++)
		pattern_free(r->pat[i]);
	free(r->pat);
	free(r);
}

void redactor_add_secret(struct redactor *r, const char *name,
			 const char *value)
{
	struct buf mark = BUF_INIT;
	struct secret s;
	size_t i;

	s.len = strlen(value);
	if (s.len == 0)
		return;
	s.value = xmalloc(s.len);
	memcpy(s.value, value, s.len);
	buf_addf(&mark, "[secret:%s]", name);
	s.marklen = mark.len;
	s.mark = buf_detach(&mark);

	r->sec = xgrow(r->sec, &r->seccap, r->nsec + 1, sizeof(*r->sec));
	for (i = r->nsec; i > 0 && r->sec[i - 1].len < s.len; i--)
		;
	memmove(&r->sec[i + 1], &r->sec[i], (r->nsec - i) * sizeof(*r->sec));
	r->sec[i] = s;
	r->nsec++;
	if (s.len > r->maxlen)
		r->maxlen = s.len;
}

static void add_compiled(struct redactor *r, struct pattern *p)
{
	r->pat = xgrow(r->pat, &r->patcap, r->npat + 1, sizeof(*r->pat));
	r->pat[r->npat++] = p;
}

int redactor_add_pattern(struct redactor *r, const char *pattern,
			 struct rb_error *err)
{
	char msg[256];
	size_t off = 0;
	struct pattern *p = pattern_compile(pattern, msg, sizeof(msg), &off);

	if (!p) {
		rb_error_set(err, RB_ERR_INVALID,
			     "redact pattern '%.200s' is invalid at offset %zu: %s",
			     pattern, off, msg);
		return -1;
	}
	add_compiled(r, p);
	return 0;
}

void redactor_add_builtins(struct redactor *r)
{
	if (r->builtins)
		return;
	r->builtins = true;
	for (size_t i = 0; i < sizeof(builtin_src) / sizeof(*builtin_src);
	     i++) {
		char msg[256];
		size_t off = 0;
		struct pattern *p = pattern_compile(builtin_src[i], msg,
						    sizeof(msg), &off);

		if (!p) {
			/* a bug in the table above, not a user error */
			fprintf(stderr,
				"runbook: built-in redact pattern %zu: %s at %zu\n",
				i, msg, off);
			abort();
		}
		add_compiled(r, p);
	}
}

/* ---- secrets ---- */

/* First occurrence of sec in s[0..len) starting at from or later. */
static size_t find_secret(const struct secret *sec, const char *s, size_t len,
			  size_t from)
{
	const char *p;

	if (from > len || len - from < sec->len)
		return NONE;
	p = memmem(s + from, len - from, sec->value, sec->len);
	return p ? (size_t)(p - s) : NONE;
}

/*
 * Appends s[0..lim) to out with every secret occurrence that starts
 * before lim replaced; each such occurrence must end within len.
 * Occurrences are taken by start, the longest first at one start; one
 * contained in what is already masked adds nothing, one that overlaps
 * its end adds its own mark, so no byte of any of them is shown.
 * *carry: on entry, how many leading bytes the previous call already
 * masked; on return, how many bytes past lim this call masked.
 */
static void mask_secrets(const struct redactor *r, size_t *next,
			 const char *s, size_t len, size_t lim, size_t *carry,
			 struct buf *out)
{
	size_t done = *carry;	/* bytes before done are out or masked */
	size_t span = len;

	/* occurrences starting at or past lim are the next call's */
	if (r->maxlen && len - lim > r->maxlen - 1)
		span = lim + r->maxlen - 1;
	for (size_t k = 0; k < r->nsec; k++)
		next[k] = find_secret(&r->sec[k], s, span, 0);
	for (;;) {
		size_t at = NONE, best = 0, end;

		for (size_t k = 0; k < r->nsec; k++) {
			if (next[k] < at) {
				at = next[k];
				best = k;
			}
		}
		if (at == NONE || at >= lim)
			break;
		end = at + r->sec[best].len;
		if (end > done) {
			if (at > done)
				buf_add(out, s + done, at - done);
			buf_add(out, r->sec[best].mark, r->sec[best].marklen);
			done = end;
		}
		next[best] = find_secret(&r->sec[best], s, span, at + 1);
	}
	if (done < lim) {
		buf_add(out, s + done, lim - done);
		*carry = 0;
	} else {
		*carry = done - lim;
	}
}

/* ---- private key blocks ---- */

enum { LIT_NO = 0, LIT_YES = 1, LIT_PARTIAL = -1 };

/* Whether p[0..n) starts with l; LIT_PARTIAL if it ends first. */
static int lit(const char *p, size_t n, const char *l)
{
	size_t k = strlen(l), m = n < k ? n : k;

	if (memcmp(p, l, m) != 0)
		return LIT_NO;
	return m == k ? LIT_YES : LIT_PARTIAL;
}

static bool label_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ';
}

/*
 * Matches `-----KW [A-Z0-9 ]{0,64}PRIVATE KEY( BLOCK)?-----` at p, for kw
 * BEGIN or END. Returns its length, 0 if there is none, or -1 if p[0..n)
 * ends before that can be decided.
 */
static long pem_marker(const char *p, size_t n, const char *kw)
{
	static const char *const tails[] = {
		"PRIVATE KEY-----", "PRIVATE KEY BLOCK-----",
	};
	size_t at = 5 + strlen(kw) + 1;
	int m = lit(p, n, "-----");

	if (m == LIT_YES)
		m = lit(p + 5, n - 5, kw);
	if (m == LIT_YES)
		m = lit(p + at - 1, n - (at - 1), " ");
	if (m != LIT_YES)
		return m;
	for (size_t i = 0; i <= PEM_LABEL_MAX; i++) {
		size_t q = at + i;

		for (size_t t = 0; t < 2; t++) {
			m = lit(p + q, n - q, tails[t]);
			if (m == LIT_YES)
				return (long)(q + strlen(tails[t]));
			if (m == LIT_PARTIAL)
				return -1;
		}
		if (!label_char(p[q]))
			return 0;
	}
	return 0;
}

static int span_add(void *ctx, size_t a, size_t b)
{
	struct spans *sp = ctx;

	sp->v = xgrow(sp->v, &sp->cap, sp->n + 1, sizeof(*sp->v));
	sp->v[sp->n].a = a;
	sp->v[sp->n].b = b;
	sp->n++;
	return 0;
}

/*
 * Advances ps over s[ps->pos..len): a block runs from a BEGIN marker to
 * the first END marker after it. Stops at a marker that cannot be
 * decided yet, unless final (then it is no marker). Adds each complete
 * block to sp if sp is not NULL.
 */
static void pem_advance(struct pem_scan *ps, const char *s, size_t len,
			bool final, struct spans *sp)
{
	while (ps->pos < len) {
		const char *d = memmem(s + ps->pos, len - ps->pos, "-----", 5);
		size_t at;
		long m;

		if (!d) {
			/* a few dashes at the end may start a marker */
			if (!final && len - ps->pos > 4)
				ps->pos = len - 4;
			else if (final)
				ps->pos = len;
			return;
		}
		at = (size_t)(d - s);
		m = pem_marker(d, len - at,
			       ps->open == NONE ? "BEGIN" : "END");
		if (m < 0 && !final) {
			ps->pos = at;
			return;
		}
		if (m <= 0) {
			ps->pos = at + 1;
			continue;
		}
		if (ps->open == NONE) {
			const char *nl = memrchr(s, '\n', at);

			ps->open = at;
			ps->open_line = nl ? (size_t)(nl - s) + 1 : 0;
			if (ps->last_end != NONE && ps->last_end > ps->open_line)
				ps->open_line = ps->last_line;
		} else {
			if (sp)
				span_add(sp, ps->open, at + (size_t)m);
			ps->last_end = at + (size_t)m;
			ps->last_line = ps->open_line;
			ps->open = NONE;
		}
		ps->pos = at + (size_t)m;
	}
}

/* ---- secret references ---- */

static bool name_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool name_char(char c)
{
	return name_start(c) || (c >= '0' && c <= '9');
}

/*
 * Length of the secret reference at p[0..n), or 0 if there is none:
 * {{ secrets.NAME }} as template.c reads one (spaces and tabs inside the
 * braces, NAME a variable name, at most 255 bytes between the blanks).
 */
static size_t secret_ref(const char *p, size_t n)
{
	size_t i = 2, name;

	if (n < 2 || p[0] != '{' || p[1] != '{')
		return 0;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	if (n - i < 8 || memcmp(p + i, "secrets.", 8) != 0)
		return 0;
	i += 8;
	name = i;
	if (i >= n || !name_start(p[i]))
		return 0;
	while (i < n && name_char(p[i]))
		i++;
	if (8 + (i - name) > 255)
		return 0;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	if (n - i < 2 || p[i] != '}' || p[i + 1] != '}')
		return 0;
	return i + 2;
}

/* Lists the secret references in s[0..len) in refs, in order. */
static void find_refs(const char *s, size_t len, struct spans *refs)
{
	size_t pos = 0;

	refs->n = 0;
	while (pos < len) {
		const char *d = memmem(s + pos, len - pos, "{{", 2);
		size_t at, n;

		if (!d)
			break;
		at = (size_t)(d - s);
		n = secret_ref(d, len - at);
		if (n) {
			span_add(refs, at, at + n);
			pos = at + n;
		} else {
			pos = at + 1;
		}
	}
}

/*
 * Takes the references (sorted, apart) out of the spans in sp (sorted,
 * merged): what is left of a span around or between them is masked
 * still.
 */
static void spare_refs(struct spans *sp, const struct spans *refs,
		       struct spans *tmp)
{
	struct spans t;
	size_t k = 0;

	tmp->n = 0;
	for (size_t i = 0; i < sp->n; i++) {
		size_t a = sp->v[i].a, b = sp->v[i].b;

		while (k < refs->n && refs->v[k].b <= a)
			k++;
		for (size_t j = k; a < b && j < refs->n && refs->v[j].a < b;
		     j++) {
			if (refs->v[j].a > a)
				span_add(tmp, a, refs->v[j].a);
			if (refs->v[j].b > a)
				a = refs->v[j].b;
		}
		if (a < b)
			span_add(tmp, a, b);
	}
	t = *sp;
	*sp = *tmp;
	*tmp = t;
}

/* ---- patterns ---- */

static int span_cmp(const void *x, const void *y)
{
	const struct span *a = x, *b = y;

	if (a->a != b->a)
		return a->a < b->a ? -1 : 1;
	return a->b > b->b ? -1 : a->b < b->b;
}

/*
 * Collects into sp, sorted and with overlaps merged, what is to be
 * masked in the secret-free text s[0..len): key blocks (an open one up
 * to len if open_to_end) and pattern matches, less the secret
 * references (left in sc->refs). Returns 0, or -1 with err set if a
 * pattern could not be matched.
 */
static int collect(const struct redactor *r, const char *s, size_t len,
		   bool open_to_end, struct spans *sp, struct scratch *sc,
		   struct rb_error *err)
{
	size_t n = 0;

	sp->n = 0;
	find_refs(s, len, &sc->refs);
	if (sc->refs.n) {
		/* same length, so the offsets of matches hold for s */
		buf_reset(&sc->view);
		buf_add(&sc->view, s, len);
		for (size_t i = 0; i < sc->refs.n; i++)
			memset(sc->view.data + sc->refs.v[i].a, ' ',
			       sc->refs.v[i].b - sc->refs.v[i].a);
		s = sc->view.data;
	}
	if (r->builtins) {
		struct pem_scan ps = PEM_SCAN_INIT;

		pem_advance(&ps, s, len, true, sp);
		if (ps.open != NONE && open_to_end)
			span_add(sp, ps.open, len);
	}
	for (size_t i = 0; i < r->npat; i++)
		if (pattern_each(r->pat[i], s, len, span_add, sp, err) < 0)
			return -1;
	if (sp->n > 1) {
		qsort(sp->v, sp->n, sizeof(*sp->v), span_cmp);
		for (size_t i = 1; i < sp->n; i++) {
			if (sp->v[i].a < sp->v[n].b) {
				if (sp->v[i].b > sp->v[n].b)
					sp->v[n].b = sp->v[i].b;
			} else {
				sp->v[++n] = sp->v[i];
			}
		}
		sp->n = n + 1;
	}
	if (sc->refs.n && sp->n)
		spare_refs(sp, &sc->refs, &sc->tmp);
	return 0;
}

/* Appends s[0..len) to out with the spans (clipped to len) masked. */
static void write_masked(struct buf *out, const char *s, size_t len,
			 const struct spans *sp)
{
	size_t pos = 0;

	for (size_t i = 0; i < sp->n && sp->v[i].a < len; i++) {
		buf_add(out, s + pos, sp->v[i].a - pos);
		buf_add(out, MASK, sizeof(MASK) - 1);
		pos = sp->v[i].b < len ? sp->v[i].b : len;
	}
	buf_add(out, s + pos, len - pos);
}

void redact_append(const struct redactor *r, struct buf *out, const char *s,
		   size_t len)
{
	struct buf mid = BUF_INIT;
	struct spans sp = { NULL, 0, 0 };
	struct scratch sc = SCRATCH_INIT;
	struct rb_error err = RB_ERROR_INIT;
	size_t *next = NULL;
	size_t carry = 0;
	const char *text = s;

	if (r->nsec) {
		next = xcalloc(r->nsec, sizeof(*next));
		mask_secrets(r, next, s, len, len, &carry, &mid);
		text = buf_str(&mid);
		len = mid.len;
	}
	if (collect(r, text, len, true, &sp, &sc, &err) < 0)
		buf_adds(out, MASK_ERROR);
	else
		write_masked(out, text, len, &sp);
	/* nothing above holds a secret: mid has marks where they were */
	buf_release(&mid);
	free(sp.v);
	scratch_release(&sc);
	free(next);
}

char *redact_str(const struct redactor *r, const char *s)
{
	struct buf out = BUF_INIT;

	redact_append(r, &out, s, strlen(s));
	return buf_detach(&out);
}

/* ---- stream ---- */

static size_t raw_hold(const struct redactor *r)
{
	return r->maxlen ? r->maxlen - 1 : 0;
}

/*
 * What stage 1 must keep back: the longest end of raw that is the start
 * of some secret. Anything before it cannot begin a secret that is not
 * complete yet, so live output is not delayed by unrelated bytes.
 */
static size_t prefix_hold(const struct redact_stream *st)
{
	size_t best = 0;

	for (size_t k = 0; k < st->r->nsec; k++) {
		const struct secret *sec = &st->r->sec[k];
		size_t m = sec->len - 1 < st->rawlen ? sec->len - 1 : st->rawlen;

		for (size_t n = m; n > best; n--) {
			if (memcmp(st->raw + st->rawlen - n, sec->value, n) == 0) {
				best = n;
				break;
			}
		}
	}
	return best;
}

/*
 * Sizes the buffers for the redactor's secrets. All are added before a
 * stream is made; this only keeps one added later from overrunning.
 */
static void fit(struct redact_stream *st)
{
	size_t cap = SLICE + 2 * raw_hold(st->r);

	if (!st->next || st->nnext < st->r->nsec) {
		free(st->next);
		st->nnext = st->r->nsec ? st->r->nsec : 1;
		st->next = xcalloc(st->nnext, sizeof(*st->next));
	}
	if (st->rawcap < cap) {
		char *raw = xmalloc(cap);

		if (st->raw) {
			memcpy(raw, st->raw, st->rawlen);
			explicit_bzero(st->raw, st->rawcap);
			free(st->raw);
		}
		st->raw = raw;
		st->rawcap = cap;
	}
}

struct redact_stream *redact_stream_new(const struct redactor *r,
					redact_emit_fn emit, void *ctx)
{
	struct redact_stream *st = xcalloc(1, sizeof(*st));
	struct pem_scan ps = PEM_SCAN_INIT;
	struct scratch sc = SCRATCH_INIT;

	st->r = r;
	st->sc = sc;
	st->emit = emit;
	st->ctx = ctx;
	st->pem = ps;
	fit(st);
	return st;
}

void redact_stream_free(struct redact_stream *st)
{
	if (!st)
		return;
	explicit_bzero(st->raw, st->rawcap);
	free(st->raw);
	free(st->next);
	if (st->mid.data)
		explicit_bzero(st->mid.data, st->mid.cap);
	buf_release(&st->mid);
	buf_release(&st->out);
	free(st->sp.v);
	scratch_release(&st->sc);
	free(st);
}

/*
 * Stage 1: moves raw bytes that can no longer start a secret into mid,
 * secrets masked; all of them if final. Runs only once it can move at
 * least as much as it keeps, so feeding byte by byte stays linear.
 */
static void stage1(struct redact_stream *st, bool final)
{
	size_t hold = final ? 0 : prefix_hold(st);
	size_t lim;

	if (st->rawlen <= hold)
		return;
	lim = st->rawlen - hold;
	if (lim < hold)
		return;
	if (st->moff && st->moff >= st->mid.len - st->moff) {
		memmove(st->mid.data, st->mid.data + st->moff,
			st->mid.len - st->moff);
		st->mid.len -= st->moff;
		st->mid.data[st->mid.len] = '\0';
		st->moff = 0;
	}
	if (st->r->nsec) {
		mask_secrets(st->r, st->next, st->raw, st->rawlen, lim,
			     &st->carry, &st->mid);
	} else {
		buf_add(&st->mid, st->raw, lim);
	}
	memmove(st->raw, st->raw + lim, st->rawlen - lim);
	st->rawlen -= lim;
}

/* Drops mid[0..cut) (already emitted) and moves the trackers along. */
static void consume(struct redact_stream *st, size_t cut)
{
	size_t avail = st->mid.len - st->moff;

	st->moff += cut;
	if (st->moff == st->mid.len) {
		buf_reset(&st->mid);
		st->moff = 0;
	}
	st->nl_scan = avail - cut;
	st->nl_last = st->nl_last > cut ? st->nl_last - cut : 0;
	if (st->pem.open == NONE || st->pem.open_line >= cut) {
		struct pem_scan *ps = &st->pem;

		if (ps->open != NONE) {
			ps->open -= cut;
			ps->open_line -= cut;
		}
		if (ps->last_end != NONE && ps->last_line >= cut) {
			ps->last_end -= cut;
			ps->last_line -= cut;
		} else {
			ps->last_end = NONE;
		}
		ps->pos = ps->pos > cut ? ps->pos - cut : 0;
	} else {
		struct pem_scan ps = PEM_SCAN_INIT;

		/* what was scanned is gone; a block cut off is emitted */
		ps.pos = st->pem.pos > cut ? st->pem.pos - cut : 0;
		st->pem = ps;
	}
}

/* Redacts mid[0..cut) (masking spans collected over [0..upto)) and emits. */
static void emit_chunk(struct redact_stream *st, size_t cut, size_t upto,
		       bool open_to_end, bool extend)
{
	const char *s = st->mid.data + st->moff;
	struct rb_error err = RB_ERROR_INIT;

	buf_reset(&st->out);
	if (collect(st->r, s, upto, open_to_end, &st->sp, &st->sc,
		    &err) < 0) {
		buf_add(&st->out, MASK_ERROR, sizeof(MASK_ERROR) - 1);
	} else {
		/*
		 * a match or a secret reference across a forced cut moves
		 * the cut to its end (a match may end next to a reference)
		 */
		for (bool moved = extend; moved;) {
			moved = false;
			for (size_t i = 0; i < st->sp.n; i++) {
				if (st->sp.v[i].a < cut && st->sp.v[i].b > cut) {
					cut = st->sp.v[i].b;
					moved = true;
				}
			}
			for (size_t i = 0; i < st->sc.refs.n; i++) {
				if (st->sc.refs.v[i].a < cut &&
				    st->sc.refs.v[i].b > cut) {
					cut = st->sc.refs.v[i].b;
					moved = true;
				}
			}
		}
		write_masked(&st->out, s, cut, &st->sp);
	}
	if (st->out.len)
		st->emit(st->ctx, st->out.data, st->out.len);
	consume(st, cut);
}

/*
 * Stage 2: emits what is complete of mid: whole lines, except from the
 * line where an open key block starts. Bounded: an open block longer
 * than PEM_HOLD is emitted as [redacted]; an incomplete line longer than
 * LINE_HOLD is cut, keeping CUT_TAIL so a token is not split.
 */
static void stage2(struct redact_stream *st, bool final)
{
	size_t avail = st->mid.len - st->moff;
	const char *s;
	struct pem_scan t;
	size_t cut;

	/* nothing yet: mid.data may still be NULL, and NULL + 0 is UB */
	if (avail == 0)
		return;
	s = st->mid.data + st->moff;
	if (final) {
		emit_chunk(st, avail, avail, true, false);
		return;
	}
	if (st->nl_scan < avail) {
		const char *nl = memrchr(s + st->nl_scan, '\n',
					 avail - st->nl_scan);

		if (nl)
			st->nl_last = (size_t)(nl - s) + 1;
		st->nl_scan = avail;
	}
	/* markers never span lines: complete lines decide them */
	if (st->r->builtins)
		pem_advance(&st->pem, s, st->nl_last, true, NULL);

	if (st->pem.open != NONE) {
		if (avail - st->pem.open_line > PEM_HOLD)
			emit_chunk(st, avail, avail, true, false);
		else if (st->pem.open_line > 0)
			emit_chunk(st, st->pem.open_line, st->pem.open_line,
				   true, false);
		return;
	}
	if (avail - st->nl_last <= LINE_HOLD) {
		if (st->nl_last > 0)
			emit_chunk(st, st->nl_last, st->nl_last, true, false);
		return;
	}
	/* an overlong line: cut it, but not into a key block */
	cut = avail - CUT_TAIL;
	t = st->pem;
	if (st->r->builtins)
		pem_advance(&t, s, avail, false, NULL);
	if (t.open == NONE)
		emit_chunk(st, cut, avail, false, true);
	else if (avail - t.open > PEM_HOLD)
		emit_chunk(st, avail, avail, true, false);
	else if (t.open < cut)
		emit_chunk(st, t.open, t.open, false, false);
	else
		emit_chunk(st, cut, t.open, false, true);
}

void redact_stream_feed(struct redact_stream *st, const char *data,
			size_t len)
{
	fit(st);
	while (len > 0) {
		size_t n = st->rawcap - st->rawlen;

		if (n > len)
			n = len;
		memcpy(st->raw + st->rawlen, data, n);
		st->rawlen += n;
		data += n;
		len -= n;
		stage1(st, false);
		stage2(st, false);
	}
}

void redact_stream_flush(struct redact_stream *st)
{
	struct pem_scan ps = PEM_SCAN_INIT;

	fit(st);
	stage1(st, true);
	st->carry = 0;
	stage2(st, true);
	buf_reset(&st->mid);
	st->moff = 0;
	st->nl_scan = st->nl_last = 0;
	st->pem = ps;
}
