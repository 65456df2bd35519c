/*
 * Reading a runbook file into the model. The loader checks what the
 * shape of the file decides: YAML syntax, encoding and size, known and
 * required keys, types of values, name forms and durations. Checks
 * that relate one part to another (unique step names, patterns,
 * variables) are validate.c's.
 */
#ifndef RUNBOOK_LOAD_H
#define RUNBOOK_LOAD_H

#include "diag.h"
#include "error.h"

struct runbook;

/*
 * Reads and loads path. Problems in the file go to d (which names the
 * file as path); returns -1 when there is at least one. Whenever the
 * file parsed as a YAML mapping, *out is set to a new model owned by
 * the caller, even with problems (then it is partial: absent or bad
 * values are NULL or defaults), so validation can report what else is
 * wrong in the same run. A file that cannot be read fills err (class
 * RB_ERR_INVALID) and returns -1 without diagnostics.
 */
int runbook_load(const char *path, struct runbook **out, struct diag *d,
		 struct rb_error *err);

/* As runbook_load() on bytes already in memory (tests, fuzzing). */
int runbook_load_mem(const char *path, const char *data, size_t len,
		     struct runbook **out, struct diag *d);

#endif
