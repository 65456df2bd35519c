/*
 * Template scanning and rendering with shell-aware quoting.
 *
 * The check reads the command as the shell will: the template's text
 * and its {{ 'literal' }} pieces joined (a literal is shell text the
 * author wrote), with each value in its place: its quoted bytes when
 * rendering, one opaque byte (SHLEX_VALUE) when scanning, since then
 * no value is known. The shell reader (shlex.c) follows the shell's
 * quoting and commands over that text and says, at each placeholder,
 * whether a value may go there and how it must be quoted.
 *
 * The invariant: a placeholder is only rendered where the top context
 * is plain, $(...), '...' or "...", nothing escaped it, no $ is right
 * before it, the lexer was never unsure of where it is, and no command
 * around it evaluates it; every other place is an error before
 * anything runs.
 */
#include "template.h"

#include "quote.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "runbook.h"
#include "shlex.h"

const char tpl_defer[] = "";

/* ---- placeholders ---- */

void tpl_refs_release(struct tpl_refs *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].name);
	free(r->v);
	r->v = NULL;
	r->n = r->cap = 0;
}

static bool valid_ref_name(const char *s, size_t n)
{
	char tmp[256];
	char *dot;

	if (n == 0 || n >= sizeof(tmp))
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	dot = strchr(tmp, '.');
	if (dot) {
		*dot = '\0';
		if (strchr(dot + 1, '.') || !is_var_name(dot + 1))
			return false;
	}
	return is_var_name(tmp);
}

/* One {{ ... }} at tpl + off. */
struct ph {
	size_t end;		/* offset just past "}}" */
	const char *inner;	/* trimmed content */
	size_t len;
	bool literal;		/* {{ 'text' }}: inner/len are the text */
};

static int parse_ph(const char *tpl, size_t off, struct ph *ph,
		    char *problem, size_t plen)
{
	const char *s = tpl + off + 2, *close = strstr(s, "}}");
	const char *a, *b;

	if (!close || memchr(s, '\n', (size_t)(close - s))) {
		snprintf(problem, plen,
			 "expected \"}}\" to close the placeholder, found none");
		return -1;
	}
	a = s;
	b = close;
	while (a < b && (*a == ' ' || *a == '\t'))
		a++;
	while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
		b--;
	ph->end = (size_t)(close + 2 - tpl);
	if (b - a >= 2 && *a == '\'' && b[-1] == '\'' &&
	    !memchr(a + 1, '\'', (size_t)(b - a - 2))) {
		ph->literal = true;
		ph->inner = a + 1;
		ph->len = (size_t)(b - a - 2);
		return 0;
	}
	ph->literal = false;
	ph->inner = a;
	ph->len = (size_t)(b - a);
	if (!valid_ref_name(a, ph->len)) {
		snprintf(problem, plen,
			 "expected {{ name }} or {{ 'literal text' }}, found \"{{%.*s}}\"",
			 (int)(close - s > 60 ? 60 : close - s), s);
		return -1;
	}
	return 0;
}

/* ---- the walk behind scan and render ---- */

/* Where a value lands, for quoting it. */
struct where {
	enum shlex_place place;
};

/*
 * What scan and render do along the walk: text copies literal text to
 * the output; value handles one placeholder: its output, and the bytes
 * the shell will read for it appended to sh (SHLEX_VALUE when unknown).
 * value returns -1 for an unknown name.
 */
struct walk_ops {
	void (*text)(void *ctx, const char *s, size_t n);
	int (*value)(void *ctx, const char *name, const struct where *w,
		     struct buf *sh);
};

struct walker {
	const char *tpl;
	enum tpl_mode mode;
	const struct walk_ops *ops;
	void *ctx;
	struct shlex *L;
	struct buf sh;		/* the command as the shell will read it */
	size_t lexed;		/* how much of sh the lexer has read */
	struct walked {
		size_t off;	/* in the template */
		char *name;
	} *ph;			/* each placeholder so far */
	size_t n_ph, cap_ph;
	char *problem;
	size_t plen;
	size_t *poff;
};

/* "{{ v }}" in the advice of a refusal becomes "{{ name }}". */
static void name_in(char *msg, size_t n, const char *name)
{
	struct buf b = BUF_INIT;
	const char *p = msg, *hit;

	while ((hit = strstr(p, "{{ v }}"))) {
		buf_add(&b, p, (size_t)(hit - p));
		buf_addf(&b, "{{ %s }}", name);
		p = hit + 7;
	}
	buf_adds(&b, p);
	snprintf(msg, n, "%s", buf_str(&b));
	buf_release(&b);
}

