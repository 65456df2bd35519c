/*
 * Note text. The front matter is written so note_parse() gives back the
 * same record: every string double-quoted with JSON escapes, numbers
 * bare, lists and maps in block style.
 */
#include "note.h"

#include <stdlib.h>
#include <string.h>

#include "change.h"
#include "diag.h"
#include "error.h"
#include "json.h"
#include "runbook.h"
#include "yamltree.h"

void note_undo_command(const char *id, struct buf *out)
{
	buf_addf(out, "runbook rollback %s", id);
}

static void q(struct buf *b, const char *s)
{
	if (!s)
		buf_adds(b, "null");
	else
		json_str(b, s);
}

static void fm_str(struct buf *b, const char *key, const char *s)
{
	buf_addf(b, "%s: ", key);
	q(b, s);
	buf_addc(b, '\n');
}

static const char *host_result(const struct change_rec *c, const char *host)
{
	bool failed = false, rolled = false;

	for (size_t i = 0; i < c->n_steps; i++) {
		const struct rec_step *s = &c->steps[i];

		if (strcmp(s->host, host) != 0)
			continue;
		failed |= s->result == RES_FAILED || s->result == RES_TIMEOUT;
		rolled |= s->rb_result == RES_ROLLED_BACK;
		if (s->rb_result == RES_ROLLBACK_FAILED)
			return "rollback failed";
	}
	return rolled ? "rolled back" : failed ? "failed" : "ok";
}

static void fm_list(struct buf *b, const char *key, const struct strvec *sv,
		    bool always)
{
	if (!sv->n && !always)
		return;
	buf_addf(b, "\n%s:", key);
	if (!sv->n)
		buf_adds(b, " []");
	for (size_t i = 0; i < sv->n; i++) {
		buf_adds(b, "\n  - ");
		q(b, sv->v[i]);
	}
}

static void fm_map(struct buf *b, const char *key, const struct varset *vs,
		   bool always)
{
	if (!vs->n && !always)
		return;
	buf_addf(b, "\n%s:", key);
	if (!vs->n)
		buf_adds(b, " {}");
	for (size_t i = 0; i < vs->n; i++) {
		buf_adds(b, "\n  ");
		q(b, vs->names[i]);
		buf_adds(b, ": ");
		q(b, vs->values[i]);
	}
}

/* captures: host -> name -> value */
static void fm_captures(const struct change_rec *c, struct buf *b)
{
	buf_adds(b, "\ncaptures:");
	if (!c->n_captures)
		buf_adds(b, " {}");
	for (size_t h = 0; h < c->hosts.n; h++) {
		bool any = false;

		for (size_t i = 0; i < c->n_captures; i++) {
			if (strcmp(c->captures[i].host, c->hosts.v[h]) != 0)
				continue;
			if (!any) {
				buf_adds(b, "\n  ");
				q(b, c->hosts.v[h]);
				buf_adds(b, ":");
				any = true;
			}
			buf_adds(b, "\n    ");
			q(b, c->captures[i].name);
			buf_adds(b, ": ");
			q(b, c->captures[i].value);
		}
	}
}

static void fm_metrics(const struct change_rec *c, struct buf *b)
{
	buf_adds(b, "\nmetrics:");
	if (!c->n_metrics)
		buf_adds(b, " {}");
	for (size_t i = 0; i < c->n_metrics; i++) {
		const struct rec_metric *m = &c->metrics[i];
		struct buf key = BUF_INIT;

		/* name, or name@host when several hosts report it */
		buf_adds(&key, m->name);
		if (c->hosts.n > 1)
			buf_addf(&key, "@%s", m->host);
		buf_adds(b, "\n  ");
		q(b, buf_str(&key));
		buf_adds(b, ": { before: ");
		q(b, m->before);
		buf_adds(b, ", after: ");
		q(b, m->after);
		buf_adds(b, " }");
		buf_release(&key);
	}
}

