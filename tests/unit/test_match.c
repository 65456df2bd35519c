/*
 * PCRE2 patterns: compile errors with offsets, multiline anchors, group
 * capture, untrusted (invalid UTF-8) subjects, and matching that fails
 * closed when a pathological pattern hits the limits.
 *
 * Every check runs twice: once as is (JIT when PCRE2 has it), then the
 * executable runs itself again with RUNBOOK_PCRE2_NO_JIT=1 (read once,
 * at the first pattern compiled) so the interpreter is covered too. The
 * parent fails when the child fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "match.h"

static struct pattern *compile_ok(const char *src)
{
	char msg[256] = "";
	size_t off = 12345;
	struct pattern *p = pattern_compile(src, msg, sizeof(msg), &off);

	if (!p)
		fail_msg("'%s' did not compile: %s at %zu", src, msg, off);
	return p;
}

/* Matches subject (len bytes) and returns pattern_match()'s result. */
static int match_n(const char *src, const char *subject, size_t len,
		   char **group, struct rb_error *err)
{
	struct pattern *p = compile_ok(src);
	int rc = pattern_match(p, subject, len, group, err);

	pattern_free(p);
	return rc;
}

static int match(const char *src, const char *subject)
{
	struct rb_error err = RB_ERROR_INIT;
	int rc = match_n(src, subject, strlen(subject), NULL, &err);

	if (rc < 0)
		fail_msg("'%s' on '%s' failed: %s", src, subject, err.msg);
	return rc;
}

static void assert_compile_error(const char *src, size_t want_off)
{
	char msg[256] = "";
	size_t off = 12345;
	struct pattern *p = pattern_compile(src, msg, sizeof(msg), &off);

	if (p) {
		pattern_free(p);
		fail_msg("'%s' compiled, expected an error", src);
	}
	if (!msg[0])
		fail_msg("'%s': no error message", src);
	if (off != want_off)
		fail_msg("'%s': error offset %zu (%s), expected %zu", src, off,
			 msg, want_off);
}

static void test_compile_errors_have_offsets(void **state)
{
	(void)state;
	assert_compile_error("(unclosed", 9);
	assert_compile_error("abc)", 3);
	assert_compile_error("a{2,1}", 5);
	assert_compile_error("[z-a]", 3);
	assert_compile_error("x**+", 2);
	assert_compile_error("(?<n>a)(?<n>b)", 12);
	assert_compile_error("\\", 1);
	/* a pattern that is not UTF-8 cannot compile in UTF mode */
	assert_compile_error("caf\xe9", 3);
}

static void test_compile_limits(void **state)
{
	char big[MATCH_MAX_PATTERN + 2];
	char msg[256];
	size_t off;
	struct pattern *p;

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	p = pattern_compile(big, msg, sizeof(msg), &off);
	if (p) {
		pattern_free(p);
		fail_msg("a pattern of %zu bytes compiled", sizeof(big) - 1);
	}
	memset(big, '(', 100);
	memset(big + 100, ')', 100);
	big[200] = '\0';
	p = pattern_compile(big, msg, sizeof(msg), &off);
	if (p) {
		pattern_free(p);
		fail_msg("parentheses nested 100 deep compiled");
	}
}

static void test_groups_and_source(void **state)
{
	struct pattern *p;

	(void)state;
	p = compile_ok("v=(\\d+)-(?:x)(?<name>y)");
	assert_int_equal(pattern_groups(p), 2);
	assert_string_equal(pattern_source(p), "v=(\\d+)-(?:x)(?<name>y)");
	pattern_free(p);
	p = compile_ok("plain");
	assert_int_equal(pattern_groups(p), 0);
	pattern_free(p);
}

static void test_backtracking_fails_closed(void **state)
{
	char subject[64];
	struct rb_error err = RB_ERROR_INIT;
	int rc;

	(void)state;
	memset(subject, 'a', 40);
	subject[40] = '!';
	subject[41] = '\0';
	rc = match_n("^(a+)+$", subject, 41, NULL, &err);
	/* -1 (could not decide), never 0 ("did not match") */
	assert_int_equal(rc, -1);
	assert_int_not_equal(err.cls, RB_OK);
	if (!strstr(err.msg, "^(a+)+$"))
		fail_msg("error does not name the pattern: %s", err.msg);

	/* the same pattern decides quickly on a short subject */
	assert_int_equal(match("^(a+)+$", "aaaa!"), 0);
	assert_int_equal(match("^(a+)+$", "aaaa"), 1);
}

