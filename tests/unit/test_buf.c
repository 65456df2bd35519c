/*
 * Buffers, string vectors and strict allocation: a buffer is always a
 * NUL-terminated string once anything was added, formatting gives what
 * snprintf gives at every length (one pass or two), detach hands over
 * the bytes and leaves an empty buffer, and growth keeps contents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"

static void test_buf_empty(void **state)
{
	struct buf b = BUF_INIT;
	char *p;

	(void)state;
	/* nothing added: no memory, but a readable empty string */
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_string_equal(buf_str(&b), "");

	/* adding nothing still makes a terminated string */
	buf_add(&b, "", 0);
	assert_non_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.data[0], '\0');
	assert_true(b.cap >= 1);

	/* detaching an empty buffer gives "" the caller may free */
	buf_release(&b);
	p = buf_detach(&b);
	assert_non_null(p);
	assert_string_equal(p, "");
	free(p);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
}

static void test_buf_add_keeps_bytes_and_terminator(void **state)
{
	struct buf b = BUF_INIT;
	static const char bin[] = { 'a', '\0', 'b', '\n', (char)0xff };
	char expect[4096];
	size_t n = 0;

	(void)state;
	buf_add(&b, bin, sizeof(bin));
	assert_int_equal(b.len, sizeof(bin));
	assert_memory_equal(b.data, bin, sizeof(bin));
	assert_int_equal(b.data[b.len], '\0');
	memcpy(expect, bin, sizeof(bin));
	n = sizeof(bin);

	buf_adds(&b, "xyz");
	memcpy(expect + n, "xyz", 3);
	n += 3;
	buf_addc(&b, '!');
	expect[n++] = '!';
	buf_addc(&b, '\0');
	expect[n++] = '\0';
	assert_int_equal(b.len, n);
	assert_memory_equal(b.data, expect, n);
	assert_int_equal(b.data[b.len], '\0');

	/* many small additions: every regrowth keeps what came before */
	for (int i = 0; i < 1000; i++) {
		char c = (char)('a' + i % 26);

		buf_addc(&b, c);
		expect[n++] = c;
		assert_int_equal(b.data[b.len], '\0');
	}
	assert_int_equal(b.len, n);
	assert_true(b.cap > b.len);
	assert_memory_equal(b.data, expect, n);
	buf_release(&b);
}

static void test_buf_addf_matches_snprintf_at_every_length(void **state)
{
	char fill[512], expect[2048];

	(void)state;
	memset(fill, 'x', sizeof(fill) - 1);
	fill[sizeof(fill) - 1] = '\0';
	/*
	 * Formatted lengths around the 64 bytes of spare room the first
	 * pass tries, on an empty buffer and after a prefix of several
	 * lengths, so both the one-pass and the two-pass paths run with
	 * the room exactly full, one short and one over.
	 */
	for (size_t pre = 0; pre < 80; pre += 7) {
		for (int w = 0; w < 300; w++) {
			struct buf b = BUF_INIT;

			buf_add(&b, fill, pre);
			buf_addf(&b, "%.*s|%d|%s", w, fill, w, "end");
			snprintf(expect, sizeof(expect), "%.*s%.*s|%d|%s",
				 (int)pre, fill, w, fill, w, "end");
			assert_int_equal(b.len, strlen(expect));
			assert_string_equal(b.data, expect);
			assert_int_equal(b.data[b.len], '\0');
			buf_release(&b);
		}
	}
}

static void test_buf_addf_appends(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	buf_addf(&b, "%s=%d", "a", 1);
	buf_addf(&b, ",%s=%05.1f", "b", 2.5);
	buf_addf(&b, "%s", "");
	buf_addf(&b, ",%c%%", 'z');
	assert_string_equal(buf_str(&b), "a=1,b=002.5,z%");
	assert_int_equal(b.len, strlen("a=1,b=002.5,z%"));
	buf_release(&b);
}

