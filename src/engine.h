/*
 * The engine's inside, shared by its three files and nothing else:
 * engine.c (running one command, events, the worker pool, signals),
 * apply.c (phases and steps) and rollback.c (rollback items, reverse
 * order, replay's entry). Not a public interface: use apply.h and
 * rollback.h.
 *
 * Locking: E->mu guards the failure state (failed, interrupted,
 * fail_msg, mismatch, n_host_failed), n_changed and each host's
 * changed_order, and
 * the pool's cursor. It is a plain mutex, never held while a listener
 * or a command runs and never taken twice. The bus has its own lock
 * (event.h); nothing takes E->mu while holding it. Everything else a
 * worker touches is its own host's; what the calling thread sets
 * between phases (metrics_when, snap_pass, checking, watch_round) is read only by
 * workers started after it was set.
 */
#ifndef RUNBOOK_ENGINE_H
#define RUNBOOK_ENGINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "baseline.h"
#include "buf.h"
#include "capture.h"
#include "event.h"
#include "template.h"
#include "secrets.h"
#include "vars.h"

struct apply_opts;
struct rollback_item;

struct host_run {
	const char *spec;
	const struct host *h;	/* apply: the runbook's host; replay: NULL */
	struct snap *snap[2];	/* preflight: the baseline, after a rollback */
	struct snap *keep;	/* where the running command's stdout goes */
	struct exec *ex;	/* the host's executor (SSH or local) */
	struct exec *local_ex;	/* for `local: true` steps on a remote host */
	struct varset vars;
	char **metric_before;	/* guarded metrics' values before the change */
	struct rollback_item *items;	/* in the order their steps began */
	size_t n_items, cap_items;
	size_t changed_order;	/* 0: unchanged; else order of first change (mu) */
	bool rollback_failed;
	/*
	 * max_fail (docs/fleets.md), the host's own: failed within the
	 * budget (its worker starts nothing more on it), could not be
	 * reached, rolled back alone; why it failed, redacted.
	 */
	bool failed, unreachable, alone;
	struct buf why;
};

struct engine {
	const struct runbook *rb;	/* NULL when replaying */
	const struct apply_opts *o;	/* NULL when replaying */
	const char *target;
	char change_id[128];
	const struct redactor *red;
	struct secrets secrets;
	char *const *unset;
	struct step_pats *pats[PHASE_COUNT];
	struct host_run *hosts;
	size_t n_hosts;
	size_t per;		/* hosts per batch */
	/*
	 * The batches as apply cut them (fleet_batches()): ends[b] is one
	 * past batch b's last host; NULL: one batch of every host (a
	 * replayed rollback). A rollback goes newest batch first.
	 */
	size_t *ends, n_batches;
	unsigned forks;
	struct bus bus;
	/* set by the calling thread while no worker runs */
	enum metric_when metrics_when;	/* of the metrics phase now running */
	int snap_pass;		/* preflight: 0 baseline, 1 after a rollback */
	unsigned watch_round;	/* the watch round now running, from 1 */
	unsigned long long watch_start;	/* sys_now_ms() of round 1 */
	bool checking;		/* after a rollback: failures are mismatches */
	size_t budget;		/* max_fail in hosts; 0: any failure stops all */
	/* guarded by mu */
	pthread_mutex_t mu;
	size_t n_changed;
	size_t n_host_failed;	/* failed or unreachable hosts within budget */
	bool failed;
	bool interrupted;
	struct buf mismatch;	/* preflights that failed after a rollback */
	struct buf fail_msg;	/* what failed first, redacted */
};

void engine_init(struct engine *E, const struct listener *l, size_t n);
void engine_release(struct engine *E);

/* Signals: the first SIGINT/SIGTERM cancels steps, the second rollbacks. */
void engine_signals_setup(void);
void engine_signals_restore(void);
/* How many arrived since setup. */
int engine_signals(void);
/* Readable once the first (rollback: the second) signal arrived. */
int engine_cancel_fd(bool rollback);
/* Sleeps ms unless the first signal arrives; false if it did. */
bool engine_pause_ms(unsigned ms);