static int count_cb(void *ctx, size_t start, size_t end)
{
	size_t *n = ctx;

	(void)start;
	(void)end;
	(*n)++;
	return 0;
}

static void test_each_backtracking_fails_closed(void **state)
{
	char subject[64];
	struct rb_error err = RB_ERROR_INIT;
	struct pattern *p;
	size_t n = 0;

	(void)state;
	memset(subject, 'a', 40);
	subject[40] = '!';
	p = compile_ok("(a+)+$");
	assert_int_equal(pattern_each(p, subject, 41, count_cb, &n, &err), -1);
	assert_non_null(strstr(err.msg, "(a+)+$"));
	pattern_free(p);
}

static void test_multiline_anchors(void **state)
{
	(void)state;
	assert_int_equal(match("^b$", "a\nb\nc"), 1);
	assert_int_equal(match("^c$", "a\nb\nc"), 1);
	assert_int_equal(match("^c$", "a\nb\nc\n"), 1);
	assert_int_equal(match("^a$", "a\nb\nc"), 1);
	assert_int_equal(match("^b", "ab\nc"), 0);
	assert_int_equal(match("a$", "ab\nc"), 0);
	assert_int_equal(match("^$", "a\n\nb"), 1);
	assert_int_equal(match("^deploy token present$",
			       "x\ndeploy token present\n"), 1);
	/* \A and \z still mean the whole subject */
	assert_int_equal(match("\\Ab", "a\nb"), 0);
}

static void test_group_capture(void **state)
{
	struct rb_error err = RB_ERROR_INIT;
	char *g = NULL;

	(void)state;
	assert_int_equal(match_n("v=(\\d+)", "x v=42 y", 8, &g, &err), 1);
	assert_string_equal(g, "42");
	free(g);
	g = NULL;
	/* multiline: the first line that matches */
	assert_int_equal(match_n("^version=(\\S+)$", "base=x\nversion=2.4.1\nz",
				 23, &g, &err), 1);
	assert_string_equal(g, "2.4.1");
	free(g);
	g = NULL;
	/* an unset optional group is the empty string */
	assert_int_equal(match_n("a(b)?", "ac", 2, &g, &err), 1);
	assert_non_null(g);
	assert_string_equal(g, "");
	free(g);
	g = NULL;
	/* no group wanted */
	assert_int_equal(match_n("a(b)", "ab", 2, NULL, &err), 1);
	/* no match leaves no group */
	assert_int_equal(match_n("q(b)", "ab", 2, &g, &err), 0);
	assert_null(g);
	/* the subject is bytes with a length, not a C string */
	assert_int_equal(match_n("x=(\\w+)", "x=ab\0cd", 7, &g, &err), 1);
	assert_string_equal(g, "ab");
	free(g);
	g = NULL;
	assert_int_equal(match_n("cd", "x=ab\0cd", 5, NULL, &err), 0);
	/* UTF-8 characters are one character each */
	assert_int_equal(match_n("^caf(.)$", "caf\xc3\xa9", 5, &g, &err), 1);
	assert_string_equal(g, "\xc3\xa9");
	free(g);
}

static void test_invalid_utf8_subject(void **state)
{
	struct rb_error err = RB_ERROR_INIT;
	char *g = NULL;

	(void)state;
	/* valid parts still match */
	assert_int_equal(match_n("b", "a\xff" "b", 3, NULL, &err), 1);
	assert_int_equal(match_n("^ok$", "\xc3\nok\n\xff", 6, NULL, &err), 1);
	/* a pattern never matches across an invalid sequence */
	assert_int_equal(match_n("a.b", "a\xff" "b", 3, NULL, &err), 0);
	assert_int_equal(match_n("caf.", "caf\xc3", 4, NULL, &err), 0);
	assert_int_equal(match_n("caf.", "caf\xe9", 4, NULL, &err), 0);
	assert_int_equal(match_n("a[^x]+b", "a\xed\xa0\x80" "b", 5, NULL, &err),
			 0);
	/* a whole line with bad bytes inside is not a line of characters */
	assert_int_equal(match_n("^(.*)$", "ab\xc0\xaf" "cd", 6, &g, &err), 0);
	assert_null(g);
	/* a group is a valid run of characters, never the bad bytes */
	assert_int_equal(match_n("(\\w+)", "ab\xc0\xaf" "cd", 6, &g, &err), 1);
	assert_string_equal(g, "ab");
	free(g);
	g = NULL;
	/* and a capture never contains them */
	assert_int_equal(match_n("v=(\\S+)", "v=1\xff" "2", 5, &g, &err), 1);
	assert_string_equal(g, "1");
	free(g);
	g = NULL;
	/* a whole subject of junk does not crash */
	{
		char junk[256];

		for (int i = 0; i < 256; i++)
			junk[i] = (char)(255 - i);
		assert_true(match_n("(\\w+)", junk, sizeof(junk), &g, &err) >= 0);
		free(g);
	}
}

