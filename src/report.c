/*
 * The report: events -> progress lines, the live line, --verbose
 * output and --json objects. Main thread only (a deferred listener),
 * so it needs no lock; the state it keeps (the open change, the live
 * line, whether an output line is open) is its own.
 */
#include "report.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "change.h"
#include "error.h"
#include "json.h"
#include "redact.h"
#include "runbook.h"
#include "sys.h"

struct report {
	struct report_opts o;
	const struct redactor *red;	/* of the event being reported */
	char *runbook, *target;
	bool replay;
	size_t per;
	bool live_shown;
	bool line_open[2];	/* --verbose: a stream's line not ended yet */
	/*
	 * Folding (more than REPORT_FOLD_HOSTS hosts, no --verbose): lines
	 * of commands that went well are counted, not printed, and each
	 * batch (and the rollback) ends with one line of counts; every
	 * failure keeps its own line.
	 */
	bool fold;
	size_t n_ok, n_skipped, n_failed;	/* since the last count line */
	size_t batch, n_batches, batch_hosts;
	bool in_rollback;
	bool compared;		/* a baseline event came: the baseline was compared */
	unsigned long long t0;
};

/* Above this many hosts, progress is folded into a line per batch. */
#define REPORT_FOLD_HOSTS 16

struct report *report_new(const struct report_opts *o)
{
	struct report *r = xcalloc(1, sizeof(*r));

	r->o = *o;
	return r;
}

void report_free(struct report *r)
{
	if (!r)
		return;
	free(r->runbook);
	free(r->target);
	free(r);
}

static const char *color(const struct report *r, const char *code)
{
	return r->o.color ? code : "";
}

static void live_clear(struct report *r)
{
	if (r->live_shown) {
		fputs("\r\033[K", stderr);
		r->live_shown = false;
	}
}

/* Ends the --verbose output lines a command left open. */
static void end_lines(struct report *r)
{
	for (int i = 0; i < 2; i++) {
		if (r->line_open[i])
			fputc('\n', stderr);
		r->line_open[i] = false;
	}
}

