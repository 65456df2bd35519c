/*
 * main() for a harness outside libFuzzer: runs LLVMFuzzerTestOneInput()
 * once on each file named, and on each file of each directory named
 * (in name order, not recursing). This is how `meson test --suite
 * fuzz-regress` replays the corpus and every crash ever found with any
 * compiler. Exits 0 after running at least one input, 2 when an
 * argument cannot be read or names no input (a test that ran nothing
 * has proved nothing); a crash ends it like any crash.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "fuzz.h"

static int run_file(const char *path)
{
	struct buf b = BUF_INIT;
	char chunk[65536];
	size_t n;
	FILE *f = fopen(path, "rbe");

	if (!f) {
		fprintf(stderr, "driver: cannot read '%s': %s\n", path,
			strerror(errno));
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(&b, chunk, n);
	fclose(f);
	printf("%s\n", path);
	fflush(stdout);
	/* an exact copy: a harness that reads past size must be caught */
	{
		uint8_t *data = xmalloc(b.len ? b.len : 1);

		memcpy(data, b.data ? b.data : "", b.len);
		LLVMFuzzerTestOneInput(data, b.len);
		free(data);
	}
	buf_release(&b);
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file in dir; returns how many, or -1. */
static long run_dir(const char *dir)
{
	struct strvec names = STRVEC_INIT;
	struct dirent *e;
	long ran = 0;
	DIR *d = opendir(dir);

	if (!d) {
		fprintf(stderr, "driver: cannot list '%s': %s\n", dir,
			strerror(errno));
		return -1;
	}
	while ((e = readdir(d))) {
		struct buf p = BUF_INIT;
		struct stat st;

		buf_addf(&p, "%s/%s", dir, e->d_name);
		if (e->d_name[0] != '.' && stat(buf_str(&p), &st) == 0 &&
		    S_ISREG(st.st_mode))
			strvec_push_owned(&names, buf_detach(&p));
		buf_release(&p);
	}
	closedir(d);
	if (names.n)
		qsort(names.v, names.n, sizeof(*names.v), cmp_name);
	for (size_t i = 0; i < names.n && ran >= 0; i++)
		ran = run_file(names.v[i]) < 0 ? -1 : ran + 1;
	strvec_release(&names);
	return ran;
}

int main(int argc, char **argv)
{
	long total = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		long n;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "driver: cannot read '%s': %s\n",
				argv[i], strerror(errno));
			return 2;
		}
		n = S_ISDIR(st.st_mode) ? run_dir(argv[i]) :
			run_file(argv[i]) < 0 ? -1 : 1;
		if (n < 0)
			return 2;
		total += n;
	}
	if (total == 0) {
		fprintf(stderr, "driver: no input to run\n");
		return 2;
	}
	printf("%ld inputs ran\n", total);
	return 0;
}
