/*
 * "Did you mean": optimal string alignment distance without case, and
 * the closest word only when it is close enough to be a typo.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "suggest.h"

static void test_distance(void **state)
{
	(void)state;
	assert_int_equal(suggest_distance("apply", "apply"), 0);
	assert_int_equal(suggest_distance("aply", "apply"), 1);
	assert_int_equal(suggest_distance("stauts", "status"), 1);	/* swap */
	assert_int_equal(suggest_distance("dryrun", "dry-run"), 1);
	assert_int_equal(suggest_distance("ROLLBACK", "rollback"), 0);
	assert_int_equal(suggest_distance("", "ab"), 2);
	assert_int_equal(suggest_distance("ab", ""), 2);
	assert_int_equal(suggest_distance("kitten", "sitting"), 3);
	/* lengths more than 2 apart: not a typo, not even computed */
	assert_int_equal(suggest_distance("a", "abcd"), SIZE_MAX);
}

static void test_distance_long_words(void **state)
{
	char a[200], b[200];

	(void)state;
	memset(a, 'x', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(b));
	assert_int_equal(suggest_distance(a, b), SIZE_MAX);	/* > 128 */
	a[128] = b[128] = '\0';
	b[5] = 'y';
	assert_int_equal(suggest_distance(a, b), 1);
}

static void test_closest(void **state)
{
	const char *cmds[] = { "validate", "plan", "apply", "rehearse",
			       "rollback", NULL, "status" };
	size_t n = sizeof(cmds) / sizeof(cmds[0]);

	(void)state;
	assert_string_equal(suggest_closest("aply", cmds, n), "apply");
	assert_string_equal(suggest_closest("rolback", cmds, n), "rollback");
	assert_string_equal(suggest_closest("plna", cmds, n), "plan");
	assert_string_equal(suggest_closest("Status", cmds, n), "status");
	assert_null(suggest_closest("xyzzy", cmds, n));
	/* as many edits as letters: anything would match, so nothing does */
	assert_null(suggest_closest("pl", cmds, n));
	assert_null(suggest_closest("", cmds, n));
	assert_null(suggest_closest("aply", cmds, 0));
}

static void test_distance_keys(void **state)
{
	(void)state;
	assert_int_equal(suggest_distance("rollback", "rollback"), 0);
	assert_int_equal(suggest_distance("rolback", "rollback"), 1);
	assert_int_equal(suggest_distance("sdtout", "stdout"), 1);
	assert_int_equal(suggest_distance("verison", "version"), 1);
	assert_int_equal(suggest_distance("RETRIES", "retries"), 0);
	assert_int_equal(suggest_distance("", "ab"), 2);
	/* lengths three apart are never a typo: not measured */
	assert_int_equal(suggest_distance("a", "abcd"), SIZE_MAX);
}

static void test_closest_keys(void **state)
{
	static const char *const keys[] = { "name", "run", "rollback",
					    "timeout", "retries", "skip_if" };
	size_t n = sizeof(keys) / sizeof(keys[0]);

	(void)state;
	assert_string_equal(suggest_closest("timout", keys, n), "timeout");
	assert_string_equal(suggest_closest("retires", keys, n), "retries");
	assert_string_equal(suggest_closest("skipif", keys, n), "skip_if");
	assert_string_equal(suggest_closest("Run", keys, n), "run");
	/* two edits on a two-letter word is any word: no suggestion */
	assert_null(suggest_closest("xy", keys, n));
	assert_null(suggest_closest("payload", keys, n));
	assert_null(suggest_closest("run", keys, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_distance),
		cmocka_unit_test(test_distance_long_words),
		cmocka_unit_test(test_closest),
		cmocka_unit_test(test_distance_keys),
		cmocka_unit_test(test_closest_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
