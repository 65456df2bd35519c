/*
 * Loading and validating runbooks from memory: the model's values and
 * defaults (docs/format.md), and the problems reported, all in one pass,
 * with their positions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "diag.h"
#include "error.h"
#include "load.h"
#include "runbook.h"
#include "validate.h"

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

#define HEAD                                                                 \
	"version: 1\n"                                                       \
	"name: test\n"                                                       \
	"owner: Ops <ops@example.com>\n"                                     \
	"reason: Test the loader\n"                                          \
	"expected: it loads\n"
#define HEAD_LINES 5

struct loaded {
	struct diag d;
	struct runbook *rb;
	int rc;
	size_t problems;	/* added by runbook_validate() */
};

/* Loads text, then validates when a model came out; extra: --var names. */
static void load_v(struct loaded *L, const char *text, char *const *extra,
		   size_t n_extra)
{
	diag_init(&L->d, "t.yml");
	L->rb = NULL;
	L->problems = 0;
	L->rc = runbook_load_mem("t.yml", text, strlen(text), &L->rb, &L->d);
	if (L->rb)
		L->problems = runbook_validate(L->rb, extra, n_extra, &L->d);
}

static void load(struct loaded *L, const char *text)
{
	load_v(L, text, NULL, 0);
}

static void release(struct loaded *L)
{
	runbook_free(L->rb);
	diag_release(&L->d);
}

static const char *diags(const struct loaded *L)
{
	static char out[4096];
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < L->d.n && n < sizeof(out) - 1; i++)
		n += (size_t)snprintf(out + n, sizeof(out) - n, "\n  %u:%u: %s",
				      L->d.v[i].pos.line, L->d.v[i].pos.col,
				      L->d.v[i].msg);
	return out;
}

static void assert_clean(const struct loaded *L)
{
	if (L->rc != 0 || L->d.n != 0 || !L->rb)
		fail_msg("expected a clean load, got rc %d:%s", L->rc,
			 diags(L));
}

/* A problem at line (and col, when not 0) whose message has what and what2. */
static bool has_problem(const struct loaded *L, unsigned line, unsigned col,
			const char *what, const char *what2)
{
	for (size_t i = 0; i < L->d.n; i++) {
		const struct diag_entry *e = &L->d.v[i];

		if (e->pos.line == line && (!col || e->pos.col == col) &&
		    strstr(e->msg, what) && (!what2 || strstr(e->msg, what2)))
			return true;
	}
	return false;
}

static void assert_problem(const struct loaded *L, unsigned line,
			   unsigned col, const char *what, const char *what2)
{
	if (has_problem(L, line, col, what, what2))
		return;
	fail_msg("no problem at %u:%u with \"%s\"%s%s; got:%s", line, col,
		 what, what2 ? " and " : "", what2 ? what2 : "", diags(L));
}

/* diag_print() sorts the problems by position; print them nowhere. */
static void sort_diags(struct loaded *L)
{
	FILE *null = fopen("/dev/null", "w");

	assert_non_null(null);
	diag_print(&L->d, null);
	fclose(null);
}

/* Asserts the problems are exactly on these lines, in this order. */
static void assert_problem_lines(struct loaded *L, const unsigned *lines,
				 size_t n)
{
	if (L->d.n != n)
		fail_msg("expected %zu problems, got %zu:%s", n, L->d.n,
			 diags(L));
	sort_diags(L);
	for (size_t i = 0; i < n; i++)
		if (L->d.v[i].pos.line != lines[i])
			fail_msg("problem %zu is on line %u, expected %u:%s", i,
				 L->d.v[i].pos.line, lines[i], diags(L));
}

static const char full[] =
	HEAD						/* 1-5 */
	"targets:\n"					/* 6 */
	"  staging:\n"
	"    hosts: [local]\n"
	"  production:\n"
	"    hosts:\n"					/* 10 */
	"      - deploy@app1.example.com\n"
	"      - \"deploy@app2.example.com:2222\"\n"
	"      - app3\n"
	"      - { host: \"[::1]:2200\", identity: /keys/v6 }\n"
	"    serial: 1\n"				/* 15 */
	"    identity: /keys/deploy\n"
	"  canary:\n"
	"    hosts: [a, b, c, d, e]\n"
	"    serial: 25%\n"
	"vars:\n"					/* 20 */
	"  version: \"2.4.1\"\n"
	"  api_version: 2.40\n"
	"  workers: 4\n"
	"  octal: 010\n"
	"  flag: false\n"				/* 25 */
	"secrets:\n"
	"  db_password: { env: DB_PASSWORD }\n"
	"  key: { file: /etc/key }\n"
	"redact: ['token=[A-Za-z0-9]+']\n"
	"preflight:\n"					/* 30 */
	"  - name: current version\n"
	"    run: cat /srv/api/VERSION\n"
	"    capture: { previous: '^(\\S+)' }\n"
	"steps:\n"
	"  - name: install\n"				/* 35 */
	"    run: deploy-api --version {{ version }} --pw {{ secrets.db_password }}\n"
	"    expect: { exit: 0, stdout: 'installed \\d+\\.\\d+' }\n"
	"    rollback: deploy-api --version {{ previous }}\n"
	"    timeout: 2m\n"
	"    retries: 1\n"				/* 40 */
	"  - name: notify\n"
	"    run: logger \"api {{ version }} deployed\"\n"
	"    rollback: none\n"
	"  - name: everything\n"
	"    run: echo {{ api_version }}\n"		/* 45 */
	"    rollback: echo undo\n"
	"    expect:\n"
	"      exit: [0, 3, 255]\n"
	"      stderr: '^$'\n"
	"      not_stdout: ERROR\n"			/* 50 */
	"      not_stderr: '(?i)fatal'\n"
	"    timeout: 250ms\n"
	"    retry_delay: 1h30m\n"
	"    env: { APP_ENV: \"{{ target }}\", N: \"{{ workers }}\" }\n"
	"    dir: /srv/{{ target }}\n"			/* 55 */
	"    skip_if: test -f /srv/done\n"
	"    local: true\n"
	"verify:\n"
	"  - name: health\n"
	"    run: curl -fsS http://localhost:8080/health\n" /* 60 */
	"    expect: { stdout: '\"version\":\\s*\"2\\.4\\.1\"' }\n"
	"    retries: 10\n"
	"    retry_delay: 1s\n"
	"metrics:\n"
	"  - name: p95_ms\n"				/* 65 */
	"    run: ./measure-latency\n"
	"    pattern: 'p95=([0-9.]+)'\n"
	"    timeout: 90\n";

