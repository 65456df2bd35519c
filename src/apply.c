/*
 * The engine. One struct engine per run; one struct host_run per host
 * with its variables (vars, captures, --var, built-ins) and its
 * rollback items, in the order their steps started: that list, walked
 * backwards, is the host's rollback. Invariant: a step's item is in
 * the list from the moment the step was announced, so a step that
 * failed half-way is rolled back too.
 *
 * Locking: see engine.h.
 */
#include "apply.h"

#include "backup.h"
#include "engine.h"
#include "fleet.h"
#include "guard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "exec.h"
#include "hosts.h"
#include "redact.h"
#include "rollback.h"
#include "sys.h"

/* ---- one step ---- */

static void mark_changed(struct engine *E, struct host_run *H)
{
	pthread_mutex_lock(&E->mu);
	if (!H->changed_order)
		H->changed_order = ++E->n_changed;
	pthread_mutex_unlock(&E->mu);
}

/* A step's env and dir for execution. -1 with why when one cannot render. */
static int exec_env_dir(struct engine *E, struct host_run *H,
			const struct step *s, struct strvec *env, char **dir,
			struct buf *why)
{
	struct lookup_ctx lc = { E, H };
	struct rb_error err = RB_ERROR_INIT;

	for (size_t i = 0; i < s->n_env; i++) {
		struct buf kv = BUF_INIT;
		char *val = NULL;

		if (engine_render3(engine_lookup, &lc, E->red, s->env[i].val, TPL_RAW, &val,
				   NULL, NULL, NULL, &err) < 0) {
			buf_addf(why, "env %s: %s", s->env[i].key, err.msg);
			return -1;
		}
		buf_addf(&kv, "%s=%s", s->env[i].key, val);
		engine_free_exec(val);
		strvec_push_owned(env, buf_detach(&kv));
	}
	if (s->dir.s && engine_render3(engine_lookup, &lc, E->red, s->dir.s, TPL_RAW, dir,
				       NULL, NULL, NULL, &err) < 0) {
		buf_addf(why, "dir: %s", err.msg);
		return -1;
	}
	return 0;
}

/* Record forms of a step's env and dir, for the journal. */
static void record_env_dir(struct engine *E, struct host_run *H,
			   const struct step *s, struct strvec *env, char **dir)
{
	struct lookup_ctx lc = { E, H };
	struct rb_error err = RB_ERROR_INIT;

	for (size_t i = 0; i < s->n_env; i++) {
		char *rec = NULL;
		struct buf kv = BUF_INIT;

		if (engine_render3(engine_lookup, &lc, E->red, s->env[i].val, TPL_RAW, NULL,
				   NULL, &rec, NULL, &err) < 0)
			continue;
		buf_addf(&kv, "%s=%s", s->env[i].key, rec);
		strvec_push_owned(env, buf_detach(&kv));
		free(rec);
	}
	*dir = NULL;
	if (s->dir.s)
		(void)engine_render3(engine_lookup, &lc, E->red, s->dir.s, TPL_RAW, NULL,
				     NULL, dir, NULL, &err);
}

/* A step that ends before anything ran: its end event and the failure. */
static bool step_not_run(struct engine *E, struct host_run *H,
			 const struct step *s, const char *what,
			 const char *why)
{
	struct event ev;

	engine_ev_step(&ev, EV_STEP_END, H->spec, s->phase, s->index, s->name.s);
	ev.result = RES_FAILED;
	ev.why = why;
	engine_emit(E, &ev);
	engine_host_fail(E, H, false, "%s '%s' on %s: %s%s", phase_name(s->phase),
			 s->name.s, H->spec, what, why);
	return false;
}

/* backup: [PATH...] before the step runs (backup.h); -1: the step failed. */
static int take_backup(struct engine *E, struct host_run *H,
		       const struct step *s, const struct run_spec *r,
		       struct backup_taken *out)
{
	struct lookup_ctx lc = { E, H };
	struct backup_req q = { r->local && H->local_ex ? H->local_ex : H->ex,
				s, E->rb->backup_dir.s, E->change_id,
				engine_lookup, &lc, E->unset,
				engine_cancel_fd(false) };
	struct buf why = BUF_INIT;
	char *red;

	if (backup_take(&q, out, &why) == 0) {
		buf_release(&why);
		if (!s->rollback_restore) {	/* kept for the record only */
			free(out->restore);
			out->restore = NULL;
		}
		return 0;
	}
	red = redact_str(E->red, buf_str(&why));
	step_not_run(E, H, s, "backup: ", red);
	free(red);
	buf_release(&why);
	return -1;
}

/*
 * skip_if: 1 when the step is to be skipped (exit 0), 0 when it is to
 * run, -1 when it could not be decided (the step failed). It runs
 * where the step runs, with the step's env and dir (r, whose command
 * it replaces), and is judged by its exit status alone.
 */
static int skip_check(struct engine *E, struct host_run *H,
		      const struct step *s, const struct run_spec *r,
		      struct outcome *o)
{
	struct lookup_ctx lc = { E, H };
	struct rb_error err = RB_ERROR_INIT;
	struct run_spec probe = *r;
	char *sk = NULL;

