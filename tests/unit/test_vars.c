/*
 * Variable sets: an ordered map of owned copies where a later value
 * replaces an earlier one in place, and --var KEY=VALUE splitting that
 * takes the first '=' and accepts only variable names as keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vars.h"

static void test_varset_set_get_replace(void **state)
{
	struct varset vs = VARSET_INIT;
	char name[8] = "a", value[8] = "1";

	(void)state;
	assert_null(varset_get(&vs, "a"));
	varset_set(&vs, name, value);
	/* copies: the caller's strings may change afterwards */
	strcpy(name, "zz");
	strcpy(value, "999");
	assert_string_equal(varset_get(&vs, "a"), "1");
	assert_null(varset_get(&vs, "zz"));

	varset_set(&vs, "b", "two\nlines: 'q' \"dq\" # x");
	varset_set(&vs, "empty", "");
	varset_set(&vs, "a", "replaced");
	/* replacing keeps the place: order is first-set order */
	assert_int_equal(vs.n, 3);
	assert_string_equal(vs.names[0], "a");
	assert_string_equal(vs.values[0], "replaced");
	assert_string_equal(vs.names[1], "b");
	assert_string_equal(vs.names[2], "empty");
	assert_string_equal(varset_get(&vs, "b"), "two\nlines: 'q' \"dq\" # x");
	assert_string_equal(varset_get(&vs, "empty"), "");
	/* names are exact: no prefix or case folding */
	assert_null(varset_get(&vs, "A"));
	assert_null(varset_get(&vs, "emp"));
	assert_null(varset_get(&vs, ""));

	varset_release(&vs);
	assert_int_equal(vs.n, 0);
	assert_null(vs.names);
	assert_null(vs.values);
	assert_null(varset_get(&vs, "a"));
}

static void test_varset_grows(void **state)
{
	struct varset vs = VARSET_INIT;
	char name[32], value[32];

	(void)state;
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "v%d", i);
		snprintf(value, sizeof(value), "value %d", i * 7);
		varset_set(&vs, name, value);
	}
	assert_int_equal(vs.n, 200);
	assert_true(vs.cap >= 200);
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "v%d", i);
		snprintf(value, sizeof(value), "value %d", i * 7);
		assert_string_equal(varset_get(&vs, name), value);
		assert_string_equal(vs.names[i], name);
	}
	varset_release(&vs);
}

static void test_varset_copy_later_wins(void **state)
{
	struct varset dst = VARSET_INIT, src = VARSET_INIT;

	(void)state;
	varset_set(&dst, "x", "dst-x");
	varset_set(&dst, "keep", "kept");
	varset_set(&src, "y", "src-y");
	varset_set(&src, "x", "src-x");
	varset_copy(&dst, &src);
	assert_int_equal(dst.n, 3);
	assert_string_equal(varset_get(&dst, "x"), "src-x");
	assert_string_equal(varset_get(&dst, "keep"), "kept");
	assert_string_equal(varset_get(&dst, "y"), "src-y");
	/* existing names keep their place, new ones follow in src order */
	assert_string_equal(dst.names[0], "x");
	assert_string_equal(dst.names[1], "keep");
	assert_string_equal(dst.names[2], "y");

	/* deep copies: releasing the source leaves the copy intact */
	varset_release(&src);
	assert_string_equal(varset_get(&dst, "y"), "src-y");
	/* copying an empty set changes nothing */
	varset_copy(&dst, &src);
	assert_int_equal(dst.n, 3);
	varset_release(&dst);
}

static void test_varset_parse_assignment(void **state)
{
	struct varset vs = VARSET_INIT;

	(void)state;
	assert_int_equal(varset_parse_assignment(&vs, "NAME=value"), 0);
	assert_string_equal(varset_get(&vs, "NAME"), "value");
	/* the first '=' splits; the value keeps the rest as it is */
	assert_int_equal(varset_parse_assignment(&vs, "url=a=b&c=d"), 0);
	assert_string_equal(varset_get(&vs, "url"), "a=b&c=d");
	assert_int_equal(varset_parse_assignment(&vs, "_e="), 0);
	assert_string_equal(varset_get(&vs, "_e"), "");
	assert_int_equal(varset_parse_assignment(&vs, "v2= spaced \n"), 0);
	assert_string_equal(varset_get(&vs, "v2"), " spaced \n");
	/* a later --var wins */
	assert_int_equal(varset_parse_assignment(&vs, "NAME=other"), 0);
	assert_string_equal(varset_get(&vs, "NAME"), "other");
	assert_int_equal(vs.n, 4);

	/* refused, and nothing is added */
	assert_int_equal(varset_parse_assignment(&vs, "noequals"), -1);
	assert_int_equal(varset_parse_assignment(&vs, "=value"), -1);
	assert_int_equal(varset_parse_assignment(&vs, "1abc=x"), -1);
	assert_int_equal(varset_parse_assignment(&vs, "a-b=x"), -1);
	assert_int_equal(varset_parse_assignment(&vs, "a b=x"), -1);
	assert_int_equal(varset_parse_assignment(&vs, "secrets.x=y"), -1);
	assert_int_equal(varset_parse_assignment(&vs, ""), -1);
	assert_int_equal(vs.n, 4);
	assert_null(varset_get(&vs, "noequals"));
	assert_null(varset_get(&vs, ""));
	varset_release(&vs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_varset_set_get_replace),
		cmocka_unit_test(test_varset_grows),
		cmocka_unit_test(test_varset_copy_later_wins),
		cmocka_unit_test(test_varset_parse_assignment),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
