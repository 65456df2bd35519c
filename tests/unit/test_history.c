/*
 * History and recovery over a real notes repository (libgit2) and real
 * journal files: a change is loaded from its journal when there is one
 * (and from its note otherwise), prefixes resolve over notes and
 * unfinished journals, changes are ordered by start even within one
 * second, the newest change of a target is found among notes and
 * journals, and settling commits the note of a change whose journal
 * says it ended.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "change.h"
#include "error.h"
#include "history.h"
#include "journal.h"
#include "json.h"
#include "note.h"
#include "store.h"

#include "scratch.h"

struct fx {
	char dir[SCRATCH_MAX];
	struct store *st;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct rb_error err = RB_ERROR_INIT;
	struct buf path = BUF_INIT;

	assert_non_null(f);
	assert_int_equal(scratch_make(f->dir, "test_history"), 0);
	buf_addf(&path, "%s/notes.git", f->dir);
	assert_int_equal(store_open(buf_str(&path), NULL, true, &f->st, &err), 0);
	buf_release(&path);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	store_free(f->st);
	assert_int_equal(scratch_remove(f->dir), 0);
	free(f);
	return 0;
}

/* A change record with the fields history reads. */
static struct change_rec *rec(const char *id, const char *target,
			      const char *started, enum change_status status)
{
	struct change_rec *c = change_new();

	c->id = xstrdup(id);
	c->runbook = xstrdup("deploy");
	c->target = xstrdup(target);
	c->owner = xstrdup("Ops <ops@example.com>");
	c->operator_ = xstrdup("Tester <t@example.com>");
	c->reason = xstrdup("test");
	c->started = xstrdup(started);
	c->status = status;
	c->closed = status != CHANGE_RUNNING;
	if (c->closed)
		c->finished = xstrdup(started);
	strvec_push(&c->hosts, "local");
	return c;
}

static void commit_note(struct fx *f, struct change_rec *c)
{
	struct buf text = BUF_INIT;
	struct rb_error err = RB_ERROR_INIT;
	char oid[41];

	note_render(c, &text);
	assert_int_equal(store_commit_note(f->st, c->id, buf_str(&text),
					   c->owner, c->operator_, "test\n",
					   oid, &err), 0);
	buf_release(&text);
}

static void append(struct journal *j, const char *payload)
{
	struct rb_error err = RB_ERROR_INIT;

	assert_int_equal(journal_append(j, payload, strlen(payload), &err), 0);
}

/* A journal holding the open record of c, then more records. */
static struct journal *journal_of(struct fx *f, struct change_rec *c)
{
	struct journal *j = NULL;
	struct rb_error err = RB_ERROR_INIT;
	struct buf open = BUF_INIT;

	assert_int_equal(journal_create(store_dir(f->st), c->id, &j, &err), 0);
	change_rec_open(&open, c);
	append(j, buf_str(&open));
	buf_release(&open);
	return j;
}

static void test_load_prefers_journal(void **state)
{
	struct fx *f = *state;
	struct change_rec *c = rec("20261204T100000Z-deploy-00000001", "prod",
				   "2026-12-04T10:00:00.000Z", CHANGE_RUNNING);
	struct change_rec *got = NULL;
	struct rb_error err = RB_ERROR_INIT;
	struct journal *j;
	struct strvec notices = STRVEC_INIT;
	bool from_j = false;

	commit_note(f, c);	/* the note says running, no step */
	j = journal_of(f, c);
	append(j, "{\"t\":\"step-begin\",\"host\":\"local\",\"phase\":\"step\",\"index\":0,\"name\":\"s1\",\"command\":\"true\",\"rollback\":\"undo\",\"rollback_none\":false,\"env\":[],\"timeout_ms\":1000}");
	journal_close(j);
	assert_int_equal(history_load(f->st, c->id, &got, &from_j, &notices, &err), 0);
	assert_true(from_j);
	assert_int_equal(notices.n, 0);	/* nothing was torn */
	assert_int_equal(got->n_steps, 1);
	assert_true(got->steps[0].running);
	assert_string_equal(got->target, "prod");
	change_free(got);
	change_free(c);
}

