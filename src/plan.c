/*
 * Plan output. Rendering uses the same template code as apply, so what
 * plan shows is byte for byte what apply runs, but for secrets (masked)
 * and captures (known only at run time, shown as {{ name }}).
 */
#include "plan.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "guard.h"
#include "json.h"
#include "render.h"
#include "runbook.h"
#include "template.h"
#include "fleet.h"
#include "vars.h"

static const char *plan_lookup(void *ctx, const char *name)
{
	const char *v = varset_get(ctx, name);

	/* validation proved every other name is a capture or change.id */
	return v ? v : tpl_defer;
}

static int render(const char *tpl, enum tpl_mode mode, struct varset *vs,
		  struct buf *out, struct rb_error *err)
{
	buf_reset(out);
	if (!tpl)
		return 0;
	return tpl_render(tpl, mode, TPL_SECRET_MASK, plan_lookup, vs, out,
			  err);
}

static void text_field(FILE *out, const char *label, const char *value)
{
	const char *nl;

	fprintf(out, "      %-9s ", label);
	/* continuation lines of a multi-line command stay aligned */
	while ((nl = strchr(value, '\n')) && nl[1]) {
		fprintf(out, "%.*s\n      %-9s ", (int)(nl - value), value, "");
		value = nl + 1;
	}
	fprintf(out, "%s%s", value, strchr(value, '\n') ? "" : "\n");
}

/* What plan shows of one command, rendered for one host. */
struct shown {
	struct buf run, rb, skip, dir;
	struct strvec env;		/* NAME=value */
	struct strvec backup;		/* the paths, rendered */
	char *pats[5];			/* out, err, not_out, not_err, metric */
	char **caps;			/* one per capture */
	size_t n_caps;
};

static const char *const pat_keys[] = { "stdout", "stderr", "not_stdout",
					"not_stderr", "pattern" };

static void shown_release(struct shown *w)
{
	buf_release(&w->run);
	buf_release(&w->rb);
	buf_release(&w->skip);
	buf_release(&w->dir);
	strvec_release(&w->env);
	strvec_release(&w->backup);
	for (size_t i = 0; i < 5; i++)
		free(w->pats[i]);
	for (size_t i = 0; i < w->n_caps; i++)
		free(w->caps[i]);
	free(w->caps);
}

/* A pattern as apply will match it: values literal, captures as {{ }}. */
static int pattern_of(const char *src, struct varset *vs, char **out,
		      struct rb_error *err)
{
	struct buf b = BUF_INIT;

	if (!src)
		return 0;
	if (render_pattern(src, plan_lookup, vs, &b, err) < 0) {
		buf_release(&b);
		return -1;
	}
	*out = buf_detach(&b);
	return 0;
}

static int render_step(const struct step *s, struct varset *vs,
		       struct shown *w, struct rb_error *err)
{
	const struct strval *pats[] = { &s->expect.out, &s->expect.err,
					&s->expect.not_out,
					&s->expect.not_err, &s->pattern };
	struct buf b = BUF_INIT;

	if (render(s->run.s, TPL_SHELL, vs, &w->run, err) < 0 ||
	    (!s->rollback_none &&
	     render(s->rollback.s, TPL_SHELL, vs, &w->rb, err) < 0) ||
	    render(s->skip_if.s, TPL_SHELL, vs, &w->skip, err) < 0 ||
	    render(s->dir.s, TPL_RAW, vs, &w->dir, err) < 0)
		return -1;
	for (size_t i = 0; i < s->n_env; i++) {
		buf_reset(&b);
		buf_addf(&b, "%s=", s->env[i].key);
		if (tpl_render(s->env[i].val, TPL_RAW, TPL_SECRET_MASK,
			       plan_lookup, vs, &b, err) < 0) {
			buf_release(&b);
			return -1;
		}
		strvec_push(&w->env, buf_str(&b));
	}
	for (size_t i = 0; i < s->n_backup; i++) {
		buf_reset(&b);
		if (render(s->backup[i].s, TPL_RAW, vs, &b, err) < 0) {
			buf_release(&b);
			return -1;
		}
		strvec_push(&w->backup, buf_str(&b));
	}
	buf_release(&b);
	for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++)
		if (pattern_of(pats[i]->s, vs, &w->pats[i], err) < 0)
			return -1;
	w->caps = xcalloc(s->n_capture + 1, sizeof(*w->caps));
	for (; w->n_caps < s->n_capture; w->n_caps++)
		if (pattern_of(s->capture[w->n_caps].val, vs,
			       &w->caps[w->n_caps], err) < 0)
			return -1;
	return 0;
}

