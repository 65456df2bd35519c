/*
 * commands_fleet.c: the command layer's part of fleets (docs/fleets.md),
 * used by commands.c. A header of its own, so the two files do not
 * include each other's.
 */
#ifndef RUNBOOK_COMMANDS_FLEET_H
#define RUNBOOK_COMMANDS_FLEET_H

#include <stdbool.h>

struct cli;
struct rb_error;
struct diag;
struct runbook;
struct strvec;
struct target;
/*
 * Joins rb's inventory (--inventory, its key, inventory.yml beside it)
 * to rb; clashes go to d. -1 when the inventory had problems (printed)
 * or could not be read (err).
 */
int cmd_inventory(const struct cli *c, struct runbook *rb, struct diag *d,
		  struct rb_error *err);
/* `runbook validate` of an inventory file: the exit code. */
int cmd_validate_inventory(const struct cli *c, const char *file);
/*
 * confirm: true: shows the target, hosts and reason and asks on a
 * terminal for the target's name; --yes goes on. 0 to go on, else -1
 * with err (RB_ERR_USAGE).
 */
int cmd_confirm_target(const struct cli *c, const struct target *t,
		       const char *reason, struct rb_error *err);
/* The same question for what ("rollback") of a recorded change. */
int cmd_confirm(const struct cli *c, const char *target,
		const struct strvec *hosts, const char *reason,
		const char *what, struct rb_error *err);
/*
 * --wait: whether to try again after err (a busy target), having
 * waited a moment and said who holds it (once per holder). *deadline
 * starts at 0; *shown is the caller's to free.
 */
bool cmd_wait_busy(const struct cli *c, unsigned long long *deadline,
		   const struct rb_error *err, char **shown);

#endif
