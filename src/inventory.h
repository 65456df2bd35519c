/*
 * Inventories (docs/fleets.md): a YAML file of targets, their hosts,
 * host vars, target vars, serial, pause, max_fail and confirm, kept
 * apart from runbooks so that many runbooks share one description of
 * the fleet. Part of the input half: it reads and checks, like load.c,
 * and reports every problem at file:line:column into a diag.
 *
 * Where the inventory is: --inventory FILE, else the runbook's
 * `inventory` key (relative to the runbook's directory), else
 * inventory.yml beside the runbook when it exists. Its targets join
 * the runbook's; a target that both define is refused (at the
 * runbook's target, naming the inventory's).
 */
#ifndef RUNBOOK_INVENTORY_H
#define RUNBOOK_INVENTORY_H

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"
#include "error.h"

struct runbook;
struct target;
struct ynode;

struct inventory {
	char *file;		/* path as given */
	struct target *targets;
	size_t n_targets;
};

/*
 * Reads and checks path. Problems go to d (which names the file);
 * returns -1 when there is at least one. *out is set whenever the file
 * parsed as a mapping, even with problems (then partial). A file that
 * cannot be read fills err (RB_ERR_INVALID) and returns -1.
 */
int inventory_load(const char *path, struct inventory **out, struct diag *d,
		   struct rb_error *err);
int inventory_load_mem(const char *path, const char *data, size_t len,
		       struct inventory **out, struct diag *d);
void inventory_free(struct inventory *inv);

/*
 * Whether the text of a file is an inventory rather than a runbook: a
 * mapping with `targets` and neither `name` nor `steps` at the top, of
 * at most INVENTORY_SNIFF_MAX bytes (a bigger file is read as a
 * runbook, so validating one is not slowed by a second parse).
 */
#define INVENTORY_SNIFF_MAX (1u << 20)
bool inventory_sniff(const char *path);

/*
 * The fleet keys of a target mapping n (serial, pause, max_fail,
 * confirm, vars) into t, for the runbook's targets and the
 * inventory's alike. path is "targets.NAME".
 */
void inventory_target_keys(struct diag *d, const struct ynode *n,
			   const char *path, struct target *t);

/*
 * The inventory rb uses (see above), a new string, or NULL for none.
 * -1, with the problem in d, when the key names a file that is not
 * there (--inventory is taken as given: reading it says what is wrong).
 */
int inventory_path(const struct runbook *rb, const char *cli_path,
		   char **out, struct diag *d);

/*
 * Moves inv's targets into rb: a runbook without `targets` takes them
 * instead of its implicit `local`. A target in both is a problem in
 * d (the runbook's). inv keeps nothing afterwards but its name.
 */
void inventory_merge(struct runbook *rb, struct inventory *inv,
		     struct diag *d);

#endif
