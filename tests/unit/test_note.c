/*
 * Change notes: note_render() then note_parse() gives back every field
 * the front matter holds, whatever the values are (quotes, newlines,
 * colons, '#', YAML keywords, unicode, template text, empty strings,
 * NULLs); text that is not a note is refused; what the body says is
 * never read as data.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "change.h"
#include "error.h"
#include "note.h"
#include "runbook.h"
#include "vars.h"

/* Both NULL, or both strings with the same text. */
static void assert_same_str(const char *what, const char *a, const char *b)
{
	if (!a || !b) {
		if (a != b)
			fail_msg("%s: \"%s\" != \"%s\"", what, a ? a : "(NULL)",
				 b ? b : "(NULL)");
		return;
	}
	if (strcmp(a, b) != 0)
		fail_msg("%s: \"%s\" != \"%s\"", what, a, b);
}

static void assert_varsets_equal(const struct varset *a, const struct varset *b)
{
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		assert_string_equal(a->names[i], b->names[i]);
		assert_string_equal(a->values[i], b->values[i]);
	}
}

static void assert_strvecs_equal(const struct strvec *a, const struct strvec *b)
{
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++)
		assert_string_equal(a->v[i], b->v[i]);
}

/*
 * Every field note_front_matter() writes. Not written, so not compared:
 * a step's pid, start_time, rb_running, rb_exit_code and output (the
 * output is in the body, for people).
 */
static void assert_rec_equal(const struct change_rec *a,
			     const struct change_rec *b)
{
	assert_same_str("change", a->id, b->id);
	assert_same_str("runbook", a->runbook, b->runbook);
	assert_same_str("file", a->file, b->file);
	assert_same_str("file_sha256", a->file_sha256, b->file_sha256);
	assert_same_str("target", a->target, b->target);
	assert_same_str("owner", a->owner, b->owner);
	assert_same_str("reason", a->reason, b->reason);
	assert_same_str("expected", a->expected, b->expected);
	assert_same_str("operator", a->operator_, b->operator_);
	assert_same_str("started", a->started, b->started);
	assert_same_str("finished", a->finished, b->finished);
	assert_same_str("identity", a->identity, b->identity);
	assert_same_str("mode", a->mode, b->mode);
	assert_same_str("limit", a->limit, b->limit);
	assert_same_str("watch", a->watch, b->watch);
	assert_same_str("baseline", a->baseline, b->baseline);
	assert_same_str("baseline_diff", a->baseline_diff, b->baseline_diff);
	assert_int_equal(a->status, b->status);
	assert_strvecs_equal(&a->hosts, &b->hosts);
	assert_strvecs_equal(&a->redact, &b->redact);
	assert_varsets_equal(&a->vars, &b->vars);
	assert_varsets_equal(&a->secrets, &b->secrets);
	assert_varsets_equal(&a->host_ids, &b->host_ids);

	assert_int_equal(a->n_captures, b->n_captures);
	for (size_t i = 0; i < a->n_captures; i++) {
		const struct rec_capture *x = &a->captures[i], *y = NULL;

		/* grouped by host in the note: look each one up */
		for (size_t k = 0; k < b->n_captures && !y; k++)
			if (strcmp(b->captures[k].host, x->host) == 0 &&
			    strcmp(b->captures[k].name, x->name) == 0)
				y = &b->captures[k];
		if (!y)
			fail_msg("capture %s of %s is missing", x->name, x->host);
		assert_same_str("capture", x->value, y->value);
	}

	assert_int_equal(a->n_metrics, b->n_metrics);
	for (size_t i = 0; i < a->n_metrics; i++) {
		assert_same_str("metric host", a->metrics[i].host,
				b->metrics[i].host);
		assert_same_str("metric name", a->metrics[i].name,
				b->metrics[i].name);
		assert_same_str("metric before", a->metrics[i].before,
				b->metrics[i].before);
		assert_same_str("metric after", a->metrics[i].after,
				b->metrics[i].after);
		assert_same_str("metric after_rollback",
				a->metrics[i].after_rollback,
				b->metrics[i].after_rollback);
	}

	assert_int_equal(a->n_steps, b->n_steps);
	for (size_t i = 0; i < a->n_steps; i++) {
		const struct rec_step *s = &a->steps[i], *t = &b->steps[i];

		assert_same_str("host", s->host, t->host);
		assert_int_equal(s->phase, t->phase);
		assert_int_equal(s->index, t->index);
		assert_same_str("name", s->name, t->name);
		assert_same_str("command", s->command, t->command);
		assert_same_str("rollback", s->rollback, t->rollback);
		assert_int_equal(s->rollback_none, t->rollback_none);
		assert_int_equal(s->rollback_masked, t->rollback_masked);
		assert_int_equal(s->rb_by_hand, t->rb_by_hand);
		assert_int_equal(s->local, t->local);
		assert_same_str("dir", s->dir, t->dir);
		assert_strvecs_equal(&s->env, &t->env);
		assert_int_equal(s->timeout_ms, t->timeout_ms);
		assert_int_equal(s->exit_code, t->exit_code);
		assert_true(s->duration_ms == t->duration_ms);
		assert_int_equal(s->attempts ? s->attempts : 1, t->attempts);
		assert_int_equal(s->result, t->result);
		assert_int_equal(s->running, t->running);
		assert_int_equal(s->rb_result, t->rb_result);
		assert_int_equal(s->has_snap, t->has_snap);
		assert_same_str("baseline_stdout", s->snap_out, t->snap_out);
		assert_true(s->snap_bytes == t->snap_bytes);
		assert_int_equal(s->snap_crc, t->snap_crc);
		if (s->phase == PHASE_STEPS && s->rb_result != RES_NOT_RUN &&
		    !s->rb_by_hand && !s->rollback_none) {
			assert_int_equal(s->rb_exit_code, t->rb_exit_code);
			assert_true(s->rb_duration_ms == t->rb_duration_ms);
		}
	}
}

