/*
 * Template scanning and rendering with shell-aware quoting.
 *
 * A small lexer follows the shell's quoting over the literal text: a
 * stack of contexts (plain, '...', "...", $(...), and the contexts in
 * which we refuse placeholders). The invariant: a placeholder is only
 * rendered where the top context is plain, $(...), '...' or "...",
 * nothing escaped it, and the lexer was never unsure of where it is;
 * every other place is an error before anything runs.
 */
#include "template.h"

#include "quote.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "runbook.h"

const char tpl_defer[] = "";

enum ctx {
	C_PLAIN, C_SQ, C_DQ, C_CMDSUB, C_PARAM, C_BQ, C_ARITH, C_ANSI,
	C_COMMENT, C_HEREDOC,
};

#define LEX_DEPTH 32

struct lex {
	enum ctx st[LEX_DEPTH];
	int paren[LEX_DEPTH];
	int n;
	const char *unsure;	/* why the lexer lost track, or NULL */
	bool esc;		/* the previous character was a backslash */
	bool dollar;		/* the previous character was an unescaped $ */
	bool word_start;
	bool hd_pending;	/* << seen; the body starts at the newline */
	bool hd_strip;		/* <<- strips leading tabs */
	char delim[64];
	struct buf line;	/* current here-document line */
};

static void lex_init(struct lex *L)
{
	memset(L, 0, sizeof(*L));
	L->st[0] = C_PLAIN;
	L->n = 1;
	L->word_start = true;
}

static enum ctx top(const struct lex *L)
{
	return L->st[L->n - 1];
}

static void push(struct lex *L, enum ctx c)
{
	if (L->n >= LEX_DEPTH) {
		L->unsure = "quoting nested too deeply";
		return;
	}
	L->st[L->n] = c;
	L->paren[L->n] = 0;
	L->n++;
}

static void pop(struct lex *L)
{
	if (L->n > 1)
		L->n--;
}

static bool is_sep(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == ';' || c == '&' ||
	       c == '|' || c == '(' || c == ')' || c == '<' || c == '>';
}

/* Reads the delimiter after << at s; returns false if unclear. */
static bool heredoc_delim(struct lex *L, const char *s)
{
	size_t n = 0;

	L->hd_strip = false;
	if (*s == '-') {
		L->hd_strip = true;
		s++;
	}
	while (*s == ' ' || *s == '\t')
		s++;
	for (; *s && !is_sep(*s); s++) {
		if (s[0] == '{' && s[1] == '{')
			return false;
		if (*s == '$' || *s == '`')
			return false;
		if (*s == '\'' || *s == '"' || *s == '\\')
			continue;
		if (n + 1 >= sizeof(L->delim))
			return false;
		L->delim[n++] = *s;
	}
	L->delim[n] = '\0';
	return n > 0;
}

static bool starts_word(const char *s, const char *w)
{
	size_t n = strlen(w);

	return strncmp(s, w, n) == 0 &&
	       (s[n] == ' ' || s[n] == '\t' || s[n] == '\n' || s[n] == '\0');
}

/*
 * Inside '...', $'...', a comment, `...` or ${...}: only the end of the
 * context (or a backslash, where one escapes) matters. Quotes and
 * expansions inside ${...} would need a full parse: the lexer gives up.
 */
static void step_quoted(struct lex *L, enum ctx t, char c)
{
	switch (t) {
	case C_SQ:
		if (c == '\'')
			pop(L);
		break;
	case C_ANSI:
		if (c == '\\')
			L->esc = true;
		else if (c == '\'')
			pop(L);
		break;
	case C_COMMENT:
		if (c == '\n') {
			pop(L);
			L->word_start = true;
		}
		break;
	case C_BQ:
		if (c == '\\')
			L->esc = true;
		else if (c == '`')
			pop(L);
		break;
	case C_PARAM:
		if (c == '}')
			pop(L);
		else if (c == '\'' || c == '"' || c == '`' || c == '$' ||
			 c == '\\')
			L->unsure = "quotes or expansions inside ${...}";
		break;
	default:
		break;
	}
}