static void test_full_runbook_values(void **state)
{
	struct loaded L;
	const struct runbook *rb;
	const struct target *t;
	const struct step *s;

	(void)state;
	load(&L, full);
	assert_clean(&L);
	rb = L.rb;
	assert_string_equal(rb->file, "t.yml");
	assert_int_equal(rb->version, 1);
	assert_string_equal(rb->name.s, "test");
	assert_int_equal(rb->name.pos.line, 2);
	assert_int_equal(rb->name.pos.col, 7);
	assert_string_equal(rb->owner.s, "Ops <ops@example.com>");
	assert_string_equal(rb->reason.s, "Test the loader");
	assert_string_equal(rb->expected.s, "it loads");

	assert_false(rb->implicit_target);
	assert_int_equal(rb->n_targets, 3);
	t = runbook_target(rb, "staging");
	assert_non_null(t);
	assert_int_equal(t->n_hosts, 1);
	assert_true(t->hosts[0].local);
	assert_int_equal(t->serial, 0);

	t = runbook_target(rb, "production");
	assert_non_null(t);
	assert_int_equal(t->n_hosts, 4);
	assert_string_equal(t->hosts[0].spec, "deploy@app1.example.com");
	assert_false(t->hosts[0].local);
	assert_string_equal(t->hosts[0].user, "deploy");
	assert_string_equal(t->hosts[0].address, "app1.example.com");
	assert_int_equal(t->hosts[0].port, 0);
	assert_int_equal(t->hosts[0].pos.line, 11);
	assert_string_equal(t->hosts[1].address, "app2.example.com");
	assert_int_equal(t->hosts[1].port, 2222);
	assert_null(t->hosts[2].user);
	assert_string_equal(t->hosts[2].address, "app3");
	assert_string_equal(t->hosts[3].address, "::1");
	assert_int_equal(t->hosts[3].port, 2200);
	assert_string_equal(t->hosts[3].identity, "/keys/v6");
	assert_null(t->hosts[0].identity);
	assert_string_equal(t->identity.s, "/keys/deploy");
	assert_int_equal(t->serial, 1);
	assert_false(t->serial_percent);
	assert_int_equal(target_batch_size(t), 1);

	t = runbook_target(rb, "canary");
	assert_int_equal(t->serial, 25);
	assert_true(t->serial_percent);
	assert_int_equal(target_batch_size(t), 2);
	assert_null(runbook_target(rb, "nope"));

	/* vars keep the text as written */
	assert_int_equal(rb->n_vars, 5);
	assert_string_equal(kv_find(rb->vars, rb->n_vars, "version")->val, "2.4.1");
	assert_string_equal(kv_find(rb->vars, rb->n_vars, "api_version")->val, "2.40");
	assert_string_equal(kv_find(rb->vars, rb->n_vars, "workers")->val, "4");
	assert_string_equal(kv_find(rb->vars, rb->n_vars, "octal")->val, "010");
	assert_string_equal(kv_find(rb->vars, rb->n_vars, "flag")->val, "false");
	assert_int_equal(kv_find(rb->vars, rb->n_vars, "api_version")->pos.line, 22);
	assert_int_equal(kv_find(rb->vars, rb->n_vars, "api_version")->pos.col, 16);

	assert_int_equal(rb->n_secrets, 2);
	assert_int_equal(runbook_secret(rb, "db_password")->source, SECRET_ENV);
	assert_string_equal(runbook_secret(rb, "db_password")->from, "DB_PASSWORD");
	assert_int_equal(runbook_secret(rb, "key")->source, SECRET_FILE);
	assert_string_equal(runbook_secret(rb, "key")->from, "/etc/key");
	assert_null(runbook_secret(rb, "nope"));
	assert_int_equal(rb->n_redact, 1);
	assert_string_equal(rb->redact[0].s, "token=[A-Za-z0-9]+");

	assert_int_equal(rb->n_phase[PHASE_PREFLIGHT], 1);
	assert_int_equal(rb->n_phase[PHASE_STEPS], 3);
	assert_int_equal(rb->n_phase[PHASE_VERIFY], 1);
	assert_int_equal(rb->n_phase[PHASE_METRICS], 1);

	s = &rb->phases[PHASE_PREFLIGHT][0];
	assert_int_equal(s->phase, PHASE_PREFLIGHT);
	assert_string_equal(s->path, "preflight[0]");
	assert_int_equal(s->n_capture, 1);
	assert_string_equal(s->capture[0].key, "previous");
	assert_string_equal(s->capture[0].val, "^(\\S+)");
	assert_null(s->rollback.s);

	s = &rb->phases[PHASE_STEPS][0];
	assert_string_equal(s->path, "steps[0]");
	assert_int_equal(s->index, 0);
	assert_string_equal(s->name.s, "install");
	assert_int_equal(s->name.pos.line, 35);
	assert_int_equal(s->name.pos.col, 11);
	assert_string_equal(s->run.s,
			    "deploy-api --version {{ version }} --pw {{ secrets.db_password }}");
	assert_string_equal(s->rollback.s, "deploy-api --version {{ previous }}");
	assert_false(s->rollback_none);
	assert_int_equal(s->timeout_ms, 120000);
	assert_int_equal(s->retries, 1);
	assert_int_equal(s->retry_delay_ms, 1000);
	assert_int_equal(s->expect.n_exit, 1);
	assert_int_equal(s->expect.exit_codes[0], 0);
	assert_string_equal(s->expect.out.s, "installed \\d+\\.\\d+");
	assert_null(s->expect.err.s);
	assert_false(s->local);

	s = &rb->phases[PHASE_STEPS][1];
	assert_string_equal(s->path, "steps[1]");
	assert_true(s->rollback_none);
	/* defaults */
	assert_int_equal(s->timeout_ms, RB_DEFAULT_TIMEOUT_MS);
	assert_int_equal(s->timeout_ms, 600000);
	assert_int_equal(s->retry_delay_ms, 1000);
	assert_int_equal(s->retries, 0);
	assert_int_equal(s->expect.n_exit, 1);
	assert_int_equal(s->expect.exit_codes[0], 0);
	assert_int_equal(s->n_capture, 0);
	assert_int_equal(s->n_env, 0);
	assert_null(s->dir.s);
	assert_int_equal(s->dir.pos.line, 0);
	assert_null(s->skip_if.s);
	assert_false(s->local);

	s = &rb->phases[PHASE_STEPS][2];
	assert_int_equal(s->expect.n_exit, 3);
	assert_int_equal(s->expect.exit_codes[0], 0);
	assert_int_equal(s->expect.exit_codes[1], 3);
	assert_int_equal(s->expect.exit_codes[2], 255);
	assert_string_equal(s->expect.err.s, "^$");
	assert_string_equal(s->expect.not_out.s, "ERROR");
	assert_string_equal(s->expect.not_err.s, "(?i)fatal");
	assert_int_equal(s->timeout_ms, 250);
	assert_int_equal(s->retry_delay_ms, 5400000);
	assert_int_equal(s->n_env, 2);
	assert_string_equal(s->env[0].key, "APP_ENV");
	assert_string_equal(s->env[0].val, "{{ target }}");
	assert_string_equal(s->env[1].key, "N");
	assert_string_equal(s->dir.s, "/srv/{{ target }}");
	assert_string_equal(s->skip_if.s, "test -f /srv/done");
	assert_true(s->local);

	s = &rb->phases[PHASE_VERIFY][0];
	assert_string_equal(s->path, "verify[0]");
	assert_int_equal(s->retries, 10);
	assert_int_equal(s->retry_delay_ms, 1000);
	assert_int_equal(s->timeout_ms, 600000);

	s = &rb->phases[PHASE_METRICS][0];
	assert_string_equal(s->path, "metrics[0]");
	assert_string_equal(s->pattern.s, "p95=([0-9.]+)");
	assert_int_equal(s->timeout_ms, 90000);
	release(&L);
}

