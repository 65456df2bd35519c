/*
 * The engine's common machinery: signals, failure state, events, the
 * rendering of templates three ways, running one command with its
 * output captured and judged, and the pool of worker threads. See
 * engine.h for the locking rules.
 */
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "exec.h"
#include "fleet.h"
#include "redact.h"
#include "sys.h"


static atomic_int sig_count;
static int cancel_pipe[2] = { -1, -1 };
static int cancel2_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;
	char c = (char)sig;

	if (atomic_fetch_add(&sig_count, 1) == 0)
		(void)!write(cancel_pipe[1], &c, 1);
	else
		(void)!write(cancel2_pipe[1], &c, 1);
	errno = saved;
}

int engine_signals(void)
{
	return atomic_load(&sig_count);
}

void engine_signals_setup(void)
{
	struct sigaction sa;

	atomic_store(&sig_count, 0);
	if (cancel_pipe[0] < 0) {
		(void)!pipe2(cancel_pipe, O_CLOEXEC | O_NONBLOCK);
		(void)!pipe2(cancel2_pipe, O_CLOEXEC | O_NONBLOCK);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

void engine_signals_restore(void)
{
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
}


int engine_cancel_fd(bool rollback)
{
	return rollback ? cancel2_pipe[0] : cancel_pipe[0];
}

void engine_init(struct engine *E, const struct listener *l, size_t n)
{
	memset(E, 0, sizeof(*E));
	pthread_mutex_init(&E->mu, NULL);
	bus_init(&E->bus, l, n);
}

void engine_release(struct engine *E)
{
	bus_release(&E->bus);
	pthread_mutex_destroy(&E->mu);
	buf_release(&E->fail_msg);
	buf_release(&E->mismatch);
}

void engine_fail(struct engine *E, bool interrupted, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&E->mu);
	E->interrupted |= interrupted;
	if (!E->failed) {
		E->failed = true;
		va_start(ap, fmt);
		buf_vaddf(&E->fail_msg, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&E->mu);
}

void engine_host_fail(struct engine *E, struct host_run *H, bool interrupted,
		      const char *fmt, ...)
{
	struct buf msg = BUF_INIT;
	bool within = false;
	va_list ap;

	va_start(ap, fmt);
	buf_vaddf(&msg, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&E->mu);
	if (E->budget && !interrupted && !E->failed) {
		within = fleet_within_budget(E->budget, ++E->n_host_failed);
		if (!within) {
			E->failed = true;
			buf_addf(&E->fail_msg, "%s; %zu hosts failed, more than max_fail allows (%zu)",
				 buf_str(&msg), E->n_host_failed, E->budget);
		}
	}
	pthread_mutex_unlock(&E->mu);
	if (within) {
		H->failed = true;
		buf_adds(&H->why, buf_str(&msg));
	} else if (!E->budget || interrupted) {
		engine_fail(E, interrupted, "%s", buf_str(&msg));
	}
	buf_release(&msg);
}

bool engine_stopped(struct engine *E)
{
	bool f;

	pthread_mutex_lock(&E->mu);
	f = E->failed;
	pthread_mutex_unlock(&E->mu);
	return f || engine_signals();
}

/* Hands ev to the listeners; one that cannot record stops new work. */
int engine_emit(struct engine *E, struct event *ev)
{
	struct rb_error err = RB_ERROR_INIT;

	ev->change_id = E->change_id;
	ev->red = E->red;
	if (bus_emit(&E->bus, ev, &err) < 0) {
		engine_fail(E, false, "cannot record the change: %s", err.msg);
		return -1;
	}
	return 0;
}

void engine_ev_step(struct event *ev, enum event_type t, const char *host,
		    enum phase ph, size_t index, const char *name)
{
	memset(ev, 0, sizeof(*ev));
	ev->type = t;
	ev->host = host;
	ev->phase = ph;
	ev->index = index;
	ev->name = name;
	ev->exit_code = -1;
}


void engine_close(struct engine *E, enum change_status status, int code,
		  struct rb_error *err)
{
	struct event ev;
	char *red = redact_str(E->red, err->msg);

	snprintf(err->msg, sizeof(err->msg), "%s", red);
	free(red);
	memset(&ev, 0, sizeof(ev));
	ev.type = EV_CLOSE;
	ev.status = status;
	ev.code = code;
	ev.message = code ? err->msg : NULL;
	ev.runbook = E->rb ? E->rb->name.s : NULL;
	ev.target = E->target;
	engine_emit(E, &ev);
}

const char *engine_lookup(void *ctx, const char *name)
{
	struct lookup_ctx *lc = ctx;

	if (strncmp(name, "secrets.", 8) == 0)
		return secrets_get(&lc->E->secrets, name + 8);
	return varset_get(&lc->H->vars, name);
}

void engine_free_exec(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

int engine_render3(tpl_lookup_fn fn, void *ctx, const struct redactor *red,
		   const char *tpl, enum tpl_mode mode, char **exec,
		   char **display, char **record, bool *masked,
		   struct rb_error *err)
{
	struct buf x = BUF_INIT, d = BUF_INIT, r = BUF_INIT;
	int ret = -1;

	if ((exec && tpl_render(tpl, mode, TPL_SECRET_RESOLVE, fn, ctx, &x,
				err) < 0) ||
	    (display && tpl_render(tpl, mode, TPL_SECRET_MASK, fn, ctx, &d,
				   err) < 0) ||
	    (record && tpl_render(tpl, mode, TPL_SECRET_KEEP, fn, ctx, &r,
				  err) < 0))
		goto out;
	if (exec)
		*exec = buf_detach(&x);
	if (display)
		*display = redact_str(red, buf_str(&d));
	if (record) {
		*record = redact_str(red, buf_str(&r));
		if (masked)
			*masked = strcmp(*record, buf_str(&r)) != 0;
	}
	ret = 0;
out:
	if (x.data)
		explicit_bzero(x.data, x.len);
	buf_release(&x);
	buf_release(&d);
	buf_release(&r);
	return ret;
}


/* ---- running one command ---- */

void outcome_release(struct outcome *o)
{
	buf_release(&o->why);
	for (size_t k = 0; o->cap_vals && k < o->n_cap; k++)
		free(o->cap_vals[k]);
	free(o->cap_vals);
	free(o->metric_val);
	free(o->output);
	memset(o, 0, sizeof(*o));
}

struct cmd_ctx {
	struct engine *E;
	struct host_run *H;
	const struct run_spec *r;
	struct capture cap;
	unsigned long long start;
};

static void ev_of_run(struct event *ev, enum event_type t,
		      const struct cmd_ctx *cc)
{
	engine_ev_step(ev, t, cc->H->spec, cc->r->phase, cc->r->index, cc->r->name);
	ev->in_rollback = cc->r->in_rollback;
}

static void on_output(void *ctx, enum exec_stream s, const char *data,
		      size_t len)
{
	struct cmd_ctx *cc = ctx;

	capture_output(&cc->cap, s, data, len);
}

/* Redacted output: the rehearse baseline and whoever watches live. */
static void on_tee(void *ctx, enum exec_stream s, const char *data, size_t len)
{
	struct cmd_ctx *cc = ctx;
	struct event ev;

	if (cc->H->keep && s == EXEC_STDOUT)
		snap_feed(cc->H->keep, data, len);
	if (!bus_wants(&cc->E->bus, EV_OUTPUT))
		return;
	ev_of_run(&ev, EV_OUTPUT, cc);
	ev.stream = s;
	ev.data = data;
	ev.len = len;
	engine_emit(cc->E, &ev);
}

static void on_tick(void *ctx)
{
	struct cmd_ctx *cc = ctx;
	struct event ev;

	ev_of_run(&ev, EV_TICK, cc);
	ev.duration_ms = sys_now_ms() - cc->start;
	engine_emit(cc->E, &ev);
}

/* The process group is recorded so recovery can stop it if we die. */
static void on_started(void *ctx, long pid, unsigned long long start_time)
{
	struct cmd_ctx *cc = ctx;
	struct event ev;

	ev_of_run(&ev, EV_PID, cc);
	ev.pid = pid;
	ev.start_time = start_time;
	engine_emit(cc->E, &ev);
}

void engine_run(struct engine *E, struct host_run *H, const struct run_spec *r,
		int cancel_fd, struct outcome *o)
{
	struct cmd_ctx cc = { E, H, r, { 0 }, sys_now_ms() };
	struct exec_sink sink = { on_output, NULL, on_started, &cc };
	struct strvec env = STRVEC_INIT;
	struct exec_result res = { 0 };
	struct rb_error err = RB_ERROR_INIT;
	struct exec_cmd ec;
	char *red;

	memset(o, 0, sizeof(*o));
	o->exit_code = -1;
	o->result = RES_FAILED;
	if (bus_wants(&E->bus, EV_TICK))
		sink.tick = on_tick;
	capture_init(&cc.cap, E->red, r->s, r->p, on_tee, &cc);
	if (H->keep)
		snap_reset(H->keep);	/* a retry starts the record again */
	for (size_t i = 0; r->env && r->env[i]; i++)
		strvec_push(&env, r->env[i]);
	{
		struct buf kv = BUF_INIT;

		buf_addf(&kv, "RUNBOOK_CHANGE_ID=%s", E->change_id);
		strvec_push_owned(&env, buf_detach(&kv));
		buf_addf(&kv, "RUNBOOK_HOST=%s", H->spec);
		strvec_push_owned(&env, buf_detach(&kv));
		buf_addf(&kv, "RUNBOOK_TARGET=%s", E->target);
		strvec_push_owned(&env, buf_detach(&kv));
		buf_addf(&kv, "RUNBOOK_STEP=%s", r->name);
		strvec_push_owned(&env, buf_detach(&kv));
	}
	ec.command = r->exec;
	ec.env = env.v;
	ec.unset = E->unset;
	ec.dir = r->dir;
	ec.timeout_ms = r->timeout_ms;
	ec.cancel_fd = cancel_fd;
	if (exec_run(r->local && H->local_ex ? H->local_ex : H->ex, &ec, &sink,
		     &res, &err) < 0) {
		capture_finish(&cc.cap);
		buf_addf(&o->why, "expected the command to start, found: %s",
			 err.msg);
		goto out;
	}
	o->started = true;
	capture_finish(&cc.cap);
	o->ms = res.duration_ms;
	o->exit_code = res.exit_code;
	o->cancelled = res.end == EXEC_CANCELLED;
	o->result = capture_judge(&cc.cap, &res, r->timeout_ms, &o->why);
	if (o->result == RES_OK) {
		o->cap_vals = cc.cap.cap_vals;
		o->n_cap = cc.cap.n_cap;
		cc.cap.cap_vals = NULL;
		cc.cap.n_cap = 0;
		o->metric_val = cc.cap.metric_val;
		cc.cap.metric_val = NULL;
	}
out:
	o->output = capture_text(&cc.cap);
	capture_release(&cc.cap);
	for (size_t i = 0; i < env.n; i++)
		explicit_bzero(env.v[i], strlen(env.v[i]));
	strvec_release(&env);
	/* whatever a message quotes goes through the redactor */
	red = redact_str(E->red, buf_str(&o->why));
	buf_reset(&o->why);
	buf_adds(&o->why, red);
	free(red);
}

bool engine_pause_ms(unsigned ms)
{
	struct pollfd p = { engine_cancel_fd(false), POLLIN, 0 };
	unsigned long long end = sys_now_ms() + ms;

	for (;;) {
		unsigned long long now = sys_now_ms();

		if (engine_signals())
			return false;
		if (now >= end)
			return true;
		if (poll(&p, 1, (int)(end - now)) > 0)
			return false;
	}
}


/* ---- hosts in parallel ---- */

struct pool {
	struct engine *E;
	const size_t *idx;	/* hosts to visit, in this order */
	size_t n;
	size_t next;		/* guarded by E->mu */
	host_fn *fn;
	void *arg;
};

static void pool_visit(struct pool *P)
{
	for (;;) {
		size_t i;

		pthread_mutex_lock(&P->E->mu);
		i = P->next++;
		pthread_mutex_unlock(&P->E->mu);
		if (i >= P->n)
			break;
		P->fn(P->E, &P->E->hosts[P->idx[i]], P->arg);
	}
}

static void *pool_worker(void *arg)
{
	struct pool *P = arg;

	pool_visit(P);
	bus_worker_done(&P->E->bus);
	return NULL;
}

void engine_for_hosts(struct engine *E, const size_t *idx, size_t n,
		      host_fn *fn, void *arg)
{
	struct pool P = { E, idx, n, 0, fn, arg };
	size_t nt = n < E->forks ? n : E->forks, started = 0;
	pthread_t *th;
	pthread_attr_t attr;

	if (nt <= 1) {
		pool_visit(&P);
		return;
	}
	th = xcalloc(nt, sizeof(*th));
	bus_workers(&E->bus, nt);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 1u << 20);
	for (; started < nt; started++)
		if (pthread_create(&th[started], &attr, pool_worker, &P) != 0)
			break;
	pthread_attr_destroy(&attr);
	for (size_t k = started; k < nt; k++)
		bus_worker_done(&E->bus);
	if (!started)
		pool_visit(&P);	/* no thread to be had: do it here */
	bus_run(&E->bus);
	for (size_t k = 0; k < started; k++)
		pthread_join(th[k], NULL);
	free(th);
}

