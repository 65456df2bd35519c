#include "failpoint.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_POINTS 16

static struct {
	const char *name;
	long count;
} seen[MAX_POINTS];

static long bump(const char *name)
{
	for (int i = 0; i < MAX_POINTS; i++) {
		if (!seen[i].name) {
			seen[i].name = name;
			return seen[i].count = 1;
		}
		if (strcmp(seen[i].name, name) == 0)
			return ++seen[i].count;
	}
	return 0;
}

bool failpoint(const char *name)
{
	const char *fp = getenv("RUNBOOK_FAILPOINT");
	size_t len = strlen(name);
	long n = 0;

	if (!fp)
		return false;
	for (const char *p = fp; *p; p += strcspn(p, ",")) {
		if (*p == ',')
			p++;
		if (strncmp(p, name, len) != 0 || p[len] != ':')
			continue;
		if (!n)
			n = bump(name);
		if (n == strtol(p + len + 1, NULL, 10))
			return true;
	}
	return false;
}

void failpoint_kill(const char *name)
{
	if (failpoint(name)) {
		raise(SIGKILL);
		_exit(137);
	}
}