static void test_implicit_local_target(void **state)
{
	struct loaded L;
	const struct target *t;

	(void)state;
	load(&L, HEAD "steps:\n  - name: a\n    run: echo a\n    rollback: none\n");
	assert_clean(&L);
	assert_true(L.rb->implicit_target);
	assert_int_equal(L.rb->n_targets, 1);
	t = &L.rb->targets[0];
	assert_string_equal(t->name, "local");
	assert_ptr_equal(runbook_target(L.rb, "local"), t);
	assert_int_equal(t->n_hosts, 1);
	assert_true(t->hosts[0].local);
	assert_string_equal(t->hosts[0].spec, "local");
	assert_int_equal(t->serial, 0);
	assert_int_equal(target_batch_size(t), 1);
	assert_int_equal(L.rb->n_vars, 0);
	assert_int_equal(L.rb->n_phase[PHASE_PREFLIGHT], 0);
	release(&L);
}

static void test_vars_keep_text(void **state)
{
	struct loaded L;
	static const struct {
		const char *key, *val;
	} want[] = {
		{ "version", "2.40" }, { "float", "1e3" }, { "hex", "0x1F" },
		{ "date", "2024-01-01" }, { "yes_", "yes" }, { "big", "12345678901234567890" },
		{ "quoted", "2.40" }, { "lead", "007" }, { "neg", "-1.50" },
		{ "inf", ".inf" },
	};

	(void)state;
	load(&L, HEAD
	     "vars:\n  version: 2.40\n  float: 1e3\n  hex: 0x1F\n"
	     "  date: 2024-01-01\n  yes_: yes\n  big: 12345678901234567890\n"
	     "  quoted: '2.40'\n  lead: 007\n  neg: -1.50\n  inf: .inf\n"
	     "steps:\n  - name: a\n    run: echo {{ version }}\n    rollback: none\n");
	assert_clean(&L);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct kv *kv = kv_find(L.rb->vars, L.rb->n_vars,
					      want[i].key);

		assert_non_null(kv);
		assert_string_equal(kv->val, want[i].val);
	}
	release(&L);
}

static void test_null_var_rejected(void **state)
{
	struct loaded L;

	(void)state;
	load(&L, HEAD "vars:\n  a: ~\n  b:\n  c: [1]\n"
	     "steps:\n  - name: a\n    run: echo\n    rollback: none\n");
	assert_int_equal(L.rc, -1);
	assert_problem(&L, 7, 6, "vars.a: expected a string", "found null");
	assert_problem(&L, 8, 5, "vars.b: expected a string", "found null");
	assert_problem(&L, 9, 6, "vars.c: expected a string", "found a list");
	release(&L);
}