	if (engine_render3(engine_lookup, &lc, E->red, s->skip_if.s,
			   TPL_SHELL, &sk, NULL, NULL, NULL, &err) < 0) {
		char *why = redact_str(E->red, err.msg);

		step_not_run(E, H, s, "skip_if: ", why);
		free(why);
		return -1;
	}
	probe.p = NULL;
	probe.exec = sk;
	engine_run(E, H, &probe, engine_cancel_fd(false), o);
	engine_free_exec(sk);
	if (o->cancelled || o->result == RES_TIMEOUT ||
	    (o->exit_code < 0 && o->result != RES_OK)) {
		struct event ev;

		engine_ev_step(&ev, EV_STEP_END, H->spec, s->phase, s->index,
			       s->name.s);
		ev.result = o->result == RES_TIMEOUT ? RES_TIMEOUT : RES_FAILED;
		ev.duration_ms = o->ms;
		ev.why = buf_str(&o->why);
		engine_emit(E, &ev);
		engine_host_fail(E, H, o->cancelled, "%s '%s' on %s: skip_if: %s",
				 phase_name(s->phase), s->name.s, H->spec,
				 buf_str(&o->why));
		return -1;
	}
	return o->exit_code == 0;
}

/* Keeps what a rehearse preflight showed. */
static void keep_snap(struct engine *E, struct host_run *H,
		      const struct step *s, const struct outcome *o)
{
	H->keep->taken = true;
	H->keep->result = o->result;
	H->keep->exit_code = o->exit_code;
	for (size_t k = 0; o->result == RES_OK && k < s->n_capture; k++) {
		struct buf kv = BUF_INIT;
		char *v = redact_str(E->red, o->cap_vals[k]);

		buf_addf(&kv, "%s = %s", s->capture[k].key, v);
		strvec_push_owned(&H->keep->caps, buf_detach(&kv));
		free(v);
	}
	H->keep = NULL;
}

/*
 * A metric with guards (guard.h): it must be measured, and be a number;
 * after verify its value must keep its guards. Keeps the value before
 * the change. False, with o's result and why set, when it does not.
 */
static bool judge_guards(struct engine *E, struct host_run *H,
			 const struct step *s, struct outcome *o)
{
	struct buf why = BUF_INIT;
	char *red;

	if (o->result != RES_OK) {
		buf_addf(&why, "metric %s has guards and could not be measured %s: %s",
			 s->name.s, E->metrics_when == METRIC_AFTER ?
			 "after verify" : "before the change",
			 buf_str(&o->why));
	} else if (E->metrics_when == METRIC_BEFORE) {
		free(H->metric_before[s->index]);
		H->metric_before[s->index] = xstrdup(o->metric_val);
		if (guard_is_number(o->metric_val)) {
			buf_release(&why);
			return true;
		}
		buf_addf(&why, "metric %s: expected a number to check its guards, found \"%s\"",
			 s->name.s, o->metric_val);
	} else if (guard_check(s, H->metric_before[s->index], o->metric_val,
			       &why) == 1) {
		buf_release(&why);
		return true;
	}
	red = redact_str(E->red, buf_str(&why));
	buf_reset(&o->why);
	buf_adds(&o->why, red);
	o->result = RES_FAILED;
	free(red);
	buf_release(&why);
	return false;
}

/* Runs the command with its retries; every failed attempt but the last is an event. */
static void run_attempts(struct engine *E, struct host_run *H,
			 const struct step *s, const struct run_spec *r,
			 struct outcome *o, unsigned *attempts)
{
	bool started = false;

	for (unsigned attempt = 1;; attempt++) {
		struct event ev;

		engine_run(E, H, r, engine_cancel_fd(false), o);
		started |= o->started;
		*attempts = attempt;
		if (o->result == RES_OK || o->cancelled || attempt > s->retries)
			break;
		engine_ev_step(&ev, EV_ATTEMPT, H->spec, s->phase, s->index, s->name.s);
		ev.attempt = attempt;
		ev.attempts = s->retries + 1;
		ev.result = o->result;
		ev.exit_code = o->exit_code;
		ev.duration_ms = o->ms;
		ev.why = buf_str(&o->why);
		engine_emit(E, &ev);
		outcome_release(o);
		if (!engine_pause_ms(s->retry_delay_ms)) {
			o->cancelled = true;
			o->result = RES_FAILED;
			o->exit_code = -1;
			buf_adds(&o->why, "interrupted by a signal");
			break;
		}
	}
	o->started = started;
}

/* The end of a step: its event, its captures into the host's variables. */
static void step_end(struct engine *E, struct host_run *H,
		     const struct step *s, struct rollback_item *it,
		     struct outcome *o, unsigned attempts, const char *rec,
		     const char *disp, const struct snap *kept)
{
	struct event ev;
	char **red_caps = NULL, *metric = NULL;
	bool ok = o->result == RES_OK;

	if (ok) {
		/* later wins: --var beats a capture of the same name */
		for (size_t k = 0; k < s->n_capture; k++)
			if (!varset_get(E->o->cli_vars, s->capture[k].key))
				varset_set(&H->vars, s->capture[k].key,
					   o->cap_vals[k]);
		if (it)
			engine_render_item(E, H, it);	/* with its own captures */
	}
	/* a command that never started changed nothing: no rollback */
	if (it)
		it->result = o->started ? o->result : RES_NOT_RUN;
	engine_ev_step(&ev, EV_STEP_END, H->spec, s->phase, s->index, s->name.s);
	ev.result = o->result;
	ev.exit_code = o->exit_code;
	ev.duration_ms = o->ms;
	ev.attempt = attempts;
	ev.command = rec;
	ev.display = disp;
	ev.rollback = it ? it->record : NULL;
	ev.rollback_masked = it && it->masked;
	ev.output = o->output;
	ev.why = ok ? NULL : buf_str(&o->why);
	if (kept && E->snap_pass == 0) {
		/* the baseline a rollback is proved against, on record */
		ev.snap_out = kept->out.data ? kept->out.data : "";
		ev.snap_len = kept->out.len < BASELINE_KEEP ? kept->out.len :
							      BASELINE_KEEP;
		ev.snap_total = kept->total;
		ev.snap_crc = kept->crc;
	}
	if (ok && s->n_capture) {
		red_caps = xcalloc(s->n_capture + 1, sizeof(char *));
		for (size_t k = 0; k < s->n_capture; k++)
			red_caps[k] = redact_str(E->red, o->cap_vals[k]);
		ev.cap_values = red_caps;
		ev.n_caps = s->n_capture;
		ev.cap_names = NULL;
	}
	if (s->phase == PHASE_METRICS && o->metric_val) {
		metric = redact_str(E->red, o->metric_val);
		ev.metric = metric;
		ev.metric_when = E->metrics_when;
	}
	{
		char **names = ev.n_caps ? xcalloc(s->n_capture + 1, sizeof(char *)) : NULL;

		for (size_t k = 0; names && k < s->n_capture; k++)
			names[k] = s->capture[k].key;
		ev.cap_names = names;
		engine_emit(E, &ev);
		free(names);
	}
	for (size_t k = 0; red_caps && k < s->n_capture; k++)
		free(red_caps[k]);
	free(red_caps);
	free(metric);
}

