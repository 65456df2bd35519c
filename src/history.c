/*
 * History and recovery; see history.h. Change ids sort by second; within
 * one second, changes are ordered by the `started` of their record.
 */
#include "history.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "journal.h"
#include "lock.h"
#include "note.h"
#include "record.h"
#include "store.h"

static void notice(struct strvec *notices, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void notice(struct strvec *notices, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	strvec_push_owned(notices, buf_detach(&b));
}

char *history_journal_target(struct store *st, const char *id)
{
	struct change_rec *c = change_new();
	struct rb_error err = RB_ERROR_INIT;
	bool torn;
	char *t;

	/* records before a damaged one are applied: the open record names it */
	journal_read(store_dir(st), id, false, record_apply, c, &torn, &err);
	t = c->target ? xstrdup(c->target) : NULL;
	change_free(c);
	return t;
}

int history_load(struct store *st, const char *id, struct change_rec **out,
		 bool *from_journal, struct strvec *notices,
		 struct rb_error *err)
{
	struct change_rec *c = change_new();
	struct rb_error jerr = RB_ERROR_INIT;
	struct buf text = BUF_INIT;
	bool torn = false;
	int rc;

	*from_journal = false;
	/* the journal is the fuller record when it is here; repair its tail */
	rc = journal_read(store_dir(st), id, true, record_apply, c, &torn,
			  &jerr);
	if (rc == 0 && torn)
		notice(notices, "warning: the journal of %s ended in an incomplete record (a crash while it was written); it was cut there, the records before it are kept",
		       id);
	if (rc == 0 && c->id) {
		*from_journal = true;
		*out = c;
		return 0;
	}
	change_free(c);
	if (jerr.cls != RB_OK && jerr.cls != RB_ERR_INVALID) {
		*err = jerr;	/* corrupt or refused: never guess */
		return -1;
	}
	if (store_read_note(st, id, &text, err) < 0) {
		buf_release(&text);
		return -1;
	}
	if (note_parse(text.data, text.len, id, out, err) < 0) {
		buf_release(&text);
		return -1;
	}
	buf_release(&text);
	return 0;
}

int history_settle(struct store *st, const char *target, char **busy_id,
		   enum change_status *busy_status, struct strvec *notices,
		   struct rb_error *err)
{
	char **ids = NULL;
	size_t n = 0;
	int ret = 0;

	*busy_id = NULL;
	if (journal_list(store_dir(st), &ids, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct change_rec *c = NULL;
		struct lock *other = NULL;
		bool from_j, stale = false;
		char *jt = NULL, *stale_info = NULL;
		struct rb_error e2 = RB_ERROR_INIT;

		jt = history_journal_target(st, ids[i]);
		if (journal_live(store_dir(st), ids[i])) {
			/*
			 * running in another process: never touch its record
			 * (one that has no open record yet names no target)
			 */
			if (target && jt && strcmp(jt, target) == 0 &&
			    !*busy_id) {
				*busy_id = xstrdup(ids[i]);
				*busy_status = CHANGE_RUNNING;
			}
			free(jt);
			continue;
		}
		if (jt && (!target || strcmp(jt, target) != 0)) {
			/* in flight elsewhere: leave it to its runner */
			if (lock_take(store_dir(st), jt, ids[i], &other, &stale,
				      &stale_info, &e2) < 0) {
				free(jt);
				continue;
			}
			free(stale_info);
		}
		if (history_load(st, ids[i], &c, &from_j, notices, &e2) < 0) {
			if (e2.cls != RB_ERR_PARTIAL) {
				/* no record yet: its runner opens it now, or died first */
				lock_release(other);
				free(jt);
				continue;
			}
			notice(notices, "warning: %s", e2.msg);
			/* damaged: never guess, never run over it */
			if (target && (!jt || strcmp(jt, target) == 0) && !*busy_id) {
				*busy_id = xstrdup(ids[i]);
				*busy_status = CHANGE_INTERRUPTED;
			}
			lock_release(other);
			free(jt);
			continue;
		}
		if (c->closed && change_status_final(c->status) &&
		    c->has_note && c->noted == c->status) {
			/* noted: retire it if its runner died before it could */
			struct rb_error e3 = RB_ERROR_INIT;

			(void)journal_retire(store_dir(st), c->id, &e3);
		} else if (c->closed && change_status_final(c->status)) {
			struct recorder *r = NULL;

			if (recorder_resume(st, c, NULL, &r, &e2) == 0 &&
			    recorder_settle(r, &e2) == 0) {
				notice(notices, "committed the pending note of change %s (%s)",
				       c->id, change_status_name(c->status));
			} else {
				notice(notices, "warning: %s", e2.msg);
			}
			recorder_free(r);
		} else if (target && c->target && strcmp(c->target, target) == 0 &&
			   !*busy_id) {
			*busy_id = xstrdup(c->id);
			*busy_status = c->closed ? c->status : CHANGE_INTERRUPTED;
		}
		lock_release(other);
		free(jt);
		change_free(c);
	}
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	return ret;
}

/*
 * Change ids sort by second, then by runbook name: changes started in
 * the same second are put in order by their `started` (milliseconds).
 */
#define ID_SECOND 16	/* "YYYYMMDDTHHMMSSZ" */

struct by_second {
	struct strvec ids, texts, started;
	size_t limit, emitted;	/* 0: no limit */
	int (*fn)(void *ctx, const char *id, const char *text, size_t len);
	void *ctx;
};

/* The started time of a note's front matter, or "". */
static char *note_started(const char *id, const char *text, size_t len)
{
	struct change_rec *c = NULL;
	struct rb_error err = RB_ERROR_INIT;
	char *s;

	if (note_parse(text, len, id, &c, &err) < 0)
		return xstrdup("");
	s = xstrdup(c->started ? c->started : "");
	change_free(c);
	return s;
}

static int flush_second(struct by_second *b)
{
	int rc = 0;

	/* newest started first; a stable pick, the group is small */
	while (b->ids.n && rc == 0 && (!b->limit || b->emitted < b->limit)) {
		size_t best = 0;

		for (size_t i = 1; i < b->ids.n; i++)
			if (strcmp(b->started.v[i], b->started.v[best]) > 0)
				best = i;
		rc = b->fn(b->ctx, b->ids.v[best], b->texts.v[best],
			   strlen(b->texts.v[best]));
		b->emitted++;
		free(b->ids.v[best]);
		free(b->texts.v[best]);
		free(b->started.v[best]);
		for (size_t i = best; i + 1 < b->ids.n; i++) {
			b->ids.v[i] = b->ids.v[i + 1];
			b->texts.v[i] = b->texts.v[i + 1];
			b->started.v[i] = b->started.v[i + 1];
		}
		b->ids.n--;
		b->texts.n--;
		b->started.n--;
	}
	strvec_release(&b->ids);
	strvec_release(&b->texts);
	strvec_release(&b->started);
	return rc;
}

static int second_one(void *ctx, const char *id, const char *text, size_t len)
{
	struct by_second *b = ctx;
	int rc = 0;

	if (b->ids.n && strncmp(b->ids.v[0], id, ID_SECOND) != 0) {
		rc = flush_second(b);
		if (rc || (b->limit && b->emitted >= b->limit))
			return 1;
	}
	strvec_push(&b->ids, id);
	strvec_push_owned(&b->texts, xstrndup(text, len));
	strvec_push_owned(&b->started, note_started(id, text, len));
	return 0;
}

/* store_each() in the order changes started, newest first. */
int history_each(struct store *st, size_t limit,
		 int (*fn)(void *ctx, const char *id, const char *text,
			   size_t len),
		 void *ctx, struct rb_error *err)
{
	struct by_second b = { STRVEC_INIT, STRVEC_INIT, STRVEC_INIT, limit,
			       0, fn, ctx };

	if (store_each(st, 0, second_one, &b, err) < 0) {
		flush_second(&b);
		return -1;
	}
	return flush_second(&b) < 0 ? -1 : 0;
}

/* Whether change (id, started) started after (id2, started2). */
static bool started_after(const char *id, const char *started,
			  const char *id2, const char *started2)
{
	int c = strncmp(id, id2, ID_SECOND);

	return c > 0 || (c == 0 && strcmp(started ? started : "",
					  started2 ? started2 : "") > 0);
}

/* Whether a loaded change still has something to undo. */
static bool undoable(const struct change_rec *c)
{
	return change_pending_total(c) > 0;
}

struct newest {
	struct store *st;
	const char *target;	/* only changes of this target, or NULL */
	bool undoable;		/* only changes with something to undo */
	struct strvec *notices;
	char *id, *started;
};

/* history_each(): the first note that qualifies, read back whole. */
static int first_id(void *ctx, const char *id, const char *text, size_t len)
{
	struct newest *n = ctx;
	struct change_rec *c = NULL;
	struct rb_error err = RB_ERROR_INIT;
	bool fj;

	if (note_parse(text, len, id, &c, &err) < 0)
		return 0;
	if (n->target && (!c->target || strcmp(c->target, n->target) != 0)) {
		change_free(c);
		return 0;
	}
	if (n->undoable) {
		/* the journal, when here, knows more than the note */
		change_free(c);
		c = NULL;
		if (history_load(n->st, id, &c, &fj, n->notices, &err) < 0 ||
		    !undoable(c)) {
			change_free(c);
			return 0;
		}
	}
	n->id = xstrdup(id);
	n->started = xstrdup(c->started ? c->started : "");
	change_free(c);
	return 1;
}

int history_last(struct store *st, const char *target, bool only_undoable,
		 char **id, struct strvec *notices, struct rb_error *err)
{
	struct newest best = { st, target, only_undoable, notices, NULL,
			       NULL };
	char **ids = NULL;
	size_t n = 0;

	*id = NULL;
	/* first_id() stops the walk at the first change it takes */
	if (history_each(st, 0, first_id, &best, err) < 0 ||
	    journal_list(store_dir(st), &ids, &n, err) < 0) {
		free(best.id);
		free(best.started);
		return -1;
	}
	/* unfinished changes may be newer than every note */
	for (size_t i = 0; i < n; i++) {
		struct change_rec *ch = NULL;
		struct rb_error e2 = RB_ERROR_INIT;
		bool fj;

		if ((!best.id || strncmp(ids[i], best.id, ID_SECOND) >= 0) &&
		    history_load(st, ids[i], &ch, &fj, notices, &e2) == 0 &&
		    (!target || (ch->target && strcmp(ch->target, target) == 0)) &&
		    (!only_undoable || undoable(ch)) &&
		    (!best.id || started_after(ids[i], ch->started, best.id,
					       best.started))) {
			free(best.id);
			free(best.started);
			best.id = xstrdup(ids[i]);
			best.started = xstrdup(ch->started ? ch->started : "");
		}
		change_free(ch);
		free(ids[i]);
	}
	free(ids);
	free(best.started);
	*id = best.id;
	if (!*id) {
		rb_error_set(err, RB_ERR_USAGE,
			     "expected a recorded change%s%s%s, found none in %s",
			     only_undoable ? " with something left to undo" : "",
			     target ? " on target " : "", target ? target : "",
			     store_path(st));
		return -1;
	}
	return 0;
}

struct later {
	struct store *st;
	const struct change_rec *c;
	struct strvec *ids;
};

/* history_each(): the notes of c's target, newest first, down to c. */
static int later_note(void *ctx, const char *id, const char *text,
		      size_t len)
{
	struct later *l = ctx;
	struct change_rec *n = NULL;
	struct rb_error err = RB_ERROR_INIT;

	if (strcmp(id, l->c->id) == 0)
		return 1;
	if (note_parse(text, len, id, &n, &err) == 0 && n->target &&
	    l->c->target && strcmp(n->target, l->c->target) == 0)
		strvec_push(l->ids, id);
	change_free(n);
	return 0;
}

int history_later(struct store *st, const struct change_rec *c,
		  struct strvec *later, struct strvec *notices,
		  struct rb_error *err)
{
	struct strvec cand = STRVEC_INIT;
	struct later l = { st, c, &cand };
	char **ids = NULL;
	size_t n = 0;
	int ret = -1;

	if (history_each(st, 0, later_note, &l, err) < 0 ||
	    journal_list(store_dir(st), &ids, &n, err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		bool seen = strcmp(ids[i], c->id) == 0;

		for (size_t k = 0; k < cand.n && !seen; k++)
			seen = strcmp(cand.v[k], ids[i]) == 0;
		if (!seen && strncmp(ids[i], c->id, ID_SECOND) >= 0)
			strvec_push(&cand, ids[i]);
	}
	for (size_t i = 0; i < cand.n; i++) {
		struct change_rec *x = NULL;
		struct rb_error e2 = RB_ERROR_INIT;
		bool fj;

		if (journal_live(store_dir(st), cand.v[i]) ||
		    (history_load(st, cand.v[i], &x, &fj, notices, &e2) == 0 &&
		     x->target && c->target && strcmp(x->target, c->target) == 0 &&
		     started_after(cand.v[i], x->started, c->id, c->started) &&
		     undoable(x)))
			strvec_push(later, cand.v[i]);
		change_free(x);
	}
	ret = 0;
out:
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	strvec_release(&cand);
	return ret;
}

/* A change id from a prefix: notes first, then unfinished journals. */
int history_resolve(struct store *st, const char *prefix, char **id,
		    struct rb_error *err)
{
	char **ids = NULL;
	size_t n = 0, hits = 0;

	if (store_resolve(st, prefix, id, err) == 0)
		return 0;
	if (journal_list(store_dir(st), &ids, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (change_id_matches(ids[i], prefix) && !hits++)
			*id = xstrdup(ids[i]);
		free(ids[i]);
	}
	free(ids);
	if (hits == 1)
		return 0;
	if (hits > 1) {
		free(*id);
		*id = NULL;
	}
	return -1;
}