static void test_load_from_note_without_journal(void **state)
{
	struct fx *f = *state;
	struct change_rec *c = rec("20261204T100001Z-deploy-00000002", "prod",
				   "2026-12-04T10:00:01.000Z", CHANGE_APPLIED);
	struct change_rec *got = NULL;
	struct rb_error err = RB_ERROR_INIT;
	struct strvec notices = STRVEC_INIT;
	bool from_j = true;

	commit_note(f, c);
	assert_int_equal(history_load(f->st, c->id, &got, &from_j, &notices, &err), 0);
	assert_false(from_j);
	assert_int_equal(got->status, CHANGE_APPLIED);
	assert_true(got->has_note);
	change_free(got);
	/* neither journal nor note: an error, not an empty record */
	got = NULL;
	assert_int_equal(history_load(f->st, "20261204T100001Z-none-00000000",
				      &got, &from_j, &notices, &err), -1);
	assert_null(got);
	change_free(c);
}

static void test_load_damaged_journal_is_an_error(void **state)
{
	struct fx *f = *state;
	struct change_rec *c = rec("20261204T100002Z-deploy-00000003", "prod",
				   "2026-12-04T10:00:02.000Z", CHANGE_RUNNING);
	struct change_rec *got = NULL;
	struct rb_error err = RB_ERROR_INIT;
	struct journal *j = journal_of(f, c);
	struct buf path = BUF_INIT;
	struct strvec notices = STRVEC_INIT;
	bool from_j;
	FILE *fp;

	append(j, "{\"t\":\"close\",\"status\":\"applied\"}");
	journal_close(j);
	/* flip a byte inside the first record's payload */
	buf_addf(&path, "%s/journal/%s.log", store_dir(f->st), c->id);
	fp = fopen(buf_str(&path), "r+b");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 20, SEEK_SET), 0);
	assert_int_equal(fputc('X', fp), 'X');
	fclose(fp);
	assert_int_equal(history_load(f->st, c->id, &got, &from_j, &notices, &err), -1);
	assert_int_equal(err.cls, RB_ERR_PARTIAL);
	assert_non_null(strstr(err.msg, c->id));
	buf_release(&path);
	change_free(c);
}

static void test_resolve_notes_then_journals(void **state)
{
	struct fx *f = *state;
	struct change_rec *a = rec("20261204T110000Z-deploy-aaaa0001", "prod",
				   "2026-12-04T11:00:00.000Z", CHANGE_APPLIED);
	struct change_rec *b = rec("20261204T110000Z-deploy-aaab0002", "prod",
				   "2026-12-04T11:00:00.500Z", CHANGE_APPLIED);
	struct change_rec *u = rec("20261204T120000Z-other-bbbb0003", "prod",
				   "2026-12-04T12:00:00.000Z", CHANGE_RUNNING);
	struct rb_error err = RB_ERROR_INIT;
	char *id = NULL;

	commit_note(f, a);
	commit_note(f, b);
	journal_close(journal_of(f, u));	/* unfinished, no note */
	assert_int_equal(history_resolve(f->st, "20261204T110000Z-deploy-aaaa", &id, &err), 0);
	assert_string_equal(id, a->id);
	free(id);
	id = NULL;
	assert_int_equal(history_resolve(f->st, "20261204T120000Z-oth", &id, &err), 0);
	assert_string_equal(id, u->id);
	free(id);
	id = NULL;
	/* two notes share it: ambiguous */
	assert_int_equal(history_resolve(f->st, "20261204T110000Z-deploy-aa", &id, &err), -1);
	assert_null(id);
	assert_int_equal(history_resolve(f->st, "20991231", &id, &err), -1);
	assert_null(id);
	change_free(a);
	change_free(b);
	change_free(u);
}

struct order {
	struct strvec ids;
};

static int collect(void *ctx, const char *id, const char *text, size_t len)
{
	struct order *o = ctx;

	(void)text;
	(void)len;
	strvec_push(&o->ids, id);
	return 0;
}

