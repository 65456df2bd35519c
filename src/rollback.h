/*
 * Rollback, one mechanism for apply, rehearse and `runbook rollback`: a
 * struct rollback_item is what apply builds when a step starts (and
 * again once the step's captures are known), and what replay.c
 * rebuilds from a recorded change. rollback_run() runs a plan of such
 * items exactly as apply runs its own: newest first, host by host, a
 * host stopping at its first failure, with the same events.
 */
#ifndef RUNBOOK_ROLLBACK_H
#define RUNBOOK_ROLLBACK_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "change.h"
#include "runbook.h"
#include "template.h"

struct exec;
struct listener;
struct rb_error;
struct redactor;

/* One rollback, rendered and ready to run. The item owns its strings. */
struct rollback_item {
	char *name;
	unsigned index;		/* of the step in `steps` */
	bool none;		/* rollback: none: nothing to undo */
	char *exec;		/* secrets resolved; NULL when it cannot run */
	char *display;		/* masked, for people */
	char *record;		/* secrets as {{ secrets.NAME }}, redacted */
	bool masked;		/* record is not what runs: a pattern masked it */
	char *error;		/* why it cannot run (exec is NULL), redacted */
	struct strvec env;	/* "NAME=value", secrets resolved */
	struct strvec env_shown;	/* the same, masked, for people */
	char *dir;		/* secrets resolved, or NULL */
	char *dir_shown;	/* masked, for people */
	unsigned timeout_ms;
	bool local;		/* runs on this machine (`local: true`) */
	char *restore;		/* rollback: restore: the command (backup.h) */
	enum step_result result;	/* of the step; RES_NOT_RUN: never started */
	enum step_result rb_result;	/* RES_NOT_RUN until tried */
};

/*
 * Renders a rollback: cmd (TPL_SHELL), env values and dir (TPL_RAW)
 * with lookup, three ways (exec, display, record). A template that
 * cannot be rendered leaves exec NULL and error set. Secrets come
 * through lookup as "secrets.NAME".
 */
void rollback_item_render(struct rollback_item *it, const char *cmd,
			  const struct kv *env, size_t n_env,
			  const char *dir, tpl_lookup_fn lookup, void *ctx,
			  const struct redactor *red);
void rollback_item_release(struct rollback_item *it);

/*
 * A preflight check run again after a replayed rollback, and the
 * baseline it showed when the change began (from the record).
 */
struct rollback_check {
	struct rollback_item cmd;	/* the check's command, rendered */
	int exit_code;		/* recorded; -1: none */
	const char *out;	/* recorded stdout (redacted, bounded) */
	unsigned long long bytes;
	unsigned crc;
};

/* A host's rollbacks: items oldest first (they run newest first). */
struct rollback_host {
	const char *spec;
	struct exec *ex;	/* its executor (connected on first use) */
	struct exec *local_ex;	/* for `local: true` items; NULL on local */
	struct rollback_item *items;
	size_t n;
	struct rollback_check *checks;	/* after the rollbacks, in order */
	size_t n_checks;
	/* filled by rollback_run: the checks' diff, whether they agreed */
	struct buf diff;
	bool differs;
};

struct rollback_plan {
	const char *change_id;
	const char *target;
	struct rollback_host *hosts;
	size_t n_hosts;
	const struct redactor *red;	/* knows the secrets and patterns */
	char *const *unset;	/* secret sources removed from commands' env */
	unsigned forks;
	const struct listener *listeners;
	size_t n_listeners;
};

/*
 * Runs the plan's rollbacks, every host at once (up to forks), each
 * newest first; a host stops at its first failing rollback. Updates
 * each item's rb_result. When everything is rolled back, runs each
 * host's checks and compares them with the recorded baseline (a
 * BASELINE event). Emits OPEN (replay) ... CLOSE. Returns 0 when
 * everything is rolled back and the baseline came back, 3 when
 * something is not rolled back or the baseline differs, 130 when
 * stopped by a signal; err says what is left.
 */
int rollback_run(struct rollback_plan *p, struct rb_error *err);

#endif