/* skip_if exited 0: recorded as skipped, never rolled back. */
static bool step_skipped(struct engine *E, struct host_run *H,
			 const struct step *s, const char *rec,
			 const char *disp, unsigned long long ms)
{
	struct event ev;

	engine_ev_step(&ev, EV_STEP_BEGIN, H->spec, s->phase, s->index,
		       s->name.s);
	ev.command = rec;
	ev.display = disp;
	ev.rollback_none = s->rollback_none;
	ev.timeout_ms = s->timeout_ms;
	if (engine_emit(E, &ev) < 0)
		return false;
	ev.type = EV_STEP_END;
	ev.result = RES_SKIPPED;
	ev.duration_ms = ms;
	ev.note = "skip_if exited 0: already done";
	return engine_emit(E, &ev) == 0;
}

/* A failure in a watch round: which round, how long after verify. */
static void watch_why(struct engine *E, struct buf *why)
{
	struct buf w = BUF_INIT;
	char after[32];

	format_duration((unsigned)((sys_now_ms() - E->watch_start) / 1000 * 1000),
			after);
	buf_addf(&w, "watch round %u, %s after verify: %s", E->watch_round,
		 after, buf_str(why));
	buf_reset(why);
	buf_adds(why, buf_str(&w));
	buf_release(&w);
}

/*
 * Runs one step or check on one host: skip_if, then the command with
 * its retries. Returns true if it succeeded (or was skipped, or is a
 * metric: a metric that cannot be measured is reported, never fatal).
 */
