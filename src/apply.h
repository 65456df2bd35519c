/*
 * The engine of apply: phases, batches, expectations, retries and
 * rollback in reverse order (PRODUCT.md §3).
 *
 * Order: preflight, metrics "before", steps, verify, metrics "after",
 * batch by batch. On the first failure (unmet expect, timeout, lost
 * host, SIGINT/SIGTERM) no new step starts; every host that changed is
 * rolled back in reverse order, the failed step's own rollback first
 * (it may have half-applied). A host's rollback stops at its first
 * failing rollback command.
 *
 * The engine calls the journal hook before and after every action; a
 * hook failure stops new work like any other failure. Everything it
 * prints goes through the redactor.
 */
#ifndef RUNBOOK_APPLY_H
#define RUNBOOK_APPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "runbook.h"

struct rb_error;
struct redactor;
struct varset;

enum jev_type {
	JEV_OPEN, JEV_STEP_BEGIN, JEV_STEP_END, JEV_ROLLBACK_BEGIN,
	JEV_ROLLBACK_END, JEV_CLOSE,
	JEV_PID,		/* the command's process group started */
	JEV_BASELINE,		/* rehearse compared preflight with its baseline */
};

/* Results as PRODUCT.md §4 names them. */
enum step_result {
	RES_NOT_RUN, RES_OK, RES_FAILED, RES_SKIPPED, RES_TIMEOUT,
	RES_ROLLED_BACK, RES_ROLLBACK_FAILED,
};

const char *step_result_name(enum step_result r);

/* Final status of a change, as the note's `status`. */
enum change_status {
	CHANGE_RUNNING, CHANGE_APPLIED, CHANGE_ROLLED_BACK,
	CHANGE_ROLLBACK_FAILED, CHANGE_FAILED, CHANGE_INTERRUPTED,
	CHANGE_REHEARSED,
};

const char *change_status_name(enum change_status s);

/* One event for the journal hook. Strings are redacted already. */
struct journal_event {
	enum jev_type type;
	const struct redactor *red;	/* the engine's: secrets and patterns */
	const char *change_id;
	const char *host;	/* NULL for OPEN and CLOSE */
	enum phase phase;
	size_t index;
	const char *name;
	const char *command;	/* record form: secrets as {{ secrets.X }} */
	const char *rollback;	/* record form, for STEP_BEGIN; or NULL */
	bool rollback_none;
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
	bool metric_after;	/* measured after verify */
	const char *output;	/* redacted head and tail of the output */
	/* JEV_PID */
	long pid;
	unsigned long long start_time;
	bool in_rollback;
	enum step_result result;	/* for *_END and CLOSE (status) */
	int exit_code;
	unsigned long long duration_ms;
	enum change_status status;	/* for CLOSE */
	bool by_hand;		/* ROLLBACK_END: the operator undid it by hand */
	/* JEV_BASELINE: came back or not, and the diff (redacted) */
	bool baseline_same;
	const char *diff;
};

struct apply_hooks {
	int (*event)(void *ctx, const struct journal_event *ev,
		     struct rb_error *err);
	void *ctx;
};

struct apply_opts {
	const char *change_id;	/* NULL: apply_run() makes one */
	const struct target *target;
	const struct varset *cli_vars;
	bool json, quiet, verbose, color;
	unsigned forks;
	/*
	 * Rehearse: keep the preflight's stdout and captures as the
	 * baseline, apply, roll everything back, run the preflight again
	 * and compare. Status rehearsed (0); apply failed and rolled back
	 * (1); rollback failed, or the baseline did not come back (3,
	 * status rollback-failed or failed; the diff is printed).
	 */
	bool rehearse;
	const char *known_hosts;	/* NULL: ~/.ssh/known_hosts */
	bool accept_new;	/* trust unknown (never changed) host keys */
	struct apply_hooks hooks;
};

/*
 * Applies rb on opts->target. Returns the exit code of PRODUCT.md §5
 * (0, 1, 3, 5, 6, 130) and prints progress and the closing message.
 * err is set for every non-zero code, with what failed, what was
 * expected and whether running again is safe.
 */
int apply_run(const struct runbook *rb, const struct apply_opts *opts,
	      struct rb_error *err);

struct change_rec;

struct replay_opts {
	bool json, quiet, verbose, color, dry_run;
	unsigned forks;
	const char *known_hosts;
	bool accept_new;
	struct apply_hooks hooks;
	size_t pending;		/* out: rollbacks that were still to run */
};

/*
 * Replays the rollback of a recorded change: for each host, the steps
 * that still need it, newest first, with the commands and values
 * recorded then; secrets are resolved again from where the record says
 * they come from. A host stops at its first failing rollback. Returns
 * 0 when everything is rolled back, 3 when something is not, 5 when a
 * secret is missing, 6 for a host it cannot reach, 130 when stopped by
 * a signal; err says what is left.
 */
int rollback_replay(struct change_rec *c, struct replay_opts *o,
		    struct rb_error *err);

/* A new change id: YYYYMMDDTHHMMSSZ-<name>-<8 hex>, sorting by time. */
void change_id_new(const char *name, char out[128]);

#endif
