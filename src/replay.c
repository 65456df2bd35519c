/*
 * Replay; see replay.h. The plan owns its hosts, executors, items,
 * secrets and redactor; the change record is only read.
 */
#include "replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollback.h"
#include "buf.h"
#include "change.h"
#include "error.h"
#include "exec.h"
#include "hosts.h"
#include "redact.h"
#include "runbook.h"
#include "secrets.h"

struct replay {
	struct rollback_plan plan;
	struct host *hosts;	/* parsed specs */
	struct redactor *red;
	struct secrets secrets;
	size_t pending;
};

static const char *lookup(void *ctx, const char *name)
{
	struct replay *rp = ctx;

	if (strncmp(name, "secrets.", 8) == 0)
		return secrets_get(&rp->secrets, name + 8);
	return NULL;	/* the record form has every variable in place */
}

/* The identity a host used: its own, else its target's. */
static const char *host_identity(const struct change_rec *c, const char *spec)
{
	const char *id = varset_get(&c->host_ids, spec);

	return id ? id : c->identity;
}

/* A recorded step's "NAME=value" env as kvs (values borrowed). */
static struct kv *env_of(const struct rec_step *r, size_t *n_env)
{
	struct kv *env = xcalloc(r->env.n + 1, sizeof(*env));

	*n_env = 0;
	for (size_t e = 0; e < r->env.n; e++) {
		char *eq = strchr(r->env.v[e], '=');

		if (!eq)
			continue;
		env[*n_env].key = xstrndup(r->env.v[e], (size_t)(eq - r->env.v[e]));
		env[(*n_env)++].val = eq + 1;
	}
	return env;
}

static void env_free(struct kv *env, size_t n_env)
{
	for (size_t e = 0; e < n_env; e++)
		free(env[e].key);
	free(env);
}

/* One recorded step as the rollback item apply would have built. */
static void item_of(struct replay *rp, const struct rec_step *r,
		    struct rollback_item *it)
{
	struct kv *env;
	size_t n_env = 0;

	memset(it, 0, sizeof(*it));
	it->name = xstrdup(r->name ? r->name : "?");
	it->index = r->index;
	it->none = r->rollback_none;
	it->timeout_ms = r->timeout_ms ? r->timeout_ms : RB_DEFAULT_TIMEOUT_MS;
	it->local = r->local;
	it->result = RES_OK;	/* pending: it needs its rollback */
	if (r->rollback_masked && !r->rollback_none) {
		it->error = xstrdup("the recorded rollback contains text a redact pattern masked, so it cannot be replayed as it was; undo it by hand");
		return;
	}
	env = env_of(r, &n_env);
	rollback_item_render(it, r->rollback, env, n_env, r->dir, lookup, rp,
			     rp->red);
	env_free(env, n_env);
}

/*
 * The preflight checks whose baseline the record holds for this host,
 * rendered to run again once its rollbacks are done (secrets resolved
 * again, like the rollbacks).
 */
static void checks_of(struct replay *rp, const struct change_rec *c,
		      struct rollback_host *H)
{
	for (size_t i = 0; i < c->n_steps; i++) {
		const struct rec_step *r = &c->steps[i];
		struct rollback_check *k;
		struct kv *env;
		size_t n_env = 0;

		if (!r->has_snap || r->phase != PHASE_PREFLIGHT || !r->host ||
		    strcmp(r->host, H->spec) != 0)
			continue;
		H->checks = xrealloc(H->checks, (H->n_checks + 1) * sizeof(*H->checks));
		k = &H->checks[H->n_checks++];
		memset(k, 0, sizeof(*k));
		k->exit_code = r->exit_code;
		k->out = r->snap_out;
		k->bytes = r->snap_bytes;
		k->crc = r->snap_crc;
		k->cmd.name = xstrdup(r->name ? r->name : "?");
		k->cmd.index = r->index;
		k->cmd.timeout_ms = r->timeout_ms ? r->timeout_ms : RB_DEFAULT_TIMEOUT_MS;
		k->cmd.local = r->local;
		env = env_of(r, &n_env);
		rollback_item_render(&k->cmd, r->command, env, n_env, r->dir,
				     lookup, rp, rp->red);
		env_free(env, n_env);
	}
}

/*
 * A command the dead runner left running is stopped before anything is
 * undone. Locally a runner that ended stopped its commands; on a remote
 * host a lost link may have cut one off: a failed one there is stopped
 * too (if still running: the stop is guarded by the change id).
 */
