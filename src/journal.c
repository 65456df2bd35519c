/*
 * Journal files. Invariant: every record that journal_append() returned
 * 0 for is complete and fsynced; a reader validates each record (magic,
 * length, CRC) so a torn or reordered tail is detected, never trusted.
 */
#include "journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "failpoint.h"
#include "hash.h"
#include "statedir.h"

#define MAGIC "RBJ1"

struct journal {
	int fd;
	char *path;
	bool broken;
};

/* dir/journal, or dir/journal/done with done set: created, checked. */
static int journal_dir(const char *dir, bool done, struct rb_error *err)
{
	struct buf d = BUF_INIT;
	int ret;

	buf_addf(&d, "%s/journal", dir);
	ret = state_dir(buf_str(&d), true, err);
	if (ret == 0 && done) {
		buf_adds(&d, "/done");
		ret = state_dir(buf_str(&d), true, err);
	}
	buf_release(&d);
	return ret;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -1;
	ret = fsync(fd);
	close(fd);
	return ret;
}

static char *jpath(const char *dir, const char *sub, const char *id)
{
	struct buf b = BUF_INIT;

	buf_addf(&b, "%s/journal%s/%s.log", dir, sub, id);
	return buf_detach(&b);
}

/*
 * Failpoint journal-fsync:N: the Nth flush fails with EIO. fdatasync()
 * is enough: an append changes the size, which it flushes with the
 * data; the directory entry of a new journal is fsynced on creation.
 */
static int do_fsync(int fd)
{
	if (failpoint("journal-fsync")) {
		errno = EIO;
		return -1;
	}
	return fdatasync(fd);
}

static int open_at(const char *dir, const char *id, int flags,
		   struct journal **out, struct rb_error *err)
{
	struct buf d = BUF_INIT;
	struct journal *j;
	int fd;

	buf_addf(&d, "%s/journal", dir);
	if (state_dir(dir, true, err) < 0 || journal_dir(dir, false, err) < 0) {
		buf_release(&d);
		return -1;
	}
	j = xcalloc(1, sizeof(*j));
	j->path = jpath(dir, "", id);
	fd = open(j->path, flags | O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd < 0) {
		rb_error_errno(err, RB_ERR_PARTIAL, "cannot open journal '%s'",
			       j->path);
		free(j->path);
		free(j);
		buf_release(&d);
		return -1;
	}
	/* the kernel's lock says the change is live, whatever the lock file */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		rb_error_set(err, RB_ERR_BUSY,
			     "change %s is still running: another runbook process is writing its journal '%s'; nothing was run, try again when it has finished (runbook status shows it)",
			     id, j->path);
		close(fd);
		free(j->path);
		free(j);
		buf_release(&d);
		return -1;
	}
	j->fd = fd;
	if ((flags & O_CREAT) && fsync_dir(buf_str(&d)) < 0) {
		rb_error_errno(err, RB_ERR_PARTIAL,
			       "cannot make journal '%s' durable", j->path);
		journal_close(j);
		buf_release(&d);
		return -1;
	}
	buf_release(&d);
	*out = j;
	return 0;
}

int journal_create(const char *dir, const char *id, struct journal **out,
		   struct rb_error *err)
{
	return open_at(dir, id, O_CREAT | O_EXCL, out, err);
}

int journal_open(const char *dir, const char *id, struct journal **out,
		 struct rb_error *err)
{
	char *done = jpath(dir, "/done", id), *live = jpath(dir, "", id);
	int ret;

