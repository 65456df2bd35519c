/*
 * {{ }} in reason, expected and patterns (render.h): a value in a
 * pattern matches only itself, with the real PCRE2 and the options
 * runbook compiles with; reason and expected get vars, --var and
 * built-ins, never a secret, host or capture.
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
#include "diag.h"
#include "error.h"
#include "load.h"
#include "match.h"
#include "render.h"
#include "runbook.h"
#include "template.h"
#include "vars.h"

static const char *const hostile[] = {
	"1.3.0", "a|b", "(x)", "[a-z]+", "\\E", "\\Q", "\\", "x\\Ey", "$^",
	"x{2}", "a b", "#c", "tab\there", "two\nlines", "\xc3\xa9.\xc3\xbc",
	"*+?", "(?i)X", "}}", "{{", "-", "]", "'\"`", "\\1", "(?#c)", "",
};

/* lookup: every name is the value in ctx; "later" is left for run time. */
static const char *one_value(void *ctx, const char *name)
{
	if (strcmp(name, "later") == 0)
		return tpl_defer;
	if (strcmp(name, "nope") == 0)
		return NULL;
	return ctx;
}

static struct pattern *compile(const char *src)
{
	char msg[256];
	size_t off = 0;
	struct pattern *p = pattern_compile(src, msg, sizeof(msg), &off);

	if (!p)
		fail_msg("pattern \"%s\" does not compile: %s at %zu", src, msg,
			 off);
	return p;
}

static int match(const struct pattern *p, const char *s)
{
	struct rb_error err = RB_ERROR_INIT;
	int r = pattern_match(p, s, strlen(s), NULL, &err);

	if (r < 0)
		fail_msg("match error: %s", err.msg);
	return r;
}

/* Each hostile value, placed in several patterns, matches only itself. */
static void test_values_match_literally(void **state)
{
	static const char *const tpls[] = {
		"^{{ v }}$",
		"(?x)^ {{ v }} $",		/* blanks and # are syntax here */
		"^a{{ v }}b$",
		"^(?:{{ v }})$",
		"^\\Q\\E{{ v }}$",		/* a closed \Q...\E before it */
		"^{{ v }}{{ v }}$",
	};

	(void)state;
	for (size_t t = 0; t < sizeof(tpls) / sizeof(tpls[0]); t++) {
		for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
			const char *v = hostile[i];
			struct buf pat = BUF_INIT, want = BUF_INIT, near = BUF_INIT;
			struct rb_error err = RB_ERROR_INIT;
			struct pattern *p;

			if (render_pattern(tpls[t], one_value, (void *)v, &pat,
					   &err) < 0)
				fail_msg("%s with \"%s\": %s", tpls[t], v,
					 err.msg);
			p = compile(buf_str(&pat));
			/* what the template stands for, with v in place */
			if (t == 2)
				buf_addf(&want, "a%sb", v);
			else if (t == 5)
				buf_addf(&want, "%s%s", v, v);
			else
				buf_adds(&want, v);
			if (match(p, buf_str(&want)) != 1)
				fail_msg("%s -> %s does not match \"%s\"",
					 tpls[t], buf_str(&pat), buf_str(&want));
			/* one character changed: no match */
			buf_adds(&near, buf_str(&want));
			if (near.len) {
				near.data[near.len - 1] ^= 0x01;
				if (match(p, buf_str(&near)) != 0)
					fail_msg("%s -> %s matches \"%s\"",
						 tpls[t], buf_str(&pat),
						 buf_str(&near));
			}
			assert_int_equal(pattern_groups(p), 0);
			pattern_free(p);
			buf_release(&pat);
			buf_release(&want);
			buf_release(&near);
		}
	}
}

/* Inside a character class a value is a set of its characters. */
static void test_value_in_class(void **state)
{
	struct buf pat = BUF_INIT;
	struct rb_error err = RB_ERROR_INIT;
	struct pattern *p;

	(void)state;
	assert_int_equal(render_pattern("^[{{ v }}]+$", one_value, (void *)"a-z^]\\",
					&pat, &err), 0);
	p = compile(buf_str(&pat));
	assert_int_equal(match(p, "a-z^]\\"), 1);
	assert_int_equal(match(p, "zz-a"), 1);
	assert_int_equal(match(p, "b"), 0);	/* not a range a-z */
	pattern_free(p);
	buf_release(&pat);
}

static void test_pattern_forms(void **state)
{
	struct buf b = BUF_INIT;
	struct rb_error err = RB_ERROR_INIT;

	(void)state;
	assert_int_equal(render_pattern("version {{ v }} of {{ later }}",
					one_value, (void *)"1.3.0", &b, &err), 0);
	assert_string_equal(buf_str(&b), "version 1\\.3\\.0 of {{ later }}");
	buf_reset(&b);
	/* a literal {{ and a group around the value */
	assert_int_equal(render_pattern("{{ '{{' }}(\\d+) {{ v }}", one_value,
					(void *)"a+", &b, &err), 0);
	assert_string_equal(buf_str(&b), "{{(\\d+) a\\+");
	buf_reset(&b);
	/* no placeholder: the pattern as written */
	assert_int_equal(render_pattern("^a{2}(b)$", one_value, (void *)"x", &b, &err),
			 0);
	assert_string_equal(buf_str(&b), "^a{2}(b)$");
	buf_release(&b);
}

