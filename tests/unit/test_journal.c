/*
 * The journal: records come back in the order they were appended, in
 * the documented byte format; a bad record with records after it is
 * corruption (never skipped, never cut); a torn last record is dropped
 * and, on request, cut off so that appending works again; an fsync
 * failure stops the journal for good. Real files in a temporary
 * directory that stands for <gitdir>/runbook.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "hash.h"
#include "journal.h"

#include "scratch.h"

struct fixture {
	char dir[SCRATCH_MAX];
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	if (scratch_make(f->dir, "test_journal") < 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	scratch_remove(f->dir);
	free(f);
	return 0;
}

/* <dir>/journal<sub>/<id>.log; sub is "" or "/done". */
static char *jfile(const struct fixture *f, const char *sub, const char *id)
{
	struct buf b = BUF_INIT;

	buf_addf(&b, "%s/journal%s/%s.log", f->dir, sub, id);
	return buf_detach(&b);
}

static off_t file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static void slurp(const char *path, struct buf *out)
{
	char chunk[65536];
	int fd = open(path, O_RDONLY);
	ssize_t r;

	assert_true(fd >= 0);
	while ((r = read(fd, chunk, sizeof(chunk))) > 0)
		buf_add(out, chunk, (size_t)r);
	assert_true(r == 0);
	close(fd);
}

