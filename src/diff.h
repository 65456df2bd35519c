/*
 * Unified diffs of two texts, for rehearse: what the baseline was and
 * what came back after the rollback, in the form `diff -u` prints.
 *
 * Lines common at both ends are trimmed first; the middle is aligned
 * by a longest-common-subsequence table while it fits DIFF_CELLS cells,
 * beyond that it is shown as removed-then-added (still a valid diff,
 * only not a minimal one), so memory and time stay bounded whatever the
 * input size. A text that does not end with a newline gets the
 * "\ No newline at end of file" marker.
 */
#ifndef RUNBOOK_DIFF_H
#define RUNBOOK_DIFF_H

#include <stdbool.h>
#include <stddef.h>

struct buf;

#define DIFF_CELLS (4u << 20)

/*
 * Appends to out the unified diff from a to b with `context` lines
 * around each change, under the headers "--- a_label" and
 * "+++ b_label". Appends nothing and returns false when the texts are
 * equal; returns true otherwise.
 */
bool diff_unified(struct buf *out, const char *a_label, const char *b_label,
		  const char *a, size_t alen, const char *b, size_t blen,
		  unsigned context);

#endif
