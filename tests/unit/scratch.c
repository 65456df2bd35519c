/* Scratch directories for unit tests (scratch.h). */
#include "scratch.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int scratch_make(char *dir, const char *name)
{
	const char *tmp = getenv("TMPDIR");
	int n;

	if (!tmp || !*tmp || strlen(tmp) + strlen(name) + 9 > SCRATCH_MAX)
		tmp = "/tmp";
	n = snprintf(dir, SCRATCH_MAX, "%s/%s.XXXXXX", tmp, name);
	if (n < 0 || n >= SCRATCH_MAX)
		return -1;
	return mkdtemp(dir) ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *st, int type,
		  struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

int scratch_remove(const char *dir)
{
	return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
