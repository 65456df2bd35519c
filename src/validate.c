/*
 * Semantic checks over the loaded model. Variable scope follows the
 * order things run in: vars and --var everywhere; preflight captures
 * for everything after them; a step's captures for later steps, for
 * its own rollback and for verify; metrics see vars and preflight
 * captures only (they are measured before the steps too).
 */
#include "validate.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "diag.h"
#include "error.h"
#include "match.h"
#include "render.h"
#include "runbook.h"
#include "suggest.h"
#include "template.h"

static const char *const builtins[] = { "change.id", "target", "host",
					"runbook.name" };

int is_builtin_var(const char *name)
{
	for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
		if (strcmp(name, builtins[i]) == 0)
			return 1;
	return 0;
}

/* A set of defined names; small, so a list does. */
struct scope {
	const char **v;
	size_t n, cap;
};

static void scope_add(struct scope *s, const char *name)
{
	s->v = xgrow(s->v, &s->cap, s->n + 1, sizeof(*s->v));
	s->v[s->n++] = name;
}

static bool scope_has(const struct scope *s, const char *name)
{
	for (size_t i = s->n; i-- > 0;)
		if (strcmp(s->v[i], name) == 0)
			return true;
	return false;
}

struct vctx {
	const struct runbook *rb;
	struct diag *d;
	struct scope names;
	struct strvec used;	/* every name a template names */
	size_t problems;
};

static void problem_at(struct vctx *V, struct src_pos pos, const char *fmt,
		       ...) __attribute__((format(printf, 3, 4)));
static void problem_at(struct vctx *V, struct src_pos pos, const char *fmt,
		       ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	diag_at(V->d, &pos, "%s", buf_str(&b));
	buf_release(&b);
	V->problems++;
}

/* "steps[2]" + "." + key, for messages */
#define PATH_FMT "%s%s%s"
#define PATH_ARGS(base, key) (base), (key) ? "." : "", (key) ? (key) : ""

/* Where a template is: what it may name and how values go in. */
enum place {
	IN_COMMAND,	/* run, rollback, skip_if, env, dir */
	IN_TEXT,	/* reason, expected: once for the whole change */
	IN_PATTERN,	/* expect, capture, a metric's pattern */
};

static bool is_capture(const struct runbook *rb, const char *name)
{
	for (int ph = 0; ph < PHASE_COUNT; ph++)
		for (size_t i = 0; i < rb->n_phase[ph]; i++)
			if (kv_find(rb->phases[ph][i].capture,
				    rb->phases[ph][i].n_capture, name))
				return true;
	return false;
}

/* Validation renders a pattern with this value for every name. */
static const char *stand_in(void *ctx, const char *name)
{
	(void)ctx;
	(void)name;
	return "x";
}

/* True when r's name is refused where it is; the problem is reported. */
static bool refuse_ref(struct vctx *V, const struct strval *v,
		       const struct tpl_ref *r, const char *base,
		       const char *key, enum place place)
{
	struct src_pos pos = strval_pos_at(v, r->off);
	const char *name = r->name;

	if (place == IN_TEXT && strncmp(name, "secrets.", 8) == 0) {
		problem_at(V, pos,
			   PATH_FMT ": expected no secret here (it is written in the note and the commit message), found {{ %s }}",
			   PATH_ARGS(base, key), name);
		return true;
	}
	if (place == IN_TEXT && (strcmp(name, "host") == 0 ||
				 is_capture(V->rb, name))) {
		problem_at(V, pos,
			   PATH_FMT ": expected a name that is one for the whole change (vars, --var, target, runbook.name, change.id), found {{ %s }}, %s",
			   PATH_ARGS(base, key), name,
			   strcmp(name, "host") == 0 ? "which differs per host" :
			   "a capture, known only once its step has run");
		return true;
	}
	if (place == IN_PATTERN) {
		char *before = xstrndup(v->s, r->off);
		struct rb_error err = RB_ERROR_INIT;
		struct buf b = BUF_INIT;
		const char *why = NULL;

		if (strncmp(name, "secrets.", 8) == 0)
			why = "is a secret; a pattern is shown in messages and plans, so no secret goes in one";
		else if (render_pattern(before, stand_in, NULL, &b, &err) == 0)
			why = render_pattern_refuse(buf_str(&b));
		if (why)
			problem_at(V, pos,
				   PATH_FMT ": expected a value matched literally, found {{ %s }}, which %s",
				   PATH_ARGS(base, key), name, why);
		free(before);
		buf_release(&b);
		return why != NULL;
	}
	return false;
}