static bool run_step(struct engine *E, struct host_run *H, const struct step *s)
{
	const char *what = phase_name(s->phase);
	struct lookup_ctx lc = { E, H };
	struct rb_error err = RB_ERROR_INIT;
	struct outcome o = { 0 };
	struct event ev;
	struct rollback_item *it = NULL;
	struct snap *kept = NULL;
	bool guarded = false;	/* a guarded metric failed */
	struct strvec rec_env = STRVEC_INIT, env = STRVEC_INIT;
	struct run_spec r = { 0 };
	struct step_pats hp = { 0 };
	struct backup_taken bk = { 0 };
	struct buf bad = BUF_INIT;
	char *cmd = NULL, *disp = NULL, *rec = NULL, *rec_dir = NULL, *dir = NULL;
	unsigned attempts = 0;
	bool ok = false;
	int skip = 0;

	/* a host failed within max_fail runs nothing more (but the checks after a rollback) */
	if (engine_stopped(E) || (H->failed && !E->checking))
		return false;
	if (engine_render3(engine_lookup, &lc, E->red, s->run.s, TPL_SHELL, &cmd, &disp,
			   &rec, NULL, &err) < 0) {
		char *why = redact_str(E->red, err.msg);

		step_not_run(E, H, s, "", why);
		free(why);
		return false;
	}
	if (exec_env_dir(E, H, s, &env, &dir, &bad) < 0) {
		char *why = redact_str(E->red, buf_str(&bad));

		step_not_run(E, H, s, "", why);
		free(why);
		goto out;
	}
	r.s = s;
	r.p = &E->pats[s->phase][s->index];
	if (r.p->templated) {
		/* patterns with {{ }}: this host's values, matched literally */
		if (capture_compile_step(s, engine_lookup, &lc, &hp, &err) < 0) {
			char *why = redact_str(E->red, err.msg);

			step_not_run(E, H, s, "", why);
			free(why);
			goto out;
		}
		r.p = &hp;
	}
	r.exec = cmd;
	r.env = env.v;
	r.dir = dir;
	r.timeout_ms = s->timeout_ms;
	r.local = s->local;
	r.phase = s->phase;
	r.index = s->index;
	r.name = s->name.s;
	if (s->skip_if.s && (skip = skip_check(E, H, s, &r, &o)) != 0) {
		ok = skip > 0 && step_skipped(E, H, s, rec, disp, o.ms);
		goto out;
	}
	outcome_release(&o);
	if (s->n_backup && take_backup(E, H, s, &r, &bk) < 0)
		goto out;
	if (s->phase == PHASE_STEPS) {
		/* from here on the step may change the host: roll it back */
		H->items = xgrow(H->items, &H->cap_items, H->n_items + 1,
				 sizeof(*H->items));
		it = &H->items[H->n_items++];
		memset(it, 0, sizeof(*it));
		it->name = xstrdup(s->name.s);
		it->index = (unsigned)s->index;
		it->none = s->rollback_none;
		it->timeout_ms = s->timeout_ms;
		it->local = s->local;
		it->result = RES_NOT_RUN;
		it->restore = bk.restore;	/* NULL unless rollback: restore */
		bk.restore = NULL;
		engine_render_item(E, H, it);
		mark_changed(E, H);
	}
	engine_ev_step(&ev, EV_STEP_BEGIN, H->spec, s->phase, s->index, s->name.s);
	ev.command = rec;
	ev.display = disp;
	ev.rollback = it ? it->record : NULL;
	ev.rollback_masked = it && it->masked;
	ev.rollback_none = s->rollback_none;
	ev.backup = bk.record;
	ev.local = s->local;
	record_env_dir(E, H, s, &rec_env, &rec_dir);
	ev.env = rec_env.v;
	ev.dir = rec_dir;
	ev.timeout_ms = s->timeout_ms;
	if (engine_emit(E, &ev) < 0)
		goto out;

	if (s->phase == PHASE_PREFLIGHT && !s->no_baseline)
		kept = H->keep = &H->snap[E->snap_pass][s->index];
	run_attempts(E, H, s, &r, &o, &attempts);
	if (H->keep)
		keep_snap(E, H, s, &o);
	if (s->phase == PHASE_METRICS && guard_any(s) &&
	    E->metrics_when != METRIC_AFTER_ROLLBACK)
		guarded = !judge_guards(E, H, s, &o);
	if (E->watch_round && o.result != RES_OK &&
	    (s->phase == PHASE_WATCH || guarded))
		watch_why(E, &o.why);
	ok = o.result == RES_OK;
	step_end(E, H, s, it, &o, attempts, rec, disp, kept);
	if (!ok && E->checking) {
		pthread_mutex_lock(&E->mu);
		buf_addf(&E->mismatch, "%s%s '%s' on %s: %s",
			 E->mismatch.len ? "; " : "", what, s->name.s, H->spec,
			 buf_str(&o.why));
		E->interrupted |= o.cancelled;
		pthread_mutex_unlock(&E->mu);
	} else if (!ok && (s->phase != PHASE_METRICS || guarded)) {
		engine_host_fail(E, H, o.cancelled, "%s '%s' on %s: %s", what,
				 s->name.s, H->spec, buf_str(&o.why));
	} else if (o.cancelled) {
		engine_fail(E, true, "%s '%s' on %s: %s", what, s->name.s, H->spec,
			    buf_str(&o.why));
	}
out:
	free(bk.restore);
	free(bk.record);
	capture_release_step(s, &hp);
	outcome_release(&o);
	engine_free_exec(cmd);
	free(disp);
	free(rec);
	free(rec_dir);
	engine_free_exec(dir);
	for (size_t i = 0; i < env.n; i++)
		explicit_bzero(env.v[i], strlen(env.v[i]));
	strvec_release(&env);
	strvec_release(&rec_env);
	buf_release(&bad);
	return ok || (s->phase == PHASE_METRICS && !guarded);
}

struct phase_arg {
	enum phase ph;
};

static void phase_host(struct engine *E, struct host_run *H, void *arg)
{
	enum phase ph = ((struct phase_arg *)arg)->ph;

	for (size_t i = 0; i < E->rb->n_phase[ph] && !engine_stopped(E) &&
	     (!H->failed || E->checking); i++)
		run_step(E, H, &E->rb->phases[ph][i]);
	/* failed within max_fail: rolled back alone, while the others go on */
	if (H->failed && !H->alone && !H->unreachable && !E->checking &&
	    !engine_stopped(E))
		engine_rollback_alone(E, H);
}

static void run_phase(struct engine *E, size_t from, size_t to, enum phase ph)
{
	struct phase_arg a = { ph };
	size_t *idx;
	struct event ev;

	if (engine_stopped(E) || !E->rb->n_phase[ph])
		return;
	memset(&ev, 0, sizeof(ev));
	ev.type = EV_PHASE;
	ev.phase = ph;
	ev.metrics_when = ph == PHASE_METRICS ? E->metrics_when : METRIC_BEFORE;
	engine_emit(E, &ev);
	idx = xcalloc(to - from + 1, sizeof(*idx));
	for (size_t h = from; h < to; h++)
		idx[h - from] = h;
	engine_for_hosts(E, idx, to - from, phase_host, &a);
	free(idx);
}


/* ---- connecting ---- */

/* Open files kept for all but the hosts' connections (notes, pipes, ...). */
#define FD_RESERVE 128u

struct connect_ctx {
	struct host_access access;
	struct rb_error err;	/* the first failure (E->mu) */
	size_t n_failed;	/* E->mu */
};

static void connect_one(struct engine *E, struct host_run *H, void *arg)
{
	struct connect_ctx *C = arg;
	struct rb_error err = RB_ERROR_INIT;

	if (hosts_open(H->h, &C->access, false, &H->ex, &H->local_ex,
		       &err) < 0) {
		char *why = redact_str(E->red, err.msg);

		H->unreachable = true;
		buf_adds(&H->why, why);
		free(why);
		pthread_mutex_lock(&E->mu);
		if (!C->n_failed++)
			C->err = err;
		pthread_mutex_unlock(&E->mu);
	}
}

