/*
 * `include: FILE` items of step lists (docs/reuse.md). Each such item
 * is replaced, in place, by the steps of FILE: a YAML list of steps,
 * parsed as a file of its own, so every problem inside it is reported
 * at FILE:line:column with the include that brought it in (diag.h).
 *
 * FILE is relative to the file that names it (or absolute). Refused, at
 * the include's position: a file that cannot be read, one that is not
 * a list, one already being included through the chain that leads to
 * it (a cycle, shown as the chain), nesting deeper than
 * INCLUDE_MAX_DEPTH and more than DIAG_MAX_FILES inclusions in all.
 * Anchors do not cross files: each file is its own YAML document.
 *
 * The set owns every tree it parsed and every list it built; they stay
 * valid until include_free(), so the loader keeps pointers into them
 * while it builds the model.
 */
#ifndef RUNBOOK_INCLUDE_H
#define RUNBOOK_INCLUDE_H

#include <stddef.h>

#include "diag.h"

#define INCLUDE_MAX_DEPTH 8

struct ynode;
struct include_set;

/* A set for the runbook at file (as named in d); problems go to d. */
struct include_set *include_new(const char *file, struct diag *d);
void include_free(struct include_set *s);

/*
 * list with every include item replaced by the steps of its file
 * (recursively), or list itself when it has none. what names the list
 * in messages ("steps", "watch.steps").
 */
const struct ynode *include_splice(struct include_set *s,
				   const struct ynode *list, const char *what);

/*
 * Hands over the names of the files included (as opened, each once, in
 * the order first included): *out is a new array of new strings, or
 * NULL when there were none. The set keeps none of them.
 */
void include_take_files(struct include_set *s, char ***out, size_t *n);

#endif