/* Records the first failure; later ones are consequences. */
void engine_fail(struct engine *E, bool interrupted, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * A failure of one host (a step, check or guard of H). Without a budget
 * (max_fail 0), when a signal stopped it, or once the change failed
 * already, it is engine_fail(). Else it counts against the budget:
 * within it, H->failed is set (H's worker stops, and rolls H back
 * alone); past it, the change fails and every host is rolled back.
 */
void engine_host_fail(struct engine *E, struct host_run *H, bool interrupted,
		      const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Failed, or a signal arrived: start nothing new. */
bool engine_stopped(struct engine *E);
/* Hands ev to the listeners; one that cannot record fails the run (-1). */
int engine_emit(struct engine *E, struct event *ev);
/* A zeroed event about one step. */
void engine_ev_step(struct event *ev, enum event_type t, const char *host,
		    enum phase ph, size_t index, const char *name);
/* The CLOSE event; err's message is redacted in place first. */
void engine_close(struct engine *E, enum change_status status, int code,
		  struct rb_error *err);

/* Template lookup: secrets.NAME, then the host's variables. */
struct lookup_ctx {
	struct engine *E;
	struct host_run *H;
};
const char *engine_lookup(void *ctx, const char *name);
/*
 * Renders tpl for execution (*exec, with secrets; may be NULL), for
 * display (*display, masked; may be NULL) and for the record (*record,
 * secrets kept as {{ secrets.NAME }}; may be NULL), the last two
 * redacted. *masked (may be NULL): redaction changed the record form.
 */
int engine_render3(tpl_lookup_fn fn, void *ctx, const struct redactor *red,
		   const char *tpl, enum tpl_mode mode, char **exec,
		   char **display, char **record, bool *masked,
		   struct rb_error *err);
/* Frees a string that held secrets, wiping it first. */
void engine_free_exec(char *s);

/* One command to run on a host, with what judges it. */
struct run_spec {
	const struct step *s;	/* NULL for a rollback */
	const struct step_pats *p;	/* NULL: exit 0 is success */
	const char *exec;
	char *const *env;	/* "NAME=value", secrets resolved */
	const char *dir;
	unsigned timeout_ms;
	bool local;
	bool in_rollback;
	enum phase phase;
	size_t index;
	const char *name;
};

struct outcome {
	enum step_result result;
	bool started;		/* the command ran at all */
	bool cancelled;		/* stopped by a signal */
	int exit_code;
	unsigned long long ms;
	struct buf why;		/* redacted: expected ..., found ... */
	char **cap_vals;	/* taken from the capture on success */
	size_t n_cap;
	char *metric_val;
	char *output;		/* redacted head and tail, for the record */
};

void outcome_release(struct outcome *o);
/* Runs r on H until it ends, emitting PID, OUTPUT and TICK events. */
void engine_run(struct engine *E, struct host_run *H, const struct run_spec *r,
		int cancel_fd, struct outcome *o);

/*
 * Calls fn for each host of idx, at most E->forks at once; each host on
 * one thread from start to end, so its steps stay in order. The calling
 * thread delivers the workers' events meanwhile.
 */
typedef void host_fn(struct engine *E, struct host_run *H, void *arg);
void engine_for_hosts(struct engine *E, const size_t *idx, size_t n,
		      host_fn *fn, void *arg);

/* rollback.c */
/* (Re-)renders a step's rollback with the variables in force now (apply). */
void engine_render_item(struct engine *E, struct host_run *H,
			struct rollback_item *it);
/*
 * Rolls back every changed host, most recently changed first (but the
 * hosts already rolled back alone); true when no host's rollback failed.
 */
bool engine_rollback_all(struct engine *E);
/*
 * max_fail: rolls back H alone, on its own worker, once it failed
 * within the budget, and emits its outcome (EV_HOST). A rollback that
 * fails stops the change: every host is then rolled back.
 */
void engine_rollback_alone(struct engine *E, struct host_run *H);
/* What was not undone, for the closing message. */
void engine_pending(struct engine *E, struct buf *b);
/*
 * What was undone, in the order it was, for the closing message of an
 * interrupted run: "'b' on web1, 'a' on web1", or "nothing had changed".
 */
void engine_undone(struct engine *E, struct buf *b);

#endif
