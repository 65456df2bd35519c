/*
 * struct ynode tree -> struct runbook. Each mapping is checked against
 * a table of its keys first (unknown and missing keys), then each value
 * is converted with one typed getter that reports what it expected and
 * what it found. Loading goes on after a problem so one run reports
 * them all; the model is handed out only when there was none.
 */
#include "load.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup.h"
#include "buf.h"
#include "guard.h"
#include "include.h"
#include "inventory.h"
#include "notify.h"
#include "runbook.h"
#include "suggest.h"
#include "yamltree.h"

struct loader {
	struct diag *d;
	struct runbook *rb;
	struct include_set *inc;	/* include: items (include.c) */
};

struct keyspec {
	const char *name;
	bool required;
};

#define MAX_KEYS 32	/* the most keys a mapping of the format has */

static char *pathf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *pathf(const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	return buf_detach(&b);
}

static const char *join(struct buf *b, const char *path, const char *key)
{
	buf_reset(b);
	if (*path) {	/* not buf_addf: this runs for every key of the file */
		buf_adds(b, path);
		buf_addc(b, '.');
	}
	buf_adds(b, key);
	return buf_str(b);
}

static void bad(struct loader *L, const struct ynode *n, const char *path,
		const char *expected)
{
	ynode_bad(L->d, n, path, expected);
}

/*
 * Reports unknown keys (but skip, handled by the caller; "x-*": every
 * key starting "x-") and missing ones.
 */
static bool check_keys_skip(struct loader *L, const struct ynode *map,
			    const char *path, const struct keyspec *keys,
			    size_t nkeys, const char *skip)
{
	bool ok = true, suggested[MAX_KEYS] = { false };
	struct buf p = BUF_INIT;

	assert(nkeys <= MAX_KEYS);
	for (size_t i = 0; i < map->n; i++) {
		const struct ynode *k = map->keys[i];
		bool known = false;

		known = skip && (strcmp(k->text, skip) == 0 ||
				 (strcmp(skip, "x-*") == 0 &&
				  strncmp(k->text, "x-", 2) == 0));
		for (size_t j = 0; j < nkeys && !known; j++)
			known = strcmp(k->text, keys[j].name) == 0;
		if (!known) {
			struct buf list = BUF_INIT;
			const char *names[MAX_KEYS], *near;

			for (size_t j = 0; j < nkeys; j++) {
				buf_addf(&list, "%s%s", j ? ", " : "",
					 keys[j].name);
				names[j] = keys[j].name;
			}
			near = suggest_closest(k->text, names, nkeys);
			for (size_t j = 0; near && j < nkeys; j++)
				suggested[j] |= names[j] == near;
			diag_at(L->d, &k->pos,
				"%s: expected one of the keys %s, found unknown key \"%s\"%s%s%s",
				join(&p, path, k->text), buf_str(&list),
				k->text, near ? "; did you mean " : "",
				near ? near : "", near ? "?" : "");
			buf_release(&list);
			ok = false;
		}
	}
	/* a missing key that an unknown one misspells is said there */
	for (size_t j = 0; j < nkeys; j++) {
		if (keys[j].required && !suggested[j] &&
		    !ynode_get(map, keys[j].name)) {
			diag_at(L->d, &map->pos,
				"%s: expected a key \"%s\", found none",
				join(&p, path, keys[j].name), keys[j].name);
			ok = false;
		}
	}
	buf_release(&p);
	return ok;
}

static bool check_keys(struct loader *L, const struct ynode *map,
		       const char *path, const struct keyspec *keys,
		       size_t nkeys)
{
	return check_keys_skip(L, map, path, keys, nkeys, NULL);
}

/* Duplicate keys: the spec requires unique keys, libyaml does not check. */
static int cmp_keyptr(const void *a, const void *b)
{
	const struct ynode *x = *(const struct ynode *const *)a;
	const struct ynode *y = *(const struct ynode *const *)b;
	int c = strcmp(x->text, y->text);

	if (c)
		return c;
	if (x->pos.line != y->pos.line)
		return x->pos.line < y->pos.line ? -1 : 1;
	return x->pos.col < y->pos.col ? -1 : x->pos.col > y->pos.col;
}

/* A path from the root, built only when a message needs it. */
struct pathseg {
	const struct pathseg *up;
	const char *key;	/* NULL: a list index */
	size_t idx;
};

static void path_text(struct buf *b, const struct pathseg *p)
{
	if (!p)
		return;
	path_text(b, p->up);
	if (p->key) {
		if (p->up)
			buf_addc(b, '.');
		buf_adds(b, p->key);
	} else {
		char num[24], *e = num + sizeof(num);
		size_t v = p->idx;

		*--e = '\0';
		do
			*--e = (char)('0' + v % 10);
		while ((v /= 10));
		buf_addc(b, '[');
		buf_adds(b, e);
		buf_addc(b, ']');
	}
}

