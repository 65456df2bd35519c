/*
 * The small shared parsers of runbook.c: durations (docs/format.md,
 * "Scalars and types"), name forms, and batch sizes of a target.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runbook.h"

/*
 * A check of a bug that was reported and fixed: it fails with the
 * reason on stderr if the bug comes back.
 */
#define KNOWN_BUG(ok, ...)                                                   \
	do {                                                                 \
		if (!(ok)) {                                                 \
			fprintf(stderr, "KNOWN BUG: " __VA_ARGS__);          \
			fputc('\n', stderr);                                 \
			fail();                                              \
		}                                                            \
	} while (0)

static void assert_duration(const char *s, unsigned want)
{
	unsigned ms = 12345;

	if (parse_duration(s, &ms) != 0)
		fail_msg("parse_duration(\"%s\") refused, expected %u ms", s,
			 want);
	if (ms != want)
		fail_msg("parse_duration(\"%s\") = %u ms, expected %u", s, ms,
			 want);
}

static void assert_not_duration(const char *s)
{
	unsigned ms = 12345;

	if (parse_duration(s, &ms) != -1)
		fail_msg("parse_duration(\"%s\") accepted as %u ms, expected -1",
			 s, ms);
}

static void test_duration_units(void **state)
{
	(void)state;
	assert_duration("30s", 30000);
	assert_duration("5m", 300000);
	assert_duration("1h", 3600000);
	assert_duration("1h30m", 5400000);
	assert_duration("1m30s", 90000);
	assert_duration("250ms", 250);
	assert_duration("1s500ms", 1500);
	assert_duration("1h2m3s4ms", 3723004);
	assert_duration("007s", 7000);
	/* zero is the loader's call (a timeout must be above zero): not checked here */
}

static void test_duration_bare_seconds(void **state)
{
	(void)state;
	/* docs/format.md: "or bare digits meaning seconds" */
	assert_duration("90", 90000);
	assert_duration("5", 5000);
	assert_duration("007", 7000);
	assert_duration("86400", 86400000);
}

static void test_duration_upper_bound(void **state)
{
	(void)state;
	assert_duration("24h", RB_MAX_DURATION_MS);
	assert_duration("1440m", RB_MAX_DURATION_MS);
	assert_duration("86400s", RB_MAX_DURATION_MS);
	assert_duration("23h59m59s999ms", RB_MAX_DURATION_MS - 1);
	assert_not_duration("25h");
	assert_not_duration("24h1ms");
	assert_not_duration("86401");
	assert_not_duration("86400001ms");
}

static void test_duration_rejects_words(void **state)
{
	(void)state;
	assert_not_duration("soon");
	assert_not_duration("");
	assert_not_duration("s");
	assert_not_duration("ms");
	assert_not_duration("m5");
	assert_not_duration("five seconds");
}

static void test_duration_rejects_bad_forms(void **state)
{
	(void)state;
	assert_not_duration("-5s");
	assert_not_duration("-5");
	assert_not_duration("+5s");
	assert_not_duration("1d");
	assert_not_duration("1w");
	assert_not_duration("5S");
	assert_not_duration("5M");
	assert_not_duration("5 s");
	assert_not_duration(" 5s");
	assert_not_duration("5s ");
	assert_not_duration("1.5s");
	assert_not_duration("0x10s");
	assert_not_duration("5sec");
	assert_not_duration("5mss");
	assert_not_duration("5h30");
}

static void test_duration_overflow(void **state)
{
	(void)state;
	/* values that wrap a 32- or 64-bit counter must not come back small */
	assert_not_duration("4294967296ms");	/* 2^32 ms: 0 when truncated */
	assert_not_duration("4294967s");	/* 2^32 ms in seconds, rounded */
	assert_not_duration("1193h");		/* > 2^32 ms */
	assert_not_duration("18446744073709551616s"); /* 2^64 */
	assert_not_duration("99999999999999999999999999h");
	assert_not_duration("4294967296");	/* bare seconds */
	assert_not_duration("18446744073709552");
	assert_not_duration("9999999");
	assert_not_duration("23h60000000000m");
}