static void refused(const char *tpl, const char *why)
{
	struct buf b = BUF_INIT;
	struct rb_error err = RB_ERROR_INIT;

	buf_adds(&b, "kept");
	if (render_pattern(tpl, one_value, (void *)"1.3", &b, &err) == 0)
		fail_msg("%s rendered as %s", tpl, buf_str(&b));
	assert_int_equal(err.cls, RB_ERR_INVALID);
	if (!strstr(err.msg, why))
		fail_msg("%s: expected \"%s\" in: %s", tpl, why, err.msg);
	assert_string_equal(buf_str(&b), "kept");	/* out unchanged */
	buf_release(&b);
}

static void test_pattern_refusals(void **state)
{
	(void)state;
	refused("a\\{{ v }}", "right after a backslash");
	refused("a{{ '\\' }}{{ v }}", "right after a backslash");
	refused("\\\\\\{{ v }}", "right after a backslash");
	refused("\\Qa{{ v }}", "inside \\Q...\\E");
	refused("\\Qa\\\\{{ v }}\\E", "inside \\Q...\\E");
	refused("x{{ secrets.token }}", "is a secret");
	refused("x{{ nope }}", "unknown variable \"nope\"");
	refused("x{{ v ", "expected \"}}\"");
	assert_null(render_pattern_refuse("a\\\\"));	/* an escaped \ */
	assert_null(render_pattern_refuse("\\Qa\\E"));
	assert_non_null(render_pattern_refuse("\\Q"));
}

static struct runbook *load_text(const char *text)
{
	struct runbook *rb = NULL;
	struct diag d;

	diag_init(&d, "t.yml");
	if (runbook_load_mem("t.yml", text, strlen(text), &rb, &d) < 0)
		fail_msg("load failed (%zu problems)", diag_count(&d));
	diag_release(&d);
	return rb;
}

static const char reason_rb[] =
	"version: 1\n"
	"name: hello\n"
	"owner: Ops <ops@example.com>\n"
	"reason: Roll out {{ version }} to {{ target }} ({{ runbook.name }}, {{ change.id }})\n"
	"expected: \"{{ version }} answers; {{ '{{' }} is kept\"\n"
	"vars:\n"
	"  version: 1.2.0\n"
	"steps:\n"
	"  - name: a\n"
	"    run: echo a\n"
	"    rollback: none\n";

static void test_change_text(void **state)
{
	struct runbook *rb = load_text(reason_rb);
	struct varset cli = VARSET_INIT;
	struct rb_error err = RB_ERROR_INIT;
	char *s = NULL;

	(void)state;
	assert_int_equal(render_change_text(rb, rb->reason.s, "prod", NULL,
					    NULL, &s, &err), 0);
	assert_string_equal(s, "Roll out 1.2.0 to prod (hello, {{ change.id }})");
	free(s);
	varset_set(&cli, "version", "1.3.0");
	assert_int_equal(render_change_text(rb, rb->reason.s, "prod", &cli,
					    "20260101-hello-ab12", &s, &err),
			 0);
	assert_string_equal(s, "Roll out 1.3.0 to prod (hello, 20260101-hello-ab12)");
	free(s);
	assert_int_equal(render_change_text(rb, rb->expected.s, "prod", &cli,
					    NULL, &s, &err), 0);
	assert_string_equal(s, "1.3.0 answers; {{ is kept");
	free(s);
	/* a value is copied as it is, never rendered again */
	varset_set(&cli, "version", "{{ target }} $(x) 'q'");
	assert_int_equal(render_change_text(rb, rb->expected.s, "prod", &cli,
					    NULL, &s, &err), 0);
	assert_string_equal(s, "{{ target }} $(x) 'q' answers; {{ is kept");
	free(s);

	s = NULL;
	assert_int_equal(render_change_text(rb, "by {{ secrets.tok }}", "prod",
					    &cli, NULL, &s, &err), -1);
	assert_non_null(strstr(err.msg, "expected no secret"));
	assert_int_equal(render_change_text(rb, "on {{ host }}", "prod", &cli,
					    NULL, &s, &err), -1);
	assert_non_null(strstr(err.msg, "unknown variable \"host\""));
	assert_int_equal(render_change_text(rb, "{{ oops", "prod", &cli, NULL,
					    &s, &err), -1);
	assert_null(s);
	varset_release(&cli);
	runbook_free(rb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values_match_literally),
		cmocka_unit_test(test_value_in_class),
		cmocka_unit_test(test_pattern_forms),
		cmocka_unit_test(test_pattern_refusals),
		cmocka_unit_test(test_change_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
