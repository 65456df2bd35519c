/*
 * Team mode around a command: fetch first, push after each note
 * commit, release the remote lock last. The invariant: with a
 * reachable remote, no note commit of apply's is left unpushed without
 * a notice that says so; the running note is pushed before any host is
 * touched, or the change ends there (team.first).
 */
#include "team.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "change.h"
#include "history.h"
#include "note.h"
#include "redact.h"
#include "remote.h"
#include "store.h"

static int push_after_commit(void *ctx, struct rb_error *err)
{
	struct team *t = ctx;
	struct rb_error e2 = RB_ERROR_INIT;
	bool must = t->first;

	t->first = false;
	if (remote_push(t->rm, &e2) == 0)
		return 0;
	t->queued = true;
	t->err = e2;
	if (!must)
		return 0;
	t->first_failed = true;
	*err = e2;
	return -1;
}

int team_open(struct team *t, struct store *st, const char *name,
	      const struct remote_opts *o, bool strict,
	      struct strvec *notices, struct rb_error *err)
{
	struct rb_error e2 = RB_ERROR_INIT;
	struct buf b = BUF_INIT;

	memset(t, 0, sizeof(*t));
	if (remote_open(store_gitdir(st), name, o, &t->rm, err) < 0)
		return -1;
	if (!t->rm)
		return 0;
	if (remote_fetch(t->rm, &e2) < 0) {
		if (strict) {
			rb_error_set(err, e2.cls,
				     "%s; nothing was run; safe to run again once the remote can be reached",
				     e2.msg);
			return -1;
		}
		buf_addf(&b, "warning: %s; going on with the notes as last fetched: the team cannot see what this command records until 'runbook sync' pushes it",
			 e2.msg);
		strvec_push_owned(notices, buf_detach(&b));
		t->offline = true;
		return 0;
	}
	store_on_commit(st, push_after_commit, t);
	{
		struct strvec released = STRVEC_INIT;

		if (remote_release_left(t->rm, &released, &e2) < 0) {
			buf_addf(&b, "warning: %s", e2.msg);
			strvec_push_owned(notices, buf_detach(&b));
		}
		for (size_t i = 0; i < released.n; i++) {
			buf_addf(&b, "released the lock of target %s on the notes remote %s, left held when the remote could not be reached",
				 released.v[i], remote_label(t->rm));
			strvec_push_owned(notices, buf_detach(&b));
		}
		strvec_release(&released);
	}
	return 0;
}

void team_close(struct team *t, struct store *st, struct strvec *notices)
{
	struct rb_error e2 = RB_ERROR_INIT;
	struct buf b = BUF_INIT;

	if (!t->rm)
		return;
	if (st)
		store_on_commit(st, NULL, NULL);
	if (!t->offline && remote_unlock(t->rm, &e2) < 0) {
		buf_addf(&b, "warning: %s; the lock stays on the remote: break it with runbook unlock TARGET --force --reason WHY",
			 e2.msg);
		strvec_push_owned(notices, buf_detach(&b));
	}
	if (t->queued || t->offline) {
		struct strvec pending = STRVEC_INIT;

		if (remote_pending(t->rm, &pending, &e2) == 0 && pending.n) {
			buf_addf(&b, "warning: %zu note commit%s not on the notes remote %s yet (%s): the team cannot see %s; run 'runbook sync' when the remote is back",
				 pending.n, pending.n == 1 ? " is" : "s are",
				 remote_label(t->rm),
				 t->queued ? t->err.msg : "it could not be reached",
				 pending.n == 1 ? "it" : "them");
			strvec_push_owned(notices, buf_detach(&b));
		}
		strvec_release(&pending);
	}
	remote_free(t->rm);
	t->rm = NULL;
}

int team_unlock(struct team *t, struct store *st, const char *target,
		const char *reason, char **was, char oid_hex[41],
		struct rb_error *err)
{
	char *by = store_operator(st), *why;
	struct redactor *red = redactor_new();
	struct buf msg = BUF_INIT;
	int ret = -1;

	/* the reason is typed by hand: a pasted token is masked too */
	redactor_add_builtins(red);
	why = redact_str(red, reason);
	if (remote_break(t->rm, target, by, why, was, err) < 0)
		goto out;
	buf_addf(&msg, "unlock: lock of target %s broken by %s\n\nbroken_by: %s\nholder was: %s\nreason: %s\n",
		 target, by, by, *was, why);
	if (store_commit_record(st, by, by, buf_str(&msg), oid_hex, err) < 0)
		goto out;
	ret = 0;
out:
	buf_release(&msg);
	free(why);
	redactor_free(red);
	free(by);
	return ret;
}

struct foreign {
	struct store *st;
	const char *target;
	struct change_rec *found;
};

static int foreign_one(void *ctx, const char *id, const char *text,
		       size_t len)
{
	struct foreign *f = ctx;
	struct change_rec *ch = NULL;
	struct rb_error e2 = RB_ERROR_INIT;
	char *jt;

	if (note_parse(text, len, id, &ch, &e2) < 0)
		return 0;	/* unreadable: log says so */
	if (ch->status != CHANGE_RUNNING || !ch->target ||
	    strcmp(ch->target, f->target) != 0) {
		change_free(ch);
		return 0;
	}
	jt = history_journal_target(f->st, id);
	if (jt) {
		/* journaled here: history_settle() judges it */
		free(jt);
		change_free(ch);
		return 0;
	}
	f->found = ch;
	return 1;
}

int team_check_foreign(struct store *st, const char *target,
		       struct rb_error *err)
{
	struct foreign f = { st, target, NULL };
	struct buf shown = BUF_INIT, b = BUF_INIT;

	if (store_each(st, 0, foreign_one, &f, err) < 0)
		return -1;
	if (!f.found)
		return 0;
	buf_addf(&b, "target %s has change %s still running according to its note (by %s, started %s), and this machine has no journal of it: its runner is on another machine, or gone (its lock broken); nothing was run; if it is gone, finish it first with: runbook rollback %s",
		 target, f.found->id, f.found->operator_ ? f.found->operator_ : "?",
		 f.found->started ? f.found->started : "?", f.found->id);
	/* the note came from the remote: shown, never obeyed */
	buf_add_visible(&shown, b.data, b.len, false);
	rb_error_set(err, RB_ERR_BUSY, "%s", buf_str(&shown));
	buf_release(&b);
	buf_release(&shown);
	change_free(f.found);
	return -1;
}