/* Within one second, the change that started later comes first. */
static void test_each_orders_by_start(void **state)
{
	struct fx *f = *state;
	/* the name sorts the other way round from the start times */
	struct change_rec *late = rec("20261204T130000Z-aaa-00000001", "prod",
				      "2026-12-04T13:00:00.900Z", CHANGE_APPLIED);
	struct change_rec *early = rec("20261204T130000Z-zzz-00000002", "prod",
				       "2026-12-04T13:00:00.100Z", CHANGE_APPLIED);
	struct change_rec *before = rec("20261204T125959Z-mmm-00000003", "prod",
					"2026-12-04T12:59:59.000Z", CHANGE_APPLIED);
	struct order o = { STRVEC_INIT };
	struct rb_error err = RB_ERROR_INIT;

	commit_note(f, before);
	commit_note(f, early);
	commit_note(f, late);
	assert_int_equal(history_each(f->st, 0, collect, &o, &err), 0);
	assert_int_equal(o.ids.n, 3);
	assert_string_equal(o.ids.v[0], late->id);
	assert_string_equal(o.ids.v[1], early->id);
	assert_string_equal(o.ids.v[2], before->id);
	strvec_release(&o.ids);
	/* a limit stops the walk */
	assert_int_equal(history_each(f->st, 1, collect, &o, &err), 0);
	assert_int_equal(o.ids.n, 1);
	assert_string_equal(o.ids.v[0], late->id);
	strvec_release(&o.ids);
	change_free(late);
	change_free(early);
	change_free(before);
}

static void test_last_of_target_among_notes_and_journals(void **state)
{
	struct fx *f = *state;
	struct change_rec *p1 = rec("20261204T140000Z-deploy-00000001", "prod",
				    "2026-12-04T14:00:00.000Z", CHANGE_APPLIED);
	struct change_rec *s1 = rec("20261204T150000Z-deploy-00000002", "staging",
				    "2026-12-04T15:00:00.000Z", CHANGE_APPLIED);
	struct change_rec *p2 = rec("20261204T160000Z-deploy-00000003", "prod",
				    "2026-12-04T16:00:00.000Z", CHANGE_RUNNING);
	struct rb_error err = RB_ERROR_INIT;
	struct strvec notices = STRVEC_INIT;
	char *id = NULL;

	commit_note(f, p1);
	commit_note(f, s1);
	assert_int_equal(history_last(f->st, "prod", false, &id, &notices, &err), 0);
	assert_string_equal(id, p1->id);
	free(id);
	assert_int_equal(history_last(f->st, NULL, false, &id, &notices, &err), 0);
	assert_string_equal(id, s1->id);
	free(id);
	/* an unfinished change, known only from its journal, is newer */
	journal_close(journal_of(f, p2));
	assert_int_equal(history_last(f->st, "prod", false, &id, &notices, &err), 0);
	assert_string_equal(id, p2->id);
	free(id);
	id = NULL;
	assert_int_equal(history_last(f->st, "nowhere", false, &id, &notices, &err), -1);
	assert_int_equal(err.cls, RB_ERR_USAGE);
	assert_null(id);
	change_free(p1);
	change_free(s1);
	change_free(p2);
}

/* c with one step on local: applied, and undone when undone is set. */
static struct change_rec *with_step(struct change_rec *c, bool undone)
{
	struct rec_step *s = change_add_step(c);

	s->host = xstrdup("local");
	s->phase = PHASE_STEPS;
	s->name = xstrdup("s1");
	s->command = xstrdup("true");
	s->rollback = xstrdup("undo");
	s->result = RES_OK;
	s->rb_result = undone ? RES_ROLLED_BACK : RES_NOT_RUN;
	return c;
}

/*
 * Regression test (it used to fail; src/history.c): --last picked the
 * newest change even when nothing was left to undo (an apply that had
 * rolled itself back), and a change could be rolled back under a later
 * one that still stood on it. history_last(only_undoable) skips what is
 * undone; history_later() names the later changes still applied.
 */