static void test_rollback_none(void **state)
{
	struct loaded L;

	(void)state;
	load(&L, HEAD "steps:\n  - name: a\n    run: echo a\n    rollback: none\n"
	     "  - name: b\n    run: echo b\n    rollback: \"'no'\"\n"
	     "  - name: c\n    run: echo c\n    rollback: \"true\"\n");
	assert_clean(&L);
	assert_true(L.rb->phases[PHASE_STEPS][0].rollback_none);
	/* a command named no is written shell-quoted */
	assert_false(L.rb->phases[PHASE_STEPS][1].rollback_none);
	assert_string_equal(L.rb->phases[PHASE_STEPS][1].rollback.s, "'no'");
	/* quoted, "true" is the command true: only plain true is a boolean */
	assert_string_equal(L.rb->phases[PHASE_STEPS][2].rollback.s, "true");
	release(&L);
}

static void test_rollback_no_is_an_error(void **state)
{
	/* yes/no/on/off quoted too: the JSON Schema sees "no" and no alike */
	static const char *const words[] = { "no", "No", "false", "off", "yes",
					     "n", "~", "null", "", "\"no\"",
					     "'yes'", "\"off\"", "\"Y\"",
					     "'ON'" };
	struct loaded L;
	char text[512];

	(void)state;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		snprintf(text, sizeof(text),
			 HEAD "steps:\n  - name: a\n    run: echo a\n    rollback: %s\n",
			 words[i]);
		load(&L, text);
		if (L.rc != -1 || L.d.n != 1)
			fail_msg("rollback: %s gave rc %d:%s", words[i], L.rc,
				 diags(&L));
		assert_problem(&L, 9, 0, "steps[0].rollback: expected a command, or none",
			       "found");
		assert_null(L.rb->phases[PHASE_STEPS][0].rollback.s);
		assert_false(L.rb->phases[PHASE_STEPS][0].rollback_none);
		release(&L);
	}
}

/* rollback: None would run a command named None (issue 12). */
static void test_none_in_another_case(void **state)
{
	static const char *const rollbacks[] = { "None", "NONE", "nOnE",
						 "\"none \"", "\" none\"",
						 "|\n      none" };
	struct loaded L;
	char text[512];

	(void)state;
	for (size_t i = 0; i < sizeof(rollbacks) / sizeof(rollbacks[0]); i++) {
		snprintf(text, sizeof(text),
			 HEAD "steps:\n  - name: a\n    run: echo a\n    rollback: %s\n",
			 rollbacks[i]);
		load(&L, text);
		if (L.rc != -1 || L.d.n != 1)
			fail_msg("rollback: %s gave rc %d:%s", rollbacks[i],
				 L.rc, diags(&L));
		assert_problem(&L, 9, 15, "steps[0].rollback: expected none in lowercase",
			       "shell-quote a command of that name");
		assert_false(L.rb->phases[PHASE_STEPS][0].rollback_none);
		release(&L);
	}
	/* a run is never none, in any case */
	load(&L, HEAD "verify:\n  - name: a\n    run: None\n"
	     "steps:\n  - name: b\n    run: none\n    rollback: none\n");
	assert_int_equal(L.rc, -1);
	assert_problem(&L, 8, 10, "verify[0].run: expected a command, found \"None\"",
		       NULL);
	assert_problem(&L, 11, 10, "steps[0].run: expected a command, found \"none\"",
		       NULL);
	assert_int_equal(L.d.n, 2);
	release(&L);
	/* the word itself, and a shell-quoted command of that name */
	load(&L, HEAD "steps:\n  - name: a\n    run: \"'None'\"\n"
	     "    rollback: \"'None'\"\n  - name: b\n    run: echo\n"
	     "    rollback: \"none\"\n");
	assert_clean(&L);
	assert_false(L.rb->phases[PHASE_STEPS][0].rollback_none);
	assert_true(L.rb->phases[PHASE_STEPS][1].rollback_none);
	release(&L);
}

static void test_local_must_be_true_or_false(void **state)
{
	static const char *const words[] = { "yes", "no", "on", "True", "1",
					     "\"true\"", "~" };
	struct loaded L;
	char text[512];

	(void)state;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		snprintf(text, sizeof(text),
			 HEAD "steps:\n  - name: a\n    run: echo a\n    rollback: none\n    local: %s\n",
			 words[i]);
		load(&L, text);
		if (L.rc != -1 || L.d.n != 1)
			fail_msg("local: %s gave rc %d:%s", words[i], L.rc,
				 diags(&L));
		assert_problem(&L, 10, 12, "steps[0].local: expected true or false",
			       NULL);
		release(&L);
	}
	load(&L, HEAD "steps:\n  - name: a\n    run: echo a\n    rollback: none\n    local: true\n");
	assert_clean(&L);
	assert_true(L.rb->phases[PHASE_STEPS][0].local);
	release(&L);
}