static void stop_leftovers(struct replay *rp, const struct change_rec *c,
			   struct rollback_host *H, const struct host *h,
			   const struct host_access *a, struct strvec *notices)
{
	for (size_t i = 0; i < c->n_steps; i++) {
		const struct rec_step *r = &c->steps[i];
		struct exec *ex;
		struct rb_error err = RB_ERROR_INIT;

		if (!r->pid || !r->host || strcmp(r->host, h->spec) != 0)
			continue;
		if (!(r->running || r->rb_running) &&
		    (h->local || r->local ||
		     (r->result != RES_FAILED && r->result != RES_TIMEOUT &&
		      r->rb_result != RES_ROLLBACK_FAILED)))
			continue;
		if (!H->ex && hosts_open(h, a, true, &H->ex, &H->local_ex,
					 &err) < 0)
			continue;
		ex = r->local && H->local_ex ? H->local_ex : H->ex;
		if (exec_stop(ex, r->pid, r->start_time, c->id)) {
			struct buf b = BUF_INIT;
			char *red;

			buf_addf(&b, "stopped process group %ld on %s, left running by the interrupted %s of %s '%s'",
				 r->pid, h->spec, r->rb_running ? "rollback" : "run",
				 phase_name(r->phase), r->name ? r->name : "?");
			red = redact_str(rp->red, buf_str(&b));
			strvec_push_owned(notices, red);
			buf_release(&b);
		}
	}
}

static int host_plan(struct replay *rp, struct change_rec *c, size_t h,
		     const struct replay_opts *o, struct strvec *notices,
		     struct rb_error *err)
{
	struct rollback_host *H = &rp->plan.hosts[h];
	struct host *hs = &rp->hosts[h];
	struct host_access a = { host_identity(c, c->hosts.v[h]),
				 o->known_hosts, o->accept_new };
	struct rec_step **pend;
	size_t n;

	hs->spec = c->hosts.v[h];
	H->spec = hs->spec;
	if (!host_parse(hs)) {
		rb_error_set(err, RB_ERR_INVALID,
			     "host %s of change %s: expected local or [user@]host[:port], found something else; nothing was run",
			     hs->spec, c->id);
		return -1;
	}
	n = change_pending(c, hs->spec, &pend);
	/* oldest first in items: the engine walks them backwards */
	H->items = xcalloc(n + 1, sizeof(*H->items));
	for (size_t k = n; k-- > 0;)
		item_of(rp, pend[k], &H->items[H->n++]);
	rp->pending += n;
	free(pend);
	if (n)
		checks_of(rp, c, H);
	if (o->dry_run)
		return 0;
	/* connected on first use: one lost host stops only itself */
	if (n && hosts_open(hs, &a, true, &H->ex, &H->local_ex, err) < 0)
		return -1;
	stop_leftovers(rp, c, H, hs, &a, notices);
	return 0;
}

int replay_new(struct change_rec *c, const struct replay_opts *o,
	       struct strvec *notices, struct replay **out,
	       struct rb_error *err)
{
	struct replay *rp = xcalloc(1, sizeof(*rp));

	rp->red = redactor_new();
	redactor_add_builtins(rp->red);
	rp->hosts = xcalloc(c->hosts.n + 1, sizeof(*rp->hosts));
	rp->plan.hosts = xcalloc(c->hosts.n + 1, sizeof(*rp->plan.hosts));
	rp->plan.n_hosts = c->hosts.n;
	rp->plan.change_id = c->id;
	rp->plan.target = c->target;
	rp->plan.red = rp->red;
	rp->plan.forks = o->forks;
	/* the runbook's own patterns mask the replay's output too */
	for (size_t i = 0; i < c->redact.n; i++)
		if (redactor_add_pattern(rp->red, c->redact.v[i], err) < 0)
			goto bad;
	if (secrets_load_recorded(&rp->secrets, &c->secrets, o->dry_run,
				  rp->red, err) < 0)
		goto bad;
	rp->plan.unset = rp->secrets.unset.v;
	for (size_t h = 0; h < c->hosts.n; h++)
		if (host_plan(rp, c, h, o, notices, err) < 0)
			goto bad;
	*out = rp;
	return 0;
bad:
	if (err->cls == RB_OK)
		err->cls = RB_ERR_INVALID;
	replay_free(rp);
	return -1;
}

void replay_free(struct replay *rp)
{
	if (!rp)
		return;
	for (size_t h = 0; h < rp->plan.n_hosts; h++) {
		struct rollback_host *H = &rp->plan.hosts[h];

		exec_close(H->ex);
		exec_close(H->local_ex);
		for (size_t i = 0; i < H->n; i++)
			rollback_item_release(&H->items[i]);
		free(H->items);
		for (size_t i = 0; i < H->n_checks; i++)
			rollback_item_release(&H->checks[i].cmd);
		free(H->checks);
		buf_release(&H->diff);
		free(rp->hosts[h].user);
		free(rp->hosts[h].address);
	}
	free(rp->plan.hosts);
	free(rp->hosts);
	secrets_release(&rp->secrets);
	redactor_free(rp->red);
	free(rp);
}

struct rollback_plan *replay_plan(struct replay *rp)
{
	return &rp->plan;
}

size_t replay_pending(const struct replay *rp)
{
	return rp->pending;
}