static const char *const awkward[] = {
	"plain",
	"",
	"double \"quotes\" and 'single'",
	"two\nlines\n",
	"key: value",
	"# not a comment",
	"{{ secrets.DB_PASSWORD }}",
	"h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87",
	"back\\slash \\n not a newline",
	"tab\there\r\n",
	"null",
	"~",
	"- item",
	"[1, 2]",
	"{a: b}",
	"&anchor *alias !tag %directive @at `tick` |pipe >fold",
	"---",
	"a\n---\nstatus: \"applied\"\n---\n",
	"  leading and trailing  ",
	"true",
	"0x1F",
	"bell\a esc\x1b[0m del\x7f",
};

#define N_AWKWARD (sizeof(awkward) / sizeof(*awkward))

static const char *aw(size_t i)
{
	return awkward[i % N_AWKWARD];
}

static struct rec_step *step(struct change_rec *c, const char *host,
			     enum phase phase, unsigned index)
{
	struct rec_step *s = change_add_step(c);

	s->host = xstrdup(host);
	s->phase = phase;
	s->index = index;
	return s;
}

/* A record using every field the front matter holds, with awkward values. */
static struct change_rec *full_rec(void)
{
	struct change_rec *c = change_new();
	struct rec_step *s;

	c->id = xstrdup("20240501T120000Z-db-migrate-0a1b2c3d");
	c->mode = xstrdup("apply");
	c->watch = xstrdup("skipped (--no-watch)");
	c->limit = xstrdup("web[12],db*: \"x\"");
	c->runbook = xstrdup("db-migrate");
	c->file = xstrdup("/srv/run books/db \"main\": #1.yml");
	c->file_sha256 = xstrdup("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
	c->target = xstrdup("prod.eu-west_1");	/* names follow the name rules */
	c->owner = xstrdup("Ann O'Neil <ann@example.com>");
	c->reason = xstrdup("ticket #42:\n- add the column\n---\nstatus: applied\n");
	c->expected = xstrdup("{{ secrets.X }} stays literal; \"done\"");
	c->operator_ = xstrdup("ops \xc3\xa9quipe <ops@host>");
	c->started = xstrdup("2024-05-01T12:00:00.123Z");
	c->finished = xstrdup("");
	c->identity = xstrdup("/home/ops/.ssh/id ed25519");
	c->status = CHANGE_ROLLBACK_FAILED;
	c->baseline = xstrdup("differs");
	c->baseline_diff = xstrdup("--- before\n+++ after\n-a: 1\n+a: \"2\" # x\n");
	strvec_push(&c->hosts, "web1");
	strvec_push(&c->hosts, "web2: x");
	strvec_push(&c->hosts, "h\xc3\xa9");
	strvec_push(&c->redact, "password=\\S+");
	strvec_push(&c->redact, "token: \"[a-z]+\" # ' {{ x }}");
	strvec_push(&c->redact, "");
	for (size_t i = 0; i < N_AWKWARD; i++) {
		char name[16];

		snprintf(name, sizeof(name), "v%zu", i);
		varset_set(&c->vars, name, awkward[i]);
	}
	varset_set(&c->vars, "null", "~");
	varset_set(&c->secrets, "db_pw", "env:DB_PW");
	varset_set(&c->secrets, "key", "file:/etc/k #1: x");
	varset_set(&c->host_ids, "web2: x", "/keys/a b");
	varset_set(&c->host_ids, "h\xc3\xa9", "");

	for (size_t i = 0; i < N_AWKWARD; i++) {
		char name[16];

		snprintf(name, sizeof(name), "c%zu", i);
		change_set_capture(c, c->hosts.v[i % 3], name, awkward[i]);
	}
	/* several hosts: metrics are keyed name@host in the note */
	change_set_metric(c, "web1", "rows", false, "42");
	change_set_metric(c, "web1", "rows", true, "43");
	change_set_metric(c, "web2: x", "latency p@99", false, "1.5 ms");
	change_set_metric(c, "h\xc3\xa9", "rows", false, "");
	change_set_metric(c, "h\xc3\xa9", "rows", true, "two\nlines: #");
	change_set_metric(c, "h\xc3\xa9", "only after", true, "null");
	change_set_metric(c, "web1", "rows", METRIC_AFTER_ROLLBACK, "42.0");
	change_set_metric(c, "h\xc3\xa9", "rows", METRIC_AFTER_ROLLBACK, "a: \"b\"\n");

	s = step(c, "web1", PHASE_STEPS, 0);
	s->name = xstrdup(aw(3));
	s->command = xstrdup("psql -c 'ALTER TABLE t ADD c int' # x\nsecond: line");
	s->rollback = xstrdup("psql -c \"ALTER TABLE t DROP c\" {{ secrets.pw }}");
	s->rb_by_hand = true;
	s->dir = xstrdup("/srv/a b: c");
	strvec_push(&s->env, "A=1");
	strvec_push(&s->env, "PW={{ secrets.pw }}");
	strvec_push(&s->env, "E=");
	strvec_push(&s->env, "Q=\"x\" # y\nz");
	s->timeout_ms = 30000;
	s->exit_code = 0;
	s->duration_ms = 1500;
	s->result = RES_OK;
	s->rb_result = RES_ROLLED_BACK;
	s->rb_exit_code = 0;
	s->rb_duration_ms = 99;
	s->output = xstrdup("some output\n");


	s = step(c, "web2: x", PHASE_STEPS, 1);
	s->name = xstrdup("");
	s->command = xstrdup("{{ secrets.token }}");
	s->rollback_none = true;
	s->local = true;
	s->timeout_ms = 4000000000u;
	s->exit_code = 255;
	s->attempts = 7;
	s->duration_ms = 1099511627776ULL;
	s->result = RES_FAILED;

	/* interrupted: begun and never ended */
	s = step(c, "h\xc3\xa9", PHASE_STEPS, 4000000000u);
	s->name = xstrdup("null");
	s->command = xstrdup("~");
	s->rollback = xstrdup("undo [redacted]");
	s->rollback_masked = true;
	s->running = true;
	s->timeout_ms = 1;
	s->rb_result = RES_ROLLBACK_FAILED;

	s = step(c, "web1", PHASE_STEPS, 2);
	s->name = xstrdup("skipped");
	s->command = xstrdup("true");
	s->rollback = xstrdup("");
	s->result = RES_SKIPPED;
	s->rb_result = RES_NOT_RUN;

	s = step(c, "web1", PHASE_VERIFY, 0);
	s->name = xstrdup(aw(7));
	s->command = xstrdup(aw(15));
	s->exit_code = 1;
	s->result = RES_TIMEOUT;

	s = step(c, "web1", PHASE_METRICS, 0);
	s->name = xstrdup("rows");
	s->command = xstrdup("psql -tAc 'select count(*) from t'");
	s->timeout_ms = 0;
	s->exit_code = 0;
	s->result = RES_OK;

	s = step(c, "web2: x", PHASE_PREFLIGHT, 0);
	/* NULL name and command */
	s->dir = xstrdup("");
	s->result = RES_NOT_RUN;
	/* a preflight check with its baseline: bytes beyond the kept text */
	s = step(c, "web1", PHASE_PREFLIGHT, 0);
	s->name = xstrdup("state");
	s->command = xstrdup("cat /etc/app.conf");
	s->exit_code = 0;
	s->result = RES_OK;
	s->has_snap = true;
	s->snap_out = xstrdup("workers: 4\n# \"quoted\" --- \t tab\n\xc3\xa9\n");
	s->snap_bytes = 1099511627776ULL;
	s->snap_crc = 4294967295u;

	return c;
}

static struct change_rec *round_trip(const struct change_rec *c,
				     struct buf *text)
{
	struct rb_error err = RB_ERROR_INIT;
	struct change_rec *d = NULL;