static void fm_step(const struct rec_step *s, struct buf *b)
{
	buf_adds(b, "\n  - host: ");
	q(b, s->host);
	buf_addf(b, "\n    phase: %s\n    index: %u\n    name: ",
		 phase_name(s->phase), s->index);
	q(b, s->name);
	buf_adds(b, "\n    command: ");
	q(b, s->command);
	if (s->phase == PHASE_STEPS) {
		buf_adds(b, "\n    rollback: ");
		q(b, s->rollback_none ? "none" : s->rollback);
	}
	if (s->rollback_masked)
		buf_adds(b, "\n    rollback_masked: true");
	if (s->rb_by_hand)
		buf_adds(b, "\n    rollback_by_hand: true");
	if (s->local)
		buf_adds(b, "\n    local: true");
	if (s->dir) {
		buf_adds(b, "\n    dir: ");
		q(b, s->dir);
	}
	if (s->env.n) {
		buf_adds(b, "\n    env:");
		for (size_t k = 0; k < s->env.n; k++) {
			buf_adds(b, "\n      - ");
			q(b, s->env.v[k]);
		}
	}
	buf_addf(b, "\n    timeout_ms: %u", s->timeout_ms);
	if (s->exit_code >= 0)
		buf_addf(b, "\n    exit: %d", s->exit_code);
	else
		buf_adds(b, "\n    exit: null");
	buf_addf(b, "\n    duration_ms: %llu\n    result: %s",
		 s->duration_ms,
		 s->running ? "not-run" : step_result_name(s->result));
	if (s->running)
		buf_adds(b, "\n    interrupted: true");
	if (s->phase == PHASE_STEPS)
		buf_addf(b, "\n    rollback_result: %s",
			 step_result_name(s->rb_result));
}

/* The timeline: what ended, in the order it was recorded. */
static void fm_events(const struct change_rec *c, struct buf *b)
{
	buf_adds(b, "\nevents:");
	if (!c->n_events)
		buf_adds(b, " []");
	for (size_t i = 0; i < c->n_events; i++) {
		const struct rec_event *e = &c->events[i];

		buf_addf(b, "\n  - { event: %s, host: ", e->kind);
		q(b, e->host);
		buf_addf(b, ", phase: %s, name: ", phase_name(e->phase));
		q(b, e->name);
		buf_adds(b, ", result: ");
		q(b, e->result);
		if (strcmp(e->kind, "rollback") != 0)
			buf_addf(b, ", attempt: %u", e->attempt);
		if (e->by_hand)
			buf_adds(b, ", by_hand: true");
		buf_adds(b, " }");
	}
}

void note_front_matter(const struct change_rec *c, struct buf *b)
{
	buf_adds(b, "---\n");
	fm_str(b, "change", c->id);
	fm_str(b, "runbook", c->runbook);
	fm_str(b, "file", c->file);
	fm_str(b, "file_sha256", c->file_sha256);
	fm_str(b, "target", c->target);
	fm_str(b, "owner", c->owner);
	fm_str(b, "reason", c->reason);
	fm_str(b, "expected", c->expected);
	fm_str(b, "operator", c->operator_);
	fm_str(b, "started", c->started);
	fm_str(b, "finished", c->finished);
	if (c->identity)
		fm_str(b, "identity", c->identity);
	fm_str(b, "status", change_status_name(c->status));
	if (c->baseline) {
		fm_str(b, "baseline", c->baseline);
		if (c->baseline_diff && *c->baseline_diff)
			fm_str(b, "baseline_diff", c->baseline_diff);
	}
	buf_adds(b, "hosts:");
	if (!c->hosts.n)
		buf_adds(b, " []");
	for (size_t i = 0; i < c->hosts.n; i++) {
		buf_adds(b, "\n  - ");
		q(b, c->hosts.v[i]);
	}
	fm_list(b, "redact", &c->redact, false);
	fm_map(b, "vars", &c->vars, true);
	fm_map(b, "secrets", &c->secrets, true);
	fm_map(b, "identities", &c->host_ids, false);
	fm_captures(c, b);
	fm_metrics(c, b);
	buf_adds(b, "\nsteps:");
	if (!c->n_steps)
		buf_adds(b, " []");
	for (size_t i = 0; i < c->n_steps; i++)
		fm_step(&c->steps[i], b);
	fm_events(c, b);
	buf_adds(b, "\n---\n");
}

/* A Markdown table cell: one line, pipes escaped. */
static void cell(struct buf *b, const char *s, size_t max)
{
	size_t n = 0;

	for (; s && *s && n < max; s++, n++) {
		if (*s == '|')
			buf_adds(b, "\\|");
		else if (*s == '\n')
			buf_adds(b, " ");
		else if (*s == '`')
			buf_adds(b, "'");
		else
			buf_addc(b, *s);
	}
	if (s && *s)
		buf_adds(b, "...");
}