	/* reopening a finished change's journal brings it back to journal/ */
	if (access(live, F_OK) < 0 && access(done, F_OK) == 0)
		rename(done, live);
	ret = open_at(dir, id, access(live, F_OK) == 0 ? 0 : O_CREAT, out, err);
	free(done);
	free(live);
	return ret;
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

int journal_append(struct journal *j, const char *payload, size_t len,
		   struct rb_error *err)
{
	return journal_append_ex(j, payload, len, true, err);
}

int journal_append_ex(struct journal *j, const char *payload, size_t len,
		      bool sync, struct rb_error *err)
{
	struct buf rec = BUF_INIT;
	unsigned char hdr[12];
	size_t off = 0;
	int ret = -1;

	if (j->broken) {
		rb_error_set(err, RB_ERR_PARTIAL,
			     "journal '%s' failed earlier; nothing more is recorded",
			     j->path);
		return -1;
	}
	if (len > JOURNAL_MAX_RECORD) {
		rb_error_set(err, RB_ERR_PARTIAL,
			     "journal record of %zu bytes is too large", len);
		return -1;
	}
	memcpy(hdr, MAGIC, 4);
	put32(hdr + 4, (uint32_t)len);
	put32(hdr + 8, crc32c(0, payload, len));
	buf_add(&rec, hdr, sizeof(hdr));
	buf_add(&rec, payload, len);
	buf_addc(&rec, '\n');
	while (off < rec.len) {
		ssize_t w = write(j->fd, rec.data + off, rec.len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rb_error_errno(err, RB_ERR_PARTIAL,
				       "cannot write journal '%s'", j->path);
			j->broken = true;
			goto out;
		}
		off += (size_t)w;
	}
	if (sync && do_fsync(j->fd) < 0) {
		/* after a failed fsync the data may be gone: stop for good */
		rb_error_errno(err, RB_ERR_PARTIAL,
			       "cannot flush journal '%s' to disk", j->path);
		j->broken = true;
		goto out;
	}
	ret = 0;
out:
	buf_release(&rec);
	return ret;
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	close(j->fd);
	free(j->path);
	free(j);
}

int journal_retire(const char *dir, const char *id, struct rb_error *err)
{
	struct buf d = BUF_INIT;
	char *from = jpath(dir, "", id), *to = jpath(dir, "/done", id);
	int ret = -1;

	buf_addf(&d, "%s/journal/done", dir);
	if (journal_dir(dir, true, err) < 0)
		goto out;
	if (rename(from, to) < 0 || fsync_dir(buf_str(&d)) < 0) {
		rb_error_errno(err, RB_ERR_PARTIAL,
			       "cannot move journal '%s' to done", from);
		goto out;
	}
	buf_reset(&d);
	buf_addf(&d, "%s/journal", dir);
	fsync_dir(buf_str(&d));
	ret = 0;
out:
	buf_release(&d);
	free(from);
	free(to);
	return ret;
}

int journal_set_aside(const char *dir, const char *id, struct rb_error *err)
{
	struct buf d = BUF_INIT, to = BUF_INIT;
	char *from = jpath(dir, "", id);
	int ret = -1;

	buf_addf(&d, "%s/journal/done", dir);
	buf_addf(&to, "%s/%s.broken", buf_str(&d), id);
	if (journal_dir(dir, true, err) < 0)
		goto out;
	if (rename(from, buf_str(&to)) < 0) {
		rb_error_errno(err, RB_ERR_PARTIAL,
			       "cannot set aside the journal '%s' that could not be written",
			       from);
		goto out;
	}
	fsync_dir(buf_str(&d));
	ret = 0;
out:
	buf_release(&d);
	buf_release(&to);
	free(from);
	return ret;
}

static int read_all(const char *path, struct buf *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	char chunk[65536];
	ssize_t r;

	if (fd < 0)
		return -1;
	while ((r = read(fd, chunk, sizeof(chunk))) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			close(fd);
			return -1;
		}
		buf_add(out, chunk, (size_t)r);
	}
	close(fd);
	return 0;
}

/*
 * A whole record (magic, length, CRC and newline right) starts after
 * the first byte of p: what comes before it is damage, not a torn end.
 * The magic alone is not enough: a torn record's payload may hold it.
 */
static bool record_follows(const unsigned char *p, size_t left)
{
	for (size_t i = 1; i + 12 < left;) {
		const unsigned char *q = memmem(p + i, left - i, MAGIC, 4);
		size_t rest, len;

		if (!q)
			return false;
		rest = left - (size_t)(q - p);
		if (rest >= 12 && (len = get32(q + 4)) <= JOURNAL_MAX_RECORD &&
		    rest >= 12 + len + 1 && q[12 + len] == '\n' &&
		    crc32c(0, q + 12, len) == get32(q + 8))
			return true;
		i = (size_t)(q - p) + 1;
	}
	return false;
}

