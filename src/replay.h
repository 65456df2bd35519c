/*
 * Replay: a recorded change (journal or note) becomes the rollback
 * plan of rollback.h, the same rollback items apply builds while it runs,
 * rendered from the record: commands, env and dir in record form with
 * secrets resolved again from where the record says they come from.
 * Hosts are connected on first use, so one lost host stops only itself.
 *
 * Before anything is undone, a command the dead runner left running on
 * a host (any phase, or a rollback) is stopped, guarded by its start
 * time locally and by the change id remotely.
 */
#ifndef RUNBOOK_REPLAY_H
#define RUNBOOK_REPLAY_H

#include <stdbool.h>
#include <stddef.h>

struct change_rec;
struct listener;
struct rb_error;
struct rollback_plan;
struct strvec;

struct replay_opts {
	bool dry_run;		/* no secret is read, no host touched */
	unsigned forks;
	const char *known_hosts;
	bool accept_new;
};

struct replay;

/*
 * Builds the plan of change c (which must outlive it). Stopped leftover
 * commands are described in notices. Returns 0, or -1 with err: 5 for a
 * missing secret or a bad record, 6 for an unusable ~/.ssh/config.
 */
int replay_new(struct change_rec *c, const struct replay_opts *o,
	       struct strvec *notices, struct replay **out,
	       struct rb_error *err);
void replay_free(struct replay *rp);
/* The plan to hand rollback_run(); listeners are set by the caller. */
struct rollback_plan *replay_plan(struct replay *rp);
/* Rollbacks still to run, over all hosts. */
size_t replay_pending(const struct replay *rp);

#endif