/* A bad value leaves the default in place (load.h: bad values stay defaults). */
static void test_duration_failure_keeps_output(void **state)
{
	unsigned ms = 777;

	(void)state;
	assert_int_equal(parse_duration("25h", &ms), -1);
	assert_int_equal(ms, 777);
	assert_int_equal(parse_duration("soon", &ms), -1);
	assert_int_equal(ms, 777);
}

static void assert_format(unsigned ms, const char *want)
{
	char out[32];

	memset(out, 'X', sizeof(out));
	format_duration(ms, out);
	if (strcmp(out, want) != 0)
		fail_msg("format_duration(%u) = \"%s\", expected \"%s\"", ms,
			 out, want);
}

static void test_format_duration(void **state)
{
	(void)state;
	assert_format(0, "0ms");
	assert_format(1, "1ms");
	assert_format(250, "250ms");
	assert_format(999, "999ms");
	assert_format(1000, "1s");
	assert_format(30000, "30s");
	assert_format(60000, "1m");
	assert_format(90000, "1m30s");
	assert_format(600000, "10m");
	assert_format(3600000, "1h");
	assert_format(3601000, "1h1s");
	assert_format(5400000, "1h30m");
	assert_format(3723000, "1h2m3s");
	assert_format(RB_MAX_DURATION_MS, "24h");
}

/*
 * What format_duration() writes is "duration text" (runbook.h), so it
 * must read back as the same duration, including values with a part
 * below one second such as 1500ms (a timeout or retry_delay of 1500ms
 * is valid and plan prints it).
 */
static void test_format_duration_reads_back(void **state)
{
	static const unsigned values[] = {
		1, 250, 1000, 59000, 60000, 61000, 90000, 3599000,
		3600000, 3661000, 86399000, RB_MAX_DURATION_MS,
	};
	static const unsigned with_ms[] = { 1500, 61001, 3600250 };
	char out[32], first_bad[32] = "";
	unsigned back;

	(void)state;
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		format_duration(values[i], out);
		back = 0;
		if (parse_duration(out, &back) != 0 || back != values[i])
			fail_msg("format_duration(%u) = \"%s\" does not read back",
				 values[i], out);
	}
	for (size_t i = 0; i < sizeof(with_ms) / sizeof(with_ms[0]); i++) {
		format_duration(with_ms[i], out);
		back = 0;
		if ((parse_duration(out, &back) != 0 || back != with_ms[i]) &&
		    !first_bad[0])
			snprintf(first_bad, sizeof(first_bad), "%s", out);
	}
	KNOWN_BUG(!first_bad[0],
		  "format_duration() writes \"%s\" for a duration with a part "
		  "below one second; parse_duration() cannot read that back "
		  "(expected e.g. \"1s500ms\")", first_bad);
}