static void test_last_undoable_and_later(void **state)
{
	struct fx *f = *state;
	struct change_rec *a = with_step(rec("20261204T170000Z-deploy-00000001",
		"prod", "2026-12-04T17:00:00.000Z", CHANGE_APPLIED), false);
	struct change_rec *b = with_step(rec("20261204T170001Z-deploy-00000002",
		"prod", "2026-12-04T17:00:01.000Z", CHANGE_FAILED), true);
	struct change_rec *o = with_step(rec("20261204T170002Z-deploy-00000003",
		"staging", "2026-12-04T17:00:02.000Z", CHANGE_APPLIED), false);
	struct change_rec *c = with_step(rec("20261204T170003Z-deploy-00000004",
		"prod", "2026-12-04T17:00:03.000Z", CHANGE_APPLIED), false);
	struct rb_error err = RB_ERROR_INIT;
	struct strvec notices = STRVEC_INIT, later = STRVEC_INIT;
	char *id = NULL;

	commit_note(f, a);
	commit_note(f, b);
	commit_note(f, o);
	assert_int_equal(history_last(f->st, "prod", false, &id, &notices, &err), 0);
	assert_string_equal(id, b->id);
	free(id);
	assert_int_equal(history_last(f->st, "prod", true, &id, &notices, &err), 0);
	assert_string_equal(id, a->id);
	free(id);
	/* nothing later on prod still applied: b rolled itself back */
	assert_int_equal(history_later(f->st, a, &later, &notices, &err), 0);
	assert_int_equal(later.n, 0);
	commit_note(f, c);
	assert_int_equal(history_later(f->st, a, &later, &notices, &err), 0);
	assert_int_equal(later.n, 1);
	assert_string_equal(later.v[0], c->id);
	strvec_release(&later);
	/* nothing later than the newest */
	assert_int_equal(history_later(f->st, c, &later, &notices, &err), 0);
	assert_int_equal(later.n, 0);
	assert_int_equal(notices.n, 0);
	change_free(a);
	change_free(b);
	change_free(o);
	change_free(c);
}

static void test_settle_commits_pending_note(void **state)
{
	struct fx *f = *state;
	struct change_rec *c = rec("20261204T170000Z-deploy-00000001", "prod",
				   "2026-12-04T17:00:00.000Z", CHANGE_RUNNING);
	struct change_rec *u = rec("20261204T170001Z-deploy-00000002", "prod",
				   "2026-12-04T17:00:01.000Z", CHANGE_RUNNING);
	struct change_rec *got = NULL;
	struct rb_error err = RB_ERROR_INIT;
	struct strvec notices = STRVEC_INIT;
	struct journal *j;
	struct buf text = BUF_INIT;
	enum change_status bs = CHANGE_RUNNING;
	char *busy = NULL, **ids = NULL;
	size_t n = 0;

	/* noted as running, then the journal says applied: the note is behind */
	commit_note(f, c);
	j = journal_of(f, c);
	append(j, "{\"t\":\"note\",\"status\":\"running\"}");
	append(j, "{\"t\":\"close\",\"status\":\"applied\",\"finished\":\"2026-12-04T17:00:05.000Z\"}");
	journal_close(j);
	/* and one that never ended */
	journal_close(journal_of(f, u));
	assert_int_equal(history_settle(f->st, "prod", &busy, &bs, &notices, &err), 0);
	/* the unfinished one holds the target */
	assert_non_null(busy);
	assert_string_equal(busy, u->id);
	assert_int_equal(bs, CHANGE_INTERRUPTED);
	assert_int_equal(notices.n, 1);
	assert_non_null(strstr(notices.v[0], c->id));
	/* the note now says applied, and the journal left journal/ */
	assert_int_equal(store_read_note(f->st, c->id, &text, &err), 0);
	assert_int_equal(note_parse(text.data, text.len, NULL, &got, &err), 0);
	assert_int_equal(got->status, CHANGE_APPLIED);
	assert_int_equal(journal_list(store_dir(f->st), &ids, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], u->id);
	free(ids[0]);
	free(ids);
	free(busy);
	buf_release(&text);
	strvec_release(&notices);
	change_free(got);
	change_free(c);
	change_free(u);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_load_prefers_journal),
		T(test_load_from_note_without_journal),
		T(test_load_damaged_journal_is_an_error),
		T(test_resolve_notes_then_journals),
		T(test_each_orders_by_start),
		T(test_last_of_target_among_notes_and_journals),
		T(test_last_undoable_and_later),
		T(test_settle_commits_pending_note),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