/* Connects every host (in parallel), before anything runs anywhere. */
static int connect_hosts(struct engine *E, struct rb_error *err)
{
	struct connect_ctx C = { { E->o->target->identity.s,
				   E->o->known_hosts, E->o->accept_new },
				 RB_ERROR_INIT, 0 };
	size_t *idx;
	/* one socket per host for the whole change, and room for the rest */
	unsigned long need = (unsigned long)E->n_hosts + FD_RESERVE;
	unsigned long room = sys_fd_room(need);

	if (room < need) {
		rb_error_set(err, RB_ERR_CONNECT,
			     "cannot connect to %zu hosts: expected room for %lu open files (one connection per host, %u for the rest), found a limit of %lu (ulimit -n, and its hard limit); raise it or limit the change to fewer hosts (--limit); nothing was run",
			     E->n_hosts, need, FD_RESERVE, room);
		return -1;
	}
	idx = xcalloc(E->n_hosts + 1, sizeof(*idx));
	for (size_t h = 0; h < E->n_hosts; h++)
		idx[h] = h;
	engine_for_hosts(E, idx, E->n_hosts, connect_one, &C);
	free(idx);
	if (!C.n_failed)
		return 0;
	/* max_fail: unreachable hosts count, the others go on (not all of them) */
	if (C.n_failed < E->n_hosts && fleet_within_budget(E->budget, C.n_failed)) {
		for (size_t h = 0; h < E->n_hosts; h++) {
			struct host_run *H = &E->hosts[h];
			struct event ev;

			if (!H->unreachable)
				continue;
			H->failed = true;
			engine_ev_step(&ev, EV_HOST, H->spec, PHASE_STEPS, 0, NULL);
			ev.note = "unreachable";
			ev.why = buf_str(&H->why);
			engine_emit(E, &ev);
		}
		pthread_mutex_lock(&E->mu);
		E->n_host_failed += C.n_failed;
		pthread_mutex_unlock(&E->mu);
		return 0;
	}
	*err = C.err;
	if (C.n_failed > 1) {
		size_t len = strlen(err->msg);

		snprintf(err->msg + len, sizeof(err->msg) - len,
			 " (and %zu more host%s could not be reached)",
			 C.n_failed - 1, C.n_failed == 2 ? "" : "s");
	}
	return -1;
}

/* The hosts' state and variables; connect_hosts() reaches them later. */
static void setup_hosts(struct engine *E)
{
	const struct target *t = E->o->target;

	E->n_hosts = t->n_hosts;
	E->hosts = xcalloc(t->n_hosts + 1, sizeof(*E->hosts));
	for (size_t h = 0; h < t->n_hosts; h++) {
		struct host_run *H = &E->hosts[h];

		H->h = &t->hosts[h];
		H->spec = H->h->spec;
		for (int k = 0; k < 2; k++)
			H->snap[k] = xcalloc(E->rb->n_phase[PHASE_PREFLIGHT] + 1,
					     sizeof(struct snap));
		H->metric_before = xcalloc(E->rb->n_phase[PHASE_METRICS] + 1,
					   sizeof(char *));
		/* later wins: runbook, target, host vars, (captures,) --var */
		for (size_t i = 0; i < E->rb->n_vars; i++)
			varset_set(&H->vars, E->rb->vars[i].key, E->rb->vars[i].val);
		for (size_t i = 0; i < t->n_vars; i++)
			varset_set(&H->vars, t->vars[i].key, t->vars[i].val);
		for (size_t i = 0; i < H->h->n_vars; i++)
			varset_set(&H->vars, H->h->vars[i].key, H->h->vars[i].val);
		varset_copy(&H->vars, E->o->cli_vars);
		varset_set(&H->vars, "change.id", E->change_id);
		varset_set(&H->vars, "target", t->name);
		varset_set(&H->vars, "host", H->spec);
		varset_set(&H->vars, "runbook.name", E->rb->name.s);
	}
}

static void free_hosts(struct engine *E)
{
	for (size_t h = 0; h < E->n_hosts; h++) {
		struct host_run *H = &E->hosts[h];

		exec_close(H->ex);
		exec_close(H->local_ex);
		varset_release(&H->vars);
		for (size_t i = 0; H->metric_before &&
		     i < E->rb->n_phase[PHASE_METRICS]; i++)
			free(H->metric_before[i]);
		free(H->metric_before);
		for (int k = 0; k < 2; k++) {
			for (size_t i = 0; H->snap[k] &&
			     i < E->rb->n_phase[PHASE_PREFLIGHT]; i++)
				snap_release(&H->snap[k][i]);
			free(H->snap[k]);
		}
		for (size_t i = 0; i < H->n_items; i++)
			rollback_item_release(&H->items[i]);
		free(H->items);
		buf_release(&H->why);
	}
	free(E->hosts);
}


/* ---- apply ---- */

static void stage(struct engine *E, const char *what)
{
	struct event ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = EV_STAGE;
	ev.note = what;
	engine_emit(E, &ev);
}

/*
 * After a rollback: preflight again on the hosts it ran on (every host
 * for rehearse, the changed ones otherwise), compared with the baseline
 * taken when the change began, then the metrics measured again. The
 * failure that started the rollback is put aside while it runs: these
 * checks read, they change nothing. Returns 1 when the baseline came
 * back, 0 when it differs (diff says how), -1 when it was not compared
 * (no preflight ran, or a signal).
 */
