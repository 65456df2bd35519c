/*
 * The change record and its journal encoding: the open record carries
 * every header field through JSON and back; the records the recorder
 * writes (src/record.c) drive each step through begin, end, rollback
 * and close; change_pending() lists what still needs undoing, newest
 * first; status and result names round-trip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "change.h"
#include "diag.h"
#include "json.h"
#include "runbook.h"
#include "vars.h"
#include "yamltree.h"

/* Parses one journal payload and applies it, as recovery does. */
static void apply_n(struct change_rec *c, const char *json, size_t len)
{
	struct ynode *n = NULL;
	struct diag d;

	diag_init(&d, "journal");
	if (ytree_parse(json, len, &n, &d) != 0 || !n)
		fail_msg("record does not parse: %s (%s)", json,
			 d.n ? d.v[0].msg : "no content");
	change_apply_record(c, n);
	ytree_free(n);
	diag_release(&d);
}

static void apply(struct change_rec *c, const char *json)
{
	apply_n(c, json, strlen(json));
}

/* Whether a payload parses at all. */
static bool parses(const char *json)
{
	struct ynode *n = NULL;
	struct diag d;
	bool ok;

	diag_init(&d, "journal");
	ok = ytree_parse(json, strlen(json), &n, &d) == 0 && n;
	ytree_free(n);
	diag_release(&d);
	return ok;
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

static const char *const awkward[] = {
	"plain",
	"",
	"double \"quotes\" and 'single'",
	"two\nlines\n",
	"key: value",
	"# not a comment",
	"{{ secrets.DB_PASSWORD }}",
	"h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80",
	"back\\slash \\n not a newline",
	"tab\there\r\n",
	"null",
	"~",
	"- item",
	"[1, 2]",
	"{a: b}",
	"&anchor *alias !tag %directive @at `tick`",
	"---",
	"  leading and trailing  ",
	"true",
	"0x1F",
};

#define N_AWKWARD (sizeof(awkward) / sizeof(*awkward))

static struct change_rec *header_rec(void)
{
	struct change_rec *c = change_new();

	c->id = xstrdup("20240501T120000Z-db-migrate-0a1b2c3d");
	c->runbook = xstrdup("db-migrate");
	c->file = xstrdup("/srv/run books/db \"main\".yml");
	c->file_sha256 = xstrdup("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
	c->target = xstrdup("prod: eu # west");
	c->owner = xstrdup("Ann O'Neil <ann@example.com>");
	c->reason = xstrdup("ticket #42:\nadd the column\n");
	c->expected = xstrdup("{{ secrets.X }} stays literal");
	c->operator_ = xstrdup("ops \xc3\xa9quipe <ops@host>");
	c->started = xstrdup("2024-05-01T12:00:00.123Z");
	c->identity = xstrdup("/home/ops/.ssh/id ed25519");
	strvec_push(&c->hosts, "web1");
	strvec_push(&c->hosts, "deploy@web2:2222");
	strvec_push(&c->hosts, "[::1]:22");
	strvec_push(&c->redact, "password=\\S+");
	strvec_push(&c->redact, "token: \"[a-z]+\"");
	for (size_t i = 0; i < N_AWKWARD; i++) {
		char name[16];

		snprintf(name, sizeof(name), "v%zu", i);
		varset_set(&c->vars, name, awkward[i]);
	}
	varset_set(&c->secrets, "db_pw", "env:DB_PW");
	varset_set(&c->secrets, "key", "file:/etc/key: #1");
	varset_set(&c->host_ids, "deploy@web2:2222", "/keys/web2");
	return c;
}

static void test_open_record_round_trip(void **state)
{
	struct change_rec *c = header_rec(), *d = change_new();
	struct buf b = BUF_INIT;

	(void)state;
	change_rec_open(&b, c);
	/* one JSON object on one line, kind first */
	assert_true(strncmp(b.data, "{\"t\":\"open\"", 11) == 0);
	assert_null(strchr(b.data, '\n'));
	assert_int_equal(b.data[b.len - 1], '}');
	apply(d, b.data);

	assert_string_equal(d->id, c->id);
	assert_string_equal(d->runbook, c->runbook);
	assert_string_equal(d->file, c->file);
	assert_string_equal(d->file_sha256, c->file_sha256);
	assert_string_equal(d->target, c->target);
	assert_string_equal(d->owner, c->owner);
	assert_string_equal(d->reason, c->reason);
	assert_string_equal(d->expected, c->expected);
	assert_string_equal(d->operator_, c->operator_);
	assert_string_equal(d->started, c->started);
	assert_string_equal(d->identity, c->identity);
	assert_strvecs_equal(&d->hosts, &c->hosts);
	assert_strvecs_equal(&d->redact, &c->redact);
	assert_varsets_equal(&d->vars, &c->vars);
	assert_varsets_equal(&d->secrets, &c->secrets);
	assert_varsets_equal(&d->host_ids, &c->host_ids);
	/* the open record starts a change: nothing ran, nothing closed */
	assert_int_equal(d->status, CHANGE_RUNNING);
	assert_false(d->closed);
	assert_int_equal(d->n_steps, 0);
	assert_null(d->finished);
	assert_false(d->has_note);

	change_free(c);
	change_free(d);
	buf_release(&b);
}

static void test_open_record_optional_parts(void **state)
{
	struct change_rec *c = header_rec(), *d = change_new();
	struct buf b = BUF_INIT;

	(void)state;
	free(c->identity);
	c->identity = NULL;
	strvec_release(&c->redact);
	varset_release(&c->host_ids);
	varset_release(&c->vars);
	varset_release(&c->secrets);
	strvec_release(&c->hosts);
	change_rec_open(&b, c);
	/* what is absent is left out, not written empty */
	assert_null(strstr(b.data, "\"identity\""));
	assert_null(strstr(b.data, "\"redact\""));
	assert_null(strstr(b.data, "\"identities\""));
	apply(d, b.data);
	assert_null(d->identity);
	assert_int_equal(d->redact.n, 0);
	assert_int_equal(d->host_ids.n, 0);
	assert_int_equal(d->vars.n, 0);
	assert_int_equal(d->secrets.n, 0);
	assert_int_equal(d->hosts.n, 0);
	assert_string_equal(d->id, c->id);
	change_free(c);
	change_free(d);
	buf_release(&b);
}

#define OPEN "{\"t\":\"open\",\"change\":\"20240501T120000Z-x-00000001\"," \
	"\"runbook\":\"x\",\"file\":\"x.yml\",\"file_sha256\":\"ab\"," \
	"\"target\":\"prod\",\"owner\":\"o\",\"reason\":\"r\",\"expected\":\"e\"," \
	"\"operator\":\"op\",\"started\":\"2024-05-01T12:00:00.000Z\"," \
	"\"hosts\":[\"web1\",\"web2\"],\"vars\":{},\"secrets\":{}}"

/* A step-begin as the recorder writes it. */
static void begin(struct change_rec *c, const char *host, const char *phase,
		  unsigned index, const char *name)
{
	struct buf b = BUF_INIT;

	buf_addf(&b, "{\"t\":\"step-begin\",\"host\":\"%s\",\"phase\":\"%s\","
		 "\"index\":%u,\"name\":\"%s\",\"command\":\"run %s\","
		 "\"rollback\":\"undo %s\",\"rollback_masked\":false,"
		 "\"rollback_none\":false,\"local\":false,\"dir\":null,"
		 "\"env\":[],\"timeout_ms\":1000,"
		 "\"time\":\"2024-05-01T12:00:01.000Z\"}",
		 host, phase, index, name, name, name);
	apply(c, b.data);
	buf_release(&b);
}

static void end(struct change_rec *c, const char *host, const char *phase,
		unsigned index, const char *result, int exit_code)
{
	struct buf b = BUF_INIT;

	buf_addf(&b, "{\"t\":\"step-end\",\"host\":\"%s\",\"phase\":\"%s\","
		 "\"index\":%u,\"result\":\"%s\",\"exit\":%d,"
		 "\"duration_ms\":7,\"output\":\"\","
		 "\"time\":\"2024-05-01T12:00:02.000Z\"}",
		 host, phase, index, result, exit_code);
	apply(c, b.data);
	buf_release(&b);
}

static void rb_end(struct change_rec *c, const char *host, unsigned index,
		   const char *result)
{
	struct buf b = BUF_INIT;

	buf_addf(&b, "{\"t\":\"rollback-end\",\"host\":\"%s\",\"phase\":\"step\","
		 "\"index\":%u,\"result\":\"%s\",\"exit\":0,\"duration_ms\":3,"
		 "\"time\":\"2024-05-01T12:00:09.000Z\"}", host, index, result);
	apply(c, b.data);
	buf_release(&b);
}

static void test_step_begin_record(void **state)
{
	struct change_rec *c = change_new();
	struct rec_step *s;

	(void)state;
	apply(c, OPEN);
	apply(c, "{\"t\":\"step-begin\",\"host\":\"web1\",\"phase\":\"step\","
		 "\"index\":3,\"name\":\"migrate: add \\\"col\\\"\","
		 "\"command\":\"psql -c 'ALTER TABLE t ADD c int' # x\\nsecond\","
		 "\"rollback\":\"psql -c \\\"ALTER TABLE t DROP c\\\" {{ secrets.pw }}\","
		 "\"rollback_masked\":false,\"rollback_none\":false,\"local\":false,"
		 "\"dir\":\"/srv/app dir\",\"env\":[\"PGHOST=db: 1\",\"PW={{ secrets.pw }}\",\"E=\"],"
		 "\"timeout_ms\":30000,\"time\":\"2024-05-01T12:00:01.000Z\"}");
	assert_int_equal(c->n_steps, 1);
	s = &c->steps[0];
	assert_string_equal(s->host, "web1");
	assert_int_equal(s->phase, PHASE_STEPS);
	assert_int_equal(s->index, 3);
	assert_string_equal(s->name, "migrate: add \"col\"");
	assert_string_equal(s->command, "psql -c 'ALTER TABLE t ADD c int' # x\nsecond");
	assert_string_equal(s->rollback, "psql -c \"ALTER TABLE t DROP c\" {{ secrets.pw }}");
	assert_false(s->rollback_masked);
	assert_false(s->rollback_none);
	assert_false(s->local);
	assert_string_equal(s->dir, "/srv/app dir");
	assert_int_equal(s->env.n, 3);
	assert_string_equal(s->env.v[0], "PGHOST=db: 1");
	assert_string_equal(s->env.v[1], "PW={{ secrets.pw }}");
	assert_string_equal(s->env.v[2], "E=");
	assert_int_equal(s->timeout_ms, 30000);
	/* begun, not ended: running, no result, no exit code yet */
	assert_true(s->running);
	assert_false(s->rb_running);
	assert_int_equal(s->result, RES_NOT_RUN);
	assert_int_equal(s->rb_result, RES_NOT_RUN);
	assert_int_equal(s->exit_code, -1);
	assert_int_equal(s->rb_exit_code, -1);
	assert_null(s->output);

	/* no rollback, local, no dir, no timeout given: the defaults */
	apply(c, "{\"t\":\"step-begin\",\"host\":\"web1\",\"phase\":\"step\","
		 "\"index\":4,\"name\":\"n\",\"command\":\"c\",\"rollback\":null,"
		 "\"rollback_none\":true,\"local\":true,\"dir\":null,\"env\":[]}");
	assert_int_equal(c->n_steps, 2);
	s = &c->steps[1];
	assert_null(s->rollback);
	assert_true(s->rollback_none);
	assert_true(s->local);
	assert_null(s->dir);
	assert_int_equal(s->env.n, 0);
	assert_int_equal(s->timeout_ms, 600000);

	/* a masked rollback is flagged */
	apply(c, "{\"t\":\"step-begin\",\"host\":\"web2\",\"phase\":\"step\","
		 "\"index\":0,\"name\":\"n\",\"command\":\"c\","
		 "\"rollback\":\"undo [redacted]\",\"rollback_masked\":true,"
		 "\"rollback_none\":false,\"local\":false,\"dir\":null,\"env\":[],"
		 "\"timeout_ms\":5}");
	assert_true(c->steps[2].rollback_masked);
	assert_string_equal(c->steps[2].host, "web2");
	change_free(c);
}

static void test_step_end_pid_and_captures(void **state)
{
	struct change_rec *c = change_new();
	struct rec_step *s;

	(void)state;
	apply(c, OPEN);
	begin(c, "web1", "step", 0, "deploy");
	apply(c, "{\"t\":\"pid\",\"host\":\"web1\",\"phase\":\"step\",\"index\":0,"
		 "\"pid\":4242,\"start\":123456789012,\"rollback\":false,"
		 "\"time\":\"t\"}");
	s = &c->steps[0];
	assert_int_equal(s->pid, 4242);
	assert_true(s->start_time == 123456789012ULL);
	assert_true(s->running);

	apply(c, "{\"t\":\"step-end\",\"host\":\"web1\",\"phase\":\"step\",\"index\":0,"
		 "\"result\":\"ok\",\"exit\":0,\"duration_ms\":1500,"
		 "\"rollback\":\"undo v1.2.3 'now'\",\"rollback_masked\":false,"
		 "\"output\":\"line 1\\nline: 2\\n\","
		 "\"captures\":{\"version\":\"1.2.3\",\"path\":\"/a b/#c\"},"
		 "\"time\":\"t\"}");
	s = &c->steps[0];
	assert_false(s->running);
	assert_int_equal(s->result, RES_OK);
	assert_int_equal(s->exit_code, 0);
	assert_true(s->duration_ms == 1500);
	/* the rollback as rendered with the captures replaces the begin's */
	assert_string_equal(s->rollback, "undo v1.2.3 'now'");
	assert_false(s->rollback_masked);
	assert_string_equal(s->output, "line 1\nline: 2\n");
	assert_int_equal(c->n_captures, 2);
	assert_string_equal(c->captures[0].host, "web1");
	assert_string_equal(c->captures[0].name, "version");
	assert_string_equal(c->captures[0].value, "1.2.3");
	assert_string_equal(c->captures[1].name, "path");
	assert_string_equal(c->captures[1].value, "/a b/#c");

	/* a step whose rollback could not be rendered ends with none */
	begin(c, "web1", "step", 1, "second");
	apply(c, "{\"t\":\"step-end\",\"host\":\"web1\",\"phase\":\"step\",\"index\":1,"
		 "\"result\":\"failed\",\"exit\":2,\"duration_ms\":9,"
		 "\"rollback\":null,\"output\":null,\"time\":\"t\"}");
	s = &c->steps[1];
	assert_int_equal(s->result, RES_FAILED);
	assert_int_equal(s->exit_code, 2);
	assert_null(s->rollback);
	assert_null(s->output);

	/* an unknown result is not taken for success */
	begin(c, "web1", "step", 2, "third");
	end(c, "web1", "step", 2, "splendid", 0);
	assert_int_equal(c->steps[2].result, RES_FAILED);

	/* a timeout keeps exit -1 (no exit status) */
	begin(c, "web1", "step", 3, "slow");
	end(c, "web1", "step", 3, "timeout", -1);
	assert_int_equal(c->steps[3].result, RES_TIMEOUT);
	assert_int_equal(c->steps[3].exit_code, -1);
	change_free(c);
}

static void test_end_applies_to_its_own_step(void **state)
{
	struct change_rec *c = change_new();

	(void)state;
	apply(c, OPEN);
	begin(c, "web1", "step", 0, "a");
	begin(c, "web2", "step", 0, "a");
	begin(c, "web1", "verify", 0, "a");
	end(c, "web2", "step", 0, "failed", 1);
	assert_true(c->steps[0].running);
	assert_false(c->steps[1].running);
	assert_int_equal(c->steps[1].result, RES_FAILED);
	assert_true(c->steps[2].running);
	end(c, "web1", "verify", 0, "ok", 0);
	assert_true(c->steps[0].running);
	assert_int_equal(c->steps[2].result, RES_OK);

	/* an end for a step never begun changes nothing */
	apply(c, "{\"t\":\"step-end\",\"host\":\"ghost\",\"phase\":\"step\","
		 "\"index\":0,\"result\":\"ok\",\"exit\":0,\"duration_ms\":1,"
		 "\"captures\":{\"x\":\"y\"},\"metric\":\"5\",\"after\":0}");
	assert_int_equal(c->n_steps, 3);
	assert_int_equal(c->n_captures, 0);
	assert_int_equal(c->n_metrics, 0);
	/* a begin with an unknown phase or no host is not a step */
	apply(c, "{\"t\":\"step-begin\",\"host\":\"web1\",\"phase\":\"later\","
		 "\"index\":0,\"name\":\"n\",\"command\":\"c\"}");
	apply(c, "{\"t\":\"step-begin\",\"phase\":\"step\",\"index\":9,"
		 "\"name\":\"n\",\"command\":\"c\"}");
	assert_int_equal(c->n_steps, 3);
	/* records of unknown kinds, or of no kind, are ignored */
	apply(c, "{\"t\":\"from-the-future\",\"status\":\"applied\"}");
	apply(c, "{\"status\":\"applied\",\"finished\":\"x\"}");
	assert_int_equal(c->status, CHANGE_RUNNING);
	assert_false(c->closed);
	assert_null(c->finished);
	change_free(c);
}

static void test_metric_records(void **state)
{
	struct change_rec *c = change_new();

	(void)state;
	apply(c, OPEN);
	begin(c, "web1", "metric", 0, "rows");
	apply(c, "{\"t\":\"step-end\",\"host\":\"web1\",\"phase\":\"metric\",\"index\":0,"
		 "\"result\":\"ok\",\"exit\":0,\"duration_ms\":4,\"output\":\"42\\n\","
		 "\"metric\":\"42\",\"after\":0,\"time\":\"t\"}");
	begin(c, "web2", "metric", 0, "rows");
	apply(c, "{\"t\":\"step-end\",\"host\":\"web2\",\"phase\":\"metric\",\"index\":0,"
		 "\"result\":\"ok\",\"exit\":0,\"duration_ms\":4,\"output\":\"7\","
		 "\"metric\":\"7\",\"after\":0,\"time\":\"t\"}");
	/* the same metric measured again after verify: a new begin */
	begin(c, "web1", "metric", 0, "rows");
	apply(c, "{\"t\":\"step-end\",\"host\":\"web1\",\"phase\":\"metric\",\"index\":0,"
		 "\"result\":\"ok\",\"exit\":0,\"duration_ms\":4,\"output\":\"43\","
		 "\"metric\":\"43\",\"after\":1,\"time\":\"t\"}");
	assert_int_equal(c->n_steps, 3);
	/* the end went to the newest begin of (web1, metric, 0) */
	assert_false(c->steps[2].running);
	assert_int_equal(c->n_metrics, 2);
	assert_string_equal(c->metrics[0].host, "web1");
	assert_string_equal(c->metrics[0].name, "rows");
	assert_string_equal(c->metrics[0].before, "42");
	assert_string_equal(c->metrics[0].after, "43");
	assert_string_equal(c->metrics[1].host, "web2");
	assert_string_equal(c->metrics[1].before, "7");
	assert_null(c->metrics[1].after);
	change_free(c);
}

static void test_rollback_close_baseline_note_records(void **state)
{
	struct change_rec *c = change_new();
	struct rec_step *s;

	(void)state;
	apply(c, OPEN);
	begin(c, "web1", "step", 0, "a");
	end(c, "web1", "step", 0, "ok", 0);
	apply(c, "{\"t\":\"close\",\"status\":\"applied\","
		 "\"finished\":\"2024-05-01T12:01:00.000Z\"}");
	assert_true(c->closed);
	assert_int_equal(c->status, CHANGE_APPLIED);
	assert_string_equal(c->finished, "2024-05-01T12:01:00.000Z");
	apply(c, "{\"t\":\"note\",\"status\":\"applied\",\"oid\":\"0123abcd\"}");
	assert_true(c->has_note);
	assert_int_equal(c->noted, CHANGE_APPLIED);

	/* a later rollback reopens the closed change */
	apply(c, "{\"t\":\"rollback-begin\",\"host\":\"web1\",\"phase\":\"step\","
		 "\"index\":0,\"command\":\"undo a\",\"time\":\"t\"}");
	s = &c->steps[0];
	assert_true(s->rb_running);
	assert_false(c->closed);
	assert_int_equal(s->rb_result, RES_NOT_RUN);
	apply(c, "{\"t\":\"rollback-end\",\"host\":\"web1\",\"phase\":\"step\","
		 "\"index\":0,\"result\":\"rolled-back\",\"exit\":0,"
		 "\"duration_ms\":12,\"by_hand\":true,\"time\":\"t\"}");
	assert_false(s->rb_running);
	assert_int_equal(s->rb_result, RES_ROLLED_BACK);
	assert_int_equal(s->rb_exit_code, 0);
	assert_true(s->rb_by_hand);
	/* the step's own result is untouched by its rollback */
	assert_int_equal(s->result, RES_OK);
	assert_int_equal(s->exit_code, 0);

	/* a failed rollback, and one with a result nobody knows */
	begin(c, "web1", "step", 1, "b");
	end(c, "web1", "step", 1, "ok", 0);
	apply(c, "{\"t\":\"rollback-begin\",\"host\":\"web1\",\"phase\":\"step\","
		 "\"index\":1,\"command\":\"undo b\",\"time\":\"t\"}");
	apply(c, "{\"t\":\"rollback-end\",\"host\":\"web1\",\"phase\":\"step\","
		 "\"index\":1,\"result\":\"rollback-failed\",\"exit\":3,"
		 "\"duration_ms\":1,\"time\":\"t\"}");
	assert_int_equal(c->steps[1].rb_result, RES_ROLLBACK_FAILED);
	assert_int_equal(c->steps[1].rb_exit_code, 3);
	assert_false(c->steps[1].rb_by_hand);
	rb_end(c, "web1", 0, "whatever");
	assert_int_equal(c->steps[0].rb_result, RES_ROLLBACK_FAILED);

	apply(c, "{\"t\":\"baseline\",\"baseline\":\"differs\","
		 "\"diff\":\"--- before\\n+++ after\\n-a: 1\\n+a: 2\\n\",\"time\":\"t\"}");
	assert_string_equal(c->baseline, "differs");
	assert_string_equal(c->baseline_diff, "--- before\n+++ after\n-a: 1\n+a: 2\n");
	apply(c, "{\"t\":\"baseline\",\"baseline\":\"same\",\"diff\":null,\"time\":\"t\"}");
	assert_string_equal(c->baseline, "restored");
	assert_null(c->baseline_diff);

	apply(c, "{\"t\":\"close\",\"status\":\"rollback-failed\","
		 "\"finished\":\"2024-05-01T12:02:00.000Z\"}");
	assert_true(c->closed);
	assert_int_equal(c->status, CHANGE_ROLLBACK_FAILED);
	assert_string_equal(c->finished, "2024-05-01T12:02:00.000Z");
	/* the note record of the earlier commit is still the newest note */
	assert_int_equal(c->noted, CHANGE_APPLIED);

	/* a status nobody knows is not taken for success */
	apply(c, "{\"t\":\"close\",\"status\":\"glorious\",\"finished\":\"x\"}");
	assert_int_equal(c->status, CHANGE_FAILED);
	change_free(c);
}

/* Applying the same records in the same order gives the same record. */
static void test_replay_is_deterministic(void **state)
{
	static const char *const recs[] = {
		OPEN,
		"{\"t\":\"step-begin\",\"host\":\"web1\",\"phase\":\"step\",\"index\":0,"
		"\"name\":\"a\",\"command\":\"c\",\"rollback\":\"u\",\"rollback_none\":false,"
		"\"local\":false,\"dir\":null,\"env\":[\"A=1\"],\"timeout_ms\":10}",
		"{\"t\":\"step-end\",\"host\":\"web1\",\"phase\":\"step\",\"index\":0,"
		"\"result\":\"ok\",\"exit\":0,\"duration_ms\":1,\"rollback\":\"u2\","
		"\"rollback_masked\":false,\"output\":\"o\",\"captures\":{\"k\":\"v\"}}",
		"{\"t\":\"rollback-begin\",\"host\":\"web1\",\"phase\":\"step\",\"index\":0}",
	};
	struct change_rec *a = change_new(), *b = change_new();

	(void)state;
	for (size_t i = 0; i < sizeof(recs) / sizeof(*recs); i++) {
		apply(a, recs[i]);
		apply(b, recs[i]);
	}
	assert_int_equal(a->n_steps, 1);
	assert_int_equal(b->n_steps, 1);
	assert_string_equal(a->steps[0].rollback, "u2");
	assert_string_equal(b->steps[0].rollback, a->steps[0].rollback);
	assert_true(a->steps[0].rb_running && b->steps[0].rb_running);
	assert_int_equal(a->n_captures, b->n_captures);
	assert_string_equal(b->captures[0].value, "v");
	change_free(a);
	change_free(b);
}

static void test_pending_newest_first(void **state)
{
	struct change_rec *c = change_new();
	struct rec_step **v = NULL;
	size_t n;

	(void)state;
	apply(c, OPEN);
	begin(c, "web1", "preflight", 0, "check");		/* not a step */
	end(c, "web1", "preflight", 0, "ok", 0);
	begin(c, "web1", "step", 0, "done-ok");		/* pending */
	end(c, "web1", "step", 0, "ok", 0);
	begin(c, "web1", "step", 1, "skipped");		/* no */
	end(c, "web1", "step", 1, "skipped", -1);
	begin(c, "web1", "step", 2, "undone");		/* no: rolled back */
	end(c, "web1", "step", 2, "ok", 0);
	rb_end(c, "web1", 2, "rolled-back");
	apply(c, "{\"t\":\"step-begin\",\"host\":\"web1\",\"phase\":\"step\","
		 "\"index\":3,\"name\":\"no-rollback\",\"command\":\"c\","
		 "\"rollback\":null,\"rollback_none\":true,\"local\":false,"
		 "\"dir\":null,\"env\":[],\"timeout_ms\":1}");	/* no: none */
	end(c, "web1", "step", 3, "ok", 0);
	begin(c, "web2", "step", 0, "other-host");		/* not web1's */
	end(c, "web2", "step", 0, "ok", 0);
	begin(c, "web1", "step", 4, "failed");		/* pending: may be half done */
	end(c, "web1", "step", 4, "failed", 1);
	begin(c, "web1", "step", 5, "rb-failed");		/* pending: try again */
	end(c, "web1", "step", 5, "ok", 0);
	rb_end(c, "web1", 5, "rollback-failed");
	begin(c, "web1", "step", 6, "timed-out");		/* pending */
	end(c, "web1", "step", 6, "timeout", -1);
	begin(c, "web1", "verify", 0, "verify");		/* not a step */
	end(c, "web1", "verify", 0, "failed", 1);
	begin(c, "web1", "step", 7, "rb-interrupted");	/* pending */
	end(c, "web1", "step", 7, "ok", 0);
	apply(c, "{\"t\":\"rollback-begin\",\"host\":\"web1\",\"phase\":\"step\",\"index\":7}");
	begin(c, "web1", "step", 8, "interrupted");		/* pending: running */

	n = change_pending(c, "web1", &v);
	assert_int_equal(n, 6);
	assert_string_equal(v[0]->name, "interrupted");
	assert_true(v[0]->running);
	assert_string_equal(v[1]->name, "rb-interrupted");
	assert_string_equal(v[2]->name, "timed-out");
	assert_string_equal(v[3]->name, "rb-failed");
	assert_string_equal(v[4]->name, "failed");
	assert_string_equal(v[5]->name, "done-ok");
	/* borrowed pointers into the record */
	assert_ptr_equal(v[5], &c->steps[1]);
	free(v);

	n = change_pending(c, "web2", &v);
	assert_int_equal(n, 1);
	assert_string_equal(v[0]->host, "web2");
	free(v);
	n = change_pending(c, "nowhere", &v);
	assert_int_equal(n, 0);
	assert_non_null(v);
	free(v);

	/* once rolled back, nothing is pending on web1 any more */
	rb_end(c, "web1", 0, "rolled-back");
	rb_end(c, "web1", 4, "rolled-back");
	rb_end(c, "web1", 5, "rolled-back");
	rb_end(c, "web1", 6, "rolled-back");
	rb_end(c, "web1", 7, "rolled-back");
	rb_end(c, "web1", 8, "rolled-back");
	n = change_pending(c, "web1", &v);
	assert_int_equal(n, 0);
	free(v);
	change_free(c);
}

static void test_status_and_result_names(void **state)
{
	static const char *const statuses[] = {
		"running", "applied", "rolled-back", "rollback-failed",
		"failed", "interrupted", "rehearsed", "applied-with-failures",
	};
	static const char *const results[] = {
		"not-run", "ok", "failed", "skipped", "timeout", "rolled-back",
		"rollback-failed",
	};
	static const char *const junk[] = {
		"", "Applied", "applied ", " ok", "rolled_back", "rolledback",
		"OK", "running\n", "succeeded", "?",
	};

	(void)state;
	/* docs/notes.md spells them so; every value parses to itself */
	for (int i = CHANGE_RUNNING; i <= CHANGE_APPLIED_WITH_FAILURES; i++) {
		const char *name = change_status_name((enum change_status)i);

		assert_string_equal(name, statuses[i]);
		assert_int_equal(change_status_parse(name), i);
	}
	for (int i = RES_NOT_RUN; i <= RES_ROLLBACK_FAILED; i++) {
		const char *name = step_result_name((enum step_result)i);

		assert_string_equal(name, results[i]);
		assert_int_equal(step_result_parse(name), i);
	}
	for (size_t i = 0; i < sizeof(junk) / sizeof(*junk); i++) {
		assert_int_equal(change_status_parse(junk[i]), -1);
		assert_int_equal(step_result_parse(junk[i]), -1);
	}
	/* each list only: a result is not a status and the other way round */
	assert_int_equal(change_status_parse("ok"), -1);
	assert_int_equal(change_status_parse("skipped"), -1);
	assert_int_equal(step_result_parse("applied"), -1);
	assert_int_equal(step_result_parse("running"), -1);
}

static void test_status_final(void **state)
{
	(void)state;
	assert_false(change_status_final(CHANGE_RUNNING));
	/* something is left to undo */
	assert_false(change_status_final(CHANGE_ROLLBACK_FAILED));
	assert_true(change_status_final(CHANGE_APPLIED));
	assert_true(change_status_final(CHANGE_ROLLED_BACK));
	assert_true(change_status_final(CHANGE_FAILED));
	assert_true(change_status_final(CHANGE_REHEARSED));
	assert_true(change_status_final(CHANGE_INTERRUPTED));
	assert_true(change_status_final(CHANGE_APPLIED_WITH_FAILURES));
}

static void test_change_id_new(void **state)
{
	char a[128], b[128], stamp[32];
	time_t before = time(NULL), after;
	struct tm tm;
	size_t len;
	bool in_window = false;

	(void)state;
	change_id_new("db-migrate", a);
	change_id_new("db-migrate", b);
	after = time(NULL);
	/* YYYYMMDDTHHMMSSZ-<name>-<8 hex> */
	len = strlen(a);
	assert_int_equal(len, 16 + 1 + strlen("db-migrate") + 1 + 8);
	for (int i = 0; i < 8; i++)
		assert_true(isdigit((unsigned char)a[i]));
	assert_int_equal(a[8], 'T');
	for (int i = 9; i < 15; i++)
		assert_true(isdigit((unsigned char)a[i]));
	assert_int_equal(a[15], 'Z');
	assert_memory_equal(a + 16, "-db-migrate-", 12);
	for (size_t i = len - 8; i < len; i++)
		assert_true(isxdigit((unsigned char)a[i]) &&
			    !isupper((unsigned char)a[i]));
	/* the stamp is now, in UTC */
	for (time_t t = before; t <= after; t++) {
		gmtime_r(&t, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
		in_window |= strncmp(a, stamp, 16) == 0;
	}
	assert_true(in_window);
	/* two ids of the same second differ */
	assert_string_not_equal(a, b);
}

static void test_capture_metric_find(void **state)
{
	struct change_rec *c = change_new();
	struct rec_step *s1, *s2;

	(void)state;
	change_set_capture(c, "h1", "v", "1");
	change_set_capture(c, "h2", "v", "2");
	change_set_capture(c, "h1", "v", "1b");
	assert_int_equal(c->n_captures, 2);
	assert_string_equal(c->captures[0].value, "1b");
	assert_string_equal(c->captures[1].host, "h2");
	assert_string_equal(c->captures[1].value, "2");

	change_set_metric(c, "h1", "m", true, "after");
	change_set_metric(c, "h1", "m", false, "before");
	change_set_metric(c, "h2", "m", false, "x");
	assert_int_equal(c->n_metrics, 2);
	assert_string_equal(c->metrics[0].before, "before");
	assert_string_equal(c->metrics[0].after, "after");
	assert_null(c->metrics[1].after);

	s1 = change_add_step(c);
	s1->host = xstrdup("h1");
	s1->phase = PHASE_STEPS;
	s1->index = 2;
	/* a new step starts empty with no exit codes */
	assert_int_equal(s1->exit_code, -1);
	assert_int_equal(s1->rb_exit_code, -1);
	assert_false(s1->running);
	assert_null(s1->name);
	s2 = change_add_step(c);
	s2->host = xstrdup("h1");
	s2->phase = PHASE_STEPS;
	s2->index = 2;
	assert_ptr_equal(change_find_step(c, "h1", PHASE_STEPS, 2), &c->steps[1]);
	assert_null(change_find_step(c, "h1", PHASE_VERIFY, 2));
	assert_null(change_find_step(c, "h1", PHASE_STEPS, 3));
	assert_null(change_find_step(c, "h2", PHASE_STEPS, 2));
	change_free(c);
}

/*
 * Regression test (it used to fail; src/json.c with src/yamltree.c): journal records are
 * written with json_str(), which passes every valid UTF-8 character
 * through unescaped, and read back with the YAML parser. YAML does not
 * read all of them back: a C1 control character (U+0080-U+009F, e.g.
 * U+009B, the 8-bit CSI some programs print) or a noncharacter such as
 * U+FFFF makes libyaml reject the whole record ("control characters are
 * not allowed"), and U+0085 (NEL) is a YAML line break, folded into a
 * space. A step whose output or capture holds one loses its step-end
 * record on recovery (record.c ignores a record that does not parse):
 * the step looks interrupted. Escaping these as \uXXXX would fix it.
 */
static void test_record_with_c1_characters(void **state)
{
	static const char *const values[] = {
		("\xc2\x9b" "31mred\xc2\x9b" "0m"),	/* U+009B */
		("a\xc2\x85" "b"),			/* U+0085 */
		"x\xef\xbf\xbf",			/* U+FFFF */
	};
	struct change_rec *c;
	struct buf b = BUF_INIT;

	(void)state;
	c = change_new();
	apply(c, OPEN);
	for (unsigned i = 0; i < 3; i++) {
		begin(c, "web1", "step", i, "s");
		buf_reset(&b);
		/* as record.c writes it: json_kv for the output and the capture */
		buf_addf(&b, "{\"t\":\"step-end\",\"host\":\"web1\","
			 "\"phase\":\"step\",\"index\":%u", i);
		json_kv(&b, "result", "ok", 0);
		buf_adds(&b, ",\"exit\":0,\"duration_ms\":1");
		json_kv(&b, "output", values[i], 0);
		buf_adds(&b, ",\"captures\":{");
		json_str(&b, "k");
		buf_addc(&b, ':');
		json_str(&b, values[i]);
		buf_adds(&b, "}}");
		assert_true(parses(b.data));
		apply(c, b.data);
		assert_false(c->steps[i].running);
		assert_int_equal(c->steps[i].result, RES_OK);
		assert_string_equal(c->steps[i].output, values[i]);
		assert_string_equal(c->captures[0].value, values[i]);
	}
	buf_release(&b);
	change_free(c);
}

/*
 * Regression test (it used to crash; src/change.c, change_apply_record):
 * a journal record whose list or map holds a list or map where strings
 * belong was read as a string (NULL). The fields of such records are
 * skipped, and the rest of the record still applies.
 */
static void test_records_with_wrong_types(void **state)
{
	struct change_rec *c = change_new();

	(void)state;
	apply(c, "{\"t\":\"open\",\"change\":\"x\",\"hosts\":[[\"a\"],\"web1\",{\"b\":1}],"
		 "\"redact\":[{\"p\":1}],\"vars\":{\"v\":[1]}}");
	assert_int_equal(c->hosts.n, 1);
	assert_string_equal(c->hosts.v[0], "web1");
	assert_int_equal(c->redact.n, 0);
	assert_int_equal(c->vars.n, 0);
	apply(c, "{\"t\":\"step-begin\",\"host\":\"web1\",\"phase\":\"step\",\"index\":0,"
		 "\"name\":\"s\",\"env\":[[\"A=1\"],\"B=2\"]}");
	assert_int_equal(c->n_steps, 1);
	assert_int_equal(c->steps[0].env.n, 1);
	assert_string_equal(c->steps[0].env.v[0], "B=2");
	apply(c, "{\"t\":\"step-end\",\"host\":\"web1\",\"phase\":\"step\",\"index\":0,"
		 "\"result\":\"ok\",\"captures\":{\"k\":{\"a\":1},\"j\":\"v\"}}");
	assert_int_equal(c->n_captures, 1);
	assert_string_equal(c->captures[0].name, "j");
	assert_int_equal(c->steps[0].result, RES_OK);
	change_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_record_round_trip),
		cmocka_unit_test(test_open_record_optional_parts),
		cmocka_unit_test(test_step_begin_record),
		cmocka_unit_test(test_step_end_pid_and_captures),
		cmocka_unit_test(test_end_applies_to_its_own_step),
		cmocka_unit_test(test_metric_records),
		cmocka_unit_test(test_rollback_close_baseline_note_records),
		cmocka_unit_test(test_replay_is_deterministic),
		cmocka_unit_test(test_pending_newest_first),
		cmocka_unit_test(test_status_and_result_names),
		cmocka_unit_test(test_status_final),
		cmocka_unit_test(test_change_id_new),
		cmocka_unit_test(test_capture_metric_find),
		cmocka_unit_test(test_record_with_c1_characters),
		cmocka_unit_test(test_records_with_wrong_types),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