/* Journals are read only from a state directory that passes its checks. */
static int journal_dir_ok(const char *dir, struct rb_error *err)
{
	struct buf d = BUF_INIT;
	int ret;

	buf_addf(&d, "%s/journal", dir);
	ret = state_dir(buf_str(&d), false, err);
	if (ret == 0) {
		buf_adds(&d, "/done");
		ret = state_dir(buf_str(&d), false, err);
	}
	buf_release(&d);
	return ret < 0 ? -1 : 0;
}

/*
 * Cuts a torn end at off, unless the journal is live: then the "torn"
 * record is the one its writer is appending, and nothing is cut.
 */
static int cut(const char *path, size_t off, bool *torn)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	int ret = 0;

	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		*torn = false;	/* live (or unlockable): leave it */
	else
		ret = ftruncate(fd, (off_t)off);
	close(fd);
	return ret;
}

int journal_read(const char *dir, const char *id, bool repair,
		 int (*fn)(void *ctx, const char *payload, size_t len),
		 void *ctx, bool *torn, struct rb_error *err)
{
	char *path = jpath(dir, "", id);
	struct buf data = BUF_INIT;
	size_t off = 0;
	int ret = -1;

	*torn = false;
	if (journal_dir_ok(dir, err) < 0)
		goto out;
	if (read_all(path, &data) < 0) {
		free(path);
		path = jpath(dir, "/done", id);
		if (read_all(path, &data) < 0) {
			rb_error_errno(err, RB_ERR_INVALID,
				       "cannot read journal of change %s", id);
			goto out;
		}
	}
	while (off < data.len) {
		const unsigned char *p = (const unsigned char *)data.data + off;
		size_t left = data.len - off, len;

		if (left < 12 || memcmp(p, MAGIC, 4) != 0 ||
		    (len = get32(p + 4)) > JOURNAL_MAX_RECORD ||
		    left < 12 + len + 1 || p[12 + len] != '\n' ||
		    crc32c(0, p + 12, len) != get32(p + 8)) {
			/* a torn record is the last one: no record follows it */
			if (record_follows(p, left)) {
				rb_error_set(err, RB_ERR_PARTIAL,
					     "journal '%s' is corrupt at byte %zu (a record fails its checksum); do not run apply on this target; inspect the file",
					     path, off);
				goto out;
			}
			*torn = true;
			if (repair && cut(path, off, torn) < 0) {
				rb_error_errno(err, RB_ERR_PARTIAL,
					       "cannot cut the torn end of journal '%s'",
					       path);
				goto out;
			}
			break;
		}
		if (fn(ctx, (const char *)p + 12, len) < 0)
			goto out;
		off += 12 + len + 1;
	}
	ret = 0;
out:
	free(path);
	buf_release(&data);
	return ret;
}

bool journal_live(const char *dir, const char *id)
{
	char *path = jpath(dir, "", id);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	bool live = false;

	free(path);
	if (fd < 0)
		return false;
	if (flock(fd, LOCK_SH | LOCK_NB) < 0)
		live = errno == EWOULDBLOCK;
	close(fd);
	return live;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int journal_list(const char *dir, char ***ids, size_t *n,
		 struct rb_error *err)
{
	struct buf d = BUF_INIT;
	struct dirent *e;
	size_t cap = 0;
	DIR *dp;

	*ids = NULL;
	*n = 0;
	buf_addf(&d, "%s/journal", dir);
	if (state_dir(buf_str(&d), false, err) < 0) {
		buf_release(&d);
		return -1;
	}
	dp = opendir(buf_str(&d));
	if (!dp) {
		int e2 = errno;

		buf_release(&d);
		if (e2 == ENOENT)
			return 0;
		errno = e2;
		rb_error_errno(err, RB_ERR_PARTIAL, "cannot list journals");
		return -1;
	}
	while ((e = readdir(dp))) {
		size_t len = strlen(e->d_name);

		if (len < 5 || strcmp(e->d_name + len - 4, ".log") != 0)
			continue;
		*ids = xgrow(*ids, &cap, *n + 1, sizeof(**ids));
		(*ids)[(*n)++] = xstrndup(e->d_name, len - 4);
	}
	closedir(dp);
	buf_release(&d);
	if (*n)
		qsort(*ids, *n, sizeof(**ids), cmp_str);
	return 0;
}