static int recheck(struct engine *E, bool every_host, struct buf *diff)
{
	const struct runbook *rb = E->rb;
	struct phase_arg pre = { PHASE_PREFLIGHT }, met = { PHASE_METRICS };
	size_t *idx = xcalloc(E->n_hosts + 1, sizeof(*idx)), n = 0;
	bool was_failed, stopped, same = true;
	struct event ev;

	for (size_t h = 0; h < E->n_hosts; h++) {
		bool ran = false;

		for (size_t i = 0; i < rb->n_phase[PHASE_PREFLIGHT]; i++)
			ran |= E->hosts[h].snap[0][i].taken;
		if ((ran || !rb->n_phase[PHASE_PREFLIGHT]) &&
		    (every_host || E->hosts[h].changed_order))
			idx[n++] = h;
	}
	if (!n || engine_signals()) {
		free(idx);
		return -1;
	}
	pthread_mutex_lock(&E->mu);
	was_failed = E->failed;
	E->failed = false;
	pthread_mutex_unlock(&E->mu);
	if (rb->n_phase[PHASE_PREFLIGHT]) {
		stage(E, "rolled back; running preflight again to compare with the baseline");
		E->snap_pass = 1;
		E->checking = true;
		memset(&ev, 0, sizeof(ev));
		ev.type = EV_PHASE;
		ev.phase = PHASE_PREFLIGHT;
		engine_emit(E, &ev);
		engine_for_hosts(E, idx, n, phase_host, &pre);
		E->checking = false;
	}
	if (rb->n_phase[PHASE_METRICS] && !engine_stopped(E)) {
		memset(&ev, 0, sizeof(ev));
		ev.type = EV_PHASE;
		ev.phase = PHASE_METRICS;
		ev.metrics_when = E->metrics_when = METRIC_AFTER_ROLLBACK;
		engine_emit(E, &ev);
		engine_for_hosts(E, idx, n, phase_host, &met);
		E->metrics_when = METRIC_BEFORE;
	}
	pthread_mutex_lock(&E->mu);
	stopped = E->failed;
	E->failed |= was_failed;
	pthread_mutex_unlock(&E->mu);
	if (stopped || engine_signals() || !rb->n_phase[PHASE_PREFLIGHT]) {
		free(idx);
		return -1;
	}
	for (size_t k = 0; k < n; k++) {
		struct host_run *H = &E->hosts[idx[k]];

		for (size_t i = 0; i < rb->n_phase[PHASE_PREFLIGHT]; i++)
			if (!rb->phases[PHASE_PREFLIGHT][i].no_baseline)
				same &= baseline_compare(&H->snap[0][i],
							 &H->snap[1][i],
							 rb->phases[PHASE_PREFLIGHT][i].name.s,
							 H->spec, diff);
	}
	free(idx);
	memset(&ev, 0, sizeof(ev));
	ev.type = EV_BASELINE;
	ev.baseline_same = same;
	ev.diff = buf_str(diff);
	engine_emit(E, &ev);
	return same;
}

/* Rehearse after a successful apply: roll back, run preflight again, compare. */
static int rehearse_rest(struct engine *E, enum change_status *status,
			 struct rb_error *err)
{
	const struct runbook *rb = E->rb;
	const char *tname = E->target;
	struct buf diff = BUF_INIT, pend = BUF_INIT;
	bool rolled;
	int same = -1, code = 0;

	stage(E, "rehearse: applied; rolling back to prove the baseline comes back");
	/* every host was changed by a successful apply */
	rolled = engine_rollback_all(E);
	if (rolled && !engine_signals())
		same = recheck(E, true, &diff);
	if (!rolled) {
		engine_pending(E, &pend);
		*status = CHANGE_ROLLBACK_FAILED;
		code = RB_ERR_PARTIAL;
		rb_error_set(err, code,
			     "rehearse of %s: the apply passed but its rollback did not finish%s, so %s is partly changed (not undone: %s); do not run it again before checking it (see runbook status)",
			     rb->name.s,
			     engine_signals() >= 2 ? " (stopped by a second signal)" : "",
			     tname, buf_str(&pend));
	} else if (engine_signals()) {
		struct buf undone = BUF_INIT;

		engine_undone(E, &undone);
		*status = CHANGE_INTERRUPTED;
		code = RB_ERR_INTERRUPTED;
		rb_error_set(err, code,
			     "rehearse of %s interrupted by a signal; rolled back: %s; the baseline was not compared; safe to run again",
			     rb->name.s, buf_str(&undone));
		buf_release(&undone);
	} else if (same != 1 && rb->n_phase[PHASE_PREFLIGHT]) {
		*status = CHANGE_FAILED;
		code = RB_ERR_PARTIAL;
		rb_error_set(err, code,
			     "rehearse of %s: the apply and its rollback ran, but the baseline did not come back%s%s%s; %s is not as it was before; check it before running again",
			     rb->name.s, diff.len ? " (diff above)" : "",
			     E->mismatch.len ? ": " : "",
			     buf_str(&E->mismatch), tname);
	} else {
		/* without a preflight there is no baseline to compare with */
		if (!rb->n_phase[PHASE_PREFLIGHT])
			stage(E, "rehearse: no preflight, so the baseline was not compared (add read-only preflight checks to prove it)");
		*status = CHANGE_REHEARSED;
	}
	buf_release(&diff);
	buf_release(&pend);
	return code;
}

/* After a failure: roll back, prove the baseline came back, and say what happened. */
static int fail_rest(struct engine *E, enum change_status *status,
		     struct rb_error *err)
{
	const char *name = E->rb->name.s;
	bool ok = engine_rollback_all(E);
	int code;

