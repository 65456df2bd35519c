/*
 * Batches and the failure budget of a target (fleet.h). Invariant: the
 * batches cover every host exactly once, in the target's order, and
 * none is empty.
 */
#include "fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "runbook.h"

static size_t wave_size(const struct wave *w, size_t n)
{
	size_t k;

	if (!w->percent)
		return w->n ? w->n : 1;
	k = (n * w->n + 99) / 100;
	return k ? k : 1;
}

size_t fleet_cut(size_t n, const struct wave *waves, size_t n_waves,
		 size_t **ends)
{
	size_t nb = 0, at = 0, w = 0;

	*ends = xcalloc(n + 1, sizeof(**ends));
	if (n == 0) {
		(*ends)[0] = 0;
		return 1;
	}
	while (at < n) {
		size_t k = n_waves ? wave_size(&waves[w], n) : n;

		at = k < n - at ? at + k : n;
		(*ends)[nb++] = at;
		if (w + 1 < n_waves)
			w++;
	}
	return nb;
}

size_t fleet_batches(const struct target *t, size_t **ends)
{
	struct wave one = { t->serial, t->serial_percent };

	if (t->n_waves)
		return fleet_cut(t->n_hosts, t->waves, t->n_waves, ends);
	return fleet_cut(t->n_hosts, &one, t->serial ? 1 : 0, ends);
}

size_t fleet_budget(const struct target *t, size_t n)
{
	if (t->max_fail_percent)
		return n * t->max_fail / 100;
	return t->max_fail;
}

bool fleet_within_budget(size_t budget, size_t failed)
{
	return failed <= budget;
}

int fleet_parse_serial(const char *s, struct wave **out, size_t *n)
{
	char *list = xstrdup(s), *save = NULL, *item;
	struct wave *v = NULL;
	size_t cap = 0, k = 0;
	int ret = 0;

	for (item = strtok_r(list, ",", &save); item && !ret;
	     item = strtok_r(NULL, ",", &save)) {
		size_t len = strlen(item), digits = strspn(item, "0123456789");
		struct wave w = { 0, false };

		w.percent = len >= 2 && item[len - 1] == '%';
		if (digits == 0 || digits > 6 || digits != len - w.percent) {
			ret = -1;
			break;
		}
		w.n = (unsigned)strtoul(item, NULL, 10);
		if (w.n < 1 || (w.percent && w.n > 100))
			ret = -1;
		v = xgrow(v, &cap, k + 1, sizeof(*v));
		v[k++] = w;
	}
	if (!k || s[0] == ',' || s[strlen(s) - 1] == ',' || strstr(s, ",,"))
		ret = -1;
	free(list);
	if (ret < 0) {
		free(v);
		return -1;
	}
	*out = v;
	*n = k;
	return 0;
}

void fleet_wave_text(const struct wave *w, char out[16])
{
	snprintf(out, 16, "%u%s", w->n, w->percent ? "%" : "");
}
