/*
 * Team mode for the commands (docs/team.md): a command's notes remote
 * (remote.h) opened and fetched first, every note commit pushed after
 * it (a store_on_commit() hook), the remote lock released at the end,
 * and what stayed queued said. Nothing here prints: what there is to
 * say comes back as notices (strings without "runbook: ").
 */
#ifndef RUNBOOK_TEAM_H
#define RUNBOOK_TEAM_H

#include <stdbool.h>

#include "error.h"

struct remote;
struct remote_opts;
struct store;
struct strvec;

struct team {
	struct remote *rm;	/* NULL: no notes remote configured */
	bool offline;		/* the fetch failed: notes stay queued here */
	bool first;		/* the next push is apply's running note: it must succeed */
	bool first_failed;	/* ... and it failed (err) */
	bool queued;		/* a push failed: notes wait for runbook sync */
	struct rb_error err;	/* the failed push's */
};

/*
 * Opens the notes remote of st (name: --remote, or NULL) if one is
 * configured, fetches, and pushes after every note commit from then
 * on. strict (apply, rehearse, sync, unlock): an unreachable remote is
 * -1 with err (RB_ERR_CONNECT, naming the remote and the error);
 * otherwise a notice, t->offline, and nothing is pushed. t is caller
 * storage, zeroed here.
 */
int team_open(struct team *t, struct store *st, const char *name,
	      const struct remote_opts *o, bool strict,
	      struct strvec *notices, struct rb_error *err);

/*
 * Releases the remote lock this process took, notes what is left
 * unpushed, unhooks st (NULL: none) and frees the remote.
 */
void team_close(struct team *t, struct store *st, struct strvec *notices);

/*
 * Breaks target's remote lock as st's operator with reason, and
 * records who broke whose lock and why on runbook-notes (a commit that
 * changes no file, pushed like a note). *was: the holder (caller
 * frees); oid_hex: the record's commit.
 */
int team_unlock(struct team *t, struct store *st, const char *target,
		const char *reason, char **was, char oid_hex[41],
		struct rb_error *err);

/*
 * A change on target whose note (from the remote) says running while
 * no journal of it is on this machine: its runner is elsewhere, or gone
 * (its lock broken). Such a change blocks the target until someone
 * finishes it with runbook rollback: -1 with err (RB_ERR_BUSY) naming
 * it. 0 when there is none.
 */
int team_check_foreign(struct store *st, const char *target,
		       struct rb_error *err);

#endif