	if (ok && E->interrupted) {
		struct buf undone = BUF_INIT;

		/* Ctrl-C: the last line says so, and what it undid */
		engine_undone(E, &undone);
		*status = CHANGE_INTERRUPTED;
		code = RB_ERR_INTERRUPTED;
		rb_error_set(err, code,
			     "%s interrupted (%s); rolled back: %s; safe to run again",
			     name, buf_str(&E->fail_msg), buf_str(&undone));
		buf_release(&undone);
	} else if (ok) {
		struct buf diff = BUF_INIT;
		int same = !E->n_changed ? -1 : recheck(E, false, &diff);

		*status = CHANGE_ROLLED_BACK;
		code = RB_ERR_FAILED;
		if (same == 0) {
			code = RB_ERR_PARTIAL;
			rb_error_set(err, code,
				     "%s failed: %s; every step was rolled back, but the preflight does not show the baseline again%s%s%s, so %s is not as it was before (baseline: differs, diff in the note); check it before running again",
				     name, buf_str(&E->fail_msg),
				     diff.len ? " (diff above)" : "",
				     E->mismatch.len ? ": " : "",
				     buf_str(&E->mismatch), E->target);
		} else {
			rb_error_set(err, code,
				     "%s failed: %s; every change was rolled back%s; safe to run again after fixing the cause",
				     name, buf_str(&E->fail_msg),
				     same == 1 ? " and the preflight shows the baseline again" : "");
		}
		buf_release(&diff);
	} else {
		struct buf pend = BUF_INIT;

		engine_pending(E, &pend);
		*status = CHANGE_ROLLBACK_FAILED;
		code = RB_ERR_PARTIAL;
		rb_error_set(err, code,
			     "%s failed: %s; the rollback did not finish%s, so %s is partly changed (not undone: %s); do not run apply again before checking it (see runbook status)",
			     name, buf_str(&E->fail_msg),
			     engine_signals() >= 2 ? " (stopped by a second signal)" : "",
			     E->target, buf_str(&pend));
		buf_release(&pend);
	}
	return code;
}

/*
 * max_fail: the run ended with every failed host within the budget and
 * rolled back alone. The others are applied (their outcome is
 * recorded); exit 7, or 1 when no host is left applied.
 */
static int partial_rest(struct engine *E, enum change_status *status,
			struct rb_error *err)
{
	struct buf failed = BUF_INIT, limit = BUF_INIT;
	size_t n_ok = 0;
	int code = RB_ERR_SOME_FAILED;

	for (size_t h = 0; h < E->n_hosts; h++) {
		struct host_run *H = &E->hosts[h];
		struct event ev;

		if (H->failed) {
			buf_addf(&failed, "%s%s %s (%s)", failed.len ? "; " : "",
				 H->spec, H->unreachable ? "was unreachable" :
				 "failed and was rolled back alone",
				 buf_str(&H->why));
			buf_addf(&limit, "%s%s", limit.len ? "," : "", H->spec);
			continue;
		}
		n_ok++;
		engine_ev_step(&ev, EV_HOST, H->spec, PHASE_STEPS, 0, NULL);
		ev.note = "applied";
		engine_emit(E, &ev);
	}
	if (!n_ok) {
		*status = CHANGE_ROLLED_BACK;
		code = RB_ERR_FAILED;
		rb_error_set(err, code,
			     "%s failed on every host of %s, each within max_fail (%zu): %s; nothing is left applied; safe to run again after fixing the cause",
			     E->rb->name.s, E->target, E->budget, buf_str(&failed));
	} else {
		*status = CHANGE_APPLIED_WITH_FAILURES;
		rb_error_set(err, code,
			     "%s applied on %zu of %zu hosts of %s; within max_fail (%zu): %s; fix those hosts, then apply again with --limit %s",
			     E->rb->name.s, n_ok, E->n_hosts, E->target, E->budget,
			     buf_str(&failed), buf_str(&limit));
	}
	buf_release(&failed);
	buf_release(&limit);
	return code;
}

/*
 * watch: its checks on every host, round after round every interval for
 * the duration, after the last batch's verify and metrics; guarded
 * metrics are measured and judged again each round. A failing check or
 * guard fails the change (the caller rolls back); a signal stops it.
 */
static void run_watch(struct engine *E)
{
	const struct runbook *rb = E->rb;
	unsigned long long start = sys_now_ms();
	bool guarded = false;

	for (size_t i = 0; i < rb->n_phase[PHASE_METRICS]; i++)
		guarded |= guard_any(&rb->phases[PHASE_METRICS][i]);
	E->watch_start = start;
	for (unsigned round = 1; !engine_stopped(E); round++) {
		unsigned long long now = sys_now_ms(), next;
		char left[32], every[32], what[160];

		E->watch_round = round;
		/* whole seconds left, rounded */
		format_duration((unsigned)((start + rb->watch_duration_ms > now ?
				start + rb->watch_duration_ms - now + 500 : 0) /
				1000 * 1000), left);
		format_duration(rb->watch_interval_ms, every);
		snprintf(what, sizeof(what), "watch: round %u, every %s, %s left",
			 round, every, left);
		stage(E, what);
		run_phase(E, 0, E->n_hosts, PHASE_WATCH);
		if (guarded && !engine_stopped(E)) {
			E->metrics_when = METRIC_AFTER;
			run_phase(E, 0, E->n_hosts, PHASE_METRICS);
			E->metrics_when = METRIC_BEFORE;
		}
		next = start + (unsigned long long)round * rb->watch_interval_ms;
		if (engine_stopped(E) || next > start + rb->watch_duration_ms)
			break;
		now = sys_now_ms();
		if (next > now && !engine_pause_ms((unsigned)(next - now))) {
			engine_fail(E, true, "interrupted by a signal during watch (round %u)",
				    round + 1);
			break;
		}
	}
	E->watch_round = 0;
}