static void exit_codes(struct buf *b, const struct expect *e)
{
	for (size_t i = 0; i < e->n_exit; i++)
		buf_addf(b, "%s%d", i ? (i + 1 == e->n_exit ? " or " : ", ") : "",
			 e->exit_codes[i]);
}

static void json_step(const struct step *s, const struct shown *w,
		      const char *host, struct buf *line)
{
	char tmo[32], delay[32];
	bool first = true;

	format_duration(s->timeout_ms, tmo);
	format_duration(s->retry_delay_ms, delay);
	buf_adds(line, "{");
	json_kv(line, "event", "plan-command", 1);
	json_kv(line, "host", host, 0);
	json_kv(line, "phase", phase_name(s->phase), 0);
	json_kv(line, "name", s->name.s, 0);
	json_kv(line, "run", buf_str(&w->run), 0);
	if (s->phase == PHASE_STEPS)
		json_kv(line, "rollback",
			s->rollback_none ? "none" : buf_str(&w->rb), 0);
	if (s->skip_if.s)
		json_kv(line, "skip_if", buf_str(&w->skip), 0);
	if (w->backup.n) {
		buf_adds(line, ",\"backup\":[");
		for (size_t i = 0; i < w->backup.n; i++) {
			if (i)
				buf_addc(line, ',');
			json_str(line, w->backup.v[i]);
		}
		buf_addc(line, ']');
	}
	if (s->dir.s)
		json_kv(line, "dir", buf_str(&w->dir), 0);
	if (s->n_env) {
		buf_adds(line, ",\"env\":{");
		for (size_t i = 0; i < s->n_env; i++) {
			const char *nv = w->env.v[i];
			size_t k = strlen(s->env[i].key);

			json_kv(line, s->env[i].key, nv + k + 1, i == 0);
		}
		buf_addc(line, '}');
	}
	if (s->phase != PHASE_METRICS) {
		buf_adds(line, ",\"expect\":{\"exit\":[");
		for (size_t i = 0; i < s->expect.n_exit; i++)
			buf_addf(line, "%s%d", i ? "," : "",
				 s->expect.exit_codes[i]);
		buf_addc(line, ']');
		for (size_t i = 0; i < 4; i++)
			if (w->pats[i])
				json_kv(line, pat_keys[i], w->pats[i], 0);
		buf_addc(line, '}');
	} else if (w->pats[4]) {
		json_kv(line, "pattern", w->pats[4], 0);
	}
	if (s->n_capture) {
		buf_adds(line, ",\"capture\":{");
		for (size_t i = 0; i < s->n_capture; i++, first = false)
			json_kv(line, s->capture[i].key, w->caps[i], first);
		buf_addc(line, '}');
	}
	json_kv(line, "timeout", tmo, 0);
	buf_addf(line, ",\"retries\":%u", s->retries);
	if (s->phase != PHASE_METRICS)
		json_kv(line, "retry_delay", delay, 0);
	buf_addf(line, ",\"local\":%s}\n", s->local ? "true" : "false");
}

static void text_step(const struct step *s, const struct shown *w,
		      FILE *out)
{
	static const char *const says[] = {
		"stdout matches", "stderr matches", "stdout must not match",
		"stderr must not match",
	};
	struct buf b = BUF_INIT;
	char tmo[32];

	format_duration(s->timeout_ms, tmo);
	fprintf(out, "    %-9s %s  (timeout %s", phase_name(s->phase),
		s->name.s, tmo);
	if (s->retries) {
		char delay[32];

		format_duration(s->retry_delay_ms, delay);
		fprintf(out, ", %u retr%s %s apart", s->retries,
			s->retries == 1 ? "y" : "ies", delay);
	}
	fputs(")\n", out);
	if (s->skip_if.s)
		text_field(out, "skip if", buf_str(&w->skip));
	if (s->dir.s)
		text_field(out, "dir", buf_str(&w->dir));
	for (size_t i = 0; i < w->env.n; i++)
		text_field(out, i ? "" : "env", w->env.v[i]);
	if (s->local)
		text_field(out, "where", "on this machine (local: true)");
	text_field(out, "run", buf_str(&w->run));
	if (s->phase != PHASE_METRICS) {
		buf_adds(&b, "exit ");
		exit_codes(&b, &s->expect);
		text_field(out, "expect", buf_str(&b));
		for (size_t i = 0; i < 4; i++) {
			if (!w->pats[i])
				continue;
			buf_reset(&b);
			buf_addf(&b, "%s '%s'", says[i], w->pats[i]);
			text_field(out, "", buf_str(&b));
		}
	} else if (w->pats[4]) {
		buf_reset(&b);
		buf_addf(&b, "'%s'", w->pats[4]);
		text_field(out, "pattern", buf_str(&b));
	}
	buf_reset(&b);
	for (int k = 0; k < GUARD_COUNT; k++)
		if (s->guards[k].set)
			buf_addf(&b, "%s%s %s", b.len ? ", " : "", guard_key[k],
				 s->guards[k].text);
	if (b.len)
		text_field(out, "guards", buf_str(&b));
	for (size_t i = 0; i < w->backup.n; i++)
		text_field(out, i ? "" : "backup", w->backup.v[i]);
	if (s->phase == PHASE_STEPS)
		text_field(out, "rollback",
			   s->rollback_none ? "none (nothing to undo)" :
			   s->rollback_restore ? "restore (puts the backup back)" :
					      buf_str(&w->rb));
	for (size_t i = 0; i < s->n_capture; i++) {
		buf_reset(&b);
		buf_addf(&b, "%s from '%s'", s->capture[i].key, w->caps[i]);
		text_field(out, i ? "" : "captures", buf_str(&b));
	}
	buf_release(&b);
}