static void check_dup_keys(struct loader *L, const struct ynode *n,
			   const struct pathseg *up, unsigned depth)
{
	if (depth > YTREE_MAX_DEPTH)
		return;
	if (n->type == YN_MAP && n->n > 1) {
		const struct ynode **ks = xmalloc(n->n * sizeof(*ks));

		for (size_t i = 0; i < n->n; i++)
			ks[i] = n->keys[i];
		qsort(ks, n->n, sizeof(*ks), cmp_keyptr);
		for (size_t i = 1, first = 0; i < n->n; i++) {
			struct pathseg seg = { up, ks[i]->text, 0 };
			struct buf p = BUF_INIT;

			if (strcmp(ks[i]->text, ks[first]->text) != 0) {
				first = i;
				continue;
			}
			path_text(&p, &seg);
			diag_at(L->d, &ks[i]->pos,
				"%s: expected each key once, found \"%s\" again (first at %s)",
				buf_str(&p), ks[i]->text,
				diag_ref(L->d, ks[first]->pos, ks[i]->pos));
			buf_release(&p);
		}
		free(ks);
	}
	for (size_t i = 0; i < n->n; i++) {
		struct pathseg seg = { up, n->type == YN_MAP ?
				       n->keys[i]->text : NULL, i };

		if (n->items[i]->type != YN_SCALAR)
			check_dup_keys(L, n->items[i], &seg, depth + 1);
	}
}

/*
 * A number or boolean in quotes is text to YAML: where the plain word
 * would have been right (plain_ok), the message says the one fix.
 */
static void bad_quoted(struct loader *L, const struct ynode *n,
		       const char *path, const char *expected, bool plain_ok)
{
	if (!plain_ok || n->type != YN_SCALAR ||
	    (n->style != YS_SINGLE && n->style != YS_DOUBLE))
		bad(L, n, path, expected);
	else
		ynode_bad_quoted(L->d, n, path, expected);
}

static bool want_map(struct loader *L, const struct ynode *n,
		     const char *path)
{
	if (n->type == YN_MAP)
		return true;
	bad(L, n, path, "a mapping");
	return false;
}

static bool want_seq(struct loader *L, const struct ynode *n,
		     const char *path)
{
	if (n->type == YN_SEQ)
		return true;
	bad(L, n, path, "a list");
	return false;
}

static bool is_text(const struct ynode *n)
{
	return n->type == YN_SCALAR && !ynode_is_null(n);
}

/* Where s[0] sits, if the scalar's text is its source text. */
static unsigned first_col(const struct ynode *n)
{
	if (n->style == YS_BLOCK)
		return n->block_col;
	if (memchr(n->text, '\n', n->len))
		return 0;
	switch (n->style) {
	case YS_PLAIN:
		return n->pos.col;
	case YS_SINGLE:
		return memchr(n->text, '\'', n->len) ? 0 : n->pos.col + 1;
	case YS_DOUBLE:
		for (size_t i = 0; i < n->len; i++)
			if (n->text[i] == '\\' || n->text[i] == '"' ||
			    (unsigned char)n->text[i] < 0x20)
				return 0;
		return n->pos.col + 1;
	default:
		return 0;
	}
}

static bool get_string(struct loader *L, const struct ynode *n,
		       const char *path, struct strval *out)
{
	if (!n)
		return false;
	if (!is_text(n)) {
		bad(L, n, path, "a string");
		return false;
	}
	out->s = xstrndup(n->text, n->len);
	out->pos = n->pos;
	out->col0 = first_col(n);
	out->line0 = n->style == YS_BLOCK ? n->block_line : 0;
	return true;
}

static bool get_nonempty(struct loader *L, const struct ynode *n,
			 const char *path, struct strval *out)
{
	if (!n)
		return false;
	if (!is_text(n) || strspn(n->text, " \t\r\n") == n->len) {
		bad(L, n, path, "a non-empty string");
		return false;
	}
	out->s = xstrndup(n->text, n->len);
	out->pos = n->pos;
	out->col0 = first_col(n);
	out->line0 = n->style == YS_BLOCK ? n->block_line : 0;
	return true;
}

static bool get_bool(struct loader *L, const struct ynode *n,
		     const char *path, bool *out)
{
	bool word = n->type == YN_SCALAR && (strcmp(n->text, "true") == 0 ||
					     strcmp(n->text, "false") == 0);

	if (word && n->style == YS_PLAIN && !n->tag_str) {
		*out = n->text[0] == 't';
		return true;
	}
	bad_quoted(L, n, path, "true or false", word);
	return false;
}

static bool get_uint(struct loader *L, const struct ynode *n,
		     const char *path, unsigned min, unsigned max,
		     unsigned *out)
{
	char expected[96];
	bool fits = false;
	unsigned long v = 0;

	if (n->type == YN_SCALAR && n->len > 0 && n->len <= 9 &&
	    strspn(n->text, "0123456789") == n->len) {
		v = strtoul(n->text, NULL, 10);
		fits = v >= min && v <= max;
	}
	if (fits && n->style == YS_PLAIN && !n->tag_str) {
		*out = (unsigned)v;
		return true;
	}
	snprintf(expected, sizeof(expected), "a whole number from %u to %u",
		 min, max);
	bad_quoted(L, n, path, expected, fits);
	return false;
}