/* docs/format.md: "A duration must be above zero (0s is rejected)". */
static void test_zero_durations(void **state)
{
	struct loaded L;
	bool ok;

	(void)state;
	load(&L, HEAD "steps:\n  - name: a\n    run: echo\n    rollback: none\n"
	     "    timeout: 0s\n  - name: b\n    run: echo\n    rollback: none\n"
	     "    timeout: 0\n");
	assert_int_equal(L.rc, -1);
	assert_problem(&L, 10, 14, "steps[0].timeout", "above zero");
	assert_problem(&L, 14, 14, "steps[1].timeout", "above zero");
	assert_int_equal(L.d.n, 2);
	release(&L);
	load(&L, HEAD "steps:\n  - name: a\n    run: echo\n    rollback: none\n"
	     "    retries: 3\n    retry_delay: 0s\n");
	ok = L.rc == -1 && has_problem(&L, 11, 18, "steps[0].retry_delay", NULL);
	release(&L);
	KNOWN_BUG(ok, "retry_delay: 0s is accepted, but docs/format.md says a "
		  "duration must be above zero (0s is rejected)");
}

static void test_all_problems_in_one_pass(void **state)
{
	/* eleven mistakes, from the loader and from validation */
	static const unsigned lines[] = { 1, 2, 3, 6, 9, 10, 11, 12, 13,
					  14, 17 };
	struct loaded L;

	(void)state;
	load(&L,
	     "version: 2\n"				/* 1 */
	     "name: Bad_Name\n"				/* 2 */
	     "owner: \"\"\n"				/* 3 */
	     "reason: r\n"
	     "expected: e\n"
	     "bogus: 1\n"				/* 6 */
	     "steps:\n"
	     "  - name: a\n"
	     "    run: echo {{ nope }}\n"		/* 9 */
	     "    rollback: no\n"			/* 10 */
	     "    timeout: soon\n"			/* 11 */
	     "    retries: 101\n"			/* 12 */
	     "    local: yes\n"				/* 13 */
	     "  - name: a\n"				/* 14 */
	     "    run: x\n"
	     "    rollback: none\n"
	     "    expect: { stdout: '(' }\n");		/* 17 */
	assert_int_equal(L.rc, -1);
	assert_non_null(L.rb);
	/* the loader's problems, then validation's, in one run */
	assert_int_equal(L.problems, 3);
	assert_problem_lines(&L, lines, sizeof(lines) / sizeof(lines[0]));
	assert_problem(&L, 1, 10, "version:", "found \"2\"");
	assert_problem(&L, 6, 1, "bogus", "unknown key");
	assert_problem(&L, 9, 15, "{{ nope }}", NULL);
	assert_problem(&L, 11, 14, "steps[0].timeout", "\"soon\"");
	assert_problem(&L, 14, 11, "steps[1].name", "first at line 8");
	assert_problem(&L, 17, 25, "steps[1].expect.stdout", "does not compile");
	release(&L);
}

static void test_missing_keys_all_reported(void **state)
{
	struct loaded L;

	(void)state;
	load(&L, "name: x\nsteps:\n  - run: echo\n");
	assert_int_equal(L.rc, -1);
	assert_problem(&L, 1, 1, "version: expected a key \"version\"", NULL);
	assert_problem(&L, 1, 1, "owner: expected a key", NULL);
	assert_problem(&L, 1, 1, "reason: expected a key", NULL);
	assert_problem(&L, 1, 1, "expected: expected a key", NULL);
	assert_problem(&L, 3, 5, "steps[0].name: expected a key", NULL);
	assert_problem(&L, 3, 5, "steps[0].rollback: expected a key", NULL);
	assert_int_equal(L.d.n, 6);
	release(&L);
}

static void test_duplicate_keys(void **state)
{
	struct loaded L;
	char got[4096];
	bool ok;

	(void)state;
	load(&L, HEAD "name: again\n"
	     "steps:\n  - name: a\n    run: echo a\n    run: echo b\n    rollback: none\n"
	     "    env: { A: x, B: y, A: z }\n");
	assert_int_equal(L.rc, -1);
	assert_problem(&L, 6, 1, "name: expected each key once", "first at line 2");
	assert_problem(&L, 10, 5, "steps[0].run: expected each key once",
		       "first at line 9");
	assert_problem(&L, 12, 24, "steps[0].env.A", "first at line 12");
	assert_int_equal(L.d.n, 3);
	release(&L);
	/* a third use names the first one, not the one before it */
	load(&L, HEAD "steps:\n  - name: a\n    run: echo a\n    rollback: none\n"
	     "    run: echo b\n    run: echo c\n");
	assert_int_equal(L.d.n, 2);
	assert_problem(&L, 10, 5, "steps[0].run: expected each key once",
		       "first at line 8");
	assert_problem(&L, 11, 5, "steps[0].run: expected each key once", NULL);
	ok = has_problem(&L, 11, 5, "steps[0].run", "first at line 8");
	snprintf(got, sizeof(got), "%s", diags(&L));
	release(&L);
	KNOWN_BUG(ok, "the third use of a key says \"first at line 10\" (the "
		  "second use), not line 8:%s", got);
}

static void test_duplicate_step_names_across_phases(void **state)
{
	struct loaded L;
	char got[4096];
	bool ok;

	(void)state;
	load(&L, HEAD
	     "preflight:\n  - name: check\n    run: echo\n"
	     "steps:\n  - name: check\n    run: echo\n    rollback: none\n"
	     "metrics:\n  - name: check\n    run: echo\n    pattern: '(x)'\n");
	assert_int_equal(L.problems, 2);
	assert_problem(&L, 10, 11, "steps[0].name", "first at line 7");
	assert_problem(&L, 14, 11, "metrics[0].name", "found \"check\" again");
	/* a third use names the first one, not the one before it */
	ok = has_problem(&L, 14, 11, "metrics[0].name", "first at line 7");
	snprintf(got, sizeof(got), "%s", diags(&L));
	release(&L);
	KNOWN_BUG(ok, "the third use of a step name says \"first at line 10\" "
		  "(the second use), not line 7:%s", got);
}