	note_render(c, text);
	if (note_parse(text->data, text->len, NULL, &d, &err) != 0)
		fail_msg("note does not parse: %s\n%s", err.msg, text->data);
	assert_non_null(d);
	return d;
}

static void test_note_round_trip_every_field(void **state)
{
	struct change_rec *c = full_rec(), *d;
	struct buf text = BUF_INIT;

	(void)state;
	d = round_trip(c, &text);
	assert_rec_equal(c, d);
	/* what a note says about itself */
	assert_true(d->has_note);
	assert_int_equal(d->noted, CHANGE_ROLLBACK_FAILED);
	assert_true(d->closed);
	/* spot checks, in case the comparison above compares too little */
	assert_int_equal(d->n_steps, 8);
	assert_string_equal(d->steps[0].env.v[3], "Q=\"x\" # y\nz");
	assert_true(d->steps[1].rollback_none);
	assert_null(d->steps[1].rollback);
	assert_true(d->steps[2].running);
	assert_int_equal(d->steps[2].index, 4000000000u);
	assert_null(d->steps[6].name);
	assert_int_equal(d->n_metrics, 4);
	assert_string_equal(d->metrics[1].name, "latency p@99");
	assert_string_equal(d->metrics[1].host, "web2: x");
	assert_string_equal(varset_get(&d->vars, "v17"),
			    "a\n---\nstatus: \"applied\"\n---\n");
	/* an empty rollback is a rollback, not none */
	assert_string_equal(d->steps[3].rollback, "");
	assert_false(d->steps[3].rollback_none);
	/* the record read back writes the same front matter again */
	{
		struct buf fm = BUF_INIT, again = BUF_INIT;

		note_front_matter(c, &fm);
		note_front_matter(d, &again);
		assert_string_equal(again.data, fm.data);
		buf_release(&fm);
		buf_release(&again);
	}
	change_free(c);
	change_free(d);
	buf_release(&text);
}

static void test_note_every_status(void **state)
{
	(void)state;
	for (int st = CHANGE_RUNNING; st <= CHANGE_APPLIED_WITH_FAILURES; st++) {
		struct change_rec *c = full_rec(), *d;
		struct buf text = BUF_INIT;

		c->status = (enum change_status)st;
		d = round_trip(c, &text);
		assert_int_equal(d->status, st);
		assert_int_equal(d->noted, st);
		/* a note of a running change is the open one, all others closed */
		assert_int_equal(d->closed, st != CHANGE_RUNNING);
		assert_rec_equal(c, d);
		change_free(c);
		change_free(d);
		buf_release(&text);
	}
}

/*
 * max_fail: each host's outcome goes to the front matter and the body
 * and comes back; an outcome this version never writes is dropped, and
 * a note without outcomes (every older one) has none.
 */
static void test_note_host_outcomes(void **state)
{
	struct change_rec *c = full_rec(), *d;
	struct buf text = BUF_INIT, forged = BUF_INIT;
	struct rb_error err = RB_ERROR_INIT;
	char *at;

	(void)state;
	d = round_trip(c, &text);
	assert_int_equal(d->outcomes.n, 0);
	change_free(d);
	buf_reset(&text);
	c->status = CHANGE_APPLIED_WITH_FAILURES;
	varset_set(&c->outcomes, "web1", "applied");
	varset_set(&c->outcomes, "web2: x", "failed-rolled-back");
	varset_set(&c->outcomes, "web3", "rollback-failed");
	varset_set(&c->outcomes, "web4", "unreachable");
	d = round_trip(c, &text);
	assert_int_equal(d->status, CHANGE_APPLIED_WITH_FAILURES);
	assert_int_equal(d->outcomes.n, 4);
	assert_string_equal(varset_get(&d->outcomes, "web2: x"), "failed-rolled-back");
	assert_string_equal(varset_get(&d->outcomes, "web4"), "unreachable");
	assert_non_null(strstr(text.data, "\noutcomes:\n"));
	assert_non_null(strstr(text.data, "web2: x: failed, rolled back alone"));
	assert_non_null(strstr(text.data, "web1: applied"));
	change_free(d);
	/* a forged outcome is not taken */
	buf_adds(&forged, text.data);
	at = strstr(forged.data, "\"unreachable\"");
	assert_non_null(at);
	memcpy(at, "\"unreachabl!\"", 13);
	assert_int_equal(note_parse(forged.data, forged.len, NULL, &d, &err), 0);
	assert_int_equal(d->outcomes.n, 3);
	assert_null(varset_get(&d->outcomes, "web4"));
	change_free(d);
	change_free(c);
	buf_release(&text);
	buf_release(&forged);
}

/* NULLs stay NULL, empty strings stay empty, nothing becomes "null". */
static void test_note_nulls_and_empties(void **state)
{
	struct change_rec *c = change_new(), *d;
	struct buf text = BUF_INIT;

	(void)state;
	c->id = xstrdup("20240102T030405Z-x-00000000");
	c->file = xstrdup("");
	c->owner = xstrdup("null");
	c->reason = xstrdup("~");
	c->status = CHANGE_RUNNING;
	d = round_trip(c, &text);
	assert_rec_equal(c, d);
	assert_string_equal(d->file, "");
	assert_string_equal(d->owner, "null");
	assert_string_equal(d->reason, "~");
	assert_null(d->runbook);
	assert_null(d->target);
	assert_null(d->started);
	assert_null(d->finished);
	assert_null(d->identity);
	assert_null(d->baseline);
	assert_int_equal(d->hosts.n, 0);
	assert_int_equal(d->vars.n, 0);
	assert_int_equal(d->n_captures, 0);
	assert_int_equal(d->n_metrics, 0);
	assert_int_equal(d->n_steps, 0);
	assert_false(d->closed);
	change_free(c);
	change_free(d);
	buf_release(&text);
}

/* One host: metric keys are bare names, an '@' in them is just text. */
static void test_note_single_host_metrics(void **state)
{
	struct change_rec *c = change_new(), *d;
	struct buf text = BUF_INIT;

	(void)state;
	c->id = xstrdup("20240102T030405Z-x-00000000");
	strvec_push(&c->hosts, "deploy@db1:2222");
	change_set_metric(c, "deploy@db1:2222", "p@99", false, "5");
	change_set_metric(c, "deploy@db1:2222", "p@99", true, "6");
	d = round_trip(c, &text);
	assert_rec_equal(c, d);
	assert_string_equal(d->metrics[0].name, "p@99");
	assert_string_equal(d->metrics[0].host, "deploy@db1:2222");
	change_free(c);
	change_free(d);
	buf_release(&text);
}

static void test_note_front_matter_is_the_data(void **state)
{
	struct change_rec *c = full_rec(), *d = NULL;
	struct buf fm = BUF_INIT, text = BUF_INIT, undo = BUF_INIT;
	struct rb_error err = RB_ERROR_INIT;

	(void)state;
	note_front_matter(c, &fm);
	note_render(c, &text);
	/* the note starts with its front matter, between --- lines */
	assert_true(strncmp(fm.data, "---\n", 4) == 0);
	assert_true(fm.len > 9);
	assert_string_equal(fm.data + fm.len - 5, "\n---\n");
	assert_true(text.len > fm.len);
	assert_memory_equal(text.data, fm.data, fm.len);
	/* the front matter alone is a whole snapshot of the record */
	assert_int_equal(note_parse(fm.data, fm.len, NULL, &d, &err), 0);
	assert_rec_equal(c, d);
	/* the body says how to undo it */
	note_undo_command(c->id, &undo);
	assert_string_equal(undo.data, "runbook rollback 20240501T120000Z-db-migrate-0a1b2c3d");
	assert_non_null(strstr(text.data + fm.len, undo.data));
	change_free(c);
	change_free(d);
	buf_release(&fm);
	buf_release(&text);
	buf_release(&undo);
}

static void test_note_body_is_not_data(void **state)
{
	struct change_rec *c = full_rec(), *d = NULL;
	struct buf text = BUF_INIT;
	struct rb_error err = RB_ERROR_INIT;
	const char *evil = "\n---\nchange: \"evil\"\nstatus: \"applied\"\n"
			   "hosts: [\"evil\"]\nsteps: []\n---\n";

	(void)state;
	c->status = CHANGE_FAILED;
	note_render(c, &text);
	/*
	 * The reason is in the body as it is, "---" lines and all; more
	 * front-matter-looking text is appended at the end. Neither counts.
	 */
	assert_non_null(strstr(text.data, "\n---\nstatus: applied\n"));
	buf_adds(&text, evil);
	assert_int_equal(note_parse(text.data, text.len, NULL, &d, &err), 0);
	assert_string_equal(d->id, c->id);
	assert_int_equal(d->status, CHANGE_FAILED);
	assert_int_equal(d->hosts.n, 3);
	assert_int_equal(d->n_steps, 8);
	assert_string_equal(d->reason, c->reason);
	change_free(d);
	change_free(c);
	buf_release(&text);
}

static void test_note_parse_rejects_non_notes(void **state)
{
	static const char *const bad[] = {
		"",
		"---",
		"---\n",
		"hello\n",
		"# A heading\n\nchange: x\n",
		"---\nchange: \"x\"\nstatus: \"applied\"\n",	/* never closed */
		" ---\nchange: \"x\"\n---\n",
		"---\n- a\n- b\n---\n",			/* not a mapping */
		"---\n\"just a string\"\n---\n",
		"---\nchange: [unclosed\n---\n",		/* not YAML */
		"\xef\xbb\xbf---\nchange: \"x\"\n---\n",	/* BOM first */
	};
	struct rb_error err = RB_ERROR_INIT;
	struct change_rec *d;
	static const char *ok = "---\nchange: \"20240102T030405Z-x-00000000\"\n---\nbody\n";

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		d = NULL;
		rb_error_clear(&err);
		if (note_parse(bad[i], strlen(bad[i]), NULL, &d, &err) != -1)
			fail_msg("accepted as a note: \"%s\"", bad[i]);
		assert_int_equal(err.cls, RB_ERR_INVALID);
		assert_non_null(strstr(err.msg, "front matter"));
		assert_null(d);
	}
	/* len is honoured: the closing line past len does not count */
	d = NULL;
	assert_int_equal(note_parse(ok, strlen(ok) - 9, NULL, &d, &err), -1);
	assert_null(d);
	assert_int_equal(note_parse(ok, strlen(ok), NULL, &d, &err), 0);
	assert_string_equal(d->id, "20240102T030405Z-x-00000000");
	/* absent keys: NULL fields, no hosts, no steps */
	assert_null(d->runbook);
	assert_int_equal(d->hosts.n, 0);
	assert_int_equal(d->n_steps, 0);
	change_free(d);
}