static void test_buf_reset_keeps_memory(void **state)
{
	struct buf b = BUF_INIT;
	char *mem;
	size_t cap;

	(void)state;
	buf_adds(&b, "some text that is long enough to need growth");
	mem = b.data;
	cap = b.cap;
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_ptr_equal(b.data, mem);
	assert_int_equal(b.cap, cap);
	assert_string_equal(buf_str(&b), "");
	buf_adds(&b, "new");
	assert_ptr_equal(b.data, mem);
	assert_string_equal(b.data, "new");

	/* reset of a never-used buffer is harmless */
	buf_release(&b);
	buf_reset(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
}

static void test_buf_detach_and_release(void **state)
{
	struct buf b = BUF_INIT;
	char *p;

	(void)state;
	buf_adds(&b, "hello");
	p = buf_detach(&b);
	assert_string_equal(p, "hello");
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	/* the buffer is reusable and independent of what it handed over */
	buf_adds(&b, "world");
	assert_string_equal(p, "hello");
	assert_string_equal(b.data, "world");
	free(p);

	buf_release(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	buf_addf(&b, "%d", 42);
	assert_string_equal(buf_str(&b), "42");
	buf_release(&b);
	/* releasing twice is harmless */
	buf_release(&b);
	assert_null(b.data);
}

static void test_strvec(void **state)
{
	struct strvec sv = STRVEC_INIT;
	char src[16] = "first";
	char *owned = xstrdup("owned");

	(void)state;
	strvec_push(&sv, src);
	/* push copies: changing the source does not change the vector */
	strcpy(src, "changed");
	strvec_push_owned(&sv, owned);
	strvec_push(&sv, "");
	assert_int_equal(sv.n, 3);
	assert_string_equal(sv.v[0], "first");
	assert_ptr_equal(sv.v[1], owned);
	assert_string_equal(sv.v[2], "");
	assert_null(sv.v[3]);

	/* stays NULL-terminated through growth */
	for (int i = 0; i < 100; i++) {
		char name[16];

		snprintf(name, sizeof(name), "s%d", i);
		strvec_push(&sv, name);
		assert_null(sv.v[sv.n]);
	}
	assert_int_equal(sv.n, 103);
	assert_string_equal(sv.v[102], "s99");
	assert_string_equal(sv.v[3], "s0");
	assert_true(sv.cap >= sv.n + 1);

	strvec_release(&sv);
	assert_null(sv.v);
	assert_int_equal(sv.n, 0);
	assert_int_equal(sv.cap, 0);
	strvec_push(&sv, "again");
	assert_int_equal(sv.n, 1);
	assert_string_equal(sv.v[0], "again");
	assert_null(sv.v[1]);
	strvec_release(&sv);
}

static void test_xgrow(void **state)
{
	size_t cap = 0;
	int *v = NULL, *before;

	(void)state;
	/* the first growth gives at least 8 */
	v = xgrow(v, &cap, 1, sizeof(*v));
	assert_non_null(v);
	assert_int_equal(cap, 8);
	for (int i = 0; i < 8; i++)
		v[i] = i * 3;

	/* enough room already: the same array, the same capacity */
	before = v;
	v = xgrow(v, &cap, 8, sizeof(*v));
	assert_ptr_equal(v, before);
	assert_int_equal(cap, 8);
	v = xgrow(v, &cap, 0, sizeof(*v));
	assert_ptr_equal(v, before);
	assert_int_equal(cap, 8);

	/* doubling until need fits; contents kept */
	v = xgrow(v, &cap, 9, sizeof(*v));
	assert_int_equal(cap, 16);
	v = xgrow(v, &cap, 100, sizeof(*v));
	assert_int_equal(cap, 128);
	for (int i = 0; i < 8; i++)
		assert_int_equal(v[i], i * 3);
	v[127] = 7;	/* the whole capacity is usable (ASan checks) */
	free(v);

	/* a capacity below 8 grows to 8 first, then doubles */
	cap = 3;
	v = xgrow(xmalloc(3 * sizeof(*v)), &cap, 20, sizeof(*v));
	assert_int_equal(cap, 32);
	free(v);
}

static void test_xalloc(void **state)
{
	char *p, *z;
	unsigned char *c;

	(void)state;
	p = xstrndup("abcdef", 3);
	assert_string_equal(p, "abc");
	free(p);
	/* xstrndup copies n bytes even past a NUL and terminates */
	p = xstrndup("a\0b", 3);
	assert_int_equal(p[0], 'a');
	assert_int_equal(p[1], '\0');
	assert_int_equal(p[2], 'b');
	assert_int_equal(p[3], '\0');
	free(p);
	p = xstrdup("");
	assert_string_equal(p, "");
	free(p);

	z = xmalloc(0);
	assert_non_null(z);
	free(z);
	c = xcalloc(16, 4);
	for (size_t i = 0; i < 64; i++)
		assert_int_equal(c[i], 0);
	free(c);
	c = xcalloc(0, 0);
	assert_non_null(c);
	c = xrealloc(c, 100);
	c[99] = 1;
	free(c);
}

/* Out of memory is not survivable: the process aborts with a message. */
static void test_xgrow_overflow_aborts(void **state)
{
	int fds[2];
	pid_t pid;
	int status;
	char msg[256] = "";
	ssize_t r;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		size_t cap = 8;

		dup2(fds[1], 2);
		close(fds[0]);
		/* need * size cannot be represented: no allocation is tried */
		xgrow(NULL, &cap, SIZE_MAX / 4, 16);
		_exit(0);
	}
	close(fds[1]);
	r = read(fds[0], msg, sizeof(msg) - 1);
	close(fds[0]);
	assert_true(r > 0);
	msg[r] = '\0';
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
	assert_non_null(strstr(msg, "runbook: out of memory"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_empty),
		cmocka_unit_test(test_buf_add_keeps_bytes_and_terminator),
		cmocka_unit_test(test_buf_addf_matches_snprintf_at_every_length),
		cmocka_unit_test(test_buf_addf_appends),
		cmocka_unit_test(test_buf_reset_keeps_memory),
		cmocka_unit_test(test_buf_detach_and_release),
		cmocka_unit_test(test_strvec),
		cmocka_unit_test(test_xgrow),
		cmocka_unit_test(test_xalloc),
		cmocka_unit_test(test_xgrow_overflow_aborts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
