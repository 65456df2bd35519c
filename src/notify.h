/*
 * notify: local commands run when a change starts and when it ends
 * (docs/format.md, "Notify"). Two halves:
 *
 *   notify_load()      the runbook's `notify:` list -> rb->notify, with
 *                      every problem located (called by load.c);
 *   struct notifier    an immediate listener of the engine's EV_OPEN and
 *                      EV_CLOSE: it runs the commands that asked for the
 *                      event, each in its own process group, bounded by
 *                      its timeout (its group killed), and records each
 *                      outcome in the change's timeline (`event: notify`
 *                      in the note).
 *
 * A notify never changes a change's outcome or exit code: a command
 * that fails, hangs or cannot start is recorded and reported as a
 * notice, and the change goes on. Its environment is runbook's own,
 * minus the variables secrets come from, plus RUNBOOK_EVENT,
 * RUNBOOK_STATUS, RUNBOOK_CHANGE, RUNBOOK_RUNBOOK, RUNBOOK_TARGET,
 * RUNBOOK_HOSTS, RUNBOOK_COMMIT, RUNBOOK_SUMMARY (redacted), and at the
 * end RUNBOOK_EXIT_CODE, plus its own env, where a value written
 * exactly `{{ secrets.NAME }}` is that secret: the only way a secret
 * reaches a notify.
 */
#ifndef RUNBOOK_NOTIFY_H
#define RUNBOOK_NOTIFY_H

#include "event.h"

struct diag;
struct ynode;
struct runbook;
struct change_rec;
struct rb_error;
struct strvec;

enum notify_on {
	NOTIFY_ON_START = 1 << 0,
	NOTIFY_ON_APPLIED = 1 << 1,
	NOTIFY_ON_FAILED = 1 << 2,
	NOTIFY_ON_ROLLED_BACK = 1 << 3,
	NOTIFY_ON_ROLLBACK_FAILED = 1 << 4,
	NOTIFY_ON_INTERRUPTED = 1 << 5,
	NOTIFY_ON_REHEARSED = 1 << 6,
	NOTIFY_ON_APPLIED_WITH_FAILURES = 1 << 7,	/* max_fail (docs/fleets.md) */
	NOTIFY_ON_ALL = (1 << 8) - 1,
};

#define NOTIFY_DEFAULT_TIMEOUT_MS 10000u

/*
 * Loads `notify:` (n) into rb->notify; problems go to d. rb's secrets
 * must be loaded already (an env value may name one).
 */
void notify_load(struct diag *d, const struct ynode *n, struct runbook *rb);

struct notifier;

/*
 * A notifier for one apply or rehearse of rb, recording into ch (the
 * recorder's change record). renote(arg) commits the note again once
 * the final notifications are recorded (the change is closed by then).
 * NULL when rb has no notify.
 */
struct notifier *notifier_new(const struct runbook *rb,
			      struct change_rec *ch,
			      int (*renote)(void *arg, struct rb_error *err),
			      void *arg);
void notifier_free(struct notifier *n);
struct listener notifier_listener(struct notifier *n);
/*
 * What went wrong, one line each, for the operator ("notify chat on
 * failed exited 3; recorded, the change's outcome stands"); empty when
 * every command succeeded. Owned by n.
 */
const struct strvec *notifier_notices(const struct notifier *n);

#endif
