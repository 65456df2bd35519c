/*
 * Plan output. Rendering uses the same template code as apply, so what
 * plan shows is byte for byte what apply runs, but for secrets (masked)
 * and captures (known only at run time, shown as {{ name }}).
 */
#include "plan.h"

#include <string.h>

#include "buf.h"
#include "error.h"
#include "json.h"
#include "runbook.h"
#include "template.h"
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

static int plan_step(const struct step *s, struct varset *vs, bool json,
		     const char *host, FILE *out, struct rb_error *err)
{
	struct buf run = BUF_INIT, rb = BUF_INIT, skip = BUF_INIT;
	struct buf dir = BUF_INIT, line = BUF_INIT;
	char tmo[32];
	int ret = -1;

	if (render(s->run.s, TPL_SHELL, vs, &run, err) < 0 ||
	    (!s->rollback_none &&
	     render(s->rollback.s, TPL_SHELL, vs, &rb, err) < 0) ||
	    render(s->skip_if.s, TPL_SHELL, vs, &skip, err) < 0 ||
	    render(s->dir.s, TPL_RAW, vs, &dir, err) < 0)
		goto out;
	format_duration(s->timeout_ms, tmo);
	if (json) {
		buf_adds(&line, "{");
		json_kv(&line, "event", "plan-command", 1);
		json_kv(&line, "host", host, 0);
		json_kv(&line, "phase", phase_name(s->phase), 0);
		json_kv(&line, "name", s->name.s, 0);
		json_kv(&line, "run", buf_str(&run), 0);
		if (s->phase == PHASE_STEPS)
			json_kv(&line, "rollback",
				s->rollback_none ? "none" : buf_str(&rb), 0);
		if (s->skip_if.s)
			json_kv(&line, "skip_if", buf_str(&skip), 0);
		if (s->dir.s)
			json_kv(&line, "dir", buf_str(&dir), 0);
		json_kv(&line, "timeout", tmo, 0);
		buf_addf(&line, ",\"retries\":%u,\"local\":%s}\n", s->retries,
			 s->local ? "true" : "false");
		fputs(buf_str(&line), out);
	} else {
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
			text_field(out, "skip if", buf_str(&skip));
		if (s->dir.s)
			text_field(out, "dir", buf_str(&dir));
		if (s->local)
			text_field(out, "where", "on this machine (local: true)");
		text_field(out, "run", buf_str(&run));
		if (s->phase == PHASE_STEPS)
			text_field(out, "rollback",
				   s->rollback_none ? "none (nothing to undo)" :
						      buf_str(&rb));
		if (s->n_capture) {
			struct buf c = BUF_INIT;

			for (size_t i = 0; i < s->n_capture; i++)
				buf_addf(&c, "%s%s", i ? ", " : "",
					 s->capture[i].key);
			text_field(out, "captures", buf_str(&c));
			buf_release(&c);
		}
	}
	ret = 0;
out:
	buf_release(&run);
	buf_release(&rb);
	buf_release(&skip);
	buf_release(&dir);
	buf_release(&line);
	return ret;
}

int plan_write(const struct runbook *rb, const struct target *t,
	       const struct varset *cli_vars, bool json, FILE *out,
	       struct rb_error *err)
{
	size_t per = target_batch_size(t);
	size_t nb = (t->n_hosts + per - 1) / per;
	static const enum phase order[] = { PHASE_PREFLIGHT, PHASE_METRICS,
					    PHASE_STEPS, PHASE_VERIFY };
	struct buf line = BUF_INIT;
	int ret = -1;

	if (json) {
		buf_adds(&line, "{");
		json_kv(&line, "event", "plan", 1);
		json_kv(&line, "runbook", rb->name.s, 0);
		json_kv(&line, "target", t->name, 0);
		buf_adds(&line, ",\"batches\":[");
		for (size_t b = 0; b < nb; b++) {
			buf_adds(&line, b ? ",[" : "[");
			for (size_t h = b * per; h < t->n_hosts &&
			     h < (b + 1) * per; h++) {
				if (h > b * per)
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
			rb->owner.s, rb->reason.s, rb->expected.s);
		for (size_t b = 0; b < nb; b++) {
			fprintf(out, "  batch %zu:", b + 1);
			for (size_t h = b * per; h < t->n_hosts &&
			     h < (b + 1) * per; h++)
				fprintf(out, " %s", t->hosts[h].spec);
			fputc('\n', out);
		}
	}

	for (size_t h = 0; h < t->n_hosts; h++) {
		struct varset vs = VARSET_INIT;
		const char *host = t->hosts[h].spec;
		int bad = 0;

		for (size_t i = 0; i < rb->n_vars; i++)
			varset_set(&vs, rb->vars[i].key, rb->vars[i].val);
		varset_copy(&vs, cli_vars);
		varset_set(&vs, "target", t->name);
		varset_set(&vs, "host", host);
		varset_set(&vs, "runbook.name", rb->name.s);
		if (!json)
			fprintf(out, "\nhost %s\n", host);
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
	buf_release(&line);
	return ret;
}