static void test_capture_needs_one_group(void **state)
{
	struct loaded L;

	(void)state;
	load(&L, HEAD "steps:\n  - name: a\n    run: echo\n    rollback: none\n"
	     "    capture:\n"
	     "      none: 'abc'\n"				/* 11 */
	     "      two: '(a)(b)'\n"				/* 12 */
	     "      one: '(?:a)(b)'\n"
	     "      named: '(?<v>\\d+)'\n"
	     "      bad: 'a(b'\n"				/* 15 */
	     "metrics:\n  - name: m\n    run: echo\n    pattern: 'x=\\d+'\n"); /* 19 */
	assert_int_equal(L.rc, 0);	/* the loader does not compile patterns */
	assert_int_equal(L.problems, 4);
	assert_problem(&L, 11, 13, "steps[0].capture.none", "found 0 groups");
	assert_problem(&L, 12, 12, "steps[0].capture.two", "found 2 groups");
	/* at the pattern's error offset: 'a(b' starts at column 13 */
	assert_problem(&L, 15, 16, "steps[0].capture.bad", "does not compile");
	assert_problem(&L, 19, 14, "metrics[0].pattern", "found 0 groups");
	release(&L);
}

static void test_unknown_names(void **state)
{
	struct loaded L;

	(void)state;
	load(&L, HEAD
	     "vars: { v: 1 }\n"
	     "secrets: { token: { env: TOKEN } }\n"
	     "steps:\n"
	     "  - name: a\n"
	     "    run: echo {{ v }} {{ nope }} {{ secrets.token }} {{ secrets.other }}\n" /* 10 */
	     "    rollback: none\n"
	     "    env: { X: \"{{ secrets.missing }}\" }\n"	/* 12 */
	     "    skip_if: test {{ later }}\n"			/* 13 */
	     "  - name: b\n"
	     "    run: echo {{ later }}\n"			/* 15 */
	     "    capture: { later: '(.*)' }\n"
	     "    rollback: none\n");
	assert_int_equal(L.problems, 5);
	assert_problem(&L, 10, 23, "steps[0].run", "unknown \"{{ nope }}\"");
	assert_problem(&L, 10, 54, "steps[0].run",
		       "expected a secret declared under secrets");
	assert_problem(&L, 12, 0, "steps[0].env.X", "{{ secrets.missing }}");
	assert_problem(&L, 13, 19, "steps[0].skip_if", "{{ later }}");
	/* a step's capture comes from its run: the run cannot use it */
	assert_problem(&L, 15, 15, "steps[1].run", "{{ later }}");
	release(&L);
}

static void test_extra_names_are_defined(void **state)
{
	static const char text[] = HEAD
		"steps:\n  - name: a\n    run: deploy {{ release }}\n"
		"    rollback: undeploy {{ release }} {{ other }}\n";
	static char release_[] = "release", other[] = "other", c_[] = "c";
	char *extra[] = { release_, other };
	char *c[] = { c_ };
	static const char capture_text[] = HEAD
		"steps:\n  - name: a\n    run: echo {{ c }}\n"
		"    capture: { c: '(x)' }\n    rollback: none\n";
	struct loaded L;

	(void)state;
	load(&L, text);
	assert_int_equal(L.problems, 3);
	release(&L);
	load_v(&L, text, extra, 2);
	assert_clean(&L);
	release(&L);
	/* a --var may also give a value to a name that is a capture later */
	load(&L, capture_text);
	assert_int_equal(L.problems, 1);
	release(&L);
	load_v(&L, capture_text, c, 1);
	assert_clean(&L);
	release(&L);
}

/*
 * A --var name the runbook neither declares nor uses is an input error
 * naming the closest known name (issue 12: -e verison=1.3.0 applied the
 * default release).
 */
static void test_var_names_must_be_known(void **state)
{
	static const char text[] = HEAD
		"vars: { version: 1.2.0, release_dir: /srv }\n"
		"preflight:\n  - name: p\n    run: echo\n"
		"    capture: { previous: '(x)' }\n"
		"steps:\n  - name: a\n    run: deploy {{ only_here }}\n"
		"    env: { X: \"{{ in_env }}\" }\n"
		"    expect: { stdout: '{{ in_expect }}' }\n"
		"    rollback: none\n";
	static const char reason_text[] =
		"version: 1\nname: t\nowner: o\n"
		"reason: \"{{ in_reason }}\"\nexpected: e\n"
		"steps:\n  - name: a\n    run: echo\n    rollback: none\n";
	static const char *const known_[] = { "version", "release_dir",
					      "previous", "only_here",
					      "in_env", "in_expect" };
	static const char *const typos_[] = { "verison", "VERSION",
					      "releasedir", "prevous", "zzz",
					      "target", "host", "verison" };
	char *known[6], *typos[8], *all[14], *one[1];
	struct loaded L;

	(void)state;
	for (size_t i = 0; i < 6; i++)
		all[i] = known[i] = strdup(known_[i]);
	for (size_t i = 0; i < 8; i++)
		all[6 + i] = typos[i] = strdup(typos_[i]);
	one[0] = strdup("in_reason");
	load_v(&L, text, known, 6);
	assert_clean(&L);
	release(&L);
	load_v(&L, reason_text, one, 1);
	assert_clean(&L);
	release(&L);

	load_v(&L, text, all, 14);
	assert_int_equal(L.rc, 0);
	/* verison twice on the command line: reported once */
	assert_int_equal(L.problems, 7);
	assert_problem(&L, 0, 0, "--var verison: expected a name this runbook declares or uses",
		       "found unknown \"verison\"; did you mean version?");
	assert_problem(&L, 0, 0, "--var VERSION:", "did you mean version?");
	assert_problem(&L, 0, 0, "--var releasedir:", "did you mean release_dir?");
	assert_problem(&L, 0, 0, "--var prevous:", "did you mean previous?");
	assert_problem(&L, 0, 0, "--var zzz:",
		       "known names: in_env, in_expect, only_here, previous, release_dir, version");
	assert_problem(&L, 0, 0, "--var target:", "built in");
	assert_problem(&L, 0, 0, "--var host:", "built in");
	release(&L);

	/* a runbook that names no variable at all */
	load_v(&L, HEAD "steps:\n  - name: a\n    run: echo\n    rollback: none\n",
	       known, 1);
	assert_int_equal(L.problems, 1);
	assert_problem(&L, 0, 0, "--var version:",
		       "this runbook declares and uses no variable");
	release(&L);
	for (size_t i = 0; i < 6; i++)
		free(known[i]);
	for (size_t i = 0; i < 8; i++)
		free(typos[i]);
	free(one[0]);
}

