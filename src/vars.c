/* Variable sets: a small ordered map; lookups are linear (tens of names). */
#include "vars.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "runbook.h"

void varset_set(struct varset *vs, const char *name, const char *value)
{
	size_t cap;

	for (size_t i = 0; i < vs->n; i++) {
		if (strcmp(vs->names[i], name) == 0) {
			free(vs->values[i]);
			vs->values[i] = xstrdup(value);
			return;
		}
	}
	cap = vs->cap;
	vs->names = xgrow(vs->names, &cap, vs->n + 1, sizeof(char *));
	cap = vs->cap;
	vs->values = xgrow(vs->values, &cap, vs->n + 1, sizeof(char *));
	vs->cap = cap;
	vs->names[vs->n] = xstrdup(name);
	vs->values[vs->n] = xstrdup(value);
	vs->n++;
}

const char *varset_get(const struct varset *vs, const char *name)
{
	for (size_t i = 0; i < vs->n; i++)
		if (strcmp(vs->names[i], name) == 0)
			return vs->values[i];
	return NULL;
}

void varset_copy(struct varset *dst, const struct varset *src)
{
	for (size_t i = 0; i < src->n; i++)
		varset_set(dst, src->names[i], src->values[i]);
}

void varset_release(struct varset *vs)
{
	for (size_t i = 0; i < vs->n; i++) {
		free(vs->names[i]);
		free(vs->values[i]);
	}
	free(vs->names);
	free(vs->values);
	vs->names = vs->values = NULL;
	vs->n = vs->cap = 0;
}

int varset_parse_assignment(struct varset *vs, const char *arg)
{
	const char *eq = strchr(arg, '=');
	char *name;
	int ret = -1;

	if (!eq)
		return -1;
	name = xstrndup(arg, (size_t)(eq - arg));
	if (is_var_name(name)) {
		varset_set(vs, name, eq + 1);
		ret = 0;
	}
	free(name);
	return ret;
}
