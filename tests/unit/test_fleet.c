/*
 * The failure budget (fleet.h): max_fail as a count, or as a percentage
 * of the target's hosts rounded down, and when a number of failed
 * hosts is past it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "fleet.h"
#include "runbook.h"

static size_t budget(unsigned max_fail, bool percent, size_t n)
{
	struct target t;

	memset(&t, 0, sizeof(t));
	t.max_fail = max_fail;
	t.max_fail_percent = percent;
	t.n_hosts = n;
	return fleet_budget(&t, n);
}

static void test_budget_count(void **state)
{
	(void)state;
	assert_int_equal(budget(0, false, 6), 0);	/* the default */
	assert_int_equal(budget(1, false, 6), 1);
	assert_int_equal(budget(2, false, 6), 2);
	/* a count is a count, whatever --limit left */
	assert_int_equal(budget(10, false, 3), 10);
	assert_int_equal(budget(1, false, 1), 1);
}

static void test_budget_percent_rounds_down(void **state)
{
	(void)state;
	/* never more failures than the percentage says */
	assert_int_equal(budget(10, true, 6), 0);	/* 0.6 */
	assert_int_equal(budget(17, true, 6), 1);	/* 1.02 */
	assert_int_equal(budget(16, true, 6), 0);	/* 0.96 */
	assert_int_equal(budget(34, true, 6), 2);	/* 2.04 */
	assert_int_equal(budget(50, true, 6), 3);
	assert_int_equal(budget(50, true, 7), 3);	/* 3.5 */
	assert_int_equal(budget(25, true, 4), 1);
	assert_int_equal(budget(24, true, 4), 0);
	assert_int_equal(budget(100, true, 6), 6);
	assert_int_equal(budget(0, true, 6), 0);
	assert_int_equal(budget(10, true, 50), 5);
	assert_int_equal(budget(1, true, 1000), 10);
	assert_int_equal(budget(50, true, 0), 0);
}

static void test_within_budget(void **state)
{
	(void)state;
	assert_true(fleet_within_budget(0, 0));
	assert_false(fleet_within_budget(0, 1));
	assert_true(fleet_within_budget(1, 1));
	assert_false(fleet_within_budget(1, 2));	/* two failing of max_fail: 1 */
	assert_true(fleet_within_budget(3, 2));
	assert_false(fleet_within_budget(budget(34, true, 6), 3));
	assert_true(fleet_within_budget(budget(34, true, 6), 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_budget_count),
		cmocka_unit_test(test_budget_percent_rounds_down),
		cmocka_unit_test(test_within_budget),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
