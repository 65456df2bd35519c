/*
 * Metric guards (guard.h): what a guard's value may be written as, and
 * the judgment with its numbers, at and around each limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "buf.h"
#include "guard.h"
#include "runbook.h"

static void test_guard_parse_forms(void **state)
{
	static const char *const good_abs[] = { "150", "0", "-2.5", "0.5", "1000000" };
	static const char *const bad_abs[] = {
		"", "20%", "1e3", "0x10", "+5", "1.", ".5", "abc", "1 2", "inf",
		"nan", "--1", "5 %", "True",
	};
	static const char *const good_rel[] = { "20%", "0%", "12.5%", "50", "0.1" };
	static const char *const bad_rel[] = { "-5", "-5%", "%", "20%%", "x%", "1e1%" };
	struct guard g;

	(void)state;
	for (size_t i = 0; i < sizeof(good_abs) / sizeof(*good_abs); i++) {
		memset(&g, 0, sizeof(g));
		if (!guard_parse(good_abs[i], false, &g) || g.percent)
			fail_msg("max: %s should be a number", good_abs[i]);
	}
	for (size_t i = 0; i < sizeof(bad_abs) / sizeof(*bad_abs); i++)
		if (guard_parse(bad_abs[i], false, &g))
			fail_msg("max: %s should be refused", bad_abs[i]);
	for (size_t i = 0; i < sizeof(good_rel) / sizeof(*good_rel); i++) {
		memset(&g, 0, sizeof(g));
		if (!guard_parse(good_rel[i], true, &g))
			fail_msg("max_increase: %s should be accepted", good_rel[i]);
		assert_int_equal(g.percent, strchr(good_rel[i], '%') != NULL);
	}
	for (size_t i = 0; i < sizeof(bad_rel) / sizeof(*bad_rel); i++)
		if (guard_parse(bad_rel[i], true, &g))
			fail_msg("max_increase: %s should be refused", bad_rel[i]);
	assert_true(guard_parse("12.5%", true, &g));
	assert_true(g.value == 12.5);
}

/* A metric named p95_ms with one guard. */
static void metric(struct step *s, enum guard_kind k, const char *text)
{
	memset(s, 0, sizeof(*s));
	s->name.s = (char *)"p95_ms";
	assert_true(guard_parse(text, k >= GUARD_MAX_INCREASE, &s->guards[k]));
}

static int judge(const struct step *s, const char *before, const char *after,
		 struct buf *why)
{
	buf_reset(why);
	return guard_check(s, before, after, why);
}

static void test_guard_check_limits(void **state)
{
	struct step s;
	struct buf why = BUF_INIT;

	(void)state;
	metric(&s, GUARD_MAX_INCREASE, "20%");
	assert_int_equal(judge(&s, "120", "144", &why), 1);	/* exactly +20% */
	assert_int_equal(judge(&s, "120", "180", &why), 0);
	assert_string_equal(buf_str(&why), "metric p95_ms rose from 120 to 180 (+50%, limit +20%)");
	assert_int_equal(judge(&s, "120", "60", &why), 1);	/* falling is fine */
	assert_int_equal(judge(&s, "0", "0", &why), 1);
	assert_int_equal(judge(&s, "0", "1", &why), 0);	/* any rise from 0 */
	assert_non_null(strstr(buf_str(&why), "from 0"));

	metric(&s, GUARD_MAX_INCREASE, "50");
	assert_int_equal(judge(&s, "120", "170", &why), 1);
	assert_int_equal(judge(&s, "120", "170.5", &why), 0);
	assert_string_equal(buf_str(&why), "metric p95_ms rose from 120 to 170.5 (+50.5, limit +50)");

	metric(&s, GUARD_MAX_DECREASE, "10%");
	assert_int_equal(judge(&s, "200", "180", &why), 1);
	assert_int_equal(judge(&s, "200", "150", &why), 0);
	assert_string_equal(buf_str(&why), "metric p95_ms fell from 200 to 150 (-25%, limit -10%)");

	metric(&s, GUARD_MAX, "1000");
	assert_int_equal(judge(&s, NULL, "1000", &why), 1);	/* no before needed */
	assert_int_equal(judge(&s, NULL, "1000.01", &why), 0);
	assert_string_equal(buf_str(&why), "metric p95_ms is 1000.01, above its max 1000");

	metric(&s, GUARD_MIN, "-2.5");
	assert_int_equal(judge(&s, NULL, "-2.5", &why), 1);
	assert_int_equal(judge(&s, NULL, "-3", &why), 0);
	assert_string_equal(buf_str(&why), "metric p95_ms is -3, below its min -2.5");
	buf_release(&why);
}

static void test_guard_check_not_numbers(void **state)
{
	struct step s;
	struct buf why = BUF_INIT;

	(void)state;
	metric(&s, GUARD_MAX, "10");
	assert_int_equal(judge(&s, NULL, "n/a", &why), -1);
	assert_non_null(strstr(buf_str(&why), "expected a number"));
	assert_int_equal(judge(&s, NULL, " 7 ", &why), 1);	/* blanks around */
	metric(&s, GUARD_MAX_DECREASE, "5");
	assert_int_equal(judge(&s, NULL, "7", &why), -1);	/* before unknown */
	assert_non_null(strstr(buf_str(&why), "(not measured)"));
	assert_int_equal(judge(&s, "1e3", "7", &why), -1);
	assert_true(guard_is_number("42"));
	assert_false(guard_is_number(""));
	assert_false(guard_is_number(NULL));
	buf_release(&why);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_guard_parse_forms),
		cmocka_unit_test(test_guard_check_limits),
		cmocka_unit_test(test_guard_check_not_numbers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