static void body(const struct change_rec *c, struct buf *b)
{
	static const char *const say[] = {
		"is running", "was applied", "was rolled back: every step undone",
		"failed and its rollback did not finish", "failed",
		"was interrupted", "was rehearsed: applied and rolled back",
	};
	bool any_output = false;

	buf_addf(b, "\n# %s on %s: %s\n\n", c->runbook ? c->runbook : "?",
		 c->target ? c->target : "?", change_status_name(c->status));
	buf_addf(b, "Change `%s` %s.\n\n", c->id, say[c->status]);
	buf_addf(b, "- **Why:** %s\n- **Owner:** %s\n- **Operator:** %s\n",
		 c->reason ? c->reason : "", c->owner ? c->owner : "",
		 c->operator_ ? c->operator_ : "");
	buf_addf(b, "- **Where:** %s (", c->target ? c->target : "");
	for (size_t i = 0; i < c->hosts.n; i++)
		buf_addf(b, "%s%s: %s", i ? ", " : "", c->hosts.v[i],
			 host_result(c, c->hosts.v[i]));
	buf_addf(b, ")\n- **When:** %s to %s\n", c->started ? c->started : "?",
		 c->finished ? c->finished : "(not finished)");
	buf_addf(b, "- **Expected:** %s — %s\n", c->expected ? c->expected : "",
		 c->status == CHANGE_APPLIED ? "met (verify passed)" :
		 c->status == CHANGE_REHEARSED ? "met, then rolled back as rehearsed" :
		 c->status == CHANGE_RUNNING ? "not known yet" :
		 c->status == CHANGE_ROLLED_BACK ? "not in effect: the change was undone" :
		 "not met");
	buf_addf(b, "- **File:** `%s` (sha256 %s)\n\n",
		 c->file ? c->file : "", c->file_sha256 ? c->file_sha256 : "");

	buf_adds(b, "## Steps\n\n| host | phase | step | result | exit | time | rollback |\n"
		    "|---|---|---|---|---|---|---|\n");
	for (size_t i = 0; i < c->n_steps; i++) {
		const struct rec_step *s = &c->steps[i];
		char dur[32];

		format_duration((unsigned)s->duration_ms, dur);
		buf_adds(b, "| ");
		cell(b, s->host, 60);
		buf_addf(b, " | %s | ", phase_name(s->phase));
		cell(b, s->name, 80);
		buf_addf(b, " | %s | ", s->running ? "interrupted" :
			 step_result_name(s->result));
		if (s->exit_code >= 0)
			buf_addf(b, "%d", s->exit_code);
		buf_addf(b, " | %s | %s%s |\n", dur,
			 s->phase != PHASE_STEPS ? "" :
			 s->rollback_none ? "none" :
			 step_result_name(s->rb_result),
			 s->rb_by_hand ? " (by hand)" : "");
	}
	if (c->n_metrics) {
		buf_adds(b, "\n## Metrics\n\n| metric | host | before | after |\n|---|---|---|---|\n");
		for (size_t i = 0; i < c->n_metrics; i++) {
			const struct rec_metric *m = &c->metrics[i];

			buf_adds(b, "| ");
			cell(b, m->name, 80);
			buf_adds(b, " | ");
			cell(b, m->host, 60);
			buf_adds(b, " | ");
			cell(b, m->before ? m->before : "-", 40);
			buf_adds(b, " | ");
			cell(b, m->after ? m->after : "-", 40);
			buf_adds(b, " |\n");
		}
	}
	for (size_t i = 0; i < c->n_steps; i++) {
		const struct rec_step *s = &c->steps[i];

		if (!s->output || !*s->output)
			continue;
		if (!any_output)
			buf_adds(b, "\n## Output (head and tail, redacted)\n");
		any_output = true;
		buf_addf(b, "\n### %s %s on %s\n\n```\n$ %s\n%s%s```\n",
			 phase_name(s->phase), s->name, s->host,
			 s->command ? s->command : "", s->output,
			 s->output[strlen(s->output) - 1] == '\n' ? "" : "\n");
	}
	if (c->baseline) {
		buf_adds(b, "\n## Rehearsal\n\n");
		if (strcmp(c->baseline, "same") == 0)
			buf_adds(b, "After the rollback the preflight showed exactly the baseline it showed before the apply.\n");
		else
			buf_addf(b, "After the rollback the preflight did **not** show the baseline again:\n\n```diff\n%s```\n",
				 c->baseline_diff ? c->baseline_diff : "");
	}
	buf_adds(b, "\n## Undo\n\n```\n");
	note_undo_command(c->id, b);
	buf_adds(b, "\n```\n");
}