/*
 * Regression test (it used to fail; src/note.c, note_parse): with several hosts a metric is
 * keyed "name@host" and read back by splitting at the last '@'. Host
 * specs may hold an '@' themselves ([user@]host[:port], the form a
 * target lists them in), so "rows@deploy@db1" comes back as metric
 * "rows@deploy" of host "db1", a host that is not in the change.
 */
static void test_note_metric_of_user_at_host(void **state)
{
	struct change_rec *c, *d;
	struct buf text = BUF_INIT;

	(void)state;
	c = change_new();
	c->id = xstrdup("20240102T030405Z-x-00000000");
	strvec_push(&c->hosts, "deploy@db1");
	strvec_push(&c->hosts, "deploy@db2:2222");
	change_set_metric(c, "deploy@db1", "rows", false, "1");
	change_set_metric(c, "deploy@db2:2222", "rows", false, "2");
	d = round_trip(c, &text);
	assert_int_equal(d->n_metrics, 2);
	assert_string_equal(d->metrics[0].name, "rows");
	assert_string_equal(d->metrics[0].host, "deploy@db1");
	assert_string_equal(d->metrics[1].host, "deploy@db2:2222");
	change_free(c);
	change_free(d);
	buf_release(&text);
}

/*
 * Regression test (it used to fail; src/json.c with src/yamltree.c; see also test_change.c):
 * front matter strings are JSON-escaped, but valid UTF-8 passes
 * through unescaped, and YAML does not read every character back: a
 * C1 control character such as U+009B or a noncharacter such as
 * U+FFFF makes the whole note unparseable, and U+0085 (NEL) is folded
 * into a space. A captured value or a metric with one of them (command
 * output) breaks the note of the change.
 */