/*
 * pause: between batches (docs/fleets.md): one line, then a countdown
 * that only a terminal shows (EV_TICK). False if a signal ended it.
 */
static bool pause_between(struct engine *E, size_t b, size_t nb)
{
	unsigned ms = E->o->target->pause_ms;
	unsigned long long end = sys_now_ms() + ms;
	char d[32], what[128];

	format_duration(ms, d);
	snprintf(what, sizeof(what), "pause: %s before batch %zu of %zu", d,
		 b + 1, nb);
	stage(E, what);
	for (;;) {
		unsigned long long now = sys_now_ms();
		struct event ev;

		if (now >= end)
			return true;
		memset(&ev, 0, sizeof(ev));
		ev.type = EV_TICK;
		format_duration((unsigned)((end - now + 999) / 1000 * 1000), d);
		snprintf(what, sizeof(what), "pause: batch %zu of %zu starts in %s",
			 b + 1, nb, d);
		ev.note = what;
		engine_emit(E, &ev);
		if (!engine_pause_ms(end - now < 1000 ? (unsigned)(end - now) : 1000)) {
			engine_fail(E, true, "interrupted by a signal during the pause before batch %zu of %zu",
				    b + 1, nb);
			return false;
		}
	}
}

/* Preflight, metrics, steps, verify, metrics again: batch by batch. */
static void run_batches(struct engine *E)
{
	size_t *ends = E->ends, nb = E->n_batches;

	for (size_t b = 0, from = 0; b < nb && !engine_stopped(E);
	     from = ends[b++]) {
		struct event ev;

		if (b && E->o->target->pause_ms && !pause_between(E, b, nb))
			break;
		memset(&ev, 0, sizeof(ev));
		ev.type = EV_BATCH;
		ev.batch = b + 1;
		ev.n_batches = nb;
		ev.n_hosts = ends[b] - from;
		engine_emit(E, &ev);
		run_phase(E, from, ends[b], PHASE_PREFLIGHT);
		run_phase(E, from, ends[b], PHASE_METRICS);
		run_phase(E, from, ends[b], PHASE_STEPS);
		run_phase(E, from, ends[b], PHASE_VERIFY);
		E->metrics_when = METRIC_AFTER;
		run_phase(E, from, ends[b], PHASE_METRICS);
		E->metrics_when = METRIC_BEFORE;
	}
	if (engine_signals() && !E->failed)
		engine_fail(E, true, "interrupted by a signal between steps");
}

int apply_run(const struct runbook *rb, const struct apply_opts *o,
	      struct rb_error *err)
{
	struct engine E;
	const struct target *t = o->target;
	struct redactor *red = redactor_new();
	enum change_status status = CHANGE_FAILED;
	struct event ev;
	int code = 0;

	engine_init(&E, o->listeners, o->n_listeners);
	E.rb = rb;
	E.o = o;
	E.target = t->name;
	E.per = target_batch_size(t);
	E.n_batches = fleet_batches(t, &E.ends);
	/* rehearse proves the rollback of every host: no budget */
	E.budget = o->rehearse ? 0 : fleet_budget(t, t->n_hosts);
	E.forks = o->forks ? o->forks : 20;
	E.red = red;
	redactor_add_builtins(red);
	if (o->change_id)
		snprintf(E.change_id, sizeof(E.change_id), "%s", o->change_id);
	else
		change_id_new(rb->name.s, E.change_id);
	for (size_t i = 0; i < rb->n_redact; i++) {
		if (redactor_add_pattern(red, rb->redact[i].s, err) < 0) {
			code = RB_ERR_INVALID;
			goto out;
		}
	}
	if (secrets_load(&E.secrets, rb->secrets, rb->n_secrets, false, red,
			 err) < 0 ||
	    capture_compile(rb, E.pats, err) < 0) {
		code = RB_ERR_INVALID;
		goto out;
	}
	E.unset = E.secrets.unset.v;
	setup_hosts(&E);
	engine_signals_setup();

	memset(&ev, 0, sizeof(ev));
	ev.type = EV_OPEN;
	ev.runbook = rb->name.s;
	ev.target = t->name;
	ev.n_hosts = t->n_hosts;
	ev.per = E.per < E.forks ? E.per : E.forks;
	engine_emit(&E, &ev);
	/*
	 * The change is open (journal, note) before any host is reached; a
	 * host that cannot be reached, verified or logged into fails it
	 * with nothing run anywhere, and the note says so.
	 */
	if (!E.failed && connect_hosts(&E, err) < 0) {
		code = err->cls;
		status = CHANGE_FAILED;
		goto closing;
	}
	run_batches(&E);
	if (!E.failed && rb->n_phase[PHASE_WATCH] && !o->no_watch)
		run_watch(&E);
	if (!E.failed && o->rehearse)
		code = rehearse_rest(&E, &status, err);
	else if (!E.failed && E.n_host_failed)
		code = partial_rest(&E, &status, err);
	else if (!E.failed)
		status = CHANGE_APPLIED;
	else
		code = fail_rest(&E, &status, err);
closing:
	engine_close(&E, status, code, err);
	engine_signals_restore();
out:
	free_hosts(&E);
	free(E.ends);
	capture_free_pats(rb, E.pats);
	secrets_release(&E.secrets);
	engine_release(&E);
	redactor_free(red);
	return code;
}