static bool get_duration(struct loader *L, const struct ynode *n,
			 const char *path, unsigned *out)
{
	if (is_text(n) && parse_duration(n->text, out) == 0)
		return true;
	bad(L, n, path, "a duration such as 30s, 5m or 1h30m (at most 24h)");
	return false;
}

/* name -> string maps: vars, env, capture. */
static void get_kvs(struct loader *L, const struct ynode *n,
		    const char *path, const char *what, struct kv **out,
		    size_t *nout)
{
	struct buf p = BUF_INIT;
	size_t cap = 0;

	if (!want_map(L, n, path))
		return;
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *k = n->keys[i], *v = n->items[i];
		const char *sub = join(&p, path, k->text);
		struct kv kv = { 0 };

		if (!is_var_name(k->text)) {
			diag_at(L->d, &k->pos,
				"%s: expected %s name of letters, digits and _ (not starting with a digit), found \"%s\"",
				sub, what, k->text);
			continue;
		}
		if (!is_text(v)) {
			bad(L, v, sub, "a string");
			continue;
		}
		kv.key = xstrdup(k->text);
		kv.key_pos = k->pos;
		kv.val = xstrndup(v->text, v->len);
		kv.pos = v->pos;
		kv.col0 = first_col(v);
		kv.line0 = v->style == YS_BLOCK ? v->block_line : 0;
		*out = xgrow(*out, &cap, *nout + 1, sizeof(**out));
		(*out)[(*nout)++] = kv;
	}
	buf_release(&p);
}

static void get_pattern(struct loader *L, const struct ynode *map,
			const char *key, const char *path, struct strval *out)
{
	struct buf p = BUF_INIT;
	const struct ynode *n = ynode_get(map, key);

	if (n)
		get_string(L, n, join(&p, path, key), out);
	buf_release(&p);
}

static void load_expect(struct loader *L, const struct ynode *n,
			const char *path, struct expect *e)
{
	static const struct keyspec keys[] = {
		{ "exit", false }, { "stdout", false }, { "stderr", false },
		{ "not_stdout", false }, { "not_stderr", false },
	};
	struct buf p = BUF_INIT;
	const struct ynode *x;

	if (!want_map(L, n, path))
		return;
	check_keys(L, n, path, keys, sizeof(keys) / sizeof(keys[0]));
	if ((x = ynode_get(n, "exit"))) {
		const char *sub = join(&p, path, "exit");
		unsigned v;

		e->exit_pos = x->pos;
		if (x->type == YN_SEQ) {
			if (x->n == 0)
				bad(L, x, sub, "an exit code or a non-empty list of them");
			free(e->exit_codes);
			e->exit_codes = xcalloc(x->n ? x->n : 1, sizeof(int));
			e->n_exit = 0;
			for (size_t i = 0; i < x->n; i++) {
				char *item = pathf("%s[%zu]", sub, i);

				if (get_uint(L, x->items[i], item, 0, 255, &v))
					e->exit_codes[e->n_exit++] = (int)v;
				free(item);
			}
			if (e->n_exit == 0) {
				e->exit_codes[0] = 0;
				e->n_exit = 1;
			}
		} else if (get_uint(L, x, sub, 0, 255, &v)) {
			e->exit_codes[0] = (int)v;
		}
	}
	get_pattern(L, n, "stdout", path, &e->out);
	get_pattern(L, n, "stderr", path, &e->err);
	get_pattern(L, n, "not_stdout", path, &e->not_out);
	get_pattern(L, n, "not_stderr", path, &e->not_err);
	buf_release(&p);
}

/*
 * YAML 1.1 would read these as booleans or null: never a rollback.
 * yes, no, on, off, y and n are refused quoted too, so the JSON Schema
 * (which sees "no" and no alike) can refuse them as well; a command of
 * that name is written shell-quoted ('no'). true and false are refused
 * plain only: rollback: "true" is the command true.
 */
static bool ambiguous_word(const struct ynode *n)
{
	static const char *const words[] = {
		"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
		"on", "On", "ON", "off", "Off", "OFF",
		"true", "True", "TRUE", "false", "False", "FALSE",
	};
	size_t any_style = 16;	/* words before true: refused in any style */

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(n->text, words[i]) == 0)
			return i < any_style ||
			       (n->style == YS_PLAIN && !n->tag_str);
	return false;
}

/* The word none, whatever its case and blanks around it. */
static bool none_word(const char *s, size_t *len)
{
	size_t n;

	s += strspn(s, " \t\r\n");
	n = strlen(s);
	while (n && strchr(" \t\r\n", s[n - 1]))
		n--;
	*len = n;
	return n == 4 && strncasecmp(s, "none", 4) == 0;
}

