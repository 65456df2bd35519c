/*
 * Edit distance for "did you mean". Names in a runbook and on a command
 * line are short, so the full table is cheap; words over 128 bytes are
 * never typos worth naming and are not measured.
 */
#include "suggest.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

size_t suggest_distance(const char *a, const char *b)
{
	size_t n = strlen(a), m = strlen(b), w = m + 1, r;
	size_t *d;

	if ((n > m ? n - m : m - n) > 2 || n > 128 || m > 128)
		return SIZE_MAX;
	d = xcalloc((n + 1) * w, sizeof(*d));
	for (size_t i = 0; i <= n; i++)
		d[i * w] = i;
	for (size_t j = 0; j <= m; j++)
		d[j] = j;
	for (size_t i = 1; i <= n; i++) {
		for (size_t j = 1; j <= m; j++) {
			size_t cost = lower(a[i - 1]) != lower(b[j - 1]);
			size_t v = d[(i - 1) * w + j] + 1;

			if (d[i * w + j - 1] + 1 < v)
				v = d[i * w + j - 1] + 1;
			if (d[(i - 1) * w + j - 1] + cost < v)
				v = d[(i - 1) * w + j - 1] + cost;
			if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
			    lower(a[i - 2]) == lower(b[j - 1]) &&
			    d[(i - 2) * w + j - 2] + 1 < v)
				v = d[(i - 2) * w + j - 2] + 1;
			d[i * w + j] = v;
		}
	}
	r = d[n * w + m];
	free(d);
	return r;
}

const char *suggest_closest(const char *const *known, size_t n,
			    const char *word)
{
	size_t best = SIZE_MAX, len = strlen(word);
	const char *pick = NULL;

	for (size_t i = 0; i < n; i++) {
		size_t d = suggest_distance(word, known[i]);

		if (d < best && (d == 0 || (d <= 2 && d < len &&
					    d < strlen(known[i])))) {
			best = d;
			pick = known[i];
		}
	}
	return pick;
}
