/*
 * Rollback: the items apply builds as steps begin and replay rebuilds
 * from a record, and running them newest first, host by host, a host
 * stopping at its first failure. One mechanism for apply, rehearse and
 * `runbook rollback`.
 */
#include "rollback.h"

#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "redact.h"

void rollback_item_release(struct rollback_item *it)
{
	free(it->name);
	engine_free_exec(it->exec);
	free(it->display);
	free(it->record);
	free(it->error);
	for (size_t i = 0; i < it->env.n; i++)
		explicit_bzero(it->env.v[i], strlen(it->env.v[i]));
	strvec_release(&it->env);
	strvec_release(&it->env_shown);
	engine_free_exec(it->dir);
	free(it->dir_shown);
	free(it->restore);
	it->restore = NULL;
	it->name = it->exec = it->display = it->record = it->error = NULL;
	it->dir = it->dir_shown = NULL;
}

void rollback_item_render(struct rollback_item *it, const char *cmd,
			  const struct kv *env, size_t n_env,
			  const char *dir, tpl_lookup_fn fn, void *ctx,
			  const struct redactor *red)
{
	struct rb_error err = RB_ERROR_INIT;
	char *name = it->name, *restore = it->restore;

	it->name = it->restore = NULL;	/* kept: cmd may be restore */
	rollback_item_release(it);
	it->name = name;
	it->restore = restore;
	it->masked = false;
	if (it->none)
		return;
	if (!cmd) {
		it->error = xstrdup("no rollback command was recorded for this step: it needs values the step had not produced when it stopped; undo it by hand");
		return;
	}
	if (engine_render3(fn, ctx, red, cmd, TPL_SHELL, &it->exec, &it->display,
			   &it->record, &it->masked, &err) < 0)
		goto bad;
	for (size_t i = 0; i < n_env; i++) {
		struct buf kv = BUF_INIT;
		char *val = NULL, *shown = NULL;

		if (engine_render3(fn, ctx, red, env[i].val, TPL_RAW, &val,
				   &shown, NULL, NULL, &err) < 0) {
			buf_release(&kv);
			goto bad;
		}
		buf_addf(&kv, "%s=%s", env[i].key, val);
		engine_free_exec(val);
		strvec_push_owned(&it->env, buf_detach(&kv));
		buf_addf(&kv, "%s=%s", env[i].key, shown);
		free(shown);
		strvec_push_owned(&it->env_shown, buf_detach(&kv));
	}
	if (dir && engine_render3(fn, ctx, red, dir, TPL_RAW, &it->dir,
				  &it->dir_shown, NULL, NULL, &err) < 0)
		goto bad;
	return;
bad:
	engine_free_exec(it->exec);
	it->exec = NULL;
	it->error = redact_str(red, err.msg);
}


void engine_render_item(struct engine *E, struct host_run *H,
			struct rollback_item *it)
{
	const struct step *s = &E->rb->phases[PHASE_STEPS][it->index];
	struct lookup_ctx lc = { E, H };

	rollback_item_render(it, it->restore ? it->restore : s->rollback.s,
			     s->env, s->n_env, s->dir.s, engine_lookup, &lc, E->red);
}

static void rollback_end(struct engine *E, struct host_run *H,
			 struct rollback_item *it, const struct outcome *o,
			 const char *why)
{
	struct event ev;

	engine_ev_step(&ev, EV_ROLLBACK_END, H->spec, PHASE_STEPS, it->index, it->name);
	ev.result = it->rb_result;
	ev.rollback_none = it->none;
	ev.display = it->display;
	ev.why = why;
	ev.note = it->none ? "rollback: none (nothing to undo)" : NULL;
	if (o) {
		ev.exit_code = o->exit_code;
		ev.duration_ms = o->ms;
		ev.output = o->output;
	}
	engine_emit(E, &ev);
}

/* Rolls back one host, newest step first; stops at its first failure. */
static void rollback_host(struct engine *E, struct host_run *H)
{
	for (size_t i = H->n_items; i-- > 0;) {
		struct rollback_item *it = &H->items[i];
		struct outcome o = { 0 };
		struct run_spec r = { 0 };
		struct event ev;

		if (it->result == RES_SKIPPED || it->result == RES_NOT_RUN ||
		    it->rb_result == RES_ROLLED_BACK)
			continue;
		if (it->none) {
			it->rb_result = RES_ROLLED_BACK;
			rollback_end(E, H, it, NULL, NULL);
			continue;
		}
		if (engine_signals() >= 2) {
			H->rollback_failed = true;
			it->rb_result = RES_ROLLBACK_FAILED;
			rollback_end(E, H, it, NULL, "stopped by a second signal before it ran");
			return;
		}
		/* the step failed before it produced what its rollback needs */
		if (!it->exec && E->rb)
			engine_render_item(E, H, it);
		if (!it->exec) {
			it->rb_result = RES_ROLLBACK_FAILED;
			H->rollback_failed = true;
			rollback_end(E, H, it, NULL, it->error);
			return;
		}
		engine_ev_step(&ev, EV_ROLLBACK_BEGIN, H->spec, PHASE_STEPS, it->index,
			       it->name);
		ev.command = it->record;
		ev.display = it->display;
		engine_emit(E, &ev);
		r.exec = it->exec;
		r.env = it->env.v;
		r.dir = it->dir;
		r.timeout_ms = it->timeout_ms;
		r.local = it->local;
		r.in_rollback = true;
		r.phase = PHASE_STEPS;
		r.index = it->index;
		r.name = it->name;
		engine_run(E, H, &r, engine_cancel_fd(true), &o);
		it->rb_result = o.result == RES_OK ? RES_ROLLED_BACK :
						     RES_ROLLBACK_FAILED;
		rollback_end(E, H, it, &o,
			     o.result == RES_OK ? NULL : buf_str(&o.why));
		outcome_release(&o);
		if (it->rb_result != RES_ROLLED_BACK) {
			H->rollback_failed = true;
			return;
		}
	}
}