static void check_template(struct vctx *V, const struct strval *v,
			   const char *base, const char *key, enum tpl_mode mode,
			   enum place place);

/*
 * A pattern with {{ }}: its names like a command's, then the pattern
 * with a stand-in value in place of each must compile.
 */
static bool check_pattern_template(struct vctx *V, const struct strval *v,
				   const char *base, const char *key,
				   struct buf *rendered)
{
	struct rb_error err = RB_ERROR_INIT;
	size_t before = V->problems;

	check_template(V, v, base, key, TPL_RAW, IN_PATTERN);
	if (V->problems != before)
		return false;
	return render_pattern(v->s, stand_in, NULL, rendered, &err) == 0;
}

static void check_pattern(struct vctx *V, const struct strval *v,
			  const char *base, const char *key, int want_groups,
			  bool templated)
{
	struct buf rendered = BUF_INIT;
	const char *src = v->s;
	unsigned groups = 0;
	char msg[256];
	size_t off = 0;

	if (!v->s)
		return;
	if (templated && strstr(v->s, "{{")) {
		if (!check_pattern_template(V, v, base, key, &rendered))
			goto out;
		src = buf_str(&rendered);
	}
	if (pattern_check(src, msg, sizeof(msg), &off, &groups) < 0) {
		struct buf q = BUF_INIT;

		diag_quote(&q, v->s, strlen(v->s), 80);
		if (src != v->s)
			problem_at(V, v->pos,
				   PATH_FMT ": expected a PCRE2 pattern, found \"%s\" which does not compile with a value in place of each {{ }}: %s",
				   PATH_ARGS(base, key), buf_str(&q), msg);
		else
			problem_at(V, strval_pos_at(v, off),
				   PATH_FMT ": expected a PCRE2 pattern, found \"%s\" which does not compile: %s at offset %zu",
				   PATH_ARGS(base, key), buf_str(&q), msg, off);
		buf_release(&q);
		goto out;
	}
	if (want_groups >= 0 && groups != (unsigned)want_groups) {
		struct buf q = BUF_INIT;

		diag_quote(&q, v->s, strlen(v->s), 80);
		problem_at(V, v->pos,
			   PATH_FMT ": expected a pattern with exactly one capture group (...), found %u groups in \"%s\"",
			   PATH_ARGS(base, key), groups, buf_str(&q));
		buf_release(&q);
	}
out:
	buf_release(&rendered);
}

/* "; did you mean {{ secrets.NAME }}?" for an undeclared secret. */
static void hint_secret(const struct runbook *rb, const char *name,
			struct buf *out)
{
	const char **known = xcalloc(rb->n_secrets + 1, sizeof(*known));
	const char *near;

	for (size_t i = 0; i < rb->n_secrets; i++)
		known[i] = rb->secrets[i].name;
	if ((near = suggest_closest(name, known, rb->n_secrets)))
		buf_addf(out, "; did you mean {{ secrets.%s }}?", near);
	free(known);
}

/*
 * "; did you mean {{ NAME }}?" for an unknown name: the names usable
 * here (in scope, built in, and secrets.NAME where secrets go) closest
 * to it. Nothing when none is close.
 */
static void hint_name(const struct vctx *V, const char *name,
		      enum place place, struct buf *out)
{
	struct strvec known = STRVEC_INIT;
	const char *near;

