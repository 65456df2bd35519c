/*
 * The engine: phases, batches, expectations, retries and rollback in
 * reverse order (docs/apply.md).
 *
 * Order: preflight, metrics "before", steps, verify, metrics "after",
 * batch by batch. On the first failure (unmet expect, timeout, lost
 * host, SIGINT/SIGTERM, an event that could not be recorded) no new
 * step starts; every host that changed is rolled back in reverse
 * order, the failed step's own rollback first (it may have
 * half-applied). A host's rollback stops at its first failing
 * rollback command.
 *
 * The engine never prints and never writes a record: it emits events
 * (event.h) to the listeners it is given, before and after every
 * action. An immediate listener that fails stops new work like any
 * other failure. Hosts of a batch run on worker threads; the calling
 * thread delivers deferred events meanwhile.
 *
 * Rollback is one mechanism for apply and replay (rollback.h).
 */
#ifndef RUNBOOK_APPLY_H
#define RUNBOOK_APPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "runbook.h"

struct listener;
struct rb_error;
struct varset;

struct apply_opts {
	const char *change_id;	/* NULL: apply_run() makes one */
	const struct target *target;
	const struct varset *cli_vars;
	unsigned forks;		/* hosts at once; 0: 20 */
	/*
	 * Rehearse: keep the preflight's stdout and captures as the
	 * baseline, apply, roll everything back, run the preflight again
	 * and compare. Status rehearsed (0); apply failed and rolled back
	 * (1); rollback failed, or the baseline did not come back (3,
	 * status rollback-failed or failed; the diff is in the events).
	 */
	bool rehearse;
	bool no_watch;		/* --no-watch: skip the runbook's watch */
	const char *known_hosts;	/* NULL: ~/.ssh/known_hosts */
	bool accept_new;	/* trust unknown (never changed) host keys */
	const struct listener *listeners;
	size_t n_listeners;
};

/*
 * Applies rb on opts->target. Returns the exit code of docs/apply.md
 * (0, 1, 3, 5, 6, 130). err is set for every non-zero code, with what
 * failed, what was expected and whether running again is safe; the
 * CLOSE event carries the same message.
 */
int apply_run(const struct runbook *rb, const struct apply_opts *opts,
	      struct rb_error *err);

#endif