/*
 * run: None and rollback: NONE (or "none ") would run a command named
 * so: a rollback's none means nothing to undo only as the exact word,
 * and a run is never none.
 */
static void check_none_word(struct loader *L, const struct ynode *x,
			    const char *path, const char *s, bool rollback)
{
	struct buf f = BUF_INIT;
	const char *w = s + strspn(s, " \t\r\n");
	size_t n;

	if (!none_word(s, &n) || (rollback && strcmp(s, "none") == 0))
		return;
	ynode_found(&f, x);
	if (rollback)
		diag_at(L->d, &x->pos,
			"%s: expected none in lowercase (nothing to undo) or the command that undoes the step, found %s; write none, or shell-quote a command of that name ('%.*s')",
			path, buf_str(&f), (int)n, w);
	else
		diag_at(L->d, &x->pos,
			"%s: expected a command, found %s; none is a rollback's word for nothing to undo, never a command to run (shell-quote a command of that name: '%.*s')",
			path, buf_str(&f), (int)n, w);
	buf_release(&f);
}

/* A metric's max, min, max_increase, max_decrease (guard.h). */
static void load_guards(struct loader *L, const struct ynode *n,
			struct step *s)
{
	struct buf p = BUF_INIT;

	for (int k = 0; k < GUARD_COUNT; k++) {
		const struct ynode *x = ynode_get(n, guard_key[k]);
		bool rel = k == GUARD_MAX_INCREASE || k == GUARD_MAX_DECREASE;

		if (!x)
			continue;
		if (x->type != YN_SCALAR || x->tag_str ||
		    !guard_parse(x->text, rel, &s->guards[k])) {
			bad(L, x, join(&p, s->path, guard_key[k]), rel ?
			    "a number of the metric's units or a percentage of its value before the change, such as 50 or 20%" :
			    "a number such as 150 or 0.5 (max and min are absolute; use max_increase or max_decrease for a percentage)");
			continue;
		}
		s->guards[k].text = xstrdup(x->text);
	}
	buf_release(&p);
}

static void load_step(struct loader *L, const struct ynode *n,
		      enum phase ph, size_t idx, struct step *s)
{
	static const struct keyspec step_keys[] = {
		{ "name", true }, { "run", true }, { "rollback", true },
		{ "expect", false }, { "capture", false }, { "timeout", false },
		{ "retries", false }, { "retry_delay", false }, { "env", false },
		{ "dir", false }, { "skip_if", false }, { "local", false },
		{ "backup", false },
	};
	static const struct keyspec check_keys_[] = {
		{ "name", true }, { "run", true }, { "expect", false },
		{ "capture", false }, { "timeout", false }, { "retries", false },
		{ "retry_delay", false }, { "env", false }, { "dir", false },
		{ "skip_if", false }, { "local", false }, { "baseline", false },
	};
	static const struct keyspec metric_keys[] = {
		{ "name", true }, { "run", true }, { "pattern", true },
		{ "timeout", false }, { "env", false }, { "dir", false },
		{ "local", false }, { "max", false }, { "min", false },
		{ "max_increase", false }, { "max_decrease", false },
	};
	struct buf p = BUF_INIT;
	const struct ynode *x;

	s->phase = ph;
	s->index = idx;
	s->path = pathf("%s[%zu]", phase_key(ph), idx);
	s->pos = n->pos;
	s->timeout_ms = RB_DEFAULT_TIMEOUT_MS;
	s->retry_delay_ms = RB_DEFAULT_RETRY_DELAY_MS;
	s->expect.exit_codes = xcalloc(1, sizeof(int));
	s->expect.n_exit = 1;
	if (!want_map(L, n, s->path))
		goto out;

	if (ph == PHASE_STEPS) {
		check_keys(L, n, s->path, step_keys,
			   sizeof(step_keys) / sizeof(step_keys[0]));
	} else if (ph == PHASE_METRICS) {
		check_keys(L, n, s->path, metric_keys,
			   sizeof(metric_keys) / sizeof(metric_keys[0]));
	} else {
		check_keys_skip(L, n, s->path, check_keys_,
				sizeof(check_keys_) / sizeof(check_keys_[0]),
				"rollback");
		for (size_t i = 0; i < n->n; i++)
			if (strcmp(n->keys[i]->text, "rollback") == 0)
				diag_at(L->d, &n->keys[i]->pos,
					"%s.rollback: expected no rollback in %s (it must be read-only), found one; move the command to steps",
					s->path, phase_key(ph));
	}