static void test_note_c1_characters(void **state)
{
	static const char *const values[] = {
		"a\xc2\x85" "b",		/* U+0085 NEL */
		"\xc2\x9b" "31mred",		/* U+009B CSI */
		"x\xef\xbf\xbf",		/* U+FFFF */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(values) / sizeof(*values); i++) {
		struct change_rec *c = change_new(), *d;
		struct buf text = BUF_INIT;

		c->id = xstrdup("20240102T030405Z-x-00000000");
		strvec_push(&c->hosts, "web1");
		change_set_capture(c, "web1", "k", values[i]);
		d = round_trip(c, &text);
		assert_int_equal(d->n_captures, 1);
		assert_string_equal(d->captures[0].value, values[i]);
		change_free(c);
		change_free(d);
		buf_release(&text);
	}
}

/*
 * Regression test (it used to crash; src/note.c, note_parse): notes
 * arrive from other clones, and a field that should be a string but is
 * a list or a map was read as a string (NULL): one such note made
 * `runbook log` and `rollback` die for everyone sharing the branch.
 * Every field of the wrong type is refused with its line and column.
 */
static void test_note_wrong_types_refused(void **state)
{
	static const char *const bad[] = {
		"target: [a, b]\n",
		"reason: {a: b}\n",
		"hosts: [[a]]\n",
		"hosts: {a: b}\n",
		"redact: [{a: b}]\n",
		"vars: {v: [1]}\n",
		"vars: [a]\n",
		"identities: {web1: {a: b}}\n",
		"secrets: {k: [env:X]}\n",
		"captures: {web1: [a]}\n",
		"captures: {web1: {k: {a: b}}}\n",
		"captures: [a]\n",
		"metrics: {m: [1]}\n",
		"metrics: {m: {before: [1]}}\n",
		"steps: [a]\n",
		"steps: [{name: [x]}]\n",
		"steps: [{env: {A: b}}]\n",
		"steps: [{env: [[A]]}]\n",
		"steps: [{host: {a: b}}]\n",
		"steps: {a: b}\n",
		"events: [[x]]\n",
		"events: [{event: {a: b}}]\n",
		/* fuzzing: a multi-line kind was written back unquoted */
		"events: [{event: \"att\\n\\nempt\", host: h}]\n",
		"events: [{event: steps}]\n",
	};
	static const char *id = "20240102T030405Z-x-00000000";

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct rb_error err = RB_ERROR_INIT;
		struct change_rec *d = NULL;
		struct buf t = BUF_INIT;

		buf_addf(&t, "---\nchange: \"%s\"\nrunbook: x\n%s---\n", id,
			 bad[i]);
		if (note_parse(t.data, t.len, id, &d, &err) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_null(d);
		assert_int_equal(err.cls, RB_ERR_INVALID);
		if (!strstr(err.msg, ":4:") || !strstr(err.msg, "expected") ||
		    !strstr(err.msg, "not used"))
			fail_msg("for %s: %s", bad[i], err.msg);
		buf_release(&t);
	}
}

