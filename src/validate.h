/*
 * Checks that relate one part of a runbook to another: unique step
 * names, each host once in a target, patterns that compile (with the
 * capture groups they need, and a value in place of each {{ }}),
 * templates that parse and name only variables defined at that point
 * (in commands, reason, expected and patterns), no clash with built-in
 * names, and --var names the runbook knows. Every problem goes to d; nothing is
 * run and the model is not changed.
 */
#ifndef RUNBOOK_VALIDATE_H
#define RUNBOOK_VALIDATE_H

#include <stddef.h>

struct runbook;
struct diag;

/*
 * extra_names: names given with --var (n of them), which count as
 * defined everywhere; each must be a name the runbook knows (a vars
 * key, a capture, or a name a template uses), else it is a problem of
 * the file as a whole (line 0) naming the closest known name
 * (docs/format.md, --var names). Returns the number of problems added
 * to d.
 */
size_t runbook_validate(const struct runbook *rb, char *const *extra_names,
			size_t n_extra, struct diag *d);

/* True for change.id, target, host, runbook.name. */
int is_builtin_var(const char *name);

#endif