	if ((x = ynode_get(n, "name"))) {
		const char *sub = join(&p, s->path, "name");

		if (get_nonempty(L, x, sub, &s->name)) {
			size_t chars = 0;	/* UTF-8 (checked): not 10xxxxxx */
			bool ctl = false;

			for (const char *c = s->name.s; *c; c++) {
				ctl |= (unsigned char)*c < 0x20 || *c == 0x7f;
				chars += ((unsigned char)*c & 0xc0) != 0x80;
			}
			if (ctl || chars > RB_MAX_STEP_NAME)
				bad(L, x, sub, "a name of at most 200 characters on one line");
		}
	}
	if ((x = ynode_get(n, "run")) &&
	    get_nonempty(L, x, join(&p, s->path, "run"), &s->run))
		check_none_word(L, x, join(&p, s->path, "run"), s->run.s,
				false);
	if (ph == PHASE_STEPS && (x = ynode_get(n, "rollback"))) {
		const char *sub = join(&p, s->path, "rollback");

		if (x->type == YN_SCALAR && (ynode_is_null(x) ||
					     ambiguous_word(x)))
			bad(L, x, sub, "a command, or none to say nothing needs undoing");
		else if (get_nonempty(L, x, sub, &s->rollback)) {
			s->rollback_none = strcmp(s->rollback.s, "none") == 0;
			check_none_word(L, x, sub, s->rollback.s, true);
		}
	}
	if (ph == PHASE_METRICS && (x = ynode_get(n, "pattern")))
		get_nonempty(L, x, join(&p, s->path, "pattern"), &s->pattern);
	if (ph == PHASE_METRICS)
		load_guards(L, n, s);
	if (ph != PHASE_METRICS) {
		if ((x = ynode_get(n, "expect")))
			load_expect(L, x, join(&p, s->path, "expect"),
				    &s->expect);
		if ((x = ynode_get(n, "capture")))
			get_kvs(L, x, join(&p, s->path, "capture"),
				"a variable", &s->capture, &s->n_capture);
		if ((x = ynode_get(n, "retries")))
			get_uint(L, x, join(&p, s->path, "retries"), 0,
				 RB_MAX_RETRIES, &s->retries);
		if ((x = ynode_get(n, "retry_delay"))) {
			const char *sub = join(&p, s->path, "retry_delay");

			if (get_duration(L, x, sub, &s->retry_delay_ms) &&
			    s->retry_delay_ms == 0)
				bad(L, x, sub, "a duration above zero, such as 1s or 500ms");
		}
		if ((x = ynode_get(n, "skip_if")))
			get_nonempty(L, x, join(&p, s->path, "skip_if"),
				     &s->skip_if);
	}
	if ((x = ynode_get(n, "timeout"))) {
		const char *sub = join(&p, s->path, "timeout");

		if (get_duration(L, x, sub, &s->timeout_ms) &&
		    s->timeout_ms == 0)
			bad(L, x, sub, "a duration above zero, such as 30s or 5m");
	}
	if ((x = ynode_get(n, "env")))
		get_kvs(L, x, join(&p, s->path, "env"),
			"an environment variable", &s->env, &s->n_env);
	if ((x = ynode_get(n, "dir")))
		get_nonempty(L, x, join(&p, s->path, "dir"), &s->dir);
	if ((x = ynode_get(n, "local")))
		get_bool(L, x, join(&p, s->path, "local"), &s->local);
	if ((x = ynode_get(n, "baseline"))) {
		bool on = true;

		if (ph != PHASE_PREFLIGHT)
			diag_at(L->d, &x->pos,
				"%s.baseline: expected no baseline in %s (only preflight output is compared with the baseline after a rollback), found one; remove it",
				s->path, phase_key(ph));
		else if (get_bool(L, x, join(&p, s->path, "baseline"), &on))
			s->no_baseline = !on;
	}
	if (ph == PHASE_STEPS)
		backup_load_step(L->d, n, s);
out:
	buf_release(&p);
}

/* A step list with its include: items spliced in (include.c). */
static const struct ynode *spliced(struct loader *L, const struct ynode *n,
				   const char *path)
{
	const struct ynode *s = include_splice(L->inc, n, path);
	struct pathseg list = { NULL, path, 0 };

	/* the root's walk saw the items of this file, not included ones */
	for (size_t i = 0; s != n && i < s->n; i++) {
		struct pathseg item = { &list, NULL, i };

		if (s->items[i]->pos.line >> DIAG_FILE_SHIFT)
			check_dup_keys(L, s->items[i], &item, 1);
	}
	return s;
}

static void load_phase(struct loader *L, const struct ynode *root,
		       enum phase ph)
{
	const struct ynode *n = ynode_get(root, phase_key(ph));
	size_t before;

	if (!n)
		return;
	if (!want_seq(L, n, phase_key(ph)))
		return;
	before = diag_count(L->d);
	n = spliced(L, n, phase_key(ph));
	if (ph == PHASE_STEPS && n->n == 0 && diag_count(L->d) == before)
		bad(L, n, "steps", "a non-empty list of steps");
	L->rb->phases[ph] = xcalloc(n->n ? n->n : 1, sizeof(struct step));
	L->rb->n_phase[ph] = n->n;
	for (size_t i = 0; i < n->n; i++)
		load_step(L, n->items[i], ph, i, &L->rb->phases[ph][i]);
}

