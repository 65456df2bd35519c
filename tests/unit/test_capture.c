/*
 * A step's patterns with {{ }}: capture_compile() leaves them to
 * capture_compile_step(), which compiles them with one host's values
 * matched literally; a capture given the empty entry fails closed
 * instead of matching the braces as text. Real PCRE2, real output.
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
#include "capture.h"
#include "diag.h"
#include "load.h"
#include "redact.h"
#include "runbook.h"
#include "template.h"
#include "vars.h"

static const char text[] =
	"version: 1\n"
	"name: cap\n"
	"owner: Ops <ops@example.com>\n"
	"reason: test\n"
	"expected: it matches\n"
	"vars:\n"
	"  version: 1.3.0\n"
	"steps:\n"
	"  - name: plain\n"
	"    run: echo a\n"
	"    rollback: none\n"
	"    expect: { stdout: 'a' }\n"
	"  - name: templated\n"
	"    run: echo b\n"
	"    rollback: none\n"
	"    expect: { stdout: 'version {{ version }}$', not_stdout: 'old {{ version }}' }\n"
	"    capture: { build: '{{ version }}\\+(\\w+)' }\n";

static struct runbook *load_rb(void)
{
	struct runbook *rb = NULL;
	struct diag d;

	diag_init(&d, "t.yml");
	if (runbook_load_mem("t.yml", text, strlen(text), &rb, &d) < 0)
		fail_msg("load failed");
	diag_release(&d);
	return rb;
}

/* Runs output through a capture of s with patterns p; the judgment. */
static enum step_result judge(const struct step *s, const struct step_pats *p,
			      const char *output, struct buf *why,
			      char **cap0)
{
	struct redactor *red = redactor_new();
	struct exec_result r = { EXEC_EXITED, 0, 0, 1, "" };
	struct capture c;
	enum step_result res;

	capture_init(&c, red, s, p, NULL, NULL);
	capture_output(&c, EXEC_STDOUT, output, strlen(output));
	capture_finish(&c);
	res = capture_judge(&c, &r, 1000, why);
	if (cap0 && c.n_cap && c.cap_vals[0])
		*cap0 = strdup(c.cap_vals[0]);
	capture_release(&c);
	redactor_free(red);
	return res;
}

static const char *lookup(void *ctx, const char *name)
{
	return varset_get(ctx, name);
}

static void test_compile_per_host(void **state)
{
	struct runbook *rb = load_rb();
	struct step_pats *pats[PHASE_COUNT] = { NULL };
	struct rb_error err = RB_ERROR_INIT;
	const struct step *t = &rb->phases[PHASE_STEPS][1];
	struct varset vs = VARSET_INIT;
	struct step_pats hp;
	struct buf why = BUF_INIT;
	char *build = NULL;

	(void)state;
	assert_int_equal(capture_compile(rb, pats, &err), 0);
	assert_false(pats[PHASE_STEPS][0].templated);
	assert_non_null(pats[PHASE_STEPS][0].out);
	assert_true(pats[PHASE_STEPS][1].templated);
	assert_null(pats[PHASE_STEPS][1].out);

	/* --var wins: this host's value is 1.3.0 */
	varset_set(&vs, "version", "1.3.0");
	assert_int_equal(capture_compile_step(t, lookup, &vs, &hp, &err), 0);
	assert_false(hp.templated);
	assert_int_equal(judge(t, &hp, "version 1.3.0\n1.3.0+b42\n", &why,
			       &build), RES_OK);
	assert_string_equal(build, "b42");
	free(build);
	/* a dot is a dot, not any character */
	buf_reset(&why);
	assert_int_equal(judge(t, &hp, "version 1x3y0\n1.3.0+b42\n", &why,
			       NULL), RES_FAILED);
	assert_non_null(strstr(buf_str(&why), "version 1\\.3\\.0$"));
	buf_reset(&why);
	assert_int_equal(judge(t, &hp, "version 1.3.0\nold 1.3.0\n1.3.0+b\n",
			       &why, NULL), RES_FAILED);
	capture_release_step(t, &hp);

	/* a value that is a pattern is still only text */
	varset_set(&vs, "version", ".*");
	assert_int_equal(capture_compile_step(t, lookup, &vs, &hp, &err), 0);
	buf_reset(&why);
	assert_int_equal(judge(t, &hp, "version 1.3.0\n.*+b\n", &why, NULL),
			 RES_FAILED);
	buf_reset(&why);
	assert_int_equal(judge(t, &hp, "version .*\n.*+b\n", &why, NULL),
			 RES_OK);
	capture_release_step(t, &hp);

	/* an unknown name: the step must not run */
	varset_release(&vs);
	assert_int_equal(capture_compile_step(t, lookup, &vs, &hp, &err), -1);
	assert_int_equal(err.cls, RB_ERR_INVALID);
	assert_non_null(strstr(err.msg, "unknown variable \"version\""));

	/* the empty entry fails closed */
	buf_reset(&why);
	assert_int_equal(judge(t, &pats[PHASE_STEPS][1], "version 1.3.0\n",
			       &why, NULL), RES_FAILED);
	assert_non_null(strstr(buf_str(&why), "rendered for this host"));
	buf_release(&why);
	capture_free_pats(rb, pats);
	runbook_free(rb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compile_per_host),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
