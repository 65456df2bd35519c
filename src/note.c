/*
 * Note text. The front matter is written so note_parse() gives back the
 * same record: every string double-quoted with JSON escapes, numbers
 * bare, lists and maps in block style.
 */
#include "note.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* An outcome this version writes; a note may say anything. */
static bool outcome_known(const char *o)
{
	return strcmp(o, "applied") == 0 || strcmp(o, "failed-rolled-back") == 0 ||
	       strcmp(o, "rollback-failed") == 0 || strcmp(o, "unreachable") == 0;
}

/* A host's outcome under max_fail, for people. */
static const char *outcome_words(const char *o)
{
	if (strcmp(o, "failed-rolled-back") == 0)
		return "failed, rolled back alone";
	if (strcmp(o, "rollback-failed") == 0)
		return "failed, its rollback failed";
	return o;	/* applied, unreachable */
}

static const char *host_result(const struct change_rec *c, const char *host)
{
	bool failed = false, rolled = false;
	const char *o = varset_get(&c->outcomes, host);

	/* rolled back later: the steps say so, not the outcome of the run */
	if (o && (!c->rolled_back_at || strcmp(o, "applied") != 0))
		return outcome_words(o);

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

/* captures: host -> name -> value, hosts in the order they captured */
static void fm_captures(const struct change_rec *c, struct buf *b)
{
	buf_adds(b, "\ncaptures:");
	if (!c->n_captures)
		buf_adds(b, " {}");
	for (size_t h = 0; h < c->n_captures; h++) {
		const char *host = c->captures[h].host;
		bool seen = false;

		for (size_t i = 0; i < h && !seen; i++)
			seen = strcmp(c->captures[i].host, host) == 0;
		if (seen)
			continue;
		buf_adds(b, "\n  ");
		q(b, host);
		buf_adds(b, ":");
		for (size_t i = h; i < c->n_captures; i++) {
			if (strcmp(c->captures[i].host, host) != 0)
				continue;
			buf_adds(b, "\n    ");
			q(b, c->captures[i].name);
			buf_adds(b, ": ");
			q(b, c->captures[i].value);
		}
	}
}

/* Whether the note can name host by the key alone (see metric_host). */
static bool key_names_host(const struct change_rec *c, const char *host)
{
	if (c->hosts.n < 2)
		return c->hosts.n == 1 && strcmp(c->hosts.v[0], host) == 0;
	for (size_t h = 0; h < c->hosts.n; h++)
		if (strcmp(c->hosts.v[h], host) == 0)
			return true;
	return false;
}

static void fm_metrics(const struct change_rec *c, struct buf *b)
{
	buf_adds(b, "\nmetrics:");
	if (!c->n_metrics)
		buf_adds(b, " {}");
	for (size_t i = 0; i < c->n_metrics; i++) {
		const struct rec_metric *m = &c->metrics[i];
		bool by_key = key_names_host(c, m->host);
		struct buf key = BUF_INIT;

		/* name, or name@host when several hosts report it */
		buf_adds(&key, m->name);
		if (c->hosts.n > 1 && by_key)
			buf_addf(&key, "@%s", m->host);
		buf_adds(b, "\n  ");
		q(b, buf_str(&key));
		buf_adds(b, ": { before: ");
		q(b, m->before);
		buf_adds(b, ", after: ");
		q(b, m->after);
		if (m->after_rollback) {
			buf_adds(b, ", after_rollback: ");
			q(b, m->after_rollback);
		}
		if (!by_key) {
			buf_adds(b, ", host: ");
			q(b, m->host);
		}
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
	if (s->backup) {	/* paths, sizes and SHA-256s: never content */
		buf_adds(b, "\n    backup: ");
		q(b, s->backup);
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
	if (s->attempts > 1)
		buf_addf(b, "\n    attempts: %u", s->attempts);
	buf_addf(b, "\n    duration_ms: %llu\n    result: %s",
		 s->duration_ms,
		 s->running ? "not-run" : step_result_name(s->result));
	if (s->running)
		buf_adds(b, "\n    interrupted: true");
	if (s->message) {
		buf_adds(b, "\n    message: ");
		q(b, s->message);
	}
	if (s->phase == PHASE_STEPS)
		buf_addf(b, "\n    rollback_result: %s",
			 step_result_name(s->rb_result));
	if (s->phase == PHASE_STEPS && s->rb_result != RES_NOT_RUN &&
	    !s->rb_by_hand && !s->rollback_none) {
		if (s->rb_exit_code >= 0)
			buf_addf(b, "\n    rollback_exit: %d", s->rb_exit_code);
		buf_addf(b, "\n    rollback_duration_ms: %llu", s->rb_duration_ms);
	}
	if (s->has_snap) {
		buf_addf(b, "\n    baseline_bytes: %llu\n    baseline_crc32c: %u\n    baseline_stdout: ",
			 s->snap_bytes, s->snap_crc);
		q(b, s->snap_out ? s->snap_out : "");
	}
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
		if (e->exit_code >= 0)
			buf_addf(b, ", exit: %d", e->exit_code);
		buf_addf(b, ", duration_ms: %llu", e->duration_ms);
		if (e->message) {
			buf_adds(b, ", message: ");
			q(b, e->message);
		}
		buf_adds(b, " }");
	}
}

void note_front_matter(const struct change_rec *c, struct buf *b)
{
	buf_adds(b, "---\n");
	fm_str(b, "change", c->id);
	fm_str(b, "runbook", c->runbook);
	if (c->mode)
		fm_str(b, "mode", c->mode);
	if (c->mode)	/* notes from before `mode` had no --limit either */
		fm_str(b, "limit", c->limit);
	if (c->watch)
		fm_str(b, "watch", c->watch);
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
	if (c->confirm)
		buf_adds(b, "confirm: true\n");
	fm_str(b, "status", change_status_name(c->status));
	if (c->baseline) {
		fm_str(b, "baseline", c->baseline);
		if (c->baseline_diff && *c->baseline_diff)
			fm_str(b, "baseline_diff", c->baseline_diff);
	}
	if (c->rolled_back_at) {
		fm_str(b, "rolled_back_by", c->rolled_back_by);
		fm_str(b, "rolled_back_at", c->rolled_back_at);
		fm_str(b, "rollback_reason", c->rollback_reason);
		if (c->rollback_forced.n) {
			buf_adds(b, "rollback_forced:");
			for (size_t i = 0; i < c->rollback_forced.n; i++) {
				buf_adds(b, "\n  - ");
				q(b, c->rollback_forced.v[i]);
			}
			buf_addc(b, '\n');
		}
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
	fm_map(b, "outcomes", &c->outcomes, false);
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

/* The first failure of the run: a step that failed, timed out or was cut. */
static const struct rec_step *first_failure(const struct change_rec *c)
{
	for (size_t i = 0; i < c->n_steps; i++) {
		const struct rec_step *s = &c->steps[i];

		if (s->running || s->result == RES_FAILED ||
		    s->result == RES_TIMEOUT)
			return s;
	}
	return NULL;
}

/*
 * How the change ended and why, in the body's first lines: the failing
 * step, where, and what was expected and found; whether the rollback
 * was the run's own or made later, by whom and why.
 */
static void ending(const struct change_rec *c, struct buf *b)
{
	const struct rec_step *f = first_failure(c);

	if (c->mode && strcmp(c->mode, "rehearse") == 0)
		buf_adds(b, "**Rehearsal:** applied only to prove that its rollback restores the baseline (`mode: rehearse`), then rolled back.\n\n");
	if (f && c->status != CHANGE_RUNNING) {
		buf_addf(b, "**Why it stopped:** %s `%s` on %s %s",
			 phase_name(f->phase), f->name ? f->name : "?", f->host,
			 f->running ? "was cut off while running" :
			 f->result == RES_TIMEOUT ? "timed out" : "failed");
		if (f->message)
			buf_addf(b, ": %s", f->message);
		buf_adds(b, ".\n\n");
	}
	if (c->rolled_back_at) {
		buf_addf(b, "**Rolled back later** by %s at %s",
			 c->rolled_back_by ? c->rolled_back_by : "?",
			 c->rolled_back_at);
		buf_addf(b, c->rollback_reason ? ", because: %s" : "%s",
			 c->rollback_reason ? c->rollback_reason : "");
		if (c->rollback_forced.n) {
			buf_adds(b, " (with --force, under later changes");
			for (size_t i = 0; i < c->rollback_forced.n; i++)
				buf_addf(b, "%s `%s`", i ? "," : "",
					 c->rollback_forced.v[i]);
			buf_adds(b, ")");
		}
		buf_adds(b, ".\n\n");
	} else if (f && c->status == CHANGE_APPLIED_WITH_FAILURES) {
		buf_addf(b, "**Rollback:** the hosts that failed within max_fail were rolled back alone by the run; the applied hosts stay applied (`runbook rollback %s` undoes them).\n\n",
			 c->id);
	} else if (f && c->status != CHANGE_RUNNING &&
		   c->status != CHANGE_APPLIED) {
		buf_adds(b, "**Rollback:** automatic, by the run itself.\n\n");
	}
	if (c->baseline && strcmp(c->baseline, "differs") == 0)
		buf_adds(b, "**Baseline:** differs after the rollback: the preflight does not show what it showed when the change began, so the hosts are not as they were (diff below); check them by hand.\n\n");
	else if (c->baseline)
		buf_adds(b, "**Baseline:** restored: after the rollback the preflight showed what it showed when the change began.\n\n");
}

/* Every rollback command, in the order it ran, with exit and time. */
static void rollbacks(const struct change_rec *c, struct buf *b)
{
	bool any = false;

	for (size_t i = 0; i < c->n_events; i++) {
		const struct rec_event *e = &c->events[i];
		char dur[32];

		if (strcmp(e->kind, "rollback") != 0)
			continue;
		if (!any)
			buf_adds(b, "\n## Rollback\n\n| host | step | result | exit | time |\n|---|---|---|---|---|\n");
		any = true;
		format_duration((unsigned)e->duration_ms, dur);
		buf_adds(b, "| ");
		cell(b, e->host, 60);
		buf_adds(b, " | ");
		cell(b, e->name, 80);
		buf_addf(b, " | %s%s | ", e->result, e->by_hand ? " (by hand)" : "");
		if (e->exit_code >= 0)
			buf_addf(b, "%d", e->exit_code);
		buf_addf(b, " | %s |\n", dur);
	}
	/* what each rollback command printed (its last run) */
	for (size_t i = 0; any && i < c->n_steps; i++) {
		const struct rec_step *s = &c->steps[i];

		if (!s->rb_output || !*s->rb_output)
			continue;
		buf_addf(b, "\n### rollback of %s on %s\n\n```\n$ %s\n%s%s```\n",
			 s->name, s->host, s->rollback ? s->rollback : "",
			 s->rb_output,
			 s->rb_output[strlen(s->rb_output) - 1] == '\n' ? "" : "\n");
	}
}

/*
 * Folding, for a change over more than NOTE_FOLD_HOSTS hosts: in the
 * body (the front matter keeps every host's every step), rows of the
 * steps table that differ only in host and time become one row naming
 * the hosts, and an output shown for one host is not repeated for the
 * hosts whose same command printed the same.
 */
#define NOTE_FOLD_HOSTS 16
#define NOTE_FOLD_NAMES 5

static bool same_row(const struct rec_step *a, const struct rec_step *b)
{
	return a->phase == b->phase && a->running == b->running &&
	       a->result == b->result && a->exit_code == b->exit_code &&
	       a->rollback_none == b->rollback_none &&
	       a->rb_result == b->rb_result && a->rb_by_hand == b->rb_by_hand &&
	       strcmp(a->name ? a->name : "", b->name ? b->name : "") == 0;
}

static void folded_steps(const struct change_rec *c, struct buf *b)
{
	bool *done = xcalloc(c->n_steps + 1, sizeof(*done));

	for (size_t i = 0; i < c->n_steps; i++) {
		const struct rec_step *s = &c->steps[i];
		unsigned long long most = 0;
		size_t n = 0;
		char dur[32];

		if (done[i])
			continue;
		buf_adds(b, "| ");
		for (size_t j = i; j < c->n_steps; j++) {
			if (done[j] || !same_row(s, &c->steps[j]))
				continue;
			done[j] = true;
			if (c->steps[j].duration_ms > most)
				most = c->steps[j].duration_ms;
			if (n < NOTE_FOLD_NAMES) {
				buf_adds(b, n ? ", " : "");
				cell(b, c->steps[j].host, 60);
			}
			n++;
		}
		if (n > NOTE_FOLD_NAMES)
			buf_addf(b, " and %zu more (%zu hosts)", n - NOTE_FOLD_NAMES, n);
		format_duration((unsigned)most, dur);
		buf_addf(b, " | %s | ", phase_name(s->phase));
		cell(b, s->name, 80);
		buf_addf(b, " | %s | ", s->running ? "interrupted" :
			 step_result_name(s->result));
		if (s->exit_code >= 0)
			buf_addf(b, "%d", s->exit_code);
		buf_addf(b, " | %s%s | %s%s |\n", n > 1 ? "up to " : "", dur,
			 s->phase != PHASE_STEPS ? "" :
			 s->rollback_none ? "none" :
			 step_result_name(s->rb_result),
			 s->rb_by_hand ? " (by hand)" : "");
	}
	free(done);
}

static bool same_output(const struct rec_step *a, const struct rec_step *b)
{
	return a->phase == b->phase && a->output && b->output &&
	       strcmp(a->output, b->output) == 0 &&
	       strcmp(a->name ? a->name : "", b->name ? b->name : "") == 0 &&
	       strcmp(a->command ? a->command : "", b->command ? b->command : "") == 0;
}

/* True if an earlier host's same step printed the same (shown there). */
static bool same_output_before(const struct change_rec *c, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (same_output(&c->steps[j], &c->steps[i]))
			return true;
	return false;
}

/* " and N more hosts (the same output)" for step i's heading, or "". */
static const char *same_output_more(const struct change_rec *c, size_t i)
{
	static _Thread_local char more[64];
	size_t n = 0;

	for (size_t j = i + 1; j < c->n_steps; j++)
		n += same_output(&c->steps[i], &c->steps[j]);
	more[0] = '\0';
	if (n)
		snprintf(more, sizeof(more), " and %zu more host%s (the same output)",
			 n, n == 1 ? "" : "s");
	return more;
}

static void body(const struct change_rec *c, struct buf *b)
{
	static const char *const say[] = {
		"is running", "was applied", "was rolled back: every step undone",
		"failed and its rollback did not finish", "failed",
		"was interrupted", "was rehearsed: applied and rolled back",
		"was applied on some hosts; the hosts that failed within max_fail were rolled back alone",
	};
	bool any_output = false;

	buf_addf(b, "\n# %s on %s: %s\n\n", c->runbook ? c->runbook : "?",
		 c->target ? c->target : "?", change_status_name(c->status));
	buf_addf(b, "Change `%s` %s.\n\n", c->id, say[c->status]);
	ending(c, b);
	buf_addf(b, "- **Why:** %s\n- **Owner:** %s\n- **Operator:** %s\n",
		 c->reason ? c->reason : "", c->owner ? c->owner : "",
		 c->operator_ ? c->operator_ : "");
	buf_addf(b, "- **Where:** %s (", c->target ? c->target : "");
	for (size_t i = 0; i < c->hosts.n; i++)
		buf_addf(b, "%s%s: %s", i ? ", " : "", c->hosts.v[i],
			 host_result(c, c->hosts.v[i]));
	buf_adds(b, ")");
	if (c->limit)
		buf_addf(b, ", limited to `%s`", c->limit);
	buf_addf(b, "\n- **When:** %s to %s\n", c->started ? c->started : "?",
		 c->finished ? c->finished : "(not finished)");
	buf_addf(b, "- **Expected:** %s — %s\n", c->expected ? c->expected : "",
		 c->status == CHANGE_APPLIED ? "met (verify passed)" :
		 c->status == CHANGE_APPLIED_WITH_FAILURES ? "met on the applied hosts (verify passed there)" :
		 c->status == CHANGE_REHEARSED ? "met, then rolled back as rehearsed" :
		 c->status == CHANGE_RUNNING ? "not known yet" :
		 c->status == CHANGE_ROLLED_BACK ? "not in effect: the change was undone" :
		 "not met");
	buf_addf(b, "- **File:** `%s` (sha256 %s)\n\n",
		 c->file ? c->file : "", c->file_sha256 ? c->file_sha256 : "");

	buf_adds(b, "## Steps\n\n| host | phase | step | result | exit | time | rollback |\n"
		    "|---|---|---|---|---|---|---|\n");
	if (c->hosts.n > NOTE_FOLD_HOSTS) {
		folded_steps(c, b);
		goto steps_done;
	}
	for (size_t i = 0; i < c->n_steps; i++) {
		const struct rec_step *s = &c->steps[i];
		char dur[32];

		format_duration((unsigned)s->duration_ms, dur);
		buf_adds(b, "| ");
		cell(b, s->host, 60);
		buf_addf(b, " | %s | ", phase_name(s->phase));
		cell(b, s->name, 80);
		buf_addf(b, " | %s", s->running ? "interrupted" :
			 step_result_name(s->result));
		if (s->attempts > 1)
			buf_addf(b, " (%u attempts)", s->attempts);
		buf_adds(b, " | ");
		if (s->exit_code >= 0)
			buf_addf(b, "%d", s->exit_code);
		buf_addf(b, " | %s | %s%s |\n", dur,
			 s->phase != PHASE_STEPS ? "" :
			 s->rollback_none ? "none" :
			 step_result_name(s->rb_result),
			 s->rb_by_hand ? " (by hand)" : "");
	}
steps_done:
	if (c->n_metrics) {
		bool rolled = false;

		for (size_t i = 0; i < c->n_metrics; i++)
			rolled |= c->metrics[i].after_rollback != NULL;
		buf_addf(b, "\n## Metrics\n\n| metric | host | before | after |%s\n|---|---|---|---|%s\n",
			 rolled ? " after rollback |" : "", rolled ? "---|" : "");
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
			if (rolled) {
				buf_adds(b, " | ");
				cell(b, m->after_rollback ? m->after_rollback : "-", 40);
			}
			buf_adds(b, " |\n");
		}
	}
	for (size_t i = 0; i < c->n_steps; i++) {
		const struct rec_step *s = &c->steps[i];

		if (!s->output || !*s->output ||
		    (c->hosts.n > NOTE_FOLD_HOSTS && same_output_before(c, i)))
			continue;
		if (!any_output)
			buf_adds(b, "\n## Output (head and tail, redacted)\n");
		any_output = true;
		buf_addf(b, "\n### %s %s on %s%s\n\n```\n$ %s\n%s%s```\n",
			 phase_name(s->phase), s->name, s->host,
			 c->hosts.n > NOTE_FOLD_HOSTS ? same_output_more(c, i) : "",
			 s->command ? s->command : "", s->output,
			 s->output[strlen(s->output) - 1] == '\n' ? "" : "\n");
	}
	if (c->baseline) {
		buf_addf(b, "\n## Baseline after the rollback\n\n");
		if (strcmp(c->baseline, "restored") == 0)
			buf_adds(b, "After the rollback the preflight showed exactly the baseline it showed when the change began (`baseline: restored`).\n");
		else
			buf_addf(b, "After the rollback the preflight did **not** show the baseline again (`baseline: differs`); the host is not as it was before:\n\n```diff\n%s```\n",
				 c->baseline_diff ? c->baseline_diff : "");
	}
	rollbacks(c, b);
	if (change_pending_total(c)) {
		buf_adds(b, "\n## Undo\n\n```\n");
		note_undo_command(c->id, b);
		buf_adds(b, "\n```\n");
	} else {
		buf_adds(b, "\n## Undo\n\nNothing is left to undo.\n");
	}
}

void note_render(const struct change_rec *c, struct buf *out)
{
	note_front_matter(c, out);
	body(c, out);
}

/*
 * Notes come from other clones: every field is checked for its type,
 * and the first field that has the wrong one makes the note unreadable
 * (never a guess, never half a record).
 */
struct reader {
	const char *what;	/* "note of change <id>" */
	struct rb_error *err;
	bool bad;
};

static void wrong(struct reader *r, const struct ynode *n, const char *key,
		  const char *expected)
{
	if (r->bad)
		return;
	r->bad = true;
	/* the front matter starts on the note's second line */
	rb_error_set(r->err, RB_ERR_INVALID,
		     "%s:%u:%u: '%s' expected %s, found a %s; the note is not used (nothing was run), fix it in the notes branch",
		     r->what, n->pos.line + 1, n->pos.col, key, expected,
		     ynode_type_name(n));
}

/* The scalar at key, NULL when absent or null. */
static const char *str(struct reader *r, const struct ynode *map,
		       const char *key)
{
	const struct ynode *v = map && map->type == YN_MAP ?
				ynode_get(map, key) : NULL;

	if (!v || ynode_is_null(v))
		return NULL;
	if (v->type != YN_SCALAR) {
		wrong(r, v, key, "a string");
		return NULL;
	}
	return v->text;
}

static bool flag(struct reader *r, const struct ynode *map, const char *key)
{
	const char *v = str(r, map, key);

	return v && strcmp(v, "true") == 0;
}

static unsigned long long num(struct reader *r, const struct ynode *map,
			      const char *key, unsigned long long dflt)
{
	const char *v = str(r, map, key);

	return v ? strtoull(v, NULL, 10) : dflt;
}

/* The node at key if it has type t (and scalar items), else NULL. */
static const struct ynode *group(struct reader *r, const struct ynode *map,
				 const char *key, enum ynode_type t)
{
	const struct ynode *v = map && map->type == YN_MAP ?
				ynode_get(map, key) : NULL;

	if (!v || ynode_is_null(v))
		return NULL;
	if (v->type != t) {
		wrong(r, v, key, t == YN_SEQ ? "a list" : "a mapping");
		return NULL;
	}
	return v;
}

/* A list or map of strings at key, else NULL. */
static const struct ynode *strings(struct reader *r, const struct ynode *map,
				   const char *key, enum ynode_type t)
{
	const struct ynode *v = group(r, map, key, t);

	for (size_t i = 0; v && i < v->n; i++) {
		if (v->items[i]->type != YN_SCALAR) {
			wrong(r, v->items[i], key,
			      t == YN_SEQ ? "a list of strings" : "a mapping of strings");
			return NULL;
		}
	}
	return v;
}

static char *dup(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static int phase_of(const char *name, enum phase dflt)
{
	for (int p = 0; name && p < PHASE_COUNT; p++)
		if (strcmp(name, phase_name((enum phase)p)) == 0)
			return p;
	return (int)dflt;
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

static void parse_head(struct reader *r, const struct ynode *root,
		       struct change_rec *c)
{
	static const struct {
		const char *key;
		size_t off;
	} f[] = {
#define F(k, m) { k, offsetof(struct change_rec, m) }
		F("change", id), F("runbook", runbook), F("mode", mode), F("limit", limit), F("watch", watch),
		F("file", file),
		F("file_sha256", file_sha256), F("target", target),
		F("owner", owner), F("reason", reason), F("expected", expected),
		F("operator", operator_), F("started", started),
		F("finished", finished), F("identity", identity),
		F("baseline", baseline), F("baseline_diff", baseline_diff),
		F("rolled_back_by", rolled_back_by),
		F("rolled_back_at", rolled_back_at),
		F("rollback_reason", rollback_reason),
#undef F
	};
	const struct ynode *x;
	int st;

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		*(char **)((char *)c + f[i].off) = dup(str(r, root, f[i].key));
	st = str(r, root, "status") ?
		change_status_parse(str(r, root, "status")) : -1;
	c->status = st >= 0 ? (enum change_status)st : CHANGE_FAILED;
	c->confirm = str(r, root, "confirm") &&
		     strcmp(str(r, root, "confirm"), "true") == 0;
	c->has_note = true;
	c->noted = c->status;
	c->closed = c->status != CHANGE_RUNNING;
	if ((x = strings(r, root, "hosts", YN_SEQ)))
		for (size_t i = 0; i < x->n; i++)
			strvec_push(&c->hosts, x->items[i]->text);
	if ((x = strings(r, root, "redact", YN_SEQ)))
		for (size_t i = 0; i < x->n; i++)
			strvec_push(&c->redact, x->items[i]->text);
	if ((x = strings(r, root, "rollback_forced", YN_SEQ)))
		for (size_t i = 0; i < x->n; i++)
			strvec_push(&c->rollback_forced, x->items[i]->text);
	if ((x = strings(r, root, "vars", YN_MAP)))
		for (size_t i = 0; i < x->n; i++)
			varset_set(&c->vars, x->keys[i]->text, x->items[i]->text);
	if ((x = strings(r, root, "identities", YN_MAP)))
		for (size_t i = 0; i < x->n; i++)
			varset_set(&c->host_ids, x->keys[i]->text,
				   x->items[i]->text);
	if ((x = strings(r, root, "outcomes", YN_MAP)))
		for (size_t i = 0; i < x->n; i++)
			if (outcome_known(x->items[i]->text))
				varset_set(&c->outcomes, x->keys[i]->text,
					   x->items[i]->text);
	if ((x = strings(r, root, "secrets", YN_MAP)))
		for (size_t i = 0; i < x->n; i++)
			varset_set(&c->secrets, x->keys[i]->text,
				   x->items[i]->text);
}

static void parse_values(struct reader *r, const struct ynode *root,
			 struct change_rec *c)
{
	const struct ynode *x, *h;

	if ((x = group(r, root, "captures", YN_MAP))) {
		for (size_t i = 0; i < x->n; i++) {
			if (!(h = strings(r, x, x->keys[i]->text, YN_MAP)))
				continue;
			for (size_t k = 0; k < h->n; k++)
				change_set_capture(c, x->keys[i]->text,
						   h->keys[k]->text,
						   h->items[k]->text);
		}
	}
	if (!(x = group(r, root, "metrics", YN_MAP)))
		return;
	for (size_t i = 0; i < x->n; i++) {
		const char *key = x->keys[i]->text, *host, *b, *a;
		char *name;

		if (!group(r, x, key, YN_MAP))
			continue;
		/* "host" when the key cannot say it (docs/notes.md) */
		host = str(r, x->items[i], "host");
		name = host || !(host = metric_host(c, key)) ? xstrdup(key) :
			xstrndup(key, strlen(key) - strlen(host) - 1);
		if (!host)
			host = c->hosts.n ? c->hosts.v[0] : "";
		if ((b = str(r, x->items[i], "before")))
			change_set_metric(c, host, name, METRIC_BEFORE, b);
		if ((a = str(r, x->items[i], "after")))
			change_set_metric(c, host, name, METRIC_AFTER, a);
		if ((a = str(r, x->items[i], "after_rollback")))
			change_set_metric(c, host, name, METRIC_AFTER_ROLLBACK, a);
		free(name);
	}
}

static void parse_step(struct reader *r, const struct ynode *n,
		       struct change_rec *c)
{
	struct rec_step *s = change_add_step(c);
	const char *rb = str(r, n, "rollback");
	const struct ynode *env;
	int v;

	s->host = xstrdup(str(r, n, "host") ? str(r, n, "host") : "");
	s->phase = (enum phase)phase_of(str(r, n, "phase"), s->phase);
	s->index = (unsigned)num(r, n, "index", 0);
	s->name = dup(str(r, n, "name"));
	s->command = dup(str(r, n, "command"));
	if (rb && strcmp(rb, "none") == 0)
		s->rollback_none = true;
	else
		s->rollback = dup(rb);
	s->local = flag(r, n, "local");
	s->rollback_masked = flag(r, n, "rollback_masked");
	s->rb_by_hand = flag(r, n, "rollback_by_hand");
	s->dir = dup(str(r, n, "dir"));
	s->backup = dup(str(r, n, "backup"));
	if ((env = strings(r, n, "env", YN_SEQ)))
		for (size_t k = 0; k < env->n; k++)
			strvec_push(&s->env, env->items[k]->text);
	s->timeout_ms = (unsigned)num(r, n, "timeout_ms", 600000);
	s->exit_code = str(r, n, "exit") ? atoi(str(r, n, "exit")) : -1;
	s->duration_ms = num(r, n, "duration_ms", 0);
	s->attempts = (unsigned)num(r, n, "attempts", 1);
	v = str(r, n, "result") ? step_result_parse(str(r, n, "result")) : -1;
	s->result = v >= 0 ? (enum step_result)v : RES_NOT_RUN;
	s->running = str(r, n, "interrupted") != NULL;
	s->message = dup(str(r, n, "message"));
	v = str(r, n, "rollback_result") ?
		step_result_parse(str(r, n, "rollback_result")) : -1;
	s->rb_result = v >= 0 ? (enum step_result)v : RES_NOT_RUN;
	s->rb_exit_code = str(r, n, "rollback_exit") ?
		atoi(str(r, n, "rollback_exit")) : -1;
	s->rb_duration_ms = num(r, n, "rollback_duration_ms", 0);
	if (str(r, n, "baseline_stdout") || str(r, n, "baseline_bytes")) {
		s->has_snap = true;
		s->snap_out = dup(str(r, n, "baseline_stdout"));
		s->snap_bytes = num(r, n, "baseline_bytes", 0);
		s->snap_crc = (unsigned)num(r, n, "baseline_crc32c", 0);
	}
}

/* What the record's events are (change.c, notify.c). */
static bool event_kind_ok(const char *kind)
{
	static const char *const kinds[] = {
		"step", "attempt", "rollback", "notify", NULL,
	};

	for (const char *const *k = kinds; *k; k++)
		if (strcmp(kind, *k) == 0)
			return true;
	return false;
}

static void parse_event(struct reader *r, const struct ynode *e,
			struct change_rec *c)
{
	const char *kind = str(r, e, "event");
	struct rec_event *ev;

	if (!kind)
		return;
	if (!event_kind_ok(kind)) {
		const struct ynode *v = ynode_get(e, "event");

		if (!r->bad)
			rb_error_set(r->err, RB_ERR_INVALID,
				     "%s:%u:%u: 'event' expected step, attempt, rollback or notify, found \"%.*s\"; the note is not used (nothing was run), fix it in the notes branch",
				     r->what, v->pos.line + 1, v->pos.col,
				     (int)strcspn(kind, "\n\r\t\033"), kind);
		r->bad = true;
		return;
	}
	ev = change_add_event(c, kind, str(r, e, "host"),
			      (enum phase)phase_of(str(r, e, "phase"),
						   PHASE_STEPS),
			      str(r, e, "name"), str(r, e, "result"));
	ev->attempt = (unsigned)num(r, e, "attempt", 0);
	ev->by_hand = flag(r, e, "by_hand");
	ev->exit_code = str(r, e, "exit") ? atoi(str(r, e, "exit")) : -1;
	ev->duration_ms = num(r, e, "duration_ms", 0);
	ev->message = dup(str(r, e, "message"));
}

/* The names the record uses as file names and lock names. */
static void check_names(struct reader *r, const struct change_rec *c,
			const char *id)
{
	char why[160];

	if (r->bad)
		return;
	if (!c->id)
		snprintf(why, sizeof(why), "expected a 'change' id, found none");
	else if (id && strcmp(c->id, id) != 0)
		snprintf(why, sizeof(why),
			 "its 'change' field names %.80s, not the change it is filed under",
			 c->id);
	else if (!change_id_check(c->id, time(NULL), why))
		;	/* why says it */
	else if (c->target && !is_runbook_name(c->target))
		snprintf(why, sizeof(why),
			 "expected a target name of a-z, 0-9, '.', '_' and '-', found \"%.64s\"",
			 c->target);
	else if (c->runbook && !is_runbook_name(c->runbook))
		snprintf(why, sizeof(why),
			 "expected a runbook name of a-z, 0-9, '.', '_' and '-', found \"%.64s\"",
			 c->runbook);
	else
		return;
	r->bad = true;
	rb_error_set(r->err, RB_ERR_INVALID,
		     "%s: %s; the note is not used (nothing was run)", r->what,
		     why);
}

/* Each item of the list at key, which must be a map. */
static void each_map(struct reader *r, const struct ynode *root,
		     const char *key,
		     void (*fn)(struct reader *, const struct ynode *,
				struct change_rec *),
		     struct change_rec *c)
{
	const struct ynode *x = group(r, root, key, YN_SEQ);

	for (size_t i = 0; x && i < x->n && !r->bad; i++) {
		if (x->items[i]->type != YN_MAP)
			wrong(r, x->items[i], key, "a list of mappings");
		else
			fn(r, x->items[i], c);
	}
}

int note_parse(const char *text, size_t len, const char *id,
	       struct change_rec **out, struct rb_error *err)
{
	struct buf what = BUF_INIT;
	struct reader r = { NULL, err, false };
	struct ynode *root = NULL;
	struct change_rec *c;
	const char *end;
	struct diag d;

	buf_addf(&what, "note of change %s", id ? id : "(unnamed)");
	r.what = buf_str(&what);
	diag_init(&d, r.what);
	if (len < 4 || strncmp(text, "---\n", 4) != 0 ||
	    !(end = memmem(text + 4, len - 4, "\n---\n", 5)) ||
	    ytree_parse(text + 4, (size_t)(end - text - 3), &root, &d) < 0 ||
	    !root || root->type != YN_MAP) {
		rb_error_set(err, RB_ERR_INVALID,
			     "%s: expected a change note with YAML front matter, found something else",
			     r.what);
		diag_release(&d);
		ytree_free(root);
		buf_release(&what);
		return -1;
	}
	diag_release(&d);
	c = change_new();
	parse_head(&r, root, c);
	if (c->baseline && strcmp(c->baseline, "same") == 0) {
		/* how rehearse said "restored" before */
		free(c->baseline);
		c->baseline = xstrdup("restored");
	}
	parse_values(&r, root, c);
	each_map(&r, root, "steps", parse_step, c);
	each_map(&r, root, "events", parse_event, c);
	check_names(&r, c, id);
	ytree_free(root);
	buf_release(&what);
	if (r.bad) {
		change_free(c);
		return -1;
	}
	*out = c;
	return 0;
}