/* A here-document body: collects each line, ends at the delimiter line. */
static void step_heredoc(struct lex *L, char c)
{
	const char *ln;

	if (c != '\n') {
		buf_addc(&L->line, c);
		return;
	}
	ln = buf_str(&L->line);
	if (L->hd_strip)
		ln += strspn(ln, "\t");
	if (strcmp(ln, L->delim) == 0) {
		pop(L);
		L->word_start = true;
	}
	buf_reset(&L->line);
}

/*
 * Inside $((...)): counts parentheses to find the closing "))"; quotes
 * and command substitutions would need a full parse: the lexer gives up.
 */
static void step_arith(struct lex *L, const char *s, size_t *i)
{
	char c = *s;

	if (c == '(') {
		L->paren[L->n - 1]++;
	} else if (c == ')') {
		if (L->paren[L->n - 1] == 0 && s[1] == ')') {
			pop(L);
			(*i)++;
		} else {
			L->paren[L->n - 1]--;
		}
	} else if (c == '\'' || c == '"' || c == '`' || c == '\\' ||
		   (c == '$' && s[1] == '(')) {
		L->unsure = "quotes or command substitution inside $((...))";
	}
}

/*
 * An unescaped $ at s, in plain words or (without ansi) inside "...":
 * opens $((, $(, ${ (not the ${{ of a placeholder) or, with ansi, $'.
 * A lone $ is remembered: a placeholder right after it is refused.
 */
static void step_dollar(struct lex *L, const char *s, size_t *i, bool ansi)
{
	if (s[1] == '(' && s[2] == '(') {
		push(L, C_ARITH);
		*i += 2;
	} else if (s[1] == '(') {
		push(L, C_CMDSUB);
		(*i)++;
		L->word_start = true;
	} else if (s[1] == '{' && s[2] != '{') {
		push(L, C_PARAM);
		(*i)++;
	} else if (ansi && s[1] == '\'') {
		push(L, C_ANSI);
		(*i)++;
	} else {
		L->dollar = true;
	}
}

/* Inside "...": backslashes, the closing quote, `...` and $ expansions. */
static void step_dq(struct lex *L, const char *s, size_t *i)
{
	char c = *s;

	if (c == '\\')
		L->esc = true;
	else if (c == '"')
		pop(L);
	else if (c == '`')
		push(L, C_BQ);
	else if (c == '$')
		step_dollar(L, s, i, false);
}

/*
 * A < in plain words: <<< is a here-string (a word follows); << starts
 * a here-document whose body begins at the next newline (one per line,
 * with a plain-word delimiter, or the lexer gives up).
 */
static void step_redirect(struct lex *L, const char *s, size_t *i)
{
	if (s[1] == '<' && s[2] == '<') {
		*i += 2;
		L->word_start = true;
	} else if (s[1] == '<') {
		(*i)++;
		if (L->hd_pending)
			L->unsure = "two here-documents on one line";
		else if (!heredoc_delim(L, s + 2))
			L->unsure = "a here-document delimiter that is not a plain word";
		L->hd_pending = true;
	} else {
		L->word_start = true;
	}
}

/*
 * Plain words, at the top (t is C_PLAIN) or inside $(...) (C_CMDSUB):
 * quotes and expansions open contexts, # at the start of a word opens
 * a comment, parentheses are counted to find the end of $(...), and a
 * newline starts a pending here-document. ws: s starts a word. A case
 * statement inside $(...) would unbalance its parentheses: the lexer
 * gives up.
 */
static void step_plain(struct lex *L, const char *s, size_t *i, enum ctx t,
		       bool ws)
{
	char c = *s;

	switch (c) {
	case '\\':
		L->esc = true;
		break;
	case '\'':
		push(L, C_SQ);
		break;
	case '"':
		push(L, C_DQ);
		break;
	case '`':
		push(L, C_BQ);
		break;
	case '$':
		step_dollar(L, s, i, true);
		break;
	case '#':
		if (ws)
			push(L, C_COMMENT);
		break;
	case '<':
		step_redirect(L, s, i);
		break;
	case '(':
		if (t == C_CMDSUB)
			L->paren[L->n - 1]++;
		L->word_start = true;
		break;
	case ')':
		if (t == C_CMDSUB) {
			if (L->paren[L->n - 1] == 0)
				pop(L);
			else
				L->paren[L->n - 1]--;
		}
		L->word_start = true;
		break;
	case '\n':
		L->word_start = true;
		if (L->hd_pending) {
			L->hd_pending = false;
			push(L, C_HEREDOC);
			buf_reset(&L->line);
		}
		break;
	default:
		if (is_sep(c))
			L->word_start = true;
		else if (ws && t == C_CMDSUB && starts_word(s, "case"))
			L->unsure = "a case statement inside $(...)";
		break;
	}
}