/*
 * Regression test (it used to fail; src/note.c): the change id and the
 * target name files (journal, lock), so a note naming "../x" created
 * files outside the notes directory, a note filed under one id could
 * claim another, and an id dated 2999 won every `rollback --last`.
 */
static void test_note_names_checked(void **state)
{
	static const struct {
		const char *change, *target, *filed, *why;
	} bad[] = {
		{ "../../../tmp/x", "prod", NULL, "change id" },
		{ "20240102T030405Z-x-00000000", "../../etc/x", NULL, "target" },
		{ "20240102T030405Z-x-00000000", "prod",
		  "20240102T030405Z-x-00000001", "filed under" },
		{ "29991231T235959Z-x-00000000", "prod", NULL, "future" },
		{ "20240231T000000Z-x-00000000", "prod", NULL, "real date" },
		{ "20240102T030405Z-X-00000000", "prod", NULL, "change id" },
		{ "20240102T030405Z-x-0000000G", "prod", NULL, "hex" },
	};
	char now[128];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct rb_error err = RB_ERROR_INIT;
		struct change_rec *d = NULL;
		struct buf t = BUF_INIT;

		buf_addf(&t, "---\nchange: \"%s\"\ntarget: \"%s\"\n---\n",
			 bad[i].change, bad[i].target);
		if (note_parse(t.data, t.len, bad[i].filed, &d, &err) != -1)
			fail_msg("accepted: %s / %s", bad[i].change, bad[i].target);
		if (!strstr(err.msg, bad[i].why))
			fail_msg("expected \"%s\" in: %s", bad[i].why, err.msg);
		assert_null(d);
		buf_release(&t);
	}
	/* an id of this second is fine */
	change_id_new("x", now);
	{
		struct rb_error err = RB_ERROR_INIT;
		struct change_rec *d = NULL;
		struct buf t = BUF_INIT;

		buf_addf(&t, "---\nchange: \"%s\"\ntarget: \"prod\"\n---\n", now);
		if (note_parse(t.data, t.len, now, &d, &err) != 0)
			fail_msg("refused: %s", err.msg);
		change_free(d);
		buf_release(&t);
	}
}

