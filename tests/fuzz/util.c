/*
 * Helpers of the fuzz harnesses (fuzz.h). A failure here is a broken
 * test machine, not a finding: it says so and exits 2.
 */
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "change.h"
#include "error.h"
#include "note.h"

static char *tmpdir;
static pid_t tmpdir_owner;

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tmpdir(void)
{
	/* a child (sshd for fuzz_knownhosts) must not take it along */
	if (tmpdir && getpid() == tmpdir_owner)
		nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * Under $TMPDIR (else /tmp). A crash, and libFuzzer's own exit, skip
 * the removal: .ci/run points TMPDIR into build-fuzz for that.
 */
const char *fuzz_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	struct buf tpl = BUF_INIT;

	if (tmpdir)
		return tmpdir;
	buf_addf(&tpl, "%s/runbook-fuzz.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tpl.data)) {
		fprintf(stderr, "fuzz: cannot create a temp dir in '%s': %s\n",
			base && *base ? base : "/tmp", strerror(errno));
		exit(2);
	}
	tmpdir = buf_detach(&tpl);
	tmpdir_owner = getpid();
	atexit(rm_tmpdir);
	return tmpdir;
}

char *fuzz_path(const char *rel)
{
	struct buf b = BUF_INIT;

	buf_addf(&b, "%s/%s", fuzz_tmpdir(), rel);
	return buf_detach(&b);
}

void fuzz_write(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) < 0) {
		fprintf(stderr, "fuzz: cannot write '%s': %s\n", path,
			strerror(errno));
		exit(2);
	}
}

char *fuzz_str(const uint8_t *data, size_t size)
{
	return xstrndup((const char *)data, size);
}

void fuzz_note_roundtrip(const struct change_rec *c)
{
	struct buf fm = BUF_INIT, again = BUF_INIT, note = BUF_INIT;
	struct rb_error err = RB_ERROR_INIT;
	struct change_rec *back = NULL;
	char why[160];

	/* notes refuse records whose names could not name files */
	if (!c->id || !change_id_check(c->id, time(NULL), why) ||
	    (c->target && !is_runbook_name(c->target)) ||
	    (c->runbook && !is_runbook_name(c->runbook)))
		return;
	note_render(c, &note);
	note_front_matter(c, &fm);
	if (note_parse(note.data, note.len, c->id, &back, &err) < 0)
		fuzz_fail("a rendered note does not parse: %s\n%s", err.msg,
			  buf_str(&note));
	note_front_matter(back, &again);
	if (strcmp(buf_str(&fm), buf_str(&again)) != 0)
		fuzz_fail("a note read back changed:\n%s\nbecame\n%s",
			  buf_str(&fm), buf_str(&again));
	change_free(back);
	buf_release(&fm);
	buf_release(&again);
	buf_release(&note);
}

void fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("fuzz: check failed: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}