static void rollback_one(struct engine *E, struct host_run *H, void *arg)
{
	(void)arg;
	rollback_host(E, H);
}

void engine_rollback_alone(struct engine *E, struct host_run *H)
{
	struct event ev;

	H->alone = true;
	rollback_host(E, H);
	engine_ev_step(&ev, EV_HOST, H->spec, PHASE_STEPS, 0, NULL);
	ev.note = H->rollback_failed ? "rollback-failed" : "failed-rolled-back";
	ev.why = buf_str(&H->why);
	engine_emit(E, &ev);
	/* a host in an unknown state: change nothing more anywhere */
	if (H->rollback_failed)
		engine_fail(E, false, "%s; its rollback alone did not finish on %s",
			    buf_str(&H->why), H->spec);
}

bool engine_rollback_all(struct engine *E)
{
	size_t all = E->n_hosts, *ends = E->ends ? E->ends : &all;
	size_t nb = E->ends ? E->n_batches : 1, *idx, n_left = 0;
	bool ok = true;
	struct event ev;

	for (size_t h = 0; h < E->n_hosts; h++)
		n_left += E->hosts[h].changed_order && !E->hosts[h].alone;
	if (n_left) {
		memset(&ev, 0, sizeof(ev));
		ev.type = EV_ROLLBACK_ALL;
		ev.n_hosts = n_left;
		engine_emit(E, &ev);
	}
	idx = xcalloc(E->n_hosts + 1, sizeof(*idx));
	/* the newest batch first; in a batch the latest changed first */
	for (size_t b = nb; b-- > 0;) {
		size_t n = 0, from = b ? ends[b - 1] : 0;

		for (size_t k = E->n_changed; k > 0; k--)
			for (size_t h = from; h < ends[b] && h < E->n_hosts; h++)
				if (E->hosts[h].changed_order == k &&
				    !E->hosts[h].alone)
					idx[n++] = h;
		engine_for_hosts(E, idx, n, rollback_one, NULL);
	}
	for (size_t h = 0; h < E->n_hosts; h++)
		ok &= !E->hosts[h].rollback_failed;
	free(idx);
	return ok;
}

void engine_pending(struct engine *E, struct buf *b)
{
	for (size_t h = 0; h < E->n_hosts; h++) {
		struct host_run *H = &E->hosts[h];

		for (size_t i = H->n_items; i-- > 0;) {
			struct rollback_item *it = &H->items[i];

			if (it->result == RES_SKIPPED ||
			    it->result == RES_NOT_RUN ||
			    it->rb_result == RES_ROLLED_BACK)
				continue;
			buf_addf(b, "%s'%s' on %s", b->len ? ", " : "",
				 it->name, H->spec);
		}
	}
}

void engine_undone(struct engine *E, struct buf *b)
{
	size_t start = b->len;

	for (size_t k = E->n_changed; k > 0; k--) {
		for (size_t h = 0; h < E->n_hosts; h++) {
			struct host_run *H = &E->hosts[h];

			if (H->changed_order != k)
				continue;
			for (size_t i = H->n_items; i-- > 0;) {
				struct rollback_item *it = &H->items[i];

				if (it->rb_result != RES_ROLLED_BACK)
					continue;
				buf_addf(b, "%s'%s' on %s",
					 b->len > start ? ", " : "", it->name,
					 H->spec);
			}
		}
	}
	if (b->len == start)
		buf_adds(b, "nothing had changed");
}