/* Lexes sh up to end; false (problem set) if a placeholder was unsafe. */
static bool lex_to(struct walker *W, size_t end)
{
	const struct walked *bad;
	const char *why;
	long n;

	while (W->lexed < end)
		shlex_step(W->L, W->sh.data, &W->lexed);
	if ((n = shlex_bad(W->L, &why)) < 0)
		return true;
	bad = &W->ph[n];
	*W->poff = bad->off;
	snprintf(W->problem, W->plen, "%s", why);
	name_in(W->problem, W->plen, bad->name);
	return false;
}

static void walk_text(struct walker *W, const char *s, size_t n)
{
	if (W->ops->text)
		W->ops->text(W->ctx, s, n);
	if (W->mode == TPL_SHELL)
		buf_add(&W->sh, s, n);
}

/* The placeholder name at offset off: checks where it is, renders it. */
static int walk_value(struct walker *W, const char *name, size_t off)
{
	struct shlex *L = W->L;
	struct where w = { SHLEX_WORD };

	*W->poff = off;
	if (W->mode == TPL_SHELL) {
		buf_addc(&W->sh, SHLEX_VALUE);	/* what lookahead sees */
		if (!lex_to(W, W->sh.len - 1))
			return -1;
		W->sh.data[--W->sh.len] = '\0';
		if (shlex_refuse(L, W->problem, W->plen)) {
			name_in(W->problem, W->plen, name);
			return -1;
		}
		W->ph = xgrow(W->ph, &W->cap_ph, W->n_ph + 1, sizeof(*W->ph));
		W->ph[W->n_ph].off = off;
		W->ph[W->n_ph].name = xstrdup(name);
		shlex_mark(L, (long)W->n_ph++);
		w.place = shlex_place(L);
	}
	if (W->ops->value(W->ctx, name, &w,
			  W->mode == TPL_SHELL ? &W->sh : NULL) < 0) {
		snprintf(W->problem, W->plen, "unknown variable \"%s\"", name);
		return -1;
	}
	return 0;
}

/* Calls text and value along tpl; 0, or -1 with problem and *poff set. */
static int walk(const char *tpl, enum tpl_mode mode,
		const struct walk_ops *ops, void *ctx, char *problem,
		size_t plen, size_t *poff)
{
	struct walker W = { .tpl = tpl, .mode = mode, .ops = ops, .ctx = ctx,
			    .sh = BUF_INIT, .problem = problem, .plen = plen,
			    .poff = poff };
	size_t i = 0;
	int ret = -1;

	W.L = shlex_new();
	while (tpl[i]) {
		size_t from = i;
		struct ph ph;
		char name[256];

		while (tpl[i] && !(tpl[i] == '{' && tpl[i + 1] == '{'))
			i++;
		walk_text(&W, tpl + from, i - from);
		if (!tpl[i])
			break;
		*poff = i;
		if (parse_ph(tpl, i, &ph, problem, plen) < 0)
			goto out;
		if (ph.literal) {
			walk_text(&W, ph.inner, ph.len);
		} else {
			memcpy(name, ph.inner, ph.len);
			name[ph.len] = '\0';
			if (walk_value(&W, name, i) < 0)
				goto out;
		}
		i = ph.end;
	}
	if (mode == TPL_SHELL) {
		if (!lex_to(&W, W.sh.len))
			goto out;
		shlex_finish(W.L);
		if (!lex_to(&W, W.sh.len))
			goto out;
	}
	ret = 0;
out:
	/* both may hold a secret's bytes */
	if (W.sh.data)
		explicit_bzero(W.sh.data, W.sh.len);
	buf_release(&W.sh);
	shlex_free(W.L);
	for (size_t k = 0; k < W.n_ph; k++)
		free(W.ph[k].name);
	free(W.ph);
	return ret;
}

/* ---- scan ---- */

struct scan_ctx {
	struct tpl_refs *r;
	size_t *off;		/* the walk's offset: where each name is */
};

static int scan_value(void *ctx, const char *name, const struct where *w,
		      struct buf *sh)
{
	struct scan_ctx *sc = ctx;
	struct tpl_refs *r = sc->r;

	(void)w;
	if (sh)
		buf_addc(sh, SHLEX_VALUE);
	r->v = xgrow(r->v, &r->cap, r->n + 1, sizeof(*r->v));
	r->v[r->n].name = xstrdup(name);
	r->v[r->n].off = *sc->off;
	r->n++;
	return 0;
}