/* watch: { duration, interval, steps } (docs/watch.md). */
static void load_watch(struct loader *L, const struct ynode *n)
{
	static const struct keyspec keys[] = {
		{ "duration", true }, { "interval", true }, { "steps", true },
	};
	struct runbook *rb = L->rb;
	const struct ynode *x;
	size_t before;

	if (!want_map(L, n, "watch"))
		return;
	check_keys(L, n, "watch", keys, sizeof(keys) / sizeof(keys[0]));
	if ((x = ynode_get(n, "duration")) &&
	    get_duration(L, x, "watch.duration", &rb->watch_duration_ms) &&
	    rb->watch_duration_ms == 0)
		bad(L, x, "watch.duration", "a duration above zero, such as 10m");
	if ((x = ynode_get(n, "interval")) &&
	    get_duration(L, x, "watch.interval", &rb->watch_interval_ms)) {
		if (rb->watch_interval_ms == 0)
			bad(L, x, "watch.interval", "a duration above zero, such as 30s");
		else if (rb->watch_duration_ms &&
			 rb->watch_interval_ms > rb->watch_duration_ms)
			bad(L, x, "watch.interval", "a duration no longer than watch.duration");
	}
	if (!(x = ynode_get(n, "steps")) || !want_seq(L, x, "watch.steps"))
		return;
	before = diag_count(L->d);
	x = spliced(L, x, "watch.steps");
	if (x->n == 0 && diag_count(L->d) == before)
		bad(L, x, "watch.steps", "a non-empty list of read-only checks");
	rb->phases[PHASE_WATCH] = xcalloc(x->n ? x->n : 1, sizeof(struct step));
	rb->n_phase[PHASE_WATCH] = x->n;
	for (size_t i = 0; i < x->n; i++)
		load_step(L, x->items[i], PHASE_WATCH, i,
			  &rb->phases[PHASE_WATCH][i]);
}

/*
 * The file's host form is narrower than what host_parse() takes (it
 * also reads hosts back from notes): user and name of letters, digits,
 * '.', '_' and '-', an IPv6 address of hex digits, ':' and '.', as the
 * JSON Schema says.
 */
static bool host_chars_ok(const struct host *h)
{
	static const char word[] = "abcdefghijklmnopqrstuvwxyz"
				   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
	const char *a = h->address;

	if (h->local)
		return true;
	if (h->user && h->user[strspn(h->user, word)])
		return false;
	if (strchr(h->spec, '['))
		return a[strspn(a, "0123456789abcdefABCDEF:.")] == '\0';
	return a[strspn(a, word)] == '\0';
}

static void load_host(struct loader *L, const struct ynode *n,
		      const char *path, struct host *h)
{
	static const struct keyspec keys[] = { { "host", true },
					       { "identity", false },
					       { "vars", false } };
	struct buf p = BUF_INIT;
	const struct ynode *spec = n, *id;
	struct strval sv = { 0 };

	h->pos = n->pos;
	if (n->type == YN_MAP) {
		check_keys(L, n, path, keys, 3);
		if ((id = ynode_get(n, "vars")))
			get_kvs(L, id, join(&p, path, "vars"), "a variable",
				&h->vars, &h->n_vars);
		if ((id = ynode_get(n, "identity")) &&
		    get_nonempty(L, id, join(&p, path, "identity"), &sv))
			h->identity = sv.s;
		spec = ynode_get(n, "host");
		path = join(&p, path, "host");
		if (!spec)
			goto out;
		h->pos = spec->pos;
	}
	if (!is_text(spec)) {
		bad(L, spec, path, "a host such as local, host, user@host or user@host:2222");
		goto out;
	}
	h->spec = xstrndup(spec->text, spec->len);
	if (!host_parse(h) || !host_chars_ok(h)) {
		bad(L, spec, path, "a host such as local, host, user@host or user@host:2222");
		/* no address: not compared with the other hosts */
		free(h->address);
		h->address = NULL;
	}
out:
	buf_release(&p);
}