void note_render(const struct change_rec *c, struct buf *out)
{
	note_front_matter(c, out);
	body(c, out);
}

static const char *str(const struct ynode *n, const char *key)
{
	const struct ynode *v = ynode_get(n, key);

	if (!v || v->type != YN_SCALAR || ynode_is_null(v))
		return NULL;
	return v->text;
}

static char *dup(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

/*
 * The host of a metric key "name@host" (several hosts): the longest of
 * the change's hosts the key ends with, after an '@'; host specs may
 * hold an '@' themselves (user@host). NULL when none fits.
 */
static const char *metric_host(const struct change_rec *c, const char *key)
{
	const char *best = NULL;
	size_t klen = strlen(key);

	if (c->hosts.n < 2)
		return NULL;
	for (size_t h = 0; h < c->hosts.n; h++) {
		size_t hl = strlen(c->hosts.v[h]);

		if (hl + 1 < klen && key[klen - hl - 1] == '@' &&
		    strcmp(key + klen - hl, c->hosts.v[h]) == 0 &&
		    (!best || hl > strlen(best)))
			best = c->hosts.v[h];
	}
	return best;
}

int note_parse(const char *text, size_t len, struct change_rec **out,
	       struct rb_error *err)
{
	const char *end;
	struct ynode *root = NULL, *x;
	struct change_rec *c;
	struct diag d;
	int st;

	diag_init(&d, "note");
	if (len < 4 || strncmp(text, "---\n", 4) != 0 ||
	    !(end = memmem(text + 4, len - 4, "\n---\n", 5)) ||
	    ytree_parse(text + 4, (size_t)(end - text - 3), &root, &d) < 0 ||
	    !root || root->type != YN_MAP) {
		rb_error_set(err, RB_ERR_INVALID,
			     "expected a change note with YAML front matter, found something else");
		diag_release(&d);
		ytree_free(root);
		return -1;
	}
	diag_release(&d);
	c = change_new();
	c->id = dup(str(root, "change"));
	c->runbook = dup(str(root, "runbook"));
	c->file = dup(str(root, "file"));
	c->file_sha256 = dup(str(root, "file_sha256"));
	c->target = dup(str(root, "target"));
	c->owner = dup(str(root, "owner"));
	c->reason = dup(str(root, "reason"));
	c->expected = dup(str(root, "expected"));
	c->operator_ = dup(str(root, "operator"));
	c->started = dup(str(root, "started"));
	c->finished = dup(str(root, "finished"));
	c->identity = dup(str(root, "identity"));
	c->baseline = dup(str(root, "baseline"));
	c->baseline_diff = dup(str(root, "baseline_diff"));
	st = str(root, "status") ? change_status_parse(str(root, "status")) : -1;
	c->status = st >= 0 ? (enum change_status)st : CHANGE_FAILED;
	c->has_note = true;
	c->noted = c->status;
	c->closed = c->status != CHANGE_RUNNING;
	if ((x = ynode_get(root, "hosts")) && x->type == YN_SEQ)
		for (size_t i = 0; i < x->n; i++)
			strvec_push(&c->hosts, x->items[i]->text);
	if ((x = ynode_get(root, "redact")) && x->type == YN_SEQ)
		for (size_t i = 0; i < x->n; i++)
			strvec_push(&c->redact, x->items[i]->text);
	if ((x = ynode_get(root, "vars")) && x->type == YN_MAP)
		for (size_t i = 0; i < x->n; i++)
			varset_set(&c->vars, x->keys[i]->text, x->items[i]->text);
	if ((x = ynode_get(root, "identities")) && x->type == YN_MAP)
		for (size_t i = 0; i < x->n; i++)
			varset_set(&c->host_ids, x->keys[i]->text, x->items[i]->text);
	if ((x = ynode_get(root, "secrets")) && x->type == YN_MAP)
		for (size_t i = 0; i < x->n; i++)
			varset_set(&c->secrets, x->keys[i]->text,
				   x->items[i]->text);
	if ((x = ynode_get(root, "captures")) && x->type == YN_MAP)
		for (size_t h = 0; h < x->n; h++)
			for (size_t i = 0; x->items[h]->type == YN_MAP &&
			     i < x->items[h]->n; i++)
				change_set_capture(c, x->keys[h]->text,
						   x->items[h]->keys[i]->text,
						   x->items[h]->items[i]->text);
	if ((x = ynode_get(root, "metrics")) && x->type == YN_MAP) {
		for (size_t i = 0; i < x->n; i++) {
			const char *key = x->keys[i]->text;
			const char *host = metric_host(c, key);
			char *name = c->hosts.n > 1 && host ?
				xstrndup(key, strlen(key) - strlen(host) - 1) :
				xstrdup(key);

			if (!host)
				host = c->hosts.n ? c->hosts.v[0] : "";
			const char *b = str(x->items[i], "before"),
				   *a = str(x->items[i], "after");

			if (b)
				change_set_metric(c, host, name, false, b);
			if (a)
				change_set_metric(c, host, name, true, a);
			free(name);
		}
	}
	if ((x = ynode_get(root, "steps")) && x->type == YN_SEQ) {
		for (size_t i = 0; i < x->n; i++) {
			const struct ynode *n = x->items[i], *env;
			struct rec_step *s = change_add_step(c);
			const char *ph = str(n, "phase"), *rb = str(n, "rollback");
			int r;

			s->host = dup(str(n, "host"));
			if (!s->host)
				s->host = xstrdup("");
			for (int p = 0; ph && p < PHASE_COUNT; p++)
				if (strcmp(ph, phase_name((enum phase)p)) == 0)
					s->phase = (enum phase)p;
			s->index = str(n, "index") ? (unsigned)strtoul(str(n, "index"), NULL, 10) : 0;
			s->name = dup(str(n, "name"));
			s->command = dup(str(n, "command"));
			if (rb && strcmp(rb, "none") == 0)
				s->rollback_none = true;
			else
				s->rollback = dup(rb);
			s->local = str(n, "local") && strcmp(str(n, "local"), "true") == 0;
			s->rollback_masked = str(n, "rollback_masked") &&
					     strcmp(str(n, "rollback_masked"), "true") == 0;
			s->rb_by_hand = str(n, "rollback_by_hand") &&
					strcmp(str(n, "rollback_by_hand"), "true") == 0;
			s->dir = dup(str(n, "dir"));
			if ((env = ynode_get(n, "env")) && env->type == YN_SEQ)
				for (size_t k = 0; k < env->n; k++)
					strvec_push(&s->env, env->items[k]->text);
			s->timeout_ms = str(n, "timeout_ms") ?
				(unsigned)strtoul(str(n, "timeout_ms"), NULL, 10) : 600000;
			s->exit_code = str(n, "exit") ? atoi(str(n, "exit")) : -1;
			s->duration_ms = str(n, "duration_ms") ?
				strtoull(str(n, "duration_ms"), NULL, 10) : 0;
			r = str(n, "result") ? step_result_parse(str(n, "result")) : -1;
			s->result = r >= 0 ? (enum step_result)r : RES_NOT_RUN;
			s->running = str(n, "interrupted") != NULL;
			r = str(n, "rollback_result") ?
				step_result_parse(str(n, "rollback_result")) : -1;
			s->rb_result = r >= 0 ? (enum step_result)r : RES_NOT_RUN;
		}
	}
	if ((x = ynode_get(root, "events")) && x->type == YN_SEQ) {
		for (size_t i = 0; i < x->n; i++) {
			const struct ynode *e = x->items[i];
			const char *ph = str(e, "phase"), *kind = str(e, "event");
			enum phase p = PHASE_STEPS;
			struct rec_event *ev;

			if (!kind)
				continue;
			for (int k = 0; ph && k < PHASE_COUNT; k++)
				if (strcmp(ph, phase_name((enum phase)k)) == 0)
					p = (enum phase)k;
			ev = change_add_event(c, kind, str(e, "host"), p,
					      str(e, "name"), str(e, "result"));
			ev->attempt = str(e, "attempt") ?
				(unsigned)strtoul(str(e, "attempt"), NULL, 10) : 0;
			ev->by_hand = str(e, "by_hand") &&
				      strcmp(str(e, "by_hand"), "true") == 0;
		}
	}
	ytree_free(root);
	*out = c;
	return 0;
}