static int plan_step(const struct step *s, struct varset *vs, bool json,
		     const char *host, FILE *out, struct rb_error *err)
{
	struct shown w = { BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT, STRVEC_INIT,
			   STRVEC_INIT, { NULL }, NULL, 0 };
	struct buf line = BUF_INIT;
	int ret = -1;

	if (render_step(s, vs, &w, err) < 0)
		goto out;
	if (json) {
		json_step(s, &w, host, &line);
		fputs(buf_str(&line), out);
	} else {
		text_step(s, &w, out);
	}
	ret = 0;
out:
	shown_release(&w);
	buf_release(&line);
	return ret;
}

/* The fleet keys of t that change how apply runs (docs/fleets.md). */
static void plan_fleet(const struct target *t, FILE *out)
{
	char w[16], d[32];

	if (t->n_waves > 1) {
		fputs("  serial:   ", out);
		for (size_t i = 0; i < t->n_waves; i++) {
			fleet_wave_text(&t->waves[i], w);
			fprintf(out, "%s%s", i ? ", " : "", w);
		}
		fputc('\n', out);
	}
	if (t->pause_ms) {
		format_duration(t->pause_ms, d);
		fprintf(out, "  pause:    %s between batches\n", d);
	}
	if (t->max_fail)
		fprintf(out, "  max_fail: %u%s (%zu of %zu host%s may fail and be rolled back alone; one more rolls back every host)\n",
		t->max_fail, t->max_fail_percent ? "%" : "",
		fleet_budget(t, t->n_hosts), t->n_hosts,
		t->n_hosts == 1 ? "" : "s");
	if (t->confirm)
		fprintf(out, "  confirm:  apply, rehearse and rollback ask for the name %s\n",
			t->name);
	if (t->from)
		fprintf(out, "  from:     %s\n", t->from);
}

/* Each variable a host sees, its value and where it came from; later wins. */
static void plan_vars(const struct runbook *rb, const struct target *t,
		      const struct host *h, const struct varset *cli,
		      bool json, FILE *out)
{
	const struct kv *lists[3] = { rb->vars, t->vars, h->vars };
	size_t ns[3] = { rb->n_vars, t->n_vars, h->n_vars };
	struct buf line = BUF_INIT, from = BUF_INIT;
	bool any = false;

	for (int l = 0; l < 4; l++) {
		size_t n = l < 3 ? ns[l] : cli->n;

		for (size_t i = 0; i < n; i++) {
			const char *k = l < 3 ? lists[l][i].key : cli->names[i];
			const char *v = l < 3 ? lists[l][i].val : cli->values[i];
			bool later = false;

			/* shown once, where its value comes from */
			for (int m = l + 1; m < 3 && !later; m++)
				later = kv_find(lists[m], ns[m], k) != NULL;
			if (later || (l < 3 && varset_get(cli, k)))
				continue;
			buf_reset(&from);
			if (l == 0)
				buf_adds(&from, "runbook vars");
			else if (l == 1)
				buf_addf(&from, "target %s vars", t->name);
			else if (l == 2)
				buf_addf(&from, "host %s vars", h->spec);
			else
				buf_adds(&from, "--var");
			if (json) {
				buf_addf(&line, "%s{", any ? "," : "");
				json_kv(&line, "name", k, 1);
				json_kv(&line, "value", v, 0);
				json_kv(&line, "from", buf_str(&from), 0);
				buf_addc(&line, '}');
			} else {
				if (!any)
					fputs("  vars:\n", out);
				fprintf(out, "    %s = %s  (%s)\n", k, v,
					buf_str(&from));
			}
			any = true;
		}
	}
	if (json && any && (t->n_vars || h->n_vars)) {
		fputs("{\"event\":\"vars\",", out);
		buf_reset(&from);
		json_kv(&from, "host", h->spec, 1);
		fprintf(out, "%s,\"vars\":[%s]}\n", buf_str(&from), buf_str(&line));
	}
	buf_release(&line);
	buf_release(&from);
}

