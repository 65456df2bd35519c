/*
 * `runbook plan`: what apply would run, per host and phase, with every
 * command rendered as it would run (secrets as [secret:NAME], captures
 * that exist only at run time as {{ name }}), and what each runs with:
 * its env, dir, expect (exit codes and patterns, values in place as
 * they will be matched), captures, timeout and retries. reason and
 * expected are rendered as the note will say them ({{ change.id }}
 * left as written). Runs nothing.
 */
#ifndef RUNBOOK_PLAN_H
#define RUNBOOK_PLAN_H

#include <stdbool.h>
#include <stdio.h>

struct runbook;
struct target;
struct varset;
struct rb_error;

/*
 * Writes the plan of rb on target t to out, as text or as one JSON
 * object per line. cli_vars are the --var values. Returns 0, or -1 with
 * err set if a command cannot be rendered.
 */
int plan_write(const struct runbook *rb, const struct target *t,
	       const struct varset *cli_vars, bool json, FILE *out,
	       struct rb_error *err);

#endif