static void load_target(struct loader *L, const struct ynode *k,
			const struct ynode *n, struct target *t)
{
	static const struct keyspec keys[] = {
		{ "hosts", true }, { "serial", false }, { "identity", false },
		{ "pause", false }, { "max_fail", false }, { "confirm", false },
		{ "vars", false },
	};
	char *path = pathf("targets.%s", k->text);
	struct buf p = BUF_INIT;
	const struct ynode *x;

	t->name = xstrdup(k->text);
	t->pos = k->pos;
	if (!is_runbook_name(k->text))
		diag_at(L->d, &k->pos,
			"targets: expected a target name of a-z, 0-9, '.', '_' and '-' (at most 64, starting with a letter or digit), found \"%s\"",
			k->text);
	if (!want_map(L, n, path))
		goto out;
	check_keys(L, n, path, keys, sizeof(keys) / sizeof(keys[0]));
	if ((x = ynode_get(n, "hosts"))) {
		const char *sub = join(&p, path, "hosts");

		if (want_seq(L, x, sub)) {
			if (x->n == 0)
				bad(L, x, sub, "a non-empty list of hosts");
			t->hosts = xcalloc(x->n ? x->n : 1, sizeof(*t->hosts));
			t->n_hosts = x->n;
			for (size_t i = 0; i < x->n; i++) {
				char *item = pathf("%s[%zu]", sub, i);

				load_host(L, x->items[i], item, &t->hosts[i]);
				free(item);
			}
		}
	}
	inventory_target_keys(L->d, n, path, t);
	if ((x = ynode_get(n, "identity")))
		get_nonempty(L, x, join(&p, path, "identity"), &t->identity);
out:
	buf_release(&p);
	free(path);
}

static void load_secrets(struct loader *L, const struct ynode *n)
{
	static const struct keyspec keys[] = { { "env", false },
					       { "file", false } };
	struct buf p = BUF_INIT;
	size_t cap = 0;

	if (!want_map(L, n, "secrets"))
		return;
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *k = n->keys[i], *v = n->items[i];
		const struct ynode *env, *file;
		char *path = pathf("secrets.%s", k->text);
		struct secret s = { 0 };
		struct strval from = { 0 };
		bool keys_ok;

		if (!is_var_name(k->text)) {
			diag_at(L->d, &k->pos,
				"%s: expected a secret name of letters, digits and _ (not starting with a digit), found \"%s\"",
				path, k->text);
			free(path);
			continue;
		}
		if (!want_map(L, v, path)) {
			free(path);
			continue;
		}
		keys_ok = check_keys(L, v, path, keys, 2);
		env = ynode_get(v, "env");
		file = ynode_get(v, "file");
		/* { evn: X } is said once, as an unknown key */
		if ((env && file) || (!env && !file && keys_ok)) {
			diag_at(L->d, &v->pos,
				"%s: expected exactly one source, env: VARIABLE or file: PATH, found %s",
				path, env ? "both" : "neither");
		} else if (env) {
			if (get_nonempty(L, env, join(&p, path, "env"), &from)) {
				if (!is_var_name(from.s))
					bad(L, env, join(&p, path, "env"),
					    "an environment variable name");
				s.source = SECRET_ENV;
			}
		} else if (get_nonempty(L, file, join(&p, path, "file"),
					&from)) {
			s.source = SECRET_FILE;
		}
		free(path);
		if (!from.s)
			continue;
		s.name = xstrdup(k->text);
		s.pos = k->pos;
		s.from = from.s;
		L->rb->secrets = xgrow(L->rb->secrets, &cap,
				       L->rb->n_secrets + 1, sizeof(s));
		L->rb->secrets[L->rb->n_secrets++] = s;
	}
	buf_release(&p);
}

static void load_root(struct loader *L, const struct ynode *root)
{
	static const struct keyspec keys[] = {
		{ "version", true }, { "name", true }, { "owner", true },
		{ "reason", true }, { "expected", true }, { "targets", false },
		{ "vars", false }, { "secrets", false }, { "redact", false },
		{ "preflight", false }, { "steps", true }, { "verify", false },
		{ "metrics", false }, { "watch", false }, { "backup_dir", false },
		{ "inventory", false },
		{ "notify", false },
	};
	struct runbook *rb = L->rb;
	const struct ynode *x;

	/* x-: free for anchors (docs/format.md, "Reuse") */
	check_keys_skip(L, root, "", keys, sizeof(keys) / sizeof(keys[0]),
			"x-*");
	if ((x = ynode_get(root, "version"))) {
		bool one = x->type == YN_SCALAR && strcmp(x->text, "1") == 0;

		if (one && x->style == YS_PLAIN && !x->tag_str)
			rb->version = 1;
		else
			bad_quoted(L, x, "version",
				   "1 (the only format version)", one);
	}
	if ((x = ynode_get(root, "name")) && get_string(L, x, "name", &rb->name) &&
	    !is_runbook_name(rb->name.s))
		bad(L, x, "name",
		    "a name of a-z, 0-9, '.', '_' and '-' (at most 64, starting with a letter or digit)");
	if ((x = ynode_get(root, "owner")))
		get_nonempty(L, x, "owner", &rb->owner);
	if ((x = ynode_get(root, "reason")))
		get_nonempty(L, x, "reason", &rb->reason);
	if ((x = ynode_get(root, "expected")))
		get_nonempty(L, x, "expected", &rb->expected);

	if ((x = ynode_get(root, "targets")) && want_map(L, x, "targets")) {
		if (x->n == 0)
			bad(L, x, "targets", "at least one target");
		rb->targets = xcalloc(x->n ? x->n : 1, sizeof(*rb->targets));
		rb->n_targets = x->n;
		for (size_t i = 0; i < x->n; i++)
			load_target(L, x->keys[i], x->items[i],
				    &rb->targets[i]);
	}
	if (!rb->targets) {
		rb->implicit_target = true;
		rb->targets = xcalloc(1, sizeof(*rb->targets));
		rb->n_targets = 1;
		rb->targets[0].name = xstrdup("local");
		rb->targets[0].hosts = xcalloc(1, sizeof(struct host));
		rb->targets[0].n_hosts = 1;
		rb->targets[0].hosts[0].spec = xstrdup("local");
		rb->targets[0].hosts[0].local = true;
	}
	if ((x = ynode_get(root, "vars")))
		get_kvs(L, x, "vars", "a variable", &rb->vars, &rb->n_vars);
	if ((x = ynode_get(root, "inventory")))
		get_nonempty(L, x, "inventory", &rb->inventory);
	if ((x = ynode_get(root, "secrets")))
		load_secrets(L, x);
	if ((x = ynode_get(root, "redact")) && want_seq(L, x, "redact")) {
		rb->redact = xcalloc(x->n ? x->n : 1, sizeof(*rb->redact));
		for (size_t i = 0; i < x->n; i++) {
			char *item = pathf("redact[%zu]", i);

			if (get_nonempty(L, x->items[i], item,
					 &rb->redact[rb->n_redact]))
				rb->n_redact++;
			free(item);
		}
	}
	if ((x = ynode_get(root, "notify")))
		notify_load(L->d, x, rb);	/* after secrets: env may name one */
	for (int ph = 0; ph < PHASE_WATCH; ph++)
		load_phase(L, root, (enum phase)ph);
	if ((x = ynode_get(root, "watch")))
		load_watch(L, x);
	backup_load_dir(L->d, root, rb);
}