/*
 * Regression test (it used to fail; src/note.c, fm_captures and
 * fm_metrics): captures and metrics of a host that is not in `hosts`
 * (a change recorded before its hosts were) were dropped from the
 * note, or read back as the first host's.
 */
static void test_note_values_of_unlisted_hosts(void **state)
{
	struct change_rec *c = change_new(), *d;
	struct buf text = BUF_INIT;

	(void)state;
	c->id = xstrdup("20240102T030405Z-x-00000000");
	strvec_push(&c->hosts, "web1");
	change_set_capture(c, "web9", "k", "v9");
	change_set_capture(c, "web1", "k", "v1");
	change_set_metric(c, "web9", "rows", false, "9");
	change_set_metric(c, "web1", "rows", false, "1");
	d = round_trip(c, &text);
	assert_int_equal(d->n_captures, 2);
	assert_rec_equal(c, d);
	assert_int_equal(d->n_metrics, 2);
	assert_string_equal(d->metrics[0].host, "web9");
	assert_string_equal(d->metrics[0].before, "9");
	assert_string_equal(d->metrics[1].host, "web1");
	change_free(c);
	change_free(d);
	buf_release(&text);
}

/*
 * Over many hosts the body folds hosts that did the same (one row per
 * distinct outcome, one output block per distinct output); the front
 * matter keeps every host's every step.
 */