/* One host's checks after a replayed rollback; its diff is its own. */
static void check_one(struct engine *E, struct host_run *H, void *arg)
{
	struct rollback_host *RH = &((struct rollback_plan *)arg)->hosts[H - E->hosts];

	for (size_t i = 0; i < RH->n_checks && !engine_signals(); i++) {
		struct rollback_check *k = &RH->checks[i];
		struct snap now = { 0 };
		struct outcome o = { 0 };
		struct run_spec r = { 0 };

		if (!k->cmd.exec) {
			buf_addf(&RH->diff, "preflight '%s' on %s: not run again: %s\n",
				 k->cmd.name, H->spec,
				 k->cmd.error ? k->cmd.error : "it cannot be rendered");
			RH->differs = true;
			continue;
		}
		r.exec = k->cmd.exec;
		r.env = k->cmd.env.v;
		r.dir = k->cmd.dir;
		r.timeout_ms = k->cmd.timeout_ms;
		r.local = k->cmd.local;
		r.phase = PHASE_PREFLIGHT;
		r.index = k->cmd.index;
		r.name = k->cmd.name;
		now.taken = true;
		H->keep = &now;
		engine_run(E, H, &r, engine_cancel_fd(false), &o);
		H->keep = NULL;
		if (!o.cancelled &&
		    !baseline_compare_recorded(k->exit_code, k->out, k->bytes,
					       k->crc, o.exit_code, &now,
					       k->cmd.name, H->spec, &RH->diff))
			RH->differs = true;
		snap_release(&now);
		outcome_release(&o);
	}
}

/* After a replayed rollback: the preflight again, against the record. */
static int check_baseline(struct engine *E, struct rollback_plan *p,
			  struct buf *diff)
{
	size_t *idx = xcalloc(p->n_hosts + 1, sizeof(*idx)), n = 0;
	bool same = true;
	struct event ev;

	for (size_t h = 0; h < p->n_hosts; h++)
		if (p->hosts[h].n_checks)
			idx[n++] = h;
	if (!n) {
		free(idx);
		return -1;
	}
	memset(&ev, 0, sizeof(ev));
	ev.type = EV_STAGE;
	ev.note = "rolled back; running preflight again to compare with the baseline recorded when the change began";
	engine_emit(E, &ev);
	engine_for_hosts(E, idx, n, check_one, p);
	free(idx);
	if (engine_signals())
		return -1;
	for (size_t h = 0; h < p->n_hosts; h++) {
		same &= !p->hosts[h].differs;
		buf_add(diff, p->hosts[h].diff.data ? p->hosts[h].diff.data : "",
			p->hosts[h].diff.len);
	}
	memset(&ev, 0, sizeof(ev));
	ev.type = EV_BASELINE;
	ev.baseline_same = same;
	ev.diff = buf_str(diff);
	engine_emit(E, &ev);
	return same;
}

int rollback_run(struct rollback_plan *p, struct rb_error *err)
{
	struct engine E;
	struct event ev;
	enum change_status status;
	bool ok, undone;
	int code = 0;

	engine_init(&E, p->listeners, p->n_listeners);
	snprintf(E.change_id, sizeof(E.change_id), "%s", p->change_id);
	E.target = p->target;
	E.red = p->red;
	E.unset = p->unset;
	E.forks = p->forks ? p->forks : 20;
	E.n_hosts = p->n_hosts;
	E.per = p->n_hosts;	/* one batch: every host at once, up to forks */
	E.hosts = xcalloc(p->n_hosts + 1, sizeof(*E.hosts));
	for (size_t h = 0; h < p->n_hosts; h++) {
		struct host_run *H = &E.hosts[h];

		H->spec = p->hosts[h].spec;
		H->ex = p->hosts[h].ex;
		H->local_ex = p->hosts[h].local_ex;
		H->items = p->hosts[h].items;
		H->n_items = p->hosts[h].n;
		if (H->n_items)
			H->changed_order = ++E.n_changed;
	}
	memset(&ev, 0, sizeof(ev));
	ev.type = EV_OPEN;
	ev.replay = true;
	ev.target = p->target;
	ev.n_hosts = p->n_hosts;
	ev.per = p->n_hosts;
	engine_emit(&E, &ev);
	engine_signals_setup();
	ok = engine_rollback_all(&E);
	undone = ok && !engine_signals();
	if (!undone) {
		struct buf pend = BUF_INIT;

		engine_pending(&E, &pend);
		code = engine_signals() && ok ? RB_ERR_INTERRUPTED : RB_ERR_PARTIAL;
		rb_error_set(err, code,
			     "%sthe rollback of change %s did not finish (not undone: %s); fix the cause and run 'runbook rollback %s' again: it resumes where it stopped",
			     engine_signals() ? "interrupted: " : "",
			     p->change_id, pend.len ? buf_str(&pend) : "nothing",
			     p->change_id);
		buf_release(&pend);
	} else {
		struct buf diff = BUF_INIT;

		if (check_baseline(&E, p, &diff) == 0) {
			code = RB_ERR_PARTIAL;
			rb_error_set(err, code,
				     "the rollback of change %s ran every rollback command, but the preflight does not show the baseline recorded when the change began%s, so %s is not as it was before (baseline: differs, diff in the note); check it by hand: running the rollback again would change nothing",
				     p->change_id, diff.len ? " (diff above)" : "",
				     p->target);
		}
		buf_release(&diff);
	}
	status = undone ? CHANGE_ROLLED_BACK : CHANGE_ROLLBACK_FAILED;
	engine_close(&E, status, code, err);
	engine_signals_restore();
	free(E.hosts);	/* the items and executors are the plan's */
	engine_release(&E);
	return code;
}