static void test_runbook_names(void **state)
{
	static const char *const good[] = {
		"deploy-api", "a", "0", "9lives", "full.example-1_0",
		"a.b.c", "x_", "a-", "a.",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	static const char *const bad[] = {
		"", "Deploy", "deploy_API", "-deploy", ".hidden", "_x",
		"deploy..api", "..", "a b", "a/b", "caf\xc3\xa9", "a\n",
		"a:b", "a@b",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};

	(void)state;
	assert_int_equal(strlen(good[sizeof(good) / sizeof(good[0]) - 1]),
			 RB_MAX_NAME);
	assert_int_equal(strlen(bad[sizeof(bad) / sizeof(bad[0]) - 1]),
			 RB_MAX_NAME + 1);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!is_runbook_name(good[i]))
			fail_msg("is_runbook_name(\"%s\") is false", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (is_runbook_name(bad[i]))
			fail_msg("is_runbook_name(\"%s\") is true", bad[i]);
}

static void test_var_names(void **state)
{
	static const char *const good[] = {
		"a", "_", "_private", "Base_Dir2", "version", "A1", "x_1_y",
	};
	static const char *const bad[] = {
		"", "1st", "my-var", "a.b", "a b", "secrets.x", "$x", "a=b",
		"caf\xc3\xa9", "x\n", "-",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!is_var_name(good[i]))
			fail_msg("is_var_name(\"%s\") is false", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (is_var_name(bad[i]))
			fail_msg("is_var_name(\"%s\") is true", bad[i]);
}

static size_t batch(size_t hosts, unsigned serial, bool percent)
{
	struct target t;

	memset(&t, 0, sizeof(t));
	t.n_hosts = hosts;
	t.serial = serial;
	t.serial_percent = percent;
	return target_batch_size(&t);
}

static void test_batch_serial_number(void **state)
{
	(void)state;
	assert_int_equal(batch(3, 1, false), 1);
	assert_int_equal(batch(10, 3, false), 3);
	assert_int_equal(batch(3, 3, false), 3);
	/* more per batch than hosts: one batch of all of them */
	assert_int_equal(batch(3, 5, false), 3);
}

static void test_batch_percent_rounds_up(void **state)
{
	(void)state;
	assert_int_equal(batch(10, 25, true), 3);	/* 2.5 -> 3 */
	assert_int_equal(batch(4, 25, true), 1);
	assert_int_equal(batch(5, 25, true), 2);	/* 1.25 -> 2 */
	assert_int_equal(batch(3, 1, true), 1);		/* 0.03 -> 1 */
	assert_int_equal(batch(1, 1, true), 1);
	assert_int_equal(batch(7, 100, true), 7);
	assert_int_equal(batch(7, 50, true), 4);	/* 3.5 -> 4 */
	assert_int_equal(batch(200, 33, true), 66);
	assert_int_equal(batch(1000, 10, true), 100);
}

static void test_batch_zero_is_all(void **state)
{
	(void)state;
	assert_int_equal(batch(1, 0, false), 1);
	assert_int_equal(batch(3, 0, false), 3);
	assert_int_equal(batch(250, 0, false), 250);
	/* never 0: a caller divides by the batch size */
	assert_true(batch(0, 0, false) >= 1);
	assert_true(batch(0, 25, true) >= 1);
}

static void test_phase_names(void **state)
{
	(void)state;
	assert_string_equal(phase_key(PHASE_PREFLIGHT), "preflight");
	assert_string_equal(phase_key(PHASE_STEPS), "steps");
	assert_string_equal(phase_key(PHASE_VERIFY), "verify");
	assert_string_equal(phase_key(PHASE_METRICS), "metrics");
	assert_string_equal(phase_name(PHASE_STEPS), "step");
	assert_string_equal(phase_name(PHASE_METRICS), "metric");
}

static void test_strval_pos_at(void **state)
{
	char text[] = "a\xc3\xa9{{ x }}";
	struct strval exact = { text, { 3, 10 }, 10, 0 };
	struct strval moved = { text, { 3, 10 }, 0, 0 };
	struct src_pos p;

	(void)state;
	p = strval_pos_at(&exact, 0);
	assert_int_equal(p.line, 3);
	assert_int_equal(p.col, 10);
	/* columns count characters: the two bytes of e-acute are one column */
	p = strval_pos_at(&exact, 3);
	assert_int_equal(p.line, 3);
	assert_int_equal(p.col, 12);
	/* without col0 the position of the whole value is the best there is */
	p = strval_pos_at(&moved, 3);
	assert_int_equal(p.line, 3);
	assert_int_equal(p.col, 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_units),
		cmocka_unit_test(test_duration_bare_seconds),
		cmocka_unit_test(test_duration_upper_bound),
		cmocka_unit_test(test_duration_rejects_words),
		cmocka_unit_test(test_duration_rejects_bad_forms),
		cmocka_unit_test(test_duration_overflow),
		cmocka_unit_test(test_duration_failure_keeps_output),
		cmocka_unit_test(test_format_duration),
		cmocka_unit_test(test_format_duration_reads_back),
		cmocka_unit_test(test_runbook_names),
		cmocka_unit_test(test_var_names),
		cmocka_unit_test(test_batch_serial_number),
		cmocka_unit_test(test_batch_percent_rounds_up),
		cmocka_unit_test(test_batch_zero_is_all),
		cmocka_unit_test(test_phase_names),
		cmocka_unit_test(test_strval_pos_at),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
