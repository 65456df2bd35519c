/*
 * Unified diffs: exact output against what GNU diff -u prints for the
 * same inputs, and, on thousands of random edits, the property that
 * matters: applying the hunks to the first text gives the second.
 * Huge inputs must stay bounded (the LCS table has a cell budget).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "diff.h"

static char *run(const char *a, const char *b, unsigned ctx, bool *differs)
{
	struct buf out = BUF_INIT;

	*differs = diff_unified(&out, "a", "b", a, strlen(a), b, strlen(b), ctx);
	return buf_detach(&out);
}

static void test_equal_texts_give_nothing(void **state)
{
	bool d;
	char *s = run("x\ny\n", "x\ny\n", 3, &d);

	(void)state;
	assert_false(d);
	assert_string_equal(s, "");
	free(s);
	s = run("", "", 3, &d);
	assert_false(d);
	free(s);
}

/* Expected texts are what `diff -u` (GNU diffutils 3.8) prints. */
static void test_matches_gnu_diff(void **state)
{
	static const struct {
		const char *a, *b, *want;
	} v[] = {
		{ "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\n",
		  "a\nb\nX\nd\ne\nf\ng\nh\ni\nj\nY\n",
		  "--- a\n+++ b\n@@ -1,6 +1,6 @@\n a\n b\n-c\n+X\n d\n e\n f\n"
		  "@@ -8,4 +8,4 @@\n h\n i\n j\n-k\n+Y\n" },
		{ "a\nb\nc\n", "a\nb\nc\nd\n",
		  "--- a\n+++ b\n@@ -1,3 +1,4 @@\n a\n b\n c\n+d\n" },
		{ "", "new\n", "--- a\n+++ b\n@@ -0,0 +1 @@\n+new\n" },
		{ "old\n", "", "--- a\n+++ b\n@@ -1 +0,0 @@\n-old\n" },
		{ "x\n", "x", "--- a\n+++ b\n@@ -1 +1 @@\n-x\n+x\n"
		  "\\ No newline at end of file\n" },
		{ "1\n2\n3\n4\n5\n6\n7\n8\n", "1\n2\n3\n4\n5\n6\n7\n8\n9\n",
		  "--- a\n+++ b\n@@ -6,3 +6,4 @@\n 6\n 7\n 8\n+9\n" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		bool d;
		char *s = run(v[i].a, v[i].b, 3, &d);

		assert_true(d);
		assert_string_equal(s, v[i].want);
		free(s);
	}
}

/* Applies a unified diff to a; returns the result or NULL if it does not fit. */
static char *patch(const char *a, const char *diff)
{
	struct buf out = BUF_INIT;
	const char *p = strchr(strchr(diff, '\n') + 1, '\n') + 1;
	const char *ap = a;
	size_t aline = 0;

	while (*p) {
		unsigned long as, ac = 1, bs, bc = 1;
		int n = 0;
		const char *e;

		if (sscanf(p, "@@ -%lu,%lu +%n", &as, &ac, &n) < 2 &&
		    sscanf(p, "@@ -%lu +%n", &as, &n) < 1)
			goto bad;
		if (sscanf(p + n, "%lu,%lu", &bs, &bc) < 2)
			sscanf(p + n, "%lu", &bs);
		if (ac == 0)
			as++;
		/* copy lines of a up to the hunk */
		for (; aline + 1 < as; aline++) {
			e = strchr(ap, '\n');
			if (!e)
				goto bad;
			buf_add(&out, ap, (size_t)(e - ap) + 1);
			ap = e + 1;
		}
		p = strchr(p, '\n') + 1;
		while (*p == ' ' || *p == '-' || *p == '+' || *p == '\\') {
			const char *le = strchr(p, '\n');
			size_t len = (size_t)(le - p) - 1;
			bool nonl = le[1] == '\\';

			if (*p == '\\') {
				p = le + 1;
				continue;
			}
			if (*p != '+') {	/* must be the next line of a */
				if (strncmp(ap, p + 1, len) != 0)
					goto bad;
				ap += len;
				if (!nonl) {
					if (*ap != '\n')
						goto bad;
					ap++;
				}
				aline++;
			}
			if (*p != '-') {
				buf_add(&out, p + 1, len);
				if (!nonl)
					buf_addc(&out, '\n');
			}
			p = le + 1;
		}
	}
	buf_adds(&out, ap);
	return buf_detach(&out);
bad:
	buf_release(&out);
	return NULL;
}

static uint32_t rnd(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 16;
}

static void test_random_edits_patch_back(void **state)
{
	(void)state;
	for (uint32_t it = 0; it < 3000; it++) {
		uint32_t seed = it * 7919u + 1;
		char la[64], lb[128];
		size_t na = rnd(&seed) % 30, nb = 0;
		struct buf a = BUF_INIT, b = BUF_INIT;
		unsigned ctx = rnd(&seed) % 4;
		char *d, *back;
		bool differs;

		for (size_t i = 0; i < na; i++)
			la[i] = (char)('a' + rnd(&seed) % 5);
		for (size_t i = 0; i < na; i++) {
			unsigned op = rnd(&seed) % 8;

			if (op == 0)
				continue;	/* deleted */
			if (op == 1)
				lb[nb++] = (char)('v' + rnd(&seed) % 4);
			if (op == 2) {
				lb[nb++] = (char)('x' + rnd(&seed) % 3);
				continue;	/* replaced */
			}
			lb[nb++] = la[i];
		}
		for (size_t i = 0; i < na; i++)
			buf_addf(&a, "%c%s", la[i], i + 1 < na || rnd(&seed) % 5 ? "\n" : "");
		for (size_t i = 0; i < nb; i++)
			buf_addf(&b, "%c%s", lb[i], i + 1 < nb || rnd(&seed) % 5 ? "\n" : "");
		d = run(buf_str(&a), buf_str(&b), ctx, &differs);
		assert_int_equal(differs, strcmp(buf_str(&a), buf_str(&b)) != 0);
		if (differs) {
			back = patch(buf_str(&a), d);
			if (!back || strcmp(back, buf_str(&b)) != 0)
				fail_msg("iteration %u: patch(a, diff) != b\n%s", it, d);
			free(back);
		}
		free(d);
		buf_release(&a);
		buf_release(&b);
	}
}

/* Two different 200,000-line texts: past the cell budget, still right. */
static void test_huge_inputs_stay_bounded(void **state)
{
	struct buf a = BUF_INIT, b = BUF_INIT, out = BUF_INIT;
	char *back;

	(void)state;
	for (int i = 0; i < 200000; i++) {
		buf_addf(&a, "line %d\n", i);
		buf_addf(&b, "line %d%s\n", i, i % 1000 == 500 ? " changed" : "");
	}
	assert_true(diff_unified(&out, "a", "b", a.data, a.len, b.data, b.len, 3));
	back = patch(a.data, out.data);
	assert_non_null(back);
	assert_string_equal(back, b.data);
	free(back);
	buf_release(&a);
	buf_release(&b);
	buf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_equal_texts_give_nothing),
		cmocka_unit_test(test_matches_gnu_diff),
		cmocka_unit_test(test_random_edits_patch_back),
		cmocka_unit_test(test_huge_inputs_stay_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