static void spit(const char *path, const void *data, size_t len, int flags)
{
	int fd = open(path, O_WRONLY | flags);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* What journal_read() handed over, in order. */
struct got {
	struct strvec v;
	size_t lens[64];
	int fail_at;		/* the callback fails on this call (1-based) */
	int calls;
};

#define GOT_INIT { STRVEC_INIT, { 0 }, 0, 0 }

static int collect(void *ctx, const char *payload, size_t len)
{
	struct got *g = ctx;

	g->calls++;
	if (g->fail_at && g->calls == g->fail_at)
		return -1;
	assert_true(g->v.n < 64);
	g->lens[g->v.n] = len;
	strvec_push_owned(&g->v, xstrndup(payload, len));
	return 0;
}

static void got_reset(struct got *g)
{
	strvec_release(&g->v);
	g->calls = 0;
	g->fail_at = 0;
}

static int read_j(const struct fixture *f, const char *id, bool repair,
		  struct got *g, bool *torn, struct rb_error *err)
{
	got_reset(g);
	*torn = true;	/* journal_read() must set it either way */
	rb_error_clear(err);
	return journal_read(f->dir, id, repair, collect, g, torn, err);
}

static void append_s(struct journal *j, const char *s)
{
	struct rb_error err = RB_ERROR_INIT;

	assert_int_equal(journal_append(j, s, strlen(s), &err), 0);
	assert_int_equal(err.cls, RB_OK);
}

/* Size of one record on disk: header, payload, newline. */
static size_t rec_size(const char *payload)
{
	return 12 + strlen(payload) + 1;
}

/* The middle one holds the magic in its payload: harmless in a good record. */
static const char *const three[] = {
	"{\"t\":\"open\",\"change\":\"c1\"}",
	"{\"t\":\"step-begin\",\"command\":\"echo 'RBJ1' \\\"x\\\"\\n\"}",
	"{\"t\":\"step-end\",\"result\":\"ok\",\"output\":\"h\\u00e9llo\"}",
};

/* A journal "c1" with the three records above. */
static char *make_three(const struct fixture *f)
{
	struct rb_error err = RB_ERROR_INIT;
	struct journal *j = NULL;

	assert_int_equal(journal_create(f->dir, "c1", &j, &err), 0);
	assert_non_null(j);
	for (size_t i = 0; i < 3; i++)
		append_s(j, three[i]);
	journal_close(j);
	return jfile(f, "", "c1");
}

/* The first n records of three[] came back, whatever followed them. */
static void assert_prefix(const struct got *g, size_t n)
{
	assert_true(g->v.n >= n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(g->v.v[i], three[i]);
}

/* Exactly the first n records of three[] came back. */
static void assert_first(const struct got *g, size_t n)
{
	assert_int_equal(g->v.n, n);
	assert_prefix(g, n);
}

static void test_journal_records_in_order(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = RB_ERROR_INIT;
	struct journal *j = NULL;
	struct got g = GOT_INIT;
	struct buf raw = BUF_INIT;
	static const char bin[] = { '{', '\0', '\n', (char)0xff, '}' };
	const char *p;
	char *path;
	bool torn;

	assert_int_equal(journal_create(f->dir, "20240101T000000Z-x-0a0b0c0d",
					&j, &err), 0);
	append_s(j, "{\"n\":1}");
	/* an empty payload and arbitrary bytes are records like any other */
	assert_int_equal(journal_append(j, "", 0, &err), 0);
	assert_int_equal(journal_append(j, bin, sizeof(bin), &err), 0);
	/* unsynced records are written as well */
	assert_int_equal(journal_append_ex(j, "{\"n\":4}", 7, false, &err), 0);
	append_s(j, "{\"n\":5}");
	journal_close(j);

	assert_int_equal(read_j(f, "20240101T000000Z-x-0a0b0c0d", false, &g,
				&torn, &err), 0);
	assert_false(torn);
	assert_int_equal(g.v.n, 5);
	assert_string_equal(g.v.v[0], "{\"n\":1}");
	assert_int_equal(g.lens[1], 0);
	assert_int_equal(g.lens[2], sizeof(bin));
	assert_memory_equal(g.v.v[2], bin, sizeof(bin));
	assert_string_equal(g.v.v[3], "{\"n\":4}");
	assert_string_equal(g.v.v[4], "{\"n\":5}");

	/*
	 * The bytes are the format of journal.h: "RBJ1", u32 length LE,
	 * u32 CRC-32C of the payload LE, the payload, "\n".
	 */
	path = jfile(f, "", "20240101T000000Z-x-0a0b0c0d");
	slurp(path, &raw);
	assert_int_equal(raw.len, 5 * 13 + 7 + 0 + sizeof(bin) + 7 + 7);
	p = raw.data;
	assert_memory_equal(p, "RBJ1", 4);
	assert_memory_equal(p + 4, "\x07\x00\x00\x00", 4);
	{
		uint32_t crc = crc32c(0, "{\"n\":1}", 7);
		unsigned char le[4] = { (unsigned char)crc,
					(unsigned char)(crc >> 8),
					(unsigned char)(crc >> 16),
					(unsigned char)(crc >> 24) };

		assert_memory_equal(p + 8, le, 4);
	}
	assert_memory_equal(p + 12, "{\"n\":1}\n", 8);
	/* the empty record: length 0, CRC of nothing is 0 */
	assert_memory_equal(p + 20, "RBJ1\0\0\0\0\0\0\0\0\n", 13);
	assert_memory_equal(p + 33, "RBJ1\x05\0\0\0", 8);
	free(path);
	buf_release(&raw);
	got_reset(&g);
}

static void test_journal_create_is_exclusive(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = RB_ERROR_INIT;
	struct journal *j = NULL, *j2 = NULL;
	char *path = make_three(f);
	off_t size = file_size(path);

	assert_int_equal(journal_create(f->dir, "c1", &j2, &err), -1);
	assert_null(j2);
	assert_int_equal(err.cls, RB_ERR_PARTIAL);
	assert_non_null(strstr(err.msg, path));
	assert_int_equal(file_size(path), size);

	/* a second change gets its own file */
	rb_error_clear(&err);
	assert_int_equal(journal_create(f->dir, "c2", &j, &err), 0);
	journal_close(j);
	free(path);
	path = jfile(f, "", "c2");
	assert_int_equal(file_size(path), 0);
	free(path);
}

static void test_journal_modes(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = RB_ERROR_INIT;
	struct journal *j = NULL;
	struct buf d = BUF_INIT;
	struct stat st;
	mode_t old = umask(0);
	char *path, *done;

	/* even with umask 0 nothing is readable by others */
	assert_int_equal(journal_create(f->dir, "m1", &j, &err), 0);
	append_s(j, "{}");
	journal_close(j);
	umask(old);

	buf_addf(&d, "%s/journal", f->dir);
	assert_int_equal(stat(buf_str(&d), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	path = jfile(f, "", "m1");
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);

	umask(0);
	assert_int_equal(journal_retire(f->dir, "m1", &err), 0);
	umask(old);
	buf_adds(&d, "/done");
	assert_int_equal(stat(buf_str(&d), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	done = jfile(f, "/done", "m1");
	assert_int_equal(lstat(done, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	free(path);
	free(done);
	buf_release(&d);
}

/*
 * Damage record 2 of 3 in several ways: each is corruption at record
 * 2's offset, reported with the file, and never cut even with repair.
 */
static void test_journal_bad_middle_record_is_corruption(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = RB_ERROR_INIT;
	struct got g = GOT_INIT;
	struct buf orig = BUF_INIT, bad = BUF_INIT, want = BUF_INIT;
	char *path = make_three(f);
	size_t off2 = rec_size(three[0]);
	/* payload byte, magic, length, CRC field, terminating newline */
	const size_t where[] = { off2 + 12 + 3, off2 + 1, off2 + 4, off2 + 9,
				 off2 + rec_size(three[1]) - 1 };
	bool torn;

	slurp(path, &orig);
	/* the whole offset: not a prefix of a longer number */
	buf_addf(&want, "journal '%s' is corrupt at byte %zu ", path, off2);
	for (size_t k = 0; k < sizeof(where) / sizeof(*where); k++) {
		for (int repair = 0; repair < 2; repair++) {
			buf_reset(&bad);
			buf_add(&bad, orig.data, orig.len);
			bad.data[where[k]] ^= 0x01;
			spit(path, bad.data, bad.len, O_TRUNC);

			assert_int_equal(read_j(f, "c1", repair, &g, &torn,
						&err), -1);
			assert_int_equal(err.cls, RB_ERR_PARTIAL);
			assert_non_null(strstr(err.msg, buf_str(&want)));
			/* the records before it were read, nothing after */
			assert_first(&g, 1);
			/* corruption is evidence: the file is left as it was */
			assert_int_equal(file_size(path), (off_t)orig.len);
		}
	}
	got_reset(&g);
	buf_release(&orig);
	buf_release(&bad);
	buf_release(&want);
	free(path);
}

/*
 * A crash while the last record was written leaves any prefix of it.
 * Every cut from 4 bytes into it to one byte short of its end is torn:
 * dropped, reported, kept without repair and cut off with it.
 * (Cuts of 1 to 3 bytes: see test_journal_tiny_torn_tail below.)
 */
static void test_journal_torn_last_record_every_cut(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = RB_ERROR_INIT;
	struct got g = GOT_INIT;
	struct buf orig = BUF_INIT;
	char *path = make_three(f);
	size_t off3 = rec_size(three[0]) + rec_size(three[1]);
	bool torn;

	slurp(path, &orig);
	assert_int_equal(orig.len, off3 + rec_size(three[2]));
	for (size_t cut = off3 + 4; cut < orig.len; cut++) {
		spit(path, orig.data, orig.len, O_TRUNC);
		assert_int_equal(truncate(path, (off_t)cut), 0);

		assert_int_equal(read_j(f, "c1", false, &g, &torn, &err), 0);
		assert_true(torn);
		assert_first(&g, 2);
		assert_int_equal(file_size(path), (off_t)cut);

		assert_int_equal(read_j(f, "c1", true, &g, &torn, &err), 0);
		assert_true(torn);
		assert_first(&g, 2);
		assert_int_equal(file_size(path), (off_t)off3);

		/* repaired: clean now */
		assert_int_equal(read_j(f, "c1", false, &g, &torn, &err), 0);
		assert_false(torn);
		assert_first(&g, 2);
	}

	/* a cut exactly between records is not torn at all */
	spit(path, orig.data, off3, O_TRUNC);
	assert_int_equal(read_j(f, "c1", true, &g, &torn, &err), 0);
	assert_false(torn);
	assert_first(&g, 2);
	assert_int_equal(file_size(path), (off_t)off3);

	got_reset(&g);
	buf_release(&orig);
	free(path);
}

/* Garbage after the last record (a preallocated block, half a write). */
static void test_journal_garbage_tail(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = RB_ERROR_INIT;
	struct got g = GOT_INIT;
	char *path = make_three(f);
	off_t size = file_size(path);
	char zeros[4096] = { 0 };
	const char *text = "RBJ\x7f{\"t\":\"step-b";
	bool torn;

	spit(path, zeros, sizeof(zeros), O_APPEND);
	assert_int_equal(read_j(f, "c1", false, &g, &torn, &err), 0);
	assert_true(torn);
	assert_first(&g, 3);
	assert_int_equal(file_size(path), size + (off_t)sizeof(zeros));
	assert_int_equal(read_j(f, "c1", true, &g, &torn, &err), 0);
	assert_true(torn);
	assert_int_equal(file_size(path), size);

	spit(path, text, strlen(text), O_APPEND);
	assert_int_equal(read_j(f, "c1", true, &g, &torn, &err), 0);
	assert_true(torn);
	assert_first(&g, 3);
	assert_int_equal(file_size(path), size);
	got_reset(&g);
	free(path);
}

/* After a repair the journal takes new records and reads clean. */
static void test_journal_repair_then_append(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = RB_ERROR_INIT;
	struct got g = GOT_INIT;
	struct journal *j = NULL;
	char *path = make_three(f);
	off_t size = file_size(path);
	bool torn;

	assert_int_equal(truncate(path, size - 5), 0);
	assert_int_equal(read_j(f, "c1", true, &g, &torn, &err), 0);
	assert_true(torn);
	assert_int_equal(journal_open(f->dir, "c1", &j, &err), 0);
	append_s(j, "{\"t\":\"rollback-begin\"}");
	journal_close(j);
	assert_int_equal(read_j(f, "c1", false, &g, &torn, &err), 0);
	assert_false(torn);
	assert_int_equal(g.v.n, 3);
	assert_string_equal(g.v.v[0], three[0]);
	assert_string_equal(g.v.v[1], three[1]);
	assert_string_equal(g.v.v[2], "{\"t\":\"rollback-begin\"}");
	got_reset(&g);
	free(path);
}

/*
 * Without the repair, a record appended after a torn one turns the
 * torn one into a bad record in the middle: corruption. This is why a
 * reader that will append must repair first.
 */
static void test_journal_append_after_unrepaired_tear_is_corrupt(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = RB_ERROR_INIT;
	struct got g = GOT_INIT;
	struct journal *j = NULL;
	char *path = make_three(f);
	off_t size = file_size(path);
	bool torn;

	assert_int_equal(truncate(path, size - 5), 0);
	assert_int_equal(read_j(f, "c1", false, &g, &torn, &err), 0);
	assert_true(torn);
	assert_int_equal(journal_open(f->dir, "c1", &j, &err), 0);
	append_s(j, "{\"t\":\"late\"}");
	journal_close(j);
	assert_int_equal(read_j(f, "c1", true, &g, &torn, &err), -1);
	assert_int_equal(err.cls, RB_ERR_PARTIAL);
	assert_non_null(strstr(err.msg, "corrupt"));
	assert_first(&g, 2);
	got_reset(&g);
	free(path);
}

static void test_journal_open_appends_after_existing(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = RB_ERROR_INIT;
	struct got g = GOT_INIT;
	struct journal *j = NULL;
	char *path = make_three(f), *done;
	bool torn;

	assert_int_equal(journal_open(f->dir, "c1", &j, &err), 0);
	append_s(j, "{\"t\":\"close\"}");
	journal_close(j);
	assert_int_equal(journal_open(f->dir, "c1", &j, &err), 0);
	append_s(j, "{\"t\":\"note\"}");
	journal_close(j);
	assert_int_equal(read_j(f, "c1", false, &g, &torn, &err), 0);
	assert_false(torn);
	assert_int_equal(g.v.n, 5);
	assert_prefix(&g, 3);
	assert_string_equal(g.v.v[3], "{\"t\":\"close\"}");
	assert_string_equal(g.v.v[4], "{\"t\":\"note\"}");

	/* opening a change that has no journal yet starts one */
	assert_int_equal(journal_open(f->dir, "fresh", &j, &err), 0);
	append_s(j, "{\"t\":\"snapshot\"}");
	journal_close(j);
	assert_int_equal(read_j(f, "fresh", false, &g, &torn, &err), 0);
	assert_int_equal(g.v.n, 1);
	assert_string_equal(g.v.v[0], "{\"t\":\"snapshot\"}");

	/* opening a retired journal brings it back to journal/ */
	assert_int_equal(journal_retire(f->dir, "c1", &err), 0);
	done = jfile(f, "/done", "c1");
	assert_true(exists(done));
	assert_false(exists(path));
	assert_int_equal(journal_open(f->dir, "c1", &j, &err), 0);
	append_s(j, "{\"t\":\"rollback-begin\"}");
	journal_close(j);
	assert_true(exists(path));
	assert_false(exists(done));
	assert_int_equal(read_j(f, "c1", false, &g, &torn, &err), 0);
	assert_int_equal(g.v.n, 6);
	assert_string_equal(g.v.v[5], "{\"t\":\"rollback-begin\"}");
	got_reset(&g);
	free(path);
	free(done);
}

static void test_journal_list(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = RB_ERROR_INIT;
	struct journal *j = NULL;
	struct buf p = BUF_INIT;
	static const char *const ids[] = {
		"20240301T000000Z-b-00000002", "20240101T000000Z-z-00000001",
		"20240301T000000Z-a-00000003", "20231231T235959Z-q-00000004",
	};
	char **v = NULL;
	size_t n = 99;

	/* no journal directory yet: nothing unfinished, no error */
	assert_int_equal(journal_list(f->dir, &v, &n, &err), 0);
	assert_int_equal(n, 0);
	free(v);

	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(journal_create(f->dir, ids[i], &j, &err), 0);
		append_s(j, "{}");
		journal_close(j);
	}
	assert_int_equal(journal_retire(f->dir, ids[2], &err), 0);
	/* files that are not journals are not changes */
	buf_addf(&p, "%s/journal/README", f->dir);
	spit(buf_str(&p), "x", 1, O_CREAT);
	buf_reset(&p);
	buf_addf(&p, "%s/journal/x.log.tmp", f->dir);
	spit(buf_str(&p), "x", 1, O_CREAT);
	buf_reset(&p);
	buf_addf(&p, "%s/journal/.log", f->dir);
	spit(buf_str(&p), "x", 1, O_CREAT);

	assert_int_equal(journal_list(f->dir, &v, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0], "20231231T235959Z-q-00000004");
	assert_string_equal(v[1], "20240101T000000Z-z-00000001");
	assert_string_equal(v[2], "20240301T000000Z-b-00000002");
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
	buf_release(&p);
}

static void test_journal_retire(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = RB_ERROR_INIT;
	struct got g = GOT_INIT;
	char *path = make_three(f), *done = jfile(f, "/done", "c1");
	char **v = NULL;
	size_t n;
	bool torn;

	assert_int_equal(journal_retire(f->dir, "c1", &err), 0);
	assert_false(exists(path));
	assert_true(exists(done));
	assert_int_equal(journal_list(f->dir, &v, &n, &err), 0);
	assert_int_equal(n, 0);
	free(v);
	/* a finished change's journal is still read */
	assert_int_equal(read_j(f, "c1", false, &g, &torn, &err), 0);
	assert_false(torn);
	assert_first(&g, 3);

	/* nothing to retire: an error that names the journal */
	assert_int_equal(journal_retire(f->dir, "c1", &err), -1);
	assert_int_equal(err.cls, RB_ERR_PARTIAL);
	assert_non_null(strstr(err.msg, path));
	assert_true(exists(done));
	got_reset(&g);
	free(path);
	free(done);
}

static void test_journal_set_aside(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = RB_ERROR_INIT;
	struct got g = GOT_INIT;
	struct buf broken = BUF_INIT;
	char *path = make_three(f);
	char **v = NULL;
	size_t n;
	bool torn;

	assert_int_equal(journal_set_aside(f->dir, "c1", &err), 0);
	buf_addf(&broken, "%s/journal/done/c1.broken", f->dir);
	assert_true(exists(buf_str(&broken)));
	assert_false(exists(path));
	/* where no reader looks */
	assert_int_equal(journal_list(f->dir, &v, &n, &err), 0);
	assert_int_equal(n, 0);
	free(v);
	assert_int_equal(read_j(f, "c1", false, &g, &torn, &err), -1);
	assert_int_equal(err.cls, RB_ERR_INVALID);
	buf_release(&broken);
	got_reset(&g);
	free(path);
}

static void test_journal_read_missing_and_callback_error(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = RB_ERROR_INIT;
	struct got g = GOT_INIT;
	char *path = make_three(f);
	bool torn;

	assert_int_equal(read_j(f, "nope", false, &g, &torn, &err), -1);
	assert_int_equal(err.cls, RB_ERR_INVALID);
	assert_non_null(strstr(err.msg, "nope"));
	assert_false(torn);
	assert_int_equal(g.calls, 0);

	/* the callback's failure stops the read and is passed on */
	got_reset(&g);
	g.fail_at = 2;
	torn = true;
	assert_int_equal(journal_read(f->dir, "c1", false, collect, &g, &torn,
				      &err), -1);
	assert_int_equal(g.calls, 2);
	assert_int_equal(g.v.n, 1);
	got_reset(&g);
	free(path);
}

/* Journals are opened with O_NOFOLLOW: a planted symlink is not followed. */
static void test_journal_symlink_not_followed(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = RB_ERROR_INIT;
	struct got g = GOT_INIT;
	struct journal *j = NULL;
	struct buf victim = BUF_INIT, d = BUF_INIT;
	char *path = jfile(f, "", "evil");
	bool torn;

	buf_addf(&victim, "%s/victim", f->dir);
	spit(buf_str(&victim), "precious", 8, O_CREAT);
	buf_addf(&d, "%s/journal", f->dir);
	assert_int_equal(mkdir(buf_str(&d), 0700), 0);
	assert_int_equal(symlink(buf_str(&victim), path), 0);

	assert_int_equal(journal_open(f->dir, "evil", &j, &err), -1);
	assert_null(j);
	assert_int_equal(err.cls, RB_ERR_PARTIAL);
	assert_int_equal(journal_create(f->dir, "evil", &j, &err), -1);
	assert_int_equal(file_size(buf_str(&victim)), 8);
	assert_int_equal(read_j(f, "evil", false, &g, &torn, &err), -1);
	assert_int_equal(g.calls, 0);
	buf_release(&victim);
	buf_release(&d);
	got_reset(&g);
	free(path);
}

static void test_journal_max_record(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = RB_ERROR_INIT;
	struct got g = GOT_INIT;
	struct journal *j = NULL;
	char *big = xmalloc(JOURNAL_MAX_RECORD + 1), *path;
	bool torn;

	for (size_t i = 0; i < JOURNAL_MAX_RECORD + 1; i++)
		big[i] = (char)('a' + i % 23);
	assert_int_equal(journal_create(f->dir, "big", &j, &err), 0);
	path = jfile(f, "", "big");

	assert_int_equal(journal_append(j, big, JOURNAL_MAX_RECORD + 1, &err),
			 -1);
	assert_int_equal(err.cls, RB_ERR_PARTIAL);
	assert_non_null(strstr(err.msg, "too large"));
	assert_int_equal(file_size(path), 0);

	/* the limit itself is allowed, and refusing did not break the journal */
	rb_error_clear(&err);
	assert_int_equal(journal_append(j, big, JOURNAL_MAX_RECORD, &err), 0);
	append_s(j, "{}");
	journal_close(j);
	assert_int_equal(file_size(path), (off_t)(JOURNAL_MAX_RECORD + 13 + 15));

	assert_int_equal(read_j(f, "big", false, &g, &torn, &err), 0);
	assert_false(torn);
	assert_int_equal(g.v.n, 2);
	assert_int_equal(g.lens[0], JOURNAL_MAX_RECORD);
	assert_memory_equal(g.v.v[0], big, JOURNAL_MAX_RECORD);
	assert_string_equal(g.v.v[1], "{}");
	got_reset(&g);
	free(big);
	free(path);
}

/*
 * RUNBOOK_FAILPOINT=journal-fsync:N fails the Nth flush. failpoint.c
 * reads the variable at every pass, but counts passes once per process
 * and never resets: this is the only test of this executable that sets
 * it, and it sets it only around its own appends.
 */
static void test_journal_fsync_failure_is_final(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = RB_ERROR_INIT;
	struct got g = GOT_INIT;
	struct journal *j = NULL;
	char *path;
	off_t size;
	bool torn;

	assert_int_equal(journal_create(f->dir, "fs", &j, &err), 0);
	path = jfile(f, "", "fs");
	assert_int_equal(setenv("RUNBOOK_FAILPOINT", "journal-fsync:2", 1), 0);
	append_s(j, "{\"n\":1}");	/* flush 1 */
	/* not synced: not a flush, does not count */
	assert_int_equal(journal_append_ex(j, "{\"n\":2}", 7, false, &err), 0);
	assert_int_equal(journal_append(j, "{\"n\":3}", 7, &err), -1);	/* flush 2 */
	assert_int_equal(err.cls, RB_ERR_PARTIAL);
	assert_non_null(strstr(err.msg, "cannot flush journal"));
	assert_non_null(strstr(err.msg, path));
	size = file_size(path);

	/* from now on nothing is recorded, synced or not */
	rb_error_clear(&err);
	assert_int_equal(journal_append(j, "{\"n\":4}", 7, &err), -1);
	assert_int_equal(err.cls, RB_ERR_PARTIAL);
	assert_non_null(strstr(err.msg, "failed earlier"));
	rb_error_clear(&err);
	assert_int_equal(journal_append_ex(j, "{\"n\":5}", 7, false, &err), -1);
	assert_int_equal(err.cls, RB_ERR_PARTIAL);
	assert_int_equal(file_size(path), size);
	assert_int_equal(unsetenv("RUNBOOK_FAILPOINT"), 0);
	/* the failure is final even once the fault is gone */
	assert_int_equal(journal_append(j, "{\"n\":6}", 7, &err), -1);
	assert_int_equal(file_size(path), size);
	journal_close(j);

	/* what was written before is intact and readable */
	assert_int_equal(read_j(f, "fs", false, &g, &torn, &err), 0);
	assert_false(torn);
	/* the failpoint fails the flush only: record 3's bytes were written */
	assert_int_equal(g.v.n, 3);
	assert_string_equal(g.v.v[0], "{\"n\":1}");
	assert_string_equal(g.v.v[1], "{\"n\":2}");
	assert_string_equal(g.v.v[2], "{\"n\":3}");
	got_reset(&g);
	free(path);
}

/*
 * Regression test (it used to fail; src/journal.c, journal_read): a torn tail of 1 to 3 bytes
 * (a crash right after the first bytes of a header reached the file)
 * makes the "is anything after it" check call memmem(p + 4, left - 4)
 * with left < 4: the length wraps around to nearly SIZE_MAX and memmem
 * reads past the buffer (AddressSanitizer: negative-size-param). It
 * should be a torn record like any other. The read runs in a child so
 * a crash fails this test only.
 */
static void test_journal_tiny_torn_tail(void **state)
{
	struct fixture *f = *state;
	struct buf orig = BUF_INIT;
	char *path;
	size_t off3 = rec_size(three[0]) + rec_size(three[1]);

	path = make_three(f);
	slurp(path, &orig);
	for (size_t keep = 1; keep <= 3; keep++) {
		pid_t pid;
		int status;

		spit(path, orig.data, orig.len, O_TRUNC);
		assert_int_equal(truncate(path, (off_t)(off3 + keep)), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct rb_error err = RB_ERROR_INIT;
			struct got g = GOT_INIT;
			bool torn = false;
			int rc = journal_read(f->dir, "c1", true, collect, &g,
					      &torn, &err);

			_exit(rc == 0 && torn && g.v.n == 2 ? 0 : 1);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
		assert_int_equal(file_size(path), (off_t)off3);
	}
	buf_release(&orig);
	free(path);
}

/*
 * Regression test (it used to fail, safely; src/journal.c): whether a bad
 * record is "the last one" is decided by looking for the bytes "RBJ1"
 * anywhere after its start, payload included. A torn last record whose
 * payload holds that text (a step that printed a journal, say) is then
 * reported as corruption and recovery stops for a human, though no
 * record follows it.
 */
static void test_journal_torn_record_mentioning_magic(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = RB_ERROR_INIT;
	struct got g = GOT_INIT;
	struct journal *j = NULL;
	const char *last = "{\"t\":\"step-end\",\"output\":\"RBJ1 in the output\"}";
	char *path;
	off_t size;
	bool torn;

	assert_int_equal(journal_create(f->dir, "m", &j, &err), 0);
	append_s(j, three[0]);
	append_s(j, last);
	journal_close(j);
	path = jfile(f, "", "m");
	size = file_size(path);
	assert_int_equal(truncate(path, size - 3), 0);
	assert_int_equal(read_j(f, "m", false, &g, &torn, &err), 0);
	assert_true(torn);
	assert_int_equal(g.v.n, 1);
	got_reset(&g);
	free(path);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/*
 * Regression test (it used to fail; src/journal.c): whether a change is
 * live was read from the target's lock file, which a hand can delete.
 * The writer of a journal holds the kernel's lock on it: a second
 * writer is refused as busy, journal_live() says so, a reader never
 * cuts its last record, and all of it ends with journal_close().
 */
static void test_journal_live_writer_is_exclusive(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = RB_ERROR_INIT;
	struct journal *j = NULL, *j2 = NULL;
	struct got g = GOT_INIT;
	char *path;
	bool torn;
	FILE *fp;

	assert_int_equal(journal_create(f->dir, "live", &j, &err), 0);
	append_s(j, "{\"t\":\"open\"}");
	assert_true(journal_live(f->dir, "live"));
	assert_int_equal(journal_open(f->dir, "live", &j2, &err), -1);
	assert_int_equal(err.cls, RB_ERR_BUSY);
	assert_non_null(strstr(err.msg, "still running"));
	assert_null(j2);
	/* a half-written record of the live writer is not cut */
	path = jfile(f, "", "live");
	fp = fopen(path, "ab");
	assert_non_null(fp);
	fputs("RBJ1\x10", fp);
	fclose(fp);
	assert_int_equal(read_j(f, "live", true, &g, &torn, &err), 0);
	assert_false(torn);
	assert_int_equal(g.v.n, 1);
	journal_close(j);
	assert_false(journal_live(f->dir, "live"));
	/* once the writer is gone, the torn end is cut */
	got_reset(&g);
	assert_int_equal(read_j(f, "live", true, &g, &torn, &err), 0);
	assert_true(torn);
	rb_error_clear(&err);
	assert_int_equal(journal_open(f->dir, "live", &j2, &err), 0);
	journal_close(j2);
	got_reset(&g);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_journal_records_in_order),
		T(test_journal_create_is_exclusive),
		T(test_journal_modes),
		T(test_journal_bad_middle_record_is_corruption),
		T(test_journal_torn_last_record_every_cut),
		T(test_journal_garbage_tail),
		T(test_journal_repair_then_append),
		T(test_journal_append_after_unrepaired_tear_is_corrupt),
		T(test_journal_open_appends_after_existing),
		T(test_journal_list),
		T(test_journal_retire),
		T(test_journal_set_aside),
		T(test_journal_read_missing_and_callback_error),
		T(test_journal_symlink_not_followed),
		T(test_journal_max_record),
		T(test_journal_fsync_failure_is_final),
		T(test_journal_tiny_torn_tail),
		T(test_journal_torn_record_mentioning_magic),
		T(test_journal_live_writer_is_exclusive),
	};

	/* a failpoint inherited from the environment would skew the tests */
	unsetenv("RUNBOOK_FAILPOINT");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
