/*
 * "Did you mean": the closest of a list of known words to a word that
 * matched none of them, by edit distance, for messages about typos
 * (`aply`, `--dryrun`). Pure functions; nothing is allocated that the
 * caller must free.
 */
#ifndef RUNBOOK_SUGGEST_H
#define RUNBOOK_SUGGEST_H

#include <stddef.h>

/*
 * Damerau-Levenshtein distance (optimal string alignment), ignoring
 * ASCII case. SIZE_MAX when the lengths alone differ by more than 2 or
 * a word is longer than 128 bytes: too far apart to be a typo.
 */
size_t suggest_distance(const char *a, const char *b);

/*
 * The word of known[0..n) closest to word, or NULL when none is close
 * enough to be a typo of it: at most 2 edits, fewer edits than either
 * word has letters. Entries may be NULL (skipped). The result points
 * into known.
 */
const char *suggest_closest(const char *word, const char *const *known,
			    size_t n);

#endif