static void test_builtins_are_defined(void **state)
{
	struct loaded L;

	(void)state;
	load(&L, HEAD "steps:\n  - name: a\n"
	     "    run: echo {{ change.id }} {{ target }} {{ host }} {{ runbook.name }} {{ 'lit' }}\n"
	     "    rollback: echo {{ change.id }}\n");
	assert_clean(&L);
	release(&L);
	assert_true(is_builtin_var("change.id"));
	assert_true(is_builtin_var("runbook.name"));
	assert_false(is_builtin_var("change"));
	assert_false(is_builtin_var("secrets.x"));
}

static void test_builtin_names_not_redefined(void **state)
{
	struct loaded L;

	(void)state;
	load(&L, HEAD "vars: { target: x, runbook: y, ok: z }\n"
	     "steps:\n  - name: a\n    run: echo\n    rollback: none\n"
	     "    capture: { host: '(x)' }\n");
	assert_int_equal(L.problems, 3);
	assert_problem(&L, 6, 9, "\"target\", which is built in", NULL);
	assert_problem(&L, 6, 20, "\"runbook\", which is built in", NULL);
	assert_problem(&L, 11, 16, "steps[0].capture.host", "built in");
	release(&L);
}

static void test_capture_scope(void **state)
{
	struct loaded L;

	(void)state;
	load(&L, HEAD
	     "preflight:\n"
	     "  - name: p\n"
	     "    run: echo\n"
	     "    capture: { pre: '(x)' }\n"
	     "steps:\n"						/* 10 - 1 */
	     "  - name: s1\n"
	     "    run: echo {{ pre }} {{ c2 }}\n"		/* x: c2 is later (12) */
	     "    rollback: echo {{ c2 }}\n"			/* x (13) */
	     "  - name: s2\n"
	     "    run: echo {{ c2 }}\n"			/* x: its own run (15) */
	     "    capture: { c2: '(y)' }\n"
	     "    rollback: echo {{ c2 }}\n"			/* ok: own rollback */
	     "  - name: s3\n"
	     "    run: echo {{ c2 }}\n"			/* ok: later step */
	     "    rollback: echo {{ c2 }}\n"			/* 20 */
	     "    skip_if: test {{ c2 }}\n"
	     "    env: { A: \"{{ c2 }}\" }\n"
	     "    dir: \"/{{ c2 }}\"\n"
	     "verify:\n"
	     "  - name: v\n"					/* 25 */
	     "    run: echo {{ c2 }} {{ pre }}\n"		/* ok */
	     "metrics:\n"
	     "  - name: m\n"
	     "    run: echo {{ pre }} {{ c2 }}\n"		/* x: metrics run before the steps (29) */
	     "    pattern: '(\\d+)'\n");
	assert_int_equal(L.rc, 0);
	assert_int_equal(L.problems, 4);
	assert_problem(&L, 12, 25, "steps[0].run", "{{ c2 }}");
	assert_problem(&L, 13, 20, "steps[0].rollback", "{{ c2 }}");
	assert_problem(&L, 15, 15, "steps[1].run", "{{ c2 }}");
	assert_problem(&L, 29, 25, "metrics[0].run", "{{ c2 }}");
	release(&L);
}

static void test_preflight_capture_order(void **state)
{
	struct loaded L;

	(void)state;
	load(&L, HEAD
	     "preflight:\n"
	     "  - name: p1\n"
	     "    run: echo {{ b }}\n"			/* 8: b is later */
	     "    capture: { a: '(x)' }\n"
	     "  - name: p2\n"
	     "    run: echo {{ a }}\n"
	     "    capture: { b: '(x)' }\n"
	     "steps:\n  - name: s\n    run: echo {{ a }} {{ b }}\n    rollback: none\n");
	assert_int_equal(L.problems, 1);
	assert_problem(&L, 8, 15, "preflight[0].run", "{{ b }}");
	release(&L);
}

static void test_unsafe_templates_rejected(void **state)
{
	struct loaded L;

	(void)state;
	load(&L, HEAD "vars: { f: x }\nsteps:\n  - name: a\n"
	     "    run: echo `cat {{ f }}`\n"			/* 9 */
	     "    rollback: echo {{ f\n");			/* 10 */
	assert_int_equal(L.problems, 2);
	assert_problem(&L, 9, 20, "steps[0].run", "backquotes");
	assert_problem(&L, 10, 20, "steps[0].rollback", NULL);
	release(&L);
}