	for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
		if (place != IN_TEXT || strcmp(builtins[i], "host") != 0)
			strvec_push(&known, builtins[i]);
	for (size_t i = 0; i < V->names.n; i++)
		strvec_push(&known, V->names.v[i]);
	for (size_t i = 0; place == IN_COMMAND && i < V->rb->n_secrets; i++) {
		struct buf b = BUF_INIT;

		buf_addf(&b, "secrets.%s", V->rb->secrets[i].name);
		strvec_push_owned(&known, buf_detach(&b));
	}
	near = suggest_closest(name, (const char *const *)known.v, known.n);
	if (near)
		buf_addf(out, "; did you mean {{ %s }}?", near);
	strvec_release(&known);
}

static void check_template(struct vctx *V, const struct strval *v,
			   const char *base, const char *key, enum tpl_mode mode,
			   enum place place)
{
	struct tpl_refs refs = { 0 };
	struct buf hint = BUF_INIT;
	char problem[512];
	size_t off = 0;

	if (!v->s)
		return;
	if (tpl_scan(v->s, mode, &refs, problem, sizeof(problem), &off) < 0) {
		problem_at(V, strval_pos_at(v, off), PATH_FMT ": %s",
			   PATH_ARGS(base, key), problem);
		goto out;
	}
	for (size_t i = 0; i < refs.n; i++) {
		const char *name = refs.v[i].name;
		struct src_pos pos = strval_pos_at(v, refs.v[i].off);

		strvec_push(&V->used, name);
		if (refuse_ref(V, v, &refs.v[i], base, key, place))
			continue;
		buf_reset(&hint);
		if (strncmp(name, "secrets.", 8) == 0) {
			if (!runbook_secret(V->rb, name + 8)) {
				hint_secret(V->rb, name + 8, &hint);
				problem_at(V, pos,
					   PATH_FMT ": expected a secret declared under secrets, found unknown \"{{ %s }}\"%s",
					   PATH_ARGS(base, key), name,
					   buf_str(&hint));
			}
			continue;
		}
		if (is_builtin_var(name) || scope_has(&V->names, name))
			continue;
		hint_name(V, name, place, &hint);
		if (place == IN_TEXT)
			problem_at(V, pos,
				   PATH_FMT ": expected a variable of vars or --var, or target, runbook.name or change.id, found unknown \"{{ %s }}\"%s",
				   PATH_ARGS(base, key), name, buf_str(&hint));
		else
			problem_at(V, pos,
				   PATH_FMT ": expected a variable defined before this point (vars, an earlier capture, a built-in, or --var), found unknown \"{{ %s }}\"%s",
				   PATH_ARGS(base, key), name, buf_str(&hint));
	}
out:
	buf_release(&hint);
	tpl_refs_release(&refs);
}

static void check_kv_templates(struct vctx *V, const struct kv *kvs,
			       size_t n, const char *base)
{
	struct buf p = BUF_INIT;

	for (size_t i = 0; i < n; i++) {
		struct strval sv = { kvs[i].val, kvs[i].pos, kvs[i].col0,
				     kvs[i].line0 };

		if (!strstr(sv.s, "{{"))
			continue;
		buf_reset(&p);
		buf_adds(&p, base);
		buf_addc(&p, '.');
		buf_adds(&p, kvs[i].key);
		check_template(V, &sv, buf_str(&p), NULL, TPL_RAW, IN_COMMAND);
	}
	buf_release(&p);
}

static bool is_reserved(const char *name)
{
	static const char *const reserved[] = { "target", "host", "change",
						"runbook", "secrets" };

	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strcmp(name, reserved[i]) == 0)
			return true;
	return false;
}

static void check_name_clash(struct vctx *V, const char *name,
			     struct src_pos pos, const char *path)
{
	if (is_reserved(name))
		problem_at(V, pos,
			   "%s: expected a name of your own, found \"%s\", which is built in",
			   path, name);
}

