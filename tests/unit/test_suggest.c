/*
 * "Did you mean": the distance counts a swap of neighbours as one edit
 * and ignores case; a suggestion must be closer than either word is long.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "suggest.h"

static void test_distance(void **state)
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

static void test_closest(void **state)
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
		cmocka_unit_test(test_closest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