static void test_merge_key_and_x_keys(void **state)
{
	struct loaded L;
	const struct step *st;

	(void)state;
	load(&L, HEAD "x-s: &s { run: echo, rollback: none, timeout: 5s }\n"
	     "x-other: [anything, { goes: here }]\n"
	     "steps:\n  - <<: *s\n    name: b\n");
	assert_int_equal(L.rc, 0);
	assert_int_equal(L.problems, 0);
	st = &L.rb->phases[PHASE_STEPS][0];
	assert_string_equal(st->name.s, "b");
	assert_string_equal(st->run.s, "echo");
	assert_true(st->rollback_none);
	assert_int_equal(st->timeout_ms, 5000);
	release(&L);
	/* x- only at the top level; a bare "x" is still unknown */
	load(&L, HEAD "x: 1\nsteps:\n  - name: a\n    run: echo\n"
	     "    rollback: none\n    x-note: 1\n");
	assert_int_equal(L.rc, -1);
	assert_problem(&L, 6, 1, "unknown key \"x\"", NULL);
	assert_problem(&L, 11, 5, "unknown key \"x-note\"", NULL);
	release(&L);
}

static void test_not_a_mapping(void **state)
{
	struct loaded L;

	(void)state;
	load(&L, "- a\n- b\n");
	assert_int_equal(L.rc, -1);
	assert_null(L.rb);
	assert_problem(&L, 1, 1, "expected a runbook", "found a list");
	release(&L);
	load(&L, "");
	assert_int_equal(L.rc, -1);
	assert_null(L.rb);
	assert_problem(&L, 1, 1, "expected a runbook", "empty");
	release(&L);
	load(&L, "just text\n");
	assert_int_equal(L.rc, -1);
	assert_null(L.rb);
	assert_problem(&L, 1, 1, "expected a runbook", "\"just text\"");
	release(&L);
}

static void test_hosts(void **state)
{
	struct loaded L;

	(void)state;
	load(&L, HEAD "targets:\n  t:\n    hosts:\n"
	     "      - \"a b\"\n"				/* 9 */
	     "      - \"x;touch y\"\n"
	     "      - \"@host\"\n"
	     "      - \"h:0\"\n"
	     "      - \"h:65536\"\n"
	     "      - \"-oProxyCommand=x\"\n"			/* 14 */
	     "      - \"[::1\"\n"
	     "      - \"h:22x\"\n"
	     "      - { host: ok, port: 22 }\n"		/* 17 */
	     "      - \"h:65535\"\n"
	     "steps:\n  - name: a\n    run: echo\n    rollback: none\n");
	assert_int_equal(L.rc, -1);
	for (unsigned line = 9; line <= 16; line++)
		assert_problem(&L, line, 9, "expected a host such as", NULL);
	assert_problem(&L, 17, 21, "targets.t.hosts[8].port", "unknown key");
	assert_int_equal(L.d.n, 9);
	assert_int_equal(L.rb->targets[0].hosts[9].port, 65535);
	release(&L);
}

static void test_load_file_errors(void **state)
{
	char dir[] = "/tmp/rbloadXXXXXX";
	char path[128];
	struct runbook *rb = NULL;
	struct rb_error err = RB_ERROR_INIT;
	struct diag d;
	FILE *fp;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/missing.yml", dir);
	diag_init(&d, path);
	assert_int_equal(runbook_load(path, &rb, &d, &err), -1);
	assert_null(rb);
	assert_int_equal(err.cls, RB_ERR_INVALID);
	assert_non_null(strstr(err.msg, "missing.yml"));
	assert_int_equal(diag_count(&d), 0);

	rb_error_clear(&err);
	assert_int_equal(runbook_load(dir, &rb, &d, &err), -1);
	assert_null(rb);
	assert_int_equal(err.cls, RB_ERR_INVALID);
	assert_non_null(strstr(err.msg, dir));

	rb_error_clear(&err);
	snprintf(path, sizeof(path), "%s/empty.yml", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fclose(fp);
	assert_int_equal(runbook_load(path, &rb, &d, &err), -1);
	assert_null(rb);
	assert_int_equal(diag_count(&d), 1);
	assert_non_null(strstr(d.v[0].msg, "empty"));
	unlink(path);

	diag_release(&d);
	diag_init(&d, path);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(HEAD "steps:\n  - name: a\n    run: echo\n    rollback: none\n", fp);
	fclose(fp);
	assert_int_equal(runbook_load(path, &rb, &d, &err), 0);
	assert_non_null(rb);
	assert_string_equal(rb->file, path);
	runbook_free(rb);
	unlink(path);
	diag_release(&d);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_runbook_values),
		cmocka_unit_test(test_implicit_local_target),
		cmocka_unit_test(test_vars_keep_text),
		cmocka_unit_test(test_null_var_rejected),
		cmocka_unit_test(test_rollback_none),
		cmocka_unit_test(test_rollback_no_is_an_error),
		cmocka_unit_test(test_none_in_another_case),
		cmocka_unit_test(test_local_must_be_true_or_false),
		cmocka_unit_test(test_zero_durations),
		cmocka_unit_test(test_all_problems_in_one_pass),
		cmocka_unit_test(test_missing_keys_all_reported),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_duplicate_step_names_across_phases),
		cmocka_unit_test(test_capture_needs_one_group),
		cmocka_unit_test(test_unknown_names),
		cmocka_unit_test(test_extra_names_are_defined),
		cmocka_unit_test(test_var_names_must_be_known),
		cmocka_unit_test(test_builtins_are_defined),
		cmocka_unit_test(test_builtin_names_not_redefined),
		cmocka_unit_test(test_capture_scope),
		cmocka_unit_test(test_preflight_capture_order),
		cmocka_unit_test(test_unsafe_templates_rejected),
		cmocka_unit_test(test_merge_key_and_x_keys),
		cmocka_unit_test(test_not_a_mapping),
		cmocka_unit_test(test_hosts),
		cmocka_unit_test(test_load_file_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