static void test_note_folds_many_hosts(void **state)
{
	struct change_rec *c = change_new(), *d;
	struct buf text = BUF_INIT;
	char host[32];
	const char *rows;

	(void)state;
	c->id = xstrdup("20240501T120000Z-fleet-0a1b2c3d");
	c->runbook = xstrdup("fleet");
	c->target = xstrdup("prod");
	c->status = CHANGE_APPLIED;
	for (int h = 0; h < 40; h++) {
		struct rec_step *s;

		snprintf(host, sizeof(host), "web%02d", h);
		strvec_push(&c->hosts, host);
		s = step(c, host, PHASE_STEPS, 0);
		s->name = xstrdup("install");
		s->result = RES_OK;
		s->exit_code = h == 7 ? 3 : 0;
		s->duration_ms = 100 + (unsigned)h;
		s->rollback_none = true;
		s->command = xstrdup("apt-get install -y web");
		s->output = xstrdup(h == 7 ? "odd one\n" : "done\n");
	}
	d = round_trip(c, &text);
	assert_int_equal(d->n_steps, 40);
	assert_int_equal(d->hosts.n, 40);
	rows = strstr(text.data, "## Steps");
	assert_non_null(rows);
	assert_non_null(strstr(rows, "| web00, web01, web02, web03, web04 and 34 more (39 hosts) | step | install | ok | 0 | up to "));
	assert_non_null(strstr(rows, "| web07 | step | install | ok | 3 | "));
	assert_null(strstr(rows, "| web08 |"));
	assert_non_null(strstr(text.data, "### step install on web00 and 38 more hosts (the same output)\n"));
	assert_non_null(strstr(text.data, "### step install on web07\n"));
	assert_null(strstr(text.data, "### step install on web01"));
	change_free(d);
	change_free(c);
	buf_release(&text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_note_round_trip_every_field),
		cmocka_unit_test(test_note_every_status),
		cmocka_unit_test(test_note_host_outcomes),
		cmocka_unit_test(test_note_nulls_and_empties),
		cmocka_unit_test(test_note_single_host_metrics),
		cmocka_unit_test(test_note_front_matter_is_the_data),
		cmocka_unit_test(test_note_body_is_not_data),
		cmocka_unit_test(test_note_parse_rejects_non_notes),
		cmocka_unit_test(test_note_metric_of_user_at_host),
		cmocka_unit_test(test_note_c1_characters),
		cmocka_unit_test(test_note_wrong_types_refused),
		cmocka_unit_test(test_note_names_checked),
		cmocka_unit_test(test_note_values_of_unlisted_hosts),
		cmocka_unit_test(test_note_folds_many_hosts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