/*
 * Consumes tpl[*i] (and any characters it must look ahead at) and
 * advances *i past them: a character a backslash escaped is skipped,
 * any other is handed to the step of the top context.
 */
static void lex_step(struct lex *L, const char *tpl, size_t *i)
{
	const char *s = tpl + *i;
	bool ws = L->word_start;
	enum ctx t = top(L);

	(*i)++;
	L->dollar = false;
	L->word_start = false;
	if (L->esc) {
		L->esc = false;
		return;
	}
	switch (t) {
	case C_SQ:
	case C_ANSI:
	case C_COMMENT:
	case C_BQ:
	case C_PARAM:
		step_quoted(L, t, *s);
		break;
	case C_HEREDOC:
		step_heredoc(L, *s);
		break;
	case C_ARITH:
		step_arith(L, s, i);
		break;
	case C_DQ:
		step_dq(L, s, i);
		break;
	case C_PLAIN:
	case C_CMDSUB:
		step_plain(L, s, i, t, ws);
		break;
	}
}

/* Why a placeholder cannot go here, or NULL if it can. */
static const char *lex_refuse(const struct lex *L)
{
	if (L->unsure)
		return L->unsure;
	if (L->esc)
		return "a backslash right before a placeholder";
	if (L->dollar)
		return "a $ right before a placeholder";
	switch (top(L)) {
	case C_PLAIN:
	case C_CMDSUB:
		return L->hd_pending ? "a placeholder in a here-document line" :
				       NULL;
	case C_SQ:
	case C_DQ:
		return NULL;
	case C_BQ:
		return "a placeholder inside backquotes (use $(...))";
	case C_PARAM:
		return "a placeholder inside ${...}";
	case C_ARITH:
		return "a placeholder inside $((...))";
	case C_ANSI:
		return "a placeholder inside $'...'";
	case C_COMMENT:
		return "a placeholder in a shell comment";
	case C_HEREDOC:
		return "a placeholder in a here-document (pass it with env instead)";
	}
	return "an unknown shell context";
}

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

/*
 * The one walk behind scan and render: copies literal text to out (if
 * any), feeds it to the lexer, and calls emit for each placeholder.
 */
typedef int (*emit_fn)(void *ctx, const char *name, size_t off,
		       enum ctx where, struct buf *out);

static int walk(const char *tpl, enum tpl_mode mode, emit_fn emit, void *ctx,
		struct buf *out, char *problem, size_t plen, size_t *poff)
{
	struct lex L;
	size_t i = 0;
	int ret = -1;

	lex_init(&L);
	while (tpl[i]) {
		struct ph ph;
		const char *why;
		char name[256];

		if (!(tpl[i] == '{' && tpl[i + 1] == '{')) {
			size_t from = i;

			if (mode == TPL_SHELL)
				lex_step(&L, tpl, &i);
			else
				i++;
			if (out)
				buf_add(out, tpl + from, i - from);
			continue;
		}
		*poff = i;
		if (parse_ph(tpl, i, &ph, problem, plen) < 0)
			goto out;
		if (ph.literal) {
			size_t j = 0;

			/* the text is template text: follow its quoting */
			char *lit = xstrndup(ph.inner, ph.len);

			while (lit[j]) {
				size_t from = j;

				if (mode == TPL_SHELL)
					lex_step(&L, lit, &j);
				else
					j++;
				if (j > ph.len)
					j = ph.len;
				if (out)
					buf_add(out, lit + from, j - from);
			}
			free(lit);
			i = ph.end;
			continue;
		}
		if (mode == TPL_SHELL && (why = lex_refuse(&L))) {
			snprintf(problem, plen,
				 "expected placeholders only in plain words or inside quotes, found %s",
				 why);
			goto out;
		}
		memcpy(name, ph.inner, ph.len);
		name[ph.len] = '\0';
		if (emit(ctx, name, i, mode == TPL_SHELL ? top(&L) : C_PLAIN,
			 out) < 0) {
			snprintf(problem, plen, "unknown variable \"%s\"",
				 name);
			goto out;
		}
		L.word_start = false;
		L.dollar = false;
		i = ph.end;
	}
	ret = 0;
out:
	buf_release(&L.line);
	return ret;
}

