/*
 * The record of one change: what the journal accumulates while apply
 * runs, what a note's front matter holds, and what `rollback`, `status`
 * and `show` read back. One model for all three, so a change can be
 * finished from whichever of journal and note is there.
 *
 * Commands are kept in their record form: rendered, with secrets left
 * as {{ secrets.NAME }} (resolved again when a rollback is replayed).
 * The record owns all its strings; change_free() releases it.
 */
#ifndef RUNBOOK_CHANGE_H
#define RUNBOOK_CHANGE_H

#include <stdbool.h>
#include <time.h>
#include <stddef.h>

#include "buf.h"
#include "runbook.h"
#include "vars.h"

struct ynode;
struct rb_error;

/* Results as the change note names them (docs/notes.md). */
enum step_result {
	RES_NOT_RUN, RES_OK, RES_FAILED, RES_SKIPPED, RES_TIMEOUT,
	RES_ROLLED_BACK, RES_ROLLBACK_FAILED,
};

/* Status of a change, as the note's `status`. */
enum change_status {
	CHANGE_RUNNING, CHANGE_APPLIED, CHANGE_ROLLED_BACK,
	CHANGE_ROLLBACK_FAILED, CHANGE_FAILED, CHANGE_INTERRUPTED,
	CHANGE_REHEARSED,
	/* max_fail (docs/fleets.md): applied, but some hosts failed within
	   the budget and were rolled back alone (outcomes says which) */
	CHANGE_APPLIED_WITH_FAILURES,
};

const char *step_result_name(enum step_result r);
const char *change_status_name(enum change_status s);
/* Parse a status or result name; -1 when unknown. */
int change_status_parse(const char *s);
int step_result_parse(const char *s);
/* A finished status: nothing is left to undo or to run. */
bool change_status_final(enum change_status s);

/* A new change id: YYYYMMDDTHHMMSSZ-<name>-<8 hex>, sorting by time. */
void change_id_new(const char *name, char out[128]);
/*
 * Whether id has that form (a real date and time, a runbook name, 8
 * lowercase hex digits) and is not dated later than now + CHANGE_ID_SKEW
 * seconds. Ids name files, so nothing else may be used as one. On false,
 * why says what is wrong ("...expected ..., found ...").
 */
#define CHANGE_ID_SKEW 3600
bool change_id_check(const char *id, time_t now, char why[160]);
/*
 * Whether what (as typed) names change id: a prefix of the id, or four
 * or more hex digits that start its hex part (what `log` shows last).
 */
bool change_id_matches(const char *id, const char *what);

struct rec_step {
	char *host;
	enum phase phase;
	unsigned index;
	char *name;
	char *command;
	char *rollback;		/* NULL when none or not renderable */
	bool rollback_none;
	bool rollback_masked;	/* a redact pattern changed the recorded rollback */
	bool rb_by_hand;	/* the operator said they undid it by hand */
	bool local;		/* ran on the machine running runbook */
	char *dir;		/* NULL: none */
	char *backup;		/* the backup's manifest (backup.h), or NULL */
	struct strvec env;	/* "NAME=value", record form */
	unsigned timeout_ms;
	bool running;		/* begun and never ended (interrupted) */
	bool rb_running;	/* its rollback begun and never ended */
	long pid;		/* process group of the last command started */
	unsigned long long start_time;
	enum step_result result;
	enum step_result rb_result;	/* RES_NOT_RUN: no rollback tried */
	int exit_code;
	int rb_exit_code;
	unsigned long long duration_ms;	/* of its last attempt */
	unsigned attempts;	/* how many ran (retries + 1 at most) */
	char *output;		/* redacted head and tail, for the note body */
	char *message;		/* why it failed (expected, found), redacted */
	char *rb_output;	/* its rollback's redacted head and tail */
	unsigned long long rb_duration_ms;
	/*
	 * A preflight check's stdout when the change began (the baseline a
	 * rollback is proved against): redacted, the first BASELINE_KEEP
	 * bytes, with the size and CRC-32C of all of it.
	 */
	bool has_snap;
	char *snap_out;
	unsigned long long snap_bytes;
	unsigned snap_crc;
};

/* When a metric was measured. */
enum metric_when { METRIC_BEFORE, METRIC_AFTER, METRIC_AFTER_ROLLBACK };

struct rec_metric {
	char *host, *name, *before, *after, *after_rollback;
};

struct rec_capture {
	char *host, *name, *value;
};

/*
 * One line of the change's timeline: what ended, in the order it was
 * recorded (the journal's order, which is the engine's event order).
 */