static void check_step(struct vctx *V, const struct step *s)
{
	const char *sp = s->path;

	check_template(V, &s->run, sp, "run", TPL_SHELL, IN_COMMAND);
	check_template(V, &s->skip_if, sp, "skip_if", TPL_SHELL, IN_COMMAND);
	check_template(V, &s->dir, sp, "dir", TPL_RAW, IN_COMMAND);
	for (size_t i = 0; i < s->n_backup; i++)
		check_template(V, &s->backup[i], sp, "backup", TPL_RAW,
			       IN_COMMAND);
	if (s->n_env) {
		struct buf p = BUF_INIT;

		buf_adds(&p, sp);
		buf_adds(&p, ".env");
		check_kv_templates(V, s->env, s->n_env, buf_str(&p));
		buf_release(&p);
	}
	check_pattern(V, &s->expect.out, sp, "expect.stdout", -1, true);
	check_pattern(V, &s->expect.err, sp, "expect.stderr", -1, true);
	check_pattern(V, &s->expect.not_out, sp, "expect.not_stdout", -1, true);
	check_pattern(V, &s->expect.not_err, sp, "expect.not_stderr", -1, true);
	check_pattern(V, &s->pattern, sp, "pattern", 1, true);
	for (size_t i = 0; i < s->n_capture; i++) {
		struct strval sv = { s->capture[i].val, s->capture[i].pos,
				     s->capture[i].col0, s->capture[i].line0 };
		struct buf p = BUF_INIT;

		buf_adds(&p, sp);
		buf_adds(&p, ".capture.");
		buf_adds(&p, s->capture[i].key);
		check_name_clash(V, s->capture[i].key, s->capture[i].key_pos,
				 buf_str(&p));
		check_pattern(V, &sv, buf_str(&p), NULL, 1, true);
		buf_release(&p);
	}
	/* the step's captures exist for its own rollback and later */
	for (size_t i = 0; i < s->n_capture; i++)
		scope_add(&V->names, s->capture[i].key);
	if (!s->rollback_none)
		check_template(V, &s->rollback, sp, "rollback", TPL_SHELL,
			       IN_COMMAND);
}

static int cmp_step_name(const void *a, const void *b)
{
	const struct step *x = *(const struct step *const *)a;
	const struct step *y = *(const struct step *const *)b;
	int c = strcmp(x->name.s, y->name.s);

	if (c)
		return c;
	if (x->name.pos.line != y->name.pos.line)
		return x->name.pos.line < y->name.pos.line ? -1 : 1;
	return x->name.pos.col < y->name.pos.col ? -1 :
	       x->name.pos.col > y->name.pos.col;
}