struct spans {
	size_t start[8], end[8], n;
};

static int span_cb(void *ctx, size_t start, size_t end)
{
	struct spans *s = ctx;

	if (s->n < 8) {
		s->start[s->n] = start;
		s->end[s->n] = end;
	}
	s->n++;
	return 0;
}

static void test_each(void **state)
{
	static const char subject[] = "token=abc x token=def\ntoken=";
	struct rb_error err = RB_ERROR_INIT;
	struct spans s = { { 0 }, { 0 }, 0 };
	struct pattern *p;

	(void)state;
	p = compile_ok("token=[a-z]+");
	assert_int_equal(pattern_each(p, subject, sizeof(subject) - 1, span_cb,
				      &s, &err), 0);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.start[0], 0);
	assert_int_equal(s.end[0], 9);
	assert_int_equal(s.start[1], 12);
	assert_int_equal(s.end[1], 21);
	pattern_free(p);
	/* a pattern that can match empty neither loops nor reports empties */
	memset(&s, 0, sizeof(s));
	p = compile_ok("x*");
	assert_int_equal(pattern_each(p, "axxbx", 5, span_cb, &s, &err), 0);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.start[0], 1);
	assert_int_equal(s.end[0], 3);
	assert_int_equal(s.start[1], 4);
	pattern_free(p);
	/* and goes on past invalid UTF-8 */
	memset(&s, 0, sizeof(s));
	p = compile_ok("k=\\w+");
	assert_int_equal(pattern_each(p, "k=a\xff k=b", 8, span_cb, &s, &err), 0);
	assert_int_equal(s.n, 2);
	pattern_free(p);
}

static int stop_cb(void *ctx, size_t start, size_t end)
{
	(void)ctx;
	(void)start;
	(void)end;
	return -1;
}

static void test_each_stops_on_callback_error(void **state)
{
	struct rb_error err = RB_ERROR_INIT;
	struct pattern *p = compile_ok("a");

	(void)state;
	assert_int_equal(pattern_each(p, "aaa", 3, stop_cb, NULL, &err), -1);
	pattern_free(p);
}

/* Runs this executable again with RUNBOOK_PCRE2_NO_JIT=1. */
static void test_same_checks_without_jit(void **state)
{
	pid_t pid;
	int status;

	(void)state;
	if (getenv("RUNBOOK_PCRE2_NO_JIT"))
		skip();		/* this is the child */
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		static char name[] = "test_match";
		char *argv[] = { name, NULL };

		setenv("RUNBOOK_PCRE2_NO_JIT", "1", 1);
		fflush(stdout);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) != 0)
		fail_msg("the checks failed with RUNBOOK_PCRE2_NO_JIT=1 (exit %d); "
			 "run RUNBOOK_PCRE2_NO_JIT=1 %s to see which",
			 WEXITSTATUS(status), "build/tests/test_match");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compile_errors_have_offsets),
		cmocka_unit_test(test_compile_limits),
		cmocka_unit_test(test_groups_and_source),
		cmocka_unit_test(test_backtracking_fails_closed),
		cmocka_unit_test(test_each_backtracking_fails_closed),
		cmocka_unit_test(test_multiline_anchors),
		cmocka_unit_test(test_group_capture),
		cmocka_unit_test(test_invalid_utf8_subject),
		cmocka_unit_test(test_each),
		cmocka_unit_test(test_each_stops_on_callback_error),
		cmocka_unit_test(test_same_checks_without_jit),
	};

	if (getenv("RUNBOOK_PCRE2_NO_JIT"))
		printf("# RUNBOOK_PCRE2_NO_JIT is set: PCRE2 interpreter only\n");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