struct rec_event {
	char *kind;		/* "step", "attempt", "rollback" */
	char *host;
	enum phase phase;
	char *name;
	char *result;		/* a result name, or "none" (rollback: none) */
	unsigned attempt;	/* step: attempts run; attempt: which failed */
	bool by_hand;		/* rollback: the operator undid it by hand */
	int exit_code;		/* -1: none (not started, killed, by hand) */
	unsigned long long duration_ms;
	char *message;		/* why it failed, redacted; NULL when it did not */
};

struct change_rec {
	char *id, *runbook, *file, *file_sha256, *target;
	char *mode;		/* "apply" or "rehearse" */
	char *limit;		/* --limit as given, or NULL: every host */
	char *watch;		/* "10m, every 30s", "skipped (--no-watch)", NULL */
	char *owner, *reason, *expected, *operator_;
	char *started, *finished;
	char *identity;		/* the target's SSH identity file, or NULL */
	bool confirm;		/* the target had confirm: true (rollback asks) */
	/*
	 * Preflight again after a rollback (rehearse, apply's own, or a
	 * later one): "restored", "differs", or NULL when not compared.
	 */
	char *baseline;
	char *baseline_diff;	/* unified diff, redacted */
	/* a rollback made later with `runbook rollback` (the last one) */
	char *rolled_back_by, *rolled_back_at, *rollback_reason;
	struct strvec rollback_forced;	/* later changes --force passed over */
	char *note_oid;		/* commit of the last note (journal only) */
	enum change_status status;
	bool closed;		/* the runner recorded its end */
	struct strvec hosts;
	struct varset vars;	/* no secrets */
	struct varset secrets;	/* name -> "env:VAR" or "file:PATH" */
	struct varset host_ids;	/* host -> its own SSH identity file */
	/*
	 * host -> its outcome, when max_fail let some hosts fail
	 * (docs/notes.md): applied, failed-rolled-back, rollback-failed,
	 * unreachable; empty otherwise (the status says it for all)
	 */
	struct varset outcomes;
	struct strvec redact;	/* the runbook's redact patterns */
	struct rec_capture *captures;
	size_t n_captures, cap_captures;
	struct rec_metric *metrics;
	size_t n_metrics, cap_metrics;
	struct rec_step *steps;
	size_t n_steps, cap_steps;
	struct rec_event *events;
	size_t n_events, cap_events;
	enum change_status noted;	/* status of the newest note commit */
	bool has_note;
};

struct change_rec *change_new(void);
void change_free(struct change_rec *c);

/* Appends a step; the record owns it (fields start empty). */
struct rec_step *change_add_step(struct change_rec *c);
/* The last step begun for (host, phase, index), or NULL. */
struct rec_step *change_find_step(struct change_rec *c, const char *host,
				  enum phase phase, unsigned index);
void change_set_capture(struct change_rec *c, const char *host,
			const char *name, const char *value);
void change_set_metric(struct change_rec *c, const char *host,
		       const char *name, enum metric_when when,
		       const char *value);
/* Appends to the timeline; strings are copied, name may be NULL. */
struct rec_event *change_add_event(struct change_rec *c, const char *kind,
				   const char *host, enum phase phase,
				   const char *name, const char *result);

/*
 * Steps of host that still need their rollback, newest first: begun
 * (even if interrupted), not skipped, not already rolled back. Fills v
 * (borrowed pointers) and returns their number.
 */
size_t change_pending(struct change_rec *c, const char *host,
		      struct rec_step ***v);

/* Rollbacks still to run, over all hosts. */
size_t change_pending_total(const struct change_rec *c);
/*
 * --by-hand STEP[@HOST]: pushes the index in c->steps of each pending
 * rollback spec names onto out; -1 with err (usage) listing what is
 * pending when it names none.
 */
int change_by_hand(struct change_rec *c, const char *spec, struct strvec *out,
		   struct rb_error *err);

/*
 * The record of a new change of rb on t, before it runs: everything
 * but what running adds. vars: the --var values; operator: who runs it.
 * Secrets are recorded by source, never by value.
 */
struct change_rec *change_from_runbook(const struct runbook *rb,
				       const struct target *t,
				       const struct varset *vars,
				       char *operator_);

/*
 * Journal records are JSON objects (one per record, "t" names the
 * kind); these build them and apply a parsed one to a record.
 */
void change_rec_open(struct buf *out, const struct change_rec *c);
void change_apply_record(struct change_rec *c, const struct ynode *rec);
#endif