int runbook_load_mem(const char *path, const char *data, size_t len,
		     struct runbook **out, struct diag *d)
{
	struct loader L = { d, NULL, NULL };
	struct ynode *root = NULL;
	size_t before = diag_count(d);

	if (len > YTREE_MAX_FILE) {
		struct src_pos p = { 1, 1 };

		diag_at(d, &p, "expected a runbook of at most 16 MiB, found %zu bytes",
			len);
		return -1;
	}
	if (ytree_parse(data, len, &root, d) < 0)
		return -1;
	if (!root) {
		struct src_pos p = { 1, 1 };

		diag_at(d, &p, "expected a runbook (a mapping with version, name, owner, reason, expected and steps), found an empty document");
		return -1;
	}
	if (root->type != YN_MAP) {
		bad(&L, root, "(top level)",
		    "a runbook (a mapping with version, name, owner, reason, expected and steps)");
		ytree_free(root);
		return -1;
	}
	L.rb = xcalloc(1, sizeof(*L.rb));
	L.rb->file = xstrdup(path);
	check_dup_keys(&L, root, NULL, 0);
	L.inc = include_new(path, d);
	load_root(&L, root);
	include_take_files(L.inc, &L.rb->includes, &L.rb->n_includes);
	include_free(L.inc);
	ytree_free(root);
	*out = L.rb;
	return diag_count(d) > before ? -1 : 0;
}

int runbook_load(const char *path, struct runbook **out, struct diag *d,
		 struct rb_error *err)
{
	struct buf data = BUF_INIT;
	struct stat st;
	int fd, ret = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rb_error_set(err, RB_ERR_INVALID,
			     "cannot read runbook '%s': %s; nothing was run, check the path and run again",
			     path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rb_error_set(err, RB_ERR_INVALID,
			     "cannot read runbook '%s': expected a regular file, found %s; nothing was run, check the path and run again",
			     path, S_ISDIR(st.st_mode) ? "a directory" : "something else");
		goto out;
	}
	if ((unsigned long long)st.st_size > YTREE_MAX_FILE) {
		struct src_pos p = { 1, 1 };

		diag_at(d, &p, "expected a runbook of at most 16 MiB, found %lld bytes",
			(long long)st.st_size);
		goto out;
	}
	buf_grow(&data, (size_t)st.st_size);
	for (;;) {
		ssize_t r;

		buf_grow(&data, 65536);
		r = read(fd, data.data + data.len, 65536);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rb_error_errno(err, RB_ERR_INVALID,
				       "cannot read runbook '%s'; nothing was run",
				       path);
			goto out;
		}
		if (r == 0)
			break;
		data.len += (size_t)r;
		data.data[data.len] = '\0';
		if (data.len > YTREE_MAX_FILE)
			break;
	}
	if (data.len == 0) {
		struct src_pos p = { 1, 1 };

		diag_at(d, &p, "expected a runbook (a mapping with version, name, owner, reason, expected and steps), found an empty file");
		goto out;
	}
	ret = runbook_load_mem(path, data.data, data.len, out, d);
out:
	buf_release(&data);
	close(fd);
	return ret;
}