static void check_unique_names(struct vctx *V)
{
	const struct runbook *rb = V->rb;
	const struct step **all;
	size_t n = 0, total = 0;

	for (int ph = 0; ph < PHASE_COUNT; ph++)
		total += rb->n_phase[ph];
	all = xcalloc(total ? total : 1, sizeof(*all));
	for (int ph = 0; ph < PHASE_COUNT; ph++)
		for (size_t i = 0; i < rb->n_phase[ph]; i++)
			if (rb->phases[ph][i].name.s)
				all[n++] = &rb->phases[ph][i];
	qsort(all, n, sizeof(*all), cmp_step_name);
	for (size_t i = 1, first = 0; i < n; i++) {
		if (strcmp(all[i]->name.s, all[first]->name.s) != 0) {
			first = i;
			continue;
		}
		problem_at(V, all[i]->name.pos,
			   "%s.name: expected a step name used once in the file, found \"%s\" again (first at %s)",
			   all[i]->path, all[i]->name.s,
			   diag_ref(V->d, all[first]->name.pos,
				    all[i]->name.pos));
	}
	free(all);
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* A host as the sshd it reaches: user@address:port, address lower case. */
struct host_key {
	char *key;
	size_t idx;
};

static int cmp_host_key(const void *a, const void *b)
{
	const struct host_key *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static char *host_key_of(const struct host *h)
{
	struct buf b = BUF_INIT;

	if (h->local)
		return xstrdup("local");
	if (!h->address)
		return NULL;	/* not a host: load said so */
	/* no user: ssh config or $USER decide, so only equal to no user */
	buf_addf(&b, "%s@", h->user ? h->user : "");
	for (const char *c = h->address; *c; c++)
		buf_addc(&b, lower(*c));
	/* no port is 22, as ssh without a Port in its config */
	buf_addf(&b, ":%u", h->port ? h->port : 22);
	return buf_detach(&b);
}

/*
 * The same host twice in a target would run every command twice at
 * once on it: exact repeats, and the same user, address (in any case)
 * and port written two ways (web1 and web1:22).
 */
static void check_hosts(struct vctx *V, const struct target *t)
{
	struct host_key *k = xcalloc(t->n_hosts + 1, sizeof(*k));
	size_t n = 0;

	for (size_t i = 0; i < t->n_hosts; i++)
		if ((k[n].key = host_key_of(&t->hosts[i])))
			k[n++].idx = i;
	qsort(k, n, sizeof(*k), cmp_host_key);
	for (size_t i = 1, first = 0; i < n; i++) {
		const struct host *h, *f;

		if (strcmp(k[i].key, k[first].key) != 0) {
			first = i;
			continue;
		}
		h = &t->hosts[k[i].idx];
		f = &t->hosts[k[first].idx];
		problem_at(V, h->pos,
			   "targets.%s.hosts[%zu]: expected each host once in a target, found \"%s\", the same host as hosts[%zu] \"%s\" (line %u); it would run every command twice at once there",
			   t->name, k[i].idx, h->spec, k[first].idx, f->spec,
			   f->pos.line);
	}
	for (size_t i = 0; i < n; i++)
		free(k[i].key);
	free(k);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The names a --var may set: vars, captures, and names templates use. */
static void known_names(struct vctx *V, struct strvec *out)
{
	const struct runbook *rb = V->rb;
	size_t n = 0;

	for (size_t i = 0; i < rb->n_vars; i++)
		strvec_push(out, rb->vars[i].key);
	for (int ph = 0; ph < PHASE_COUNT; ph++)
		for (size_t i = 0; i < rb->n_phase[ph]; i++)
			for (size_t k = 0; k < rb->phases[ph][i].n_capture; k++)
				strvec_push(out, rb->phases[ph][i].capture[k].key);
	for (size_t i = 0; i < V->used.n; i++)
		if (!is_builtin_var(V->used.v[i]))
			strvec_push(out, V->used.v[i]);
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(*out->v), cmp_str);
	for (size_t i = 0; i < out->n; i++) {	/* unique */
		if (n && strcmp(out->v[n - 1], out->v[i]) == 0) {
			free(out->v[i]);
			continue;
		}
		out->v[n++] = out->v[i];
	}
	out->n = n;
	if (out->v)
		out->v[n] = NULL;
}

/*
 * A --var name the runbook neither declares nor uses would be recorded
 * and change nothing: -e verison=1.3.0 applies the default version.
 */
static void check_var_names(struct vctx *V, char *const *names, size_t n)
{
	struct strvec known = STRVEC_INIT;
	struct src_pos file = { 0, 0 };

	known_names(V, &known);
	for (size_t i = 0; i < n; i++) {
		const char *name = names[i], *near;
		struct buf b = BUF_INIT;
		bool seen = false;

		for (size_t j = 0; j < i && !seen; j++)
			seen = strcmp(names[j], name) == 0;
		if (seen)
			continue;
		buf_addf(&b, "--var %s: expected a name this runbook declares or uses, found ",
			 name);
		if (is_reserved(name)) {
			buf_addf(&b, "\"%s\", which is built in: runbook sets it",
				 name);
		} else if (known.n && bsearch(&name, known.v, known.n,
					      sizeof(*known.v), cmp_str)) {
			buf_release(&b);
			continue;
		} else if ((near = suggest_closest(name,
				(const char *const *)known.v, known.n))) {
			buf_addf(&b, "unknown \"%s\"; did you mean %s?", name,
				 near);
		} else if (known.n) {
			buf_addf(&b, "unknown \"%s\"; known names: ", name);
			for (size_t k = 0; k < known.n && k < 12; k++)
				buf_addf(&b, "%s%s", k ? ", " : "", known.v[k]);
			if (known.n > 12)
				buf_addf(&b, " and %zu more", known.n - 12);
		} else {
			buf_addf(&b, "unknown \"%s\"; this runbook declares and uses no variable",
				 name);
		}
		problem_at(V, file, "%s", buf_str(&b));
		buf_release(&b);
	}
	strvec_release(&known);
}

size_t runbook_validate(const struct runbook *rb, char *const *extra_names,
			size_t n_extra, struct diag *d)
{
	struct vctx V = { rb, d, { 0 }, STRVEC_INIT, 0 };
	size_t after_preflight;
	struct buf p = BUF_INIT;

	for (size_t i = 0; i < n_extra; i++)
		scope_add(&V.names, extra_names[i]);
	for (size_t i = 0; i < rb->n_vars; i++) {
		check_name_clash(&V, rb->vars[i].key, rb->vars[i].key_pos,
				 "vars");
		scope_add(&V.names, rb->vars[i].key);
	}
	/* target and host vars (docs/fleets.md): known on every target */
	for (size_t i = 0; i < rb->n_targets; i++) {
		const struct target *t = &rb->targets[i];

		for (size_t j = 0; j < t->n_vars; j++)
			scope_add(&V.names, t->vars[j].key);
		for (size_t h = 0; h < t->n_hosts; h++)
			for (size_t j = 0; j < t->hosts[h].n_vars; j++)
				scope_add(&V.names, t->hosts[h].vars[j].key);
	}
	for (size_t i = 0; i < rb->n_redact; i++) {
		buf_reset(&p);
		buf_addf(&p, "redact[%zu]", i);
		/* redact patterns are compiled once, before any value */
		check_pattern(&V, &rb->redact[i], buf_str(&p), NULL, -1, false);
	}
	check_template(&V, &rb->reason, "reason", NULL, TPL_RAW, IN_TEXT);
	check_template(&V, &rb->expected, "expected", NULL, TPL_RAW, IN_TEXT);
	check_unique_names(&V);
	for (size_t i = 0; i < rb->n_targets; i++)
		if (!rb->targets[i].from)	/* an inventory's: checked there */
			check_hosts(&V, &rb->targets[i]);

	for (size_t i = 0; i < rb->n_phase[PHASE_PREFLIGHT]; i++)
		check_step(&V, &rb->phases[PHASE_PREFLIGHT][i]);
	after_preflight = V.names.n;
	for (size_t i = 0; i < rb->n_phase[PHASE_STEPS]; i++)
		check_step(&V, &rb->phases[PHASE_STEPS][i]);
	for (size_t i = 0; i < rb->n_phase[PHASE_VERIFY]; i++)
		check_step(&V, &rb->phases[PHASE_VERIFY][i]);
	for (size_t i = 0; i < rb->n_phase[PHASE_WATCH]; i++)
		check_step(&V, &rb->phases[PHASE_WATCH][i]);
	V.names.n = after_preflight;
	for (size_t i = 0; i < rb->n_phase[PHASE_METRICS]; i++)
		check_step(&V, &rb->phases[PHASE_METRICS][i]);
	check_var_names(&V, extra_names, n_extra);

	buf_release(&p);
	free(V.names.v);
	strvec_release(&V.used);
	return V.problems;
}
