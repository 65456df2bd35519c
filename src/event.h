/*
 * What the engine reports, and who hears it. The engine (apply.c)
 * never prints and never writes a record: it emits typed events, and
 * every writer is a listener of the same stream. The recorder
 * (record.c) turns them into journal records and notes; the report
 * (report.c) into progress lines and --json objects. So the journal,
 * the note and the terminal cannot disagree on what happened or in
 * which order.
 *
 * Two kinds of listener:
 *
 *   immediate  called on the thread that emits, under the bus lock,
 *              before the engine goes on. The recorder is one: a record
 *              must be on disk before the action it announces. It may
 *              fail (-1 with err); the engine then starts nothing new.
 *              It never prints.
 *   deferred   called later on the thread that owns the bus (the one
 *              that called bus_init(), the main thread), in emit order.
 *              The report is one: worker threads never touch a
 *              terminal. Its return value is ignored.
 *
 * Order: events reach every listener in one order, the order in which
 * they were emitted under the bus lock.
 *
 * Every string in an event is redacted already, except `command` and
 * the env/dir, which are in record form (secrets as
 * {{ secrets.NAME }}); the recorder redacts those before writing.
 *
 * Locking: the bus lock serialises emit and guards the queue of
 * deferred events; it is taken by bus_emit() and bus_run() only, and no
 * other lock is taken while it is held (a listener takes none).
 */
#ifndef RUNBOOK_EVENT_H
#define RUNBOOK_EVENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "change.h"
#include "exec.h"

struct rb_error;
struct redactor;

enum event_type {
	EV_OPEN,		/* the change is opened, before any host is reached */
	EV_BATCH,		/* a batch of hosts starts (batch of n_batches) */
	EV_PHASE,		/* a phase starts on the batch */
	EV_STEP_BEGIN,		/* a step or check is about to run (announces it) */
	EV_PID,			/* the command's process group started */
	EV_ATTEMPT,		/* an attempt failed and will be retried */
	EV_STEP_END,		/* with the result of its last attempt */
	EV_ROLLBACK_ALL,	/* rolling back n_hosts changed hosts */
	EV_ROLLBACK_BEGIN,	/* a rollback command is about to run */
	EV_ROLLBACK_END,	/* also for `rollback: none` and one that cannot run */
	EV_STAGE,		/* a stage after a rollback starts (message says which) */
	EV_BASELINE,		/* the preflight after a rollback, against the baseline */
	EV_ORPHAN,		/* a command left by a dead runner was stopped */
	EV_HOST,		/* max_fail: a host's outcome (note), why it failed (why) */
	EV_CLOSE,		/* the change's final status, exit code and message */
	EV_OUTPUT,		/* a piece of a command's output (--verbose) */
	EV_TICK,		/* about every 100 ms while a command runs */
	EV__COUNT
};

#define EV_BIT(t) (1u << (t))
/* Events that only a person watching needs: never recorded. */
#define EV_LIVE (EV_BIT(EV_OUTPUT) | EV_BIT(EV_TICK))

struct event {
	enum event_type type;
	const char *change_id;
	const struct redactor *red;	/* the engine's: secrets and patterns */
	const char *host;	/* NULL for change-wide events */
	enum phase phase;
	size_t index;
	const char *name;
	/* STEP_BEGIN, ROLLBACK_BEGIN: the command in record form */
	const char *command;
	const char *display;	/* the command as people see it (masked) */
	const char *rollback;	/* record form, for STEP_BEGIN/END; or NULL */
	const char *backup;	/* STEP_BEGIN: the backup's manifest, or NULL */
	bool rollback_none;	/* `rollback: none` (ROLLBACK_END: nothing to undo) */
	bool rollback_masked;	/* a redact pattern changed the record form */
	bool local;		/* runs on this machine (`local: true`) */
	const char *dir;	/* record form, or NULL */
	char *const *env;	/* record forms "NAME=value", or NULL */
	unsigned timeout_ms;
	/* STEP_END */
	char *const *cap_names;
	char *const *cap_values;	/* redacted */
	size_t n_caps;
	const char *metric;	/* a metric's value, redacted */
	enum metric_when metric_when;
	const char *output;	/* redacted head and tail of the output */
	/* STEP_END of a preflight check when the change began: its stdout,
	 * redacted, the first snap_len bytes; size and CRC-32C of all */
	const char *snap_out;
	size_t snap_len;
	unsigned long long snap_total;
	unsigned snap_crc;
	unsigned attempt;	/* ATTEMPT: which failed; STEP_END: how many ran */
	unsigned attempts;	/* ATTEMPT: how many may run in all */
	const char *why;	/* what failed: expected ..., found ... (redacted) */
	const char *note;	/* for people: "skip_if exited 0: already done" */
	/* PID */
	long pid;
	unsigned long long start_time;
	bool in_rollback;
	enum step_result result;	/* STEP_END, ATTEMPT, ROLLBACK_END */
	int exit_code;
	unsigned long long duration_ms;
	bool by_hand;		/* ROLLBACK_END: the operator undid it by hand */
	/* OPEN */
	const char *runbook;
	const char *target;
	size_t n_hosts;		/* OPEN, ROLLBACK_ALL */
	size_t per;		/* OPEN: hosts at once (1: a live line makes sense) */
	bool replay;		/* OPEN: a recorded rollback, not an apply */
	/* BATCH */
	size_t batch, n_batches;
	enum metric_when metrics_when;	/* PHASE: which metrics phase */
	/* BASELINE */
	bool baseline_same;
	const char *diff;
	/* CLOSE */
	enum change_status status;
	int code;		/* the exit code */
	const char *message;	/* what failed or what is left (redacted) */
	/* OUTPUT */
	enum exec_stream stream;
	const char *data;
	size_t len;
};

struct listener {
	int (*on_event)(void *ctx, const struct event *ev,
			struct rb_error *err);
	void *ctx;
	bool deferred;
	unsigned mask;		/* EV_BIT()s it wants; 0: all but EV_LIVE */
};

struct queued;

/* The listeners of one run, and the queue that carries deferred events. */
struct bus {
	const struct listener *v;
	size_t n;
	pthread_t owner;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct queued *head, *tail;	/* guarded by mu */
	size_t busy;		/* workers still running; guarded by mu */
};

void bus_init(struct bus *b, const struct listener *v, size_t n);
void bus_release(struct bus *b);
/* Some listener wants events of this type (skip building the rest). */
bool bus_wants(const struct bus *b, enum event_type t);
/*
 * Hands ev to every listener: immediate ones now, deferred ones on the
 * owner thread (now, if this is it). Returns -1 with err when an
 * immediate listener failed: the engine must start nothing new.
 */
int bus_emit(struct bus *b, const struct event *ev, struct rb_error *err);
/*
 * On the owner thread, while workers run: hands queued events to the
 * deferred listeners until bus_worker_done() was called as often as
 * workers were announced with bus_workers().
 */
void bus_workers(struct bus *b, size_t n);
void bus_worker_done(struct bus *b);
void bus_run(struct bus *b);

#endif
