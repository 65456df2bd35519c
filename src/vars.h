/*
 * The variables in force for one command: vars, captures and --var in
 * that order (later wins), plus the built-ins. A varset owns copies of
 * its names and values. Secrets are not stored here: they are looked up
 * at execution time only (see secrets in apply).
 */
#ifndef RUNBOOK_VARS_H
#define RUNBOOK_VARS_H

#include <stddef.h>

struct varset {
	char **names;
	char **values;
	size_t n;
	size_t cap;
};

#define VARSET_INIT { NULL, NULL, 0, 0 }

/* Sets name to value, replacing an earlier value. */
void varset_set(struct varset *vs, const char *name, const char *value);
const char *varset_get(const struct varset *vs, const char *name);
void varset_copy(struct varset *dst, const struct varset *src);
void varset_release(struct varset *vs);

/*
 * Splits "KEY=VALUE" from --var into vs. Returns 0, or -1 when arg has
 * no '=' or KEY is not a variable name.
 */
int varset_parse_assignment(struct varset *vs, const char *arg);

#endif