static int scan_emit(void *ctx, const char *name, size_t off, enum ctx where,
		     struct buf *out)
{
	struct tpl_refs *r = ctx;

	(void)where;
	(void)out;
	r->v = xgrow(r->v, &r->cap, r->n + 1, sizeof(*r->v));
	r->v[r->n].name = xstrdup(name);
	r->v[r->n].off = off;
	r->n++;
	return 0;
}

int tpl_scan(const char *tpl, enum tpl_mode mode, struct tpl_refs *r,
	     char *problem, size_t problem_len, size_t *off)
{
	size_t dummy = 0;

	return walk(tpl, mode, scan_emit, r, NULL, problem, problem_len,
		    off ? off : &dummy);
}

static void quote_in(struct buf *out, const char *v, enum ctx where)
{
	switch (where) {
	case C_SQ:
		for (; *v; v++) {
			if (*v == '\'')
				buf_adds(out, "'\\''");
			else
				buf_addc(out, *v);
		}
		break;
	case C_DQ:
		for (; *v; v++) {
			if (*v == '$' || *v == '`' || *v == '"' || *v == '\\')
				buf_addc(out, '\\');
			buf_addc(out, *v);
		}
		break;
	default:
		shell_quote(out, v);
		break;
	}
}

struct render_ctx {
	enum tpl_mode mode;
	enum tpl_secrets sec;
	tpl_lookup_fn lookup;
	void *ctx;
};

static int render_emit(void *ctx, const char *name, size_t off,
		       enum ctx where, struct buf *out)
{
	struct render_ctx *rc = ctx;
	const char *v;

	(void)off;
	if (strncmp(name, "secrets.", 8) == 0) {
		if (rc->sec == TPL_SECRET_MASK) {
			buf_addf(out, "[secret:%s]", name + 8);
			return 0;
		}
		if (rc->sec == TPL_SECRET_KEEP) {
			buf_addf(out, "{{ %s }}", name);
			return 0;
		}
	}
	if (!(v = rc->lookup(rc->ctx, name)))
		return -1;
	if (v == tpl_defer) {
		buf_addf(out, "{{ %s }}", name);
		return 0;
	}
	{
		struct buf q = BUF_INIT;

		if (rc->mode == TPL_RAW)
			buf_adds(&q, v);
		else
			quote_in(&q, v, where);
		/*
		 * The record is rendered again when a rollback is replayed
		 * (to resolve secrets): a value's own "{{" must stay text.
		 */
		if (rc->sec == TPL_SECRET_KEEP) {
			for (const char *p = buf_str(&q); *p; p++) {
				if (p[0] == '{' && p[1] == '{') {
					buf_adds(out, "{{ '{{' }}");
					p++;
				} else {
					buf_addc(out, *p);
				}
			}
		} else {
			buf_add(out, q.data ? q.data : "", q.len);
		}
		buf_release(&q);
	}
	return 0;
}

int tpl_render(const char *tpl, enum tpl_mode mode, enum tpl_secrets sec,
	       tpl_lookup_fn lookup, void *ctx, struct buf *out,
	       struct rb_error *err)
{
	struct render_ctx rc = { mode, sec, lookup, ctx };
	char problem[512];
	size_t off = 0, start = out->len;

	if (walk(tpl, mode, render_emit, &rc, out, problem, sizeof(problem),
		 &off) < 0) {
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
