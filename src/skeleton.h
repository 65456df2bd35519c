/*
 * The runbook `runbook new NAME` writes: every part of the format with
 * a comment saying what it is for, commands that only echo, so that
 * the file validates, `plan` renders it, and a rehearse changes
 * nothing until the commands are replaced.
 */
#ifndef RUNBOOK_SKELETON_H
#define RUNBOOK_SKELETON_H

#include <stdbool.h>

struct buf;

/* Whether name has the form of a runbook name: [a-z0-9][a-z0-9._-]*. */
bool skeleton_name_ok(const char *name);

/*
 * Appends the commented runbook named name to out; file is its path as
 * the comments show it; schema, when not NULL, is the JSON Schema named
 * in the yaml-language-server modeline.
 */
void skeleton_write(const char *name, const char *file, const char *schema,
		    struct buf *out);

#endif
