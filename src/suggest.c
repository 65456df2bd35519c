/*
 * Edit distance for "did you mean". Words are bounded (128 bytes), so
 * a hostile argument costs at most three rows of 129 on the stack.
 */
#include "suggest.h"

#include <stdint.h>
#include <string.h>

#define SUGGEST_MAX 128

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static size_t min2(size_t a, size_t b)
{
	return a < b ? a : b;
}

size_t suggest_distance(const char *a, const char *b)
{
	/* three rows of the table: i-2, i-1, i */
	size_t rows[3][SUGGEST_MAX + 1];
	size_t n = strlen(a), m = strlen(b);

	if ((n > m ? n - m : m - n) > 2 || n > SUGGEST_MAX || m > SUGGEST_MAX)
		return SIZE_MAX;
	for (size_t j = 0; j <= m; j++)
		rows[0][j] = j;
	for (size_t i = 1; i <= n; i++) {
		size_t *cur = rows[i % 3], *up = rows[(i - 1) % 3];
		size_t *up2 = rows[(i + 1) % 3];

		cur[0] = i;
		for (size_t j = 1; j <= m; j++) {
			size_t cost = lower(a[i - 1]) != lower(b[j - 1]);
			size_t v = min2(up[j] + 1, cur[j - 1] + 1);

			v = min2(v, up[j - 1] + cost);
			if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
			    lower(a[i - 2]) == lower(b[j - 1]))
				v = min2(v, up2[j - 2] + 1);
			cur[j] = v;
		}
	}
	return rows[n % 3][m];
}

const char *suggest_closest(const char *word, const char *const *known,
			    size_t n)
{
	size_t best = SIZE_MAX, len = strlen(word);
	const char *pick = NULL;

	for (size_t i = 0; i < n; i++) {
		size_t d;

		if (!known[i])
			continue;
		d = suggest_distance(word, known[i]);
		if (d < best && d <= 2 && d < len && d < strlen(known[i])) {
			best = d;
			pick = known[i];
		}
	}
	return pick;
}