int tpl_scan(const char *tpl, enum tpl_mode mode, struct tpl_refs *r,
	     char *problem, size_t problem_len, size_t *off)
{
	static const struct walk_ops ops = { NULL, scan_value };
	size_t dummy = 0;
	struct scan_ctx sc = { r, off ? off : &dummy };

	return walk(tpl, mode, &ops, &sc, problem, problem_len, sc.off);
}

/* ---- render ---- */

static void quote_in(struct buf *out, const char *v, const struct where *w)
{
	switch (w->place) {
	case SHLEX_SQ:
		for (; *v; v++) {
			if (*v == '\'')
				buf_adds(out, "'\\''");
			else
				buf_addc(out, *v);
		}
		break;
	case SHLEX_DQ:
		for (; *v; v++) {
			if (*v == '$' || *v == '`' || *v == '"' || *v == '\\')
				buf_addc(out, '\\');
			buf_addc(out, *v);
		}
		break;
	case SHLEX_WORD_QUOTED:
		shell_quote_always(out, v);
		break;
	case SHLEX_WORD:
		shell_quote(out, v);
		break;
	}
}

struct render_ctx {
	enum tpl_mode mode;
	enum tpl_secrets sec;
	tpl_lookup_fn lookup;
	void *ctx;
	struct buf *out;
	struct buf pend;	/* record form: text to escape before out */
};

/*
 * The record form is a template rendered again on replay: every "{{"
 * of the command is written {{ '{{' }}, and a "{" right before a
 * reference {{ '{' }}, so that only the references resolve.
 */
static void flush_record(struct render_ctx *rc, bool ref_follows)
{
	const char *p = buf_str(&rc->pend);

	for (; *p; p++) {
		if (p[0] == '{' && p[1] == '{') {
			buf_adds(rc->out, "{{ '{{' }}");
			p++;
		} else if (p[0] == '{' && !p[1] && ref_follows) {
			buf_adds(rc->out, "{{ '{' }}");
		} else {
			buf_addc(rc->out, *p);
		}
	}
	buf_reset(&rc->pend);
}

static void render_text(void *ctx, const char *s, size_t n)
{
	struct render_ctx *rc = ctx;

	buf_add(rc->sec == TPL_SECRET_KEEP ? &rc->pend : rc->out, s, n);
}

/* A reference left in place: {{ name }}. */
static void render_ref(struct render_ctx *rc, const char *name)
{
	if (rc->sec == TPL_SECRET_KEEP)
		flush_record(rc, true);
	buf_addf(rc->out, "{{ %s }}", name);
}

static int render_value(void *ctx, const char *name, const struct where *w,
			struct buf *sh)
{
	struct render_ctx *rc = ctx;
	struct buf q = BUF_INIT;
	const char *v;

	if (strncmp(name, "secrets.", 8) == 0 &&
	    rc->sec != TPL_SECRET_RESOLVE) {
		if (rc->sec == TPL_SECRET_MASK)
			buf_addf(rc->out, "[secret:%s]", name + 8);
		else
			render_ref(rc, name);
		if (sh)
			buf_addc(sh, SHLEX_VALUE);
		return 0;
	}
	if (!(v = rc->lookup(rc->ctx, name)))
		return -1;
	if (v == tpl_defer) {
		render_ref(rc, name);
		if (sh)
			buf_addc(sh, SHLEX_VALUE);
		return 0;
	}
	if (rc->mode == TPL_RAW)
		buf_adds(&q, v);
	else
		quote_in(&q, v, w);
	render_text(rc, buf_str(&q), q.len);
	if (sh)
		buf_add(sh, buf_str(&q), q.len);
	if (q.data)
		explicit_bzero(q.data, q.len);
	buf_release(&q);
	return 0;
}

int tpl_render(const char *tpl, enum tpl_mode mode, enum tpl_secrets sec,
	       tpl_lookup_fn lookup, void *ctx, struct buf *out,
	       struct rb_error *err)
{
	static const struct walk_ops ops = { render_text, render_value };
	struct render_ctx rc = { mode, sec, lookup, ctx, out, BUF_INIT };
	char problem[512];
	size_t off = 0, start = out->len;
	int ret = walk(tpl, mode, &ops, &rc, problem, sizeof(problem), &off);

	if (ret == 0 && sec == TPL_SECRET_KEEP)
		flush_record(&rc, false);
	buf_release(&rc.pend);
	if (ret < 0) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
		rb_error_set(err, RB_ERR_INVALID,
			     "cannot render \"%.80s\": %s (at byte %zu)", tpl,
			     problem, off);
		return -1;
	}
	return 0;
}