int plan_write(const struct runbook *rb, const struct target *t,
	       const struct varset *cli_vars, bool json, FILE *out,
	       struct rb_error *err)
{
	size_t *ends = NULL, nb = fleet_batches(t, &ends);
	static const enum phase order[] = { PHASE_PREFLIGHT, PHASE_METRICS,
					    PHASE_STEPS, PHASE_VERIFY,
					    PHASE_WATCH };
	struct buf line = BUF_INIT;
	char *reason = NULL, *expected = NULL;
	int ret = -1;

	/* as the note will say it; the change id is not known yet */
	if (render_change_text(rb, rb->reason.s, t->name, cli_vars, NULL,
			       &reason, err) < 0 ||
	    render_change_text(rb, rb->expected.s, t->name, cli_vars, NULL,
			       &expected, err) < 0)
		goto out;
	if (json) {
		buf_adds(&line, "{");
		json_kv(&line, "event", "plan", 1);
		json_kv(&line, "runbook", rb->name.s, 0);
		json_kv(&line, "target", t->name, 0);
		json_kv(&line, "reason", reason, 0);
		json_kv(&line, "expected", expected, 0);
		buf_adds(&line, ",\"batches\":[");
		for (size_t b = 0; b < nb; b++) {
			buf_adds(&line, b ? ",[" : "[");
			for (size_t h = b ? ends[b - 1] : 0; h < ends[b]; h++) {
				if (h > (b ? ends[b - 1] : 0))
					buf_addc(&line, ',');
				json_str(&line, t->hosts[h].spec);
			}
			buf_addc(&line, ']');
		}
		buf_adds(&line, "]}\n");
		fputs(buf_str(&line), out);
	} else {
		fprintf(out, "plan: %s on %s, %zu host%s in %zu batch%s; nothing is run\n",
			rb->name.s, t->name, t->n_hosts,
			t->n_hosts == 1 ? "" : "s", nb, nb == 1 ? "" : "es");
		fprintf(out, "  owner:    %s\n  reason:   %s\n  expected: %s\n",
			rb->owner.s, reason, expected);
		for (size_t b = 0; b < nb; b++) {
			fprintf(out, "  batch %zu:", b + 1);
			for (size_t h = b ? ends[b - 1] : 0; h < ends[b]; h++)
				fprintf(out, " %s", t->hosts[h].spec);
			fputc('\n', out);
		}
		plan_fleet(t, out);
	}

	for (size_t h = 0; h < t->n_hosts; h++) {
		struct varset vs = VARSET_INIT;
		const char *host = t->hosts[h].spec;
		int bad = 0;

		/* later wins: runbook, target, host vars, --var (as apply) */
		for (size_t i = 0; i < rb->n_vars; i++)
			varset_set(&vs, rb->vars[i].key, rb->vars[i].val);
		for (size_t i = 0; i < t->n_vars; i++)
			varset_set(&vs, t->vars[i].key, t->vars[i].val);
		for (size_t i = 0; i < t->hosts[h].n_vars; i++)
			varset_set(&vs, t->hosts[h].vars[i].key,
				   t->hosts[h].vars[i].val);
		varset_copy(&vs, cli_vars);
		varset_set(&vs, "target", t->name);
		varset_set(&vs, "host", host);
		varset_set(&vs, "runbook.name", rb->name.s);
		if (!json)
			fprintf(out, "\nhost %s\n", host);
		plan_vars(rb, t, &t->hosts[h], cli_vars, json, out);
		for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
			enum phase ph = order[k];

			for (size_t i = 0; i < rb->n_phase[ph] && !bad; i++)
				bad = plan_step(&rb->phases[ph][i], &vs, json,
						host, out, err) < 0;
		}
		if (!json && !bad && rb->n_phase[PHASE_STEPS]) {
			fprintf(out, "    on failure, roll back in this order:");
			for (size_t i = rb->n_phase[PHASE_STEPS]; i-- > 0;)
				fprintf(out, " %s%s", rb->phases[PHASE_STEPS][i].name.s,
					i ? "," : "\n");
		}
		varset_release(&vs);
		if (bad)
			goto out;
	}
	ret = 0;
out:
	free(reason);
	free(expected);
	free(ends);
	buf_release(&line);
	return ret;
}
