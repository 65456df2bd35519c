/*
 * "Did you mean": the known word closest to a misspelt one. Pure
 * functions over borrowed strings; nothing is allocated for the caller.
 */
#ifndef RUNBOOK_SUGGEST_H
#define RUNBOOK_SUGGEST_H

#include <stddef.h>

/*
 * Damerau-Levenshtein distance (optimal string alignment: a swap of two
 * neighbours counts one), letters compared without case. SIZE_MAX when
 * the lengths alone differ by more than 2, or a word is over 128 bytes.
 */
size_t suggest_distance(const char *a, const char *b);

/*
 * The word of known[0..n) closest to word, when close enough to be a
 * typo: a distance of at most 2 that is smaller than both words' lengths
 * (so "ab" never suggests "xy"). The first of equally close words wins;
 * NULL when none is close. The result points into known.
 */
const char *suggest_closest(const char *const *known, size_t n,
			    const char *word);

#endif