/* Prints one redacted line to stderr (progress); not with --quiet. */
static void say(struct report *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void say(struct report *r, const char *fmt, ...)
{
	struct buf raw = BUF_INIT, red = BUF_INIT;
	va_list ap;

	if (r->o.quiet)
		return;
	va_start(ap, fmt);
	buf_vaddf(&raw, fmt, ap);
	va_end(ap);
	redact_append(r->red, &red, raw.data ? raw.data : "", raw.len);
	live_clear(r);
	fputs(buf_str(&red), stderr);
	fflush(stderr);
	buf_release(&raw);
	buf_release(&red);
}

static void progress(struct report *r, enum step_result res, const char *what,
		     const struct event *ev, const char *why)
{
	const char *mark, *col;
	char dur[32];

	switch (res) {
	case RES_OK:
	case RES_ROLLED_BACK:
		mark = "ok";
		col = "\033[32m";
		break;
	case RES_SKIPPED:
		mark = "skipped";
		col = "\033[33m";
		break;
	case RES_NOT_RUN:
		mark = "-";
		col = "";
		break;
	default:
		mark = res == RES_TIMEOUT ? "TIMEOUT" : "FAILED";
		col = "\033[1;31m";
		break;
	}
	format_duration((unsigned)ev->duration_ms, dur);
	say(r, "  %s%-8s%s %-9s %-*s %-*s %6s\n", color(r, col), mark,
	    color(r, *col ? "\033[0m" : ""), what, r->o.host_w, ev->host,
	    r->o.name_w, ev->name, dur);
	if (why && *why)
		say(r, "           %s\n", why);
}

/* "key": value, redacted before it is encoded */
static void jkv(const struct report *r, struct buf *b, const char *key,
		const char *value)
{
	char *red = redact_str(r->red, value);

	json_kv(b, key, red, 0);
	free(red);
}

static void json_line(const struct event *ev, const char *event,
		      const struct buf *fields)
{
	struct buf line = BUF_INIT;
	char t[40];

	sys_now_utc(t);
	buf_adds(&line, "{");
	json_kv(&line, "event", event, 1);
	json_kv(&line, "change", ev->change_id, 0);
	json_kv(&line, "time", t, 0);
	if (fields->len)
		buf_add(&line, fields->data, fields->len);
	buf_adds(&line, "}\n");
	fputs(buf_str(&line), stdout);
	fflush(stdout);
	buf_release(&line);
}

static void step_fields(const struct report *r, struct buf *f,
			const struct event *ev, const char *what,
			const char *result)
{
	jkv(r, f, "host", ev->host);
	jkv(r, f, "phase", what);
	jkv(r, f, "name", ev->name);
	jkv(r, f, "result", result);
	if (ev->exit_code >= 0)
		buf_addf(f, ",\"exit\":%d", ev->exit_code);
	buf_addf(f, ",\"duration_ms\":%llu", ev->duration_ms);
	if (ev->display)
		jkv(r, f, "command", ev->display);
	if (ev->why && *ev->why)
		jkv(r, f, "message", ev->why);
}

static void on_open(struct report *r, const struct event *ev, struct buf *f)
{
	free(r->runbook);
	free(r->target);
	r->runbook = ev->runbook ? xstrdup(ev->runbook) : NULL;
	r->target = ev->target ? xstrdup(ev->target) : NULL;
	r->replay = ev->replay;
	r->per = ev->per;
	r->fold = ev->n_hosts > REPORT_FOLD_HOSTS && !r->o.verbose;
	r->batch_hosts = ev->n_hosts;
	r->t0 = sys_now_ms();
	if (ev->replay) {
		say(r, "runbook: rolling back change %s on %s\n", ev->change_id,
		    ev->target);
		return;
	}
	say(r, "runbook: change %s: %s on %s (%zu host%s)\n", ev->change_id,
	    ev->runbook, ev->target, ev->n_hosts, ev->n_hosts == 1 ? "" : "s");
	if (r->o.json) {
		jkv(r, f, "runbook", ev->runbook);
		jkv(r, f, "target", ev->target);
		jkv(r, f, "status", "running");
		json_line(ev, "change", f);
	}
}

/* The count line of a folded batch or rollback, if anything was counted. */
static void fold_flush(struct report *r)
{
	struct buf b = BUF_INIT;

	if (!r->fold || !(r->n_ok + r->n_skipped + r->n_failed))
		return;
	if (r->in_rollback)
		buf_adds(&b, "  rollback:");
	else if (r->n_batches > 1)
		buf_addf(&b, "  batch %zu of %zu, %zu hosts:", r->batch,
			 r->n_batches, r->batch_hosts);
	else
		buf_addf(&b, "  %zu hosts:", r->batch_hosts);
	buf_addf(&b, " %zu %s", r->n_ok, r->in_rollback ? "rolled back" : "ok");
	if (r->n_skipped)
		buf_addf(&b, ", %zu %s", r->n_skipped,
			 r->in_rollback ? "with nothing to undo" : "skipped");
	if (r->n_failed)
		buf_addf(&b, ", %zu failed (above)", r->n_failed);
	buf_addf(&b, ", %.1fs", (double)(sys_now_ms() - r->t0) / 1000.0);
	say(r, "%s\n", buf_str(&b));
	buf_release(&b);
	r->n_ok = r->n_skipped = r->n_failed = 0;
	r->t0 = sys_now_ms();
}

/* Counts a folded command; true if its line is not to be printed. */
static bool folded(struct report *r, bool ok, bool skipped)
{
	if (!r->fold)
		return false;
	if (!ok) {
		r->n_failed++;
		return false;
	}
	if (skipped)
		r->n_skipped++;
	else
		r->n_ok++;
	return true;
}

static void on_step_end(struct report *r, const struct event *ev,
			struct buf *f)
{
	const char *what = phase_name(ev->phase);
	bool ok = ev->result == RES_OK || ev->result == RES_SKIPPED;

	end_lines(r);
	if (!folded(r, ok, ev->result == RES_SKIPPED))
		progress(r, ev->result, what, ev, ok ? ev->note : ev->why);
	if (ev->metric)
		say(r, "           %s = %s\n", ev->name, ev->metric);
	if (!r->o.json)
		return;
	step_fields(r, f, ev, what, step_result_name(ev->result));
	if (ev->attempt > 1)
		buf_addf(f, ",\"attempts\":%u", ev->attempt);
	if (ev->metric)
		jkv(r, f, "value", ev->metric);
	json_line(ev, "step", f);
}

static void on_rollback_end(struct report *r, const struct event *ev,
			    struct buf *f)
{
	end_lines(r);
	if (ev->rollback_none) {
		if (!folded(r, true, true))
			progress(r, RES_NOT_RUN, "rollback", ev, ev->note);
		if (r->o.json) {
			step_fields(r, f, ev, "rollback", "none");
			json_line(ev, "rollback", f);
		}
		return;
	}
	if (!folded(r, ev->result == RES_ROLLED_BACK, false))
		progress(r, ev->result == RES_ROLLED_BACK ? RES_OK : RES_FAILED,
			 "rollback", ev, ev->why);
	if (r->o.json) {
		step_fields(r, f, ev, "rollback", step_result_name(ev->result));
		json_line(ev, "rollback", f);
	}
}

static void on_close(struct report *r, const struct event *ev, struct buf *f)
{
	if (ev->code == 0 && r->replay)
		say(r, "runbook: change %s rolled back\n", ev->change_id);
	else if (ev->code == 0 && ev->status == CHANGE_REHEARSED)
		say(r, "runbook: %s rehearsed on %s: applied, rolled back, %s (change %s)\n",
		    ev->runbook, ev->target,
		    r->compared ? "baseline came back" :
				  "baseline not compared (no preflight)",
		    ev->change_id);
	else if (ev->code == 0)
		say(r, "runbook: %s applied on %s (change %s)\n", ev->runbook,
		    ev->target, ev->change_id);
	if (r->o.json) {
		jkv(r, f, "status", change_status_name(ev->status));
		buf_addf(f, ",\"exit\":%d", ev->code);
		if (ev->code && ev->message)
			jkv(r, f, "message", ev->message);
		json_line(ev, "done", f);
	}
}

static void on_output(struct report *r, const struct event *ev)
{
	int i = ev->stream == EXEC_STDOUT ? 0 : 1;

	if (!r->o.verbose || r->o.quiet)
		return;
	live_clear(r);
	for (size_t k = 0; k < ev->len; k++) {
		if (!r->line_open[i])
			fprintf(stderr, "    %s| ", i == 0 ? " " : "!");
		fputc(ev->data[k], stderr);
		r->line_open[i] = ev->data[k] != '\n';
	}
	fflush(stderr);
}

static void on_tick(struct report *r, const struct event *ev)
{
	if (!ev->host && ev->note) {	/* the countdown of a pause */
		if (r->o.tty && !r->o.quiet && !r->o.json) {
			fprintf(stderr, "\r\033[K  %s", ev->note);
			fflush(stderr);
			r->live_shown = true;
		}
		return;
	}
	if (!r->o.tty || r->o.quiet || r->o.verbose || r->per > 1)
		return;
	fprintf(stderr, "\r\033[K  %-8s %-9s %-*s %-*s %5.1fs", "...",
		ev->in_rollback ? "rollback" : phase_name(ev->phase),
		r->o.host_w, ev->host, r->o.name_w, ev->name,
		(double)ev->duration_ms / 1000.0);
	fflush(stderr);
	r->live_shown = true;
}

static void on_misc(struct report *r, const struct event *ev, struct buf *f)
{
	switch (ev->type) {
	case EV_BATCH:
		fold_flush(r);
		r->batch = ev->batch;
		r->n_batches = ev->n_batches;
		r->batch_hosts = ev->n_hosts;
		if (ev->n_batches > 1)
			say(r, "batch %zu of %zu\n", ev->batch, ev->n_batches);
		break;
	case EV_PHASE:
		if (!r->o.json)
			break;
		jkv(r, f, "phase", phase_name(ev->phase));
		if (ev->phase == PHASE_METRICS)
			jkv(r, f, "when", ev->metrics_when == METRIC_AFTER_ROLLBACK ?
			    "after_rollback" : ev->metrics_when == METRIC_AFTER ?
			    "after" : "before");
		json_line(ev, "phase", f);
		break;
	case EV_ATTEMPT:
		end_lines(r);
		say(r, "  %-8s %-9s %-14s %s  attempt %u of %u: %s\n", "retry",
		    phase_name(ev->phase), ev->host, ev->name, ev->attempt,
		    ev->attempts, ev->why ? ev->why : "");
		if (!r->o.json)
			break;
		step_fields(r, f, ev, phase_name(ev->phase),
			    step_result_name(ev->result));
		buf_addf(f, ",\"attempt\":%u,\"of\":%u", ev->attempt,
			 ev->attempts);
		json_line(ev, "attempt", f);
		break;
	case EV_ROLLBACK_ALL:
		fold_flush(r);
		r->in_rollback = true;
		say(r, "rolling back %zu host%s in reverse order\n", ev->n_hosts,
		    ev->n_hosts == 1 ? "" : "s");
		break;
	case EV_STAGE:
		say(r, "%s\n", ev->note);
		break;
	case EV_BASELINE:
		r->compared = true;
		if (ev->diff && *ev->diff) {
			live_clear(r);
			fputs(ev->diff, stderr);
		}
		if (!r->o.json)
			break;
		jkv(r, f, "baseline", ev->baseline_same ? "restored" : "differs");
		if (ev->diff && *ev->diff)
			jkv(r, f, "diff", ev->diff);
		json_line(ev, "baseline", f);
		break;
	case EV_HOST:
		fold_flush(r);
		if (ev->why)
			say(r, "host %s: %s (%s)\n", ev->host, ev->note, ev->why);
		else
			say(r, "host %s: %s\n", ev->host, ev->note);
		if (!r->o.json)
			break;
		jkv(r, f, "host", ev->host);
		jkv(r, f, "outcome", ev->note);
		if (ev->why)
			jkv(r, f, "message", ev->why);
		json_line(ev, "host", f);
		break;
	case EV_ORPHAN:
		say(r, "runbook: stopped process group %ld on %s, left running by the interrupted %s of %s '%s'\n",
		    ev->pid, ev->host, ev->in_rollback ? "rollback" : "run",
		    phase_name(ev->phase), ev->name ? ev->name : "?");
		break;
	default:
		break;
	}
}

static int on_event(void *ctx, const struct event *ev, struct rb_error *err)
{
	struct report *r = ctx;
	struct buf f = BUF_INIT;

	(void)err;
	r->red = ev->red;
	switch (ev->type) {
	case EV_OPEN:
		on_open(r, ev, &f);
		break;
	case EV_STEP_END:
		on_step_end(r, ev, &f);
		break;
	case EV_ROLLBACK_END:
		on_rollback_end(r, ev, &f);
		break;
	case EV_CLOSE:
		end_lines(r);
		fold_flush(r);
		on_close(r, ev, &f);
		break;
	case EV_OUTPUT:
		on_output(r, ev);
		break;
	case EV_TICK:
		on_tick(r, ev);
		break;
	default:
		on_misc(r, ev, &f);
		break;
	}
	buf_release(&f);
	return 0;
}

struct listener report_listener(struct report *r)
{
	struct listener l = { on_event, r, true, 0 };

	l.mask = ~0u & ~(EV_BIT(EV_STEP_BEGIN) | EV_BIT(EV_PID) |
			 EV_BIT(EV_ROLLBACK_BEGIN));
	if (!r->o.verbose || r->o.quiet)
		l.mask &= ~EV_BIT(EV_OUTPUT);
	if (!r->o.tty || r->o.quiet || r->o.verbose)
		l.mask &= ~EV_BIT(EV_TICK);
	return l;
}

static int width(size_t len, int min, int max)
{
	int w = (int)len;

	return w < min ? min : w > max ? max : w;
}

void report_fit_runbook(struct report_opts *o, const struct runbook *rb,
			const struct target *t)
{
	o->host_w = 5;
	o->name_w = 0;
	for (size_t h = 0; h < t->n_hosts; h++)
		o->host_w = width(strlen(t->hosts[h].spec), o->host_w, 30);
	for (int ph = 0; ph < PHASE_COUNT; ph++)
		for (size_t i = 0; i < rb->n_phase[ph]; i++)
			o->name_w = width(strlen(rb->phases[ph][i].name.s),
					  o->name_w, 40);
}

void report_fit_change(struct report_opts *o, const struct change_rec *c)
{
	o->host_w = 5;
	o->name_w = 10;
	for (size_t h = 0; h < c->hosts.n; h++)
		if ((int)strlen(c->hosts.v[h]) > o->host_w)
			o->host_w = (int)strlen(c->hosts.v[h]);
	for (size_t i = 0; i < c->n_steps; i++)
		if (c->steps[i].name)
			o->name_w = width(strlen(c->steps[i].name), o->name_w, 40);
}
