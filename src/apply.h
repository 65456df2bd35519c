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

#include "change.h"
#include "event.h"
#include "runbook.h"

struct rb_error;
struct redactor;
struct varset;

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


#endif
