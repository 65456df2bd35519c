/*
 * The commands that read the notes or tidy them: status, log, show, and
 * team mode's sync and unlock (see commands.h). They print, like the
 * rest of commands.c; the helpers they share with it are declared in
 * commands.h.
 */
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "change.h"
#include "cli.h"
#include "error.h"
#include "history.h"
#include "journal.h"
#include "json.h"
#include "lock.h"
#include "note.h"
#include "remote.h"
#include "store.h"
#include "sys.h"
#include "team.h"

/* status: the notes not pushed and the locks on the team's remote. */
static void team_status(const struct cli *c, struct team *t, size_t *shown)
{
	struct strvec pending = STRVEC_INIT, locks = STRVEC_INIT;
	struct rb_error e2 = RB_ERROR_INIT;

	if (remote_pending(t->rm, &pending, &e2) < 0 ||
	    remote_locks(t->rm, &locks, &e2) < 0)
		fprintf(stderr, "runbook: warning: %s\n", e2.msg);
	for (size_t i = 0; i < locks.n; i++) {
		char *tab = strchr(locks.v[i], '\t');

		*tab = '\0';
		if (c->target && strcmp(c->target, locks.v[i]) != 0)
			continue;
		if (c->json) {
			struct buf b = BUF_INIT;

			buf_adds(&b, "{");
			json_kv(&b, "event", "remote-lock", 1);
			json_kv(&b, "target", locks.v[i], 0);
			json_kv(&b, "holder", tab + 1, 0);
			buf_adds(&b, "}\n");
			fputs(buf_str(&b), stdout);
			buf_release(&b);
		} else {
			printf("target %s is locked on the notes remote %s by %s\n",
			       locks.v[i], remote_label(t->rm), tab + 1);
		}
		(*shown)++;
	}
	for (size_t i = 0; i < pending.n; i++) {
		if (c->json) {
			struct buf b = BUF_INIT;

			buf_adds(&b, "{");
			json_kv(&b, "event", "unpushed", 1);
			json_kv(&b, "commit", pending.v[i], 0);
			buf_adds(&b, "}\n");
			fputs(buf_str(&b), stdout);
			buf_release(&b);
		} else {
			printf("%s%s\n", i ? "  " : "not on the notes remote yet (runbook sync pushes them):\n  ",
			       pending.v[i]);
		}
		(*shown)++;
	}
	strvec_release(&pending);
	strvec_release(&locks);
}

int cmd_status(const struct cli *c, struct rb_error *err)
{
	struct store *st = NULL;
	char **ids = NULL, *busy = NULL;
	enum change_status bs;
	size_t n = 0, shown = 0;
	struct team team;
	int code = 0, rc;

	memset(&team, 0, sizeof(team));
	if (store_open(c->notes, NULL, false, &st, err) < 0)
		return err->cls;
	if (cmd_team_of(c, st, false, &team, err) < 0) {
		code = err->cls;
		goto out;
	}
	/* commits pending notes first, so what is left is unfinished */
	if (cmd_settle(st, NULL, &busy, &bs, c->quiet, err) < 0 ||
	    journal_list(store_dir(st), &ids, &n, err) < 0) {
		code = err->cls;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct change_rec *ch = NULL;
		struct rb_error e2 = RB_ERROR_INIT;
		struct strvec notices = STRVEC_INIT;
		bool from_j;
		char *holder;
		const char *state;
		struct buf applied = BUF_INIT, running = BUF_INIT;

		rc = history_load(st, ids[i], &ch, &from_j, &notices, &e2);
		for (size_t k = 0; k < notices.n; k++)
			fprintf(stderr, "runbook: %s\n", notices.v[k]);
		strvec_release(&notices);
		if (rc < 0) {
			if (e2.cls != RB_ERR_PARTIAL)
				continue;	/* nothing recorded yet */
			fprintf(stderr, "runbook: %s\n", e2.msg);
			if (!c->json)
				printf("%s  damaged journal: apply on its target is refused until it is inspected\n",
				       ids[i]);
			code = RB_ERR_PARTIAL;
			shown++;
			continue;
		}
		if (c->target && ch->target && strcmp(c->target, ch->target) != 0) {
			change_free(ch);
			continue;
		}
		holder = lock_holder(store_dir(st), ch->target ? ch->target : "local");
		if (journal_live(store_dir(st), ch->id))
			state = "running";
		else if (!ch->closed)
			state = "interrupted";
		else
			state = change_status_name(ch->status);
		for (size_t k = 0; k < ch->n_steps; k++) {
			struct rec_step *s = &ch->steps[k];

			if (s->phase != PHASE_STEPS)
				continue;
			if (s->running)
				buf_addf(&running, "%s'%s' on %s", running.len ? ", " : "",
					 s->name, s->host);
			else if ((s->result == RES_OK || s->result == RES_FAILED ||
				  s->result == RES_TIMEOUT) &&
				 s->rb_result != RES_ROLLED_BACK)
				buf_addf(&applied, "%s'%s' on %s", applied.len ? ", " : "",
					 s->name, s->host);
		}
		if (c->json) {
			struct buf b = BUF_INIT;

			buf_adds(&b, "{");
			json_kv(&b, "event", "status", 1);
			json_kv(&b, "change", ch->id, 0);
			json_kv(&b, "runbook", ch->runbook ? ch->runbook : "", 0);
			json_kv(&b, "target", ch->target ? ch->target : "", 0);
			json_kv(&b, "status", state, 0);
			json_kv(&b, "applied", buf_str(&applied), 0);
			json_kv(&b, "running", buf_str(&running), 0);
			if (holder)
				json_kv(&b, "lock", holder, 0);
			buf_adds(&b, "}\n");
			fputs(buf_str(&b), stdout);
			buf_release(&b);
		} else {
			printf("%s  %s on %s: %s\n", ch->id, ch->runbook ? ch->runbook : "?",
			       ch->target ? ch->target : "?", state);
			if (applied.len)
				printf("  applied, not undone: %s\n", buf_str(&applied));
			if (running.len && strcmp(state, "running") == 0)
				printf("  running now: %s\n", buf_str(&running));
			else if (running.len)
				printf("  was running when it stopped (may be half-applied): %s\n",
				       buf_str(&running));
			if (holder)
				printf("  lock held by %s\n", holder);
			if (strcmp(state, "running") != 0)
				printf("  finish it with: runbook rollback %s\n", ch->id);
		}
		shown++;
		free(holder);
		buf_release(&applied);
		buf_release(&running);
		change_free(ch);
	}
	if (team.rm)
		team_status(c, &team, &shown);
	if (c->json) {
		/* always one object, so a script reads "nothing open" too */
		struct buf b = BUF_INIT;

		buf_adds(&b, "{");
		json_kv(&b, "event", "summary", 1);
		json_kv(&b, "notes", store_path(st), 0);
		buf_addf(&b, ",\"unfinished\":%zu,\"exit\":%d}\n", shown, code);
		fputs(buf_str(&b), stdout);
		buf_release(&b);
	} else if (!shown && !c->quiet) {
		printf("no unfinished changes in %s\n", store_path(st));
	}
out:
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	free(busy);
	team.queued = team.offline = false;	/* status listed them */
	cmd_team_end(&team, st);
	store_free(st);
	return code;
}

/*
 * Text from a record on stdout. Notes come from other clones: on a
 * terminal their control characters are shown, never obeyed.
 */
static void out_text(const char *s, size_t n)
{
	struct buf b = BUF_INIT;

	if (!isatty(1)) {
		fwrite(s, 1, n, stdout);
		return;
	}
	buf_add_visible(&b, s, n, true);
	fwrite(b.data, 1, b.len, stdout);
	buf_release(&b);
}

struct log_ctx {
	const struct cli *c;
	size_t shown;
};

static int log_one(void *ctx, const char *id, const char *text, size_t len)
{
	struct log_ctx *lc = ctx;
	struct change_rec *ch = NULL;
	struct rb_error err = RB_ERROR_INIT;

	if (note_parse(text, len, id, &ch, &err) < 0) {
		struct buf b = BUF_INIT;

		buf_addf(&b, "%s  (unreadable note: %s)\n", id, err.msg);
		out_text(b.data, b.len);
		buf_release(&b);
		return 0;
	}
	if (lc->c->json) {
		struct buf b = BUF_INIT;

		buf_adds(&b, "{");
		json_kv(&b, "event", "change", 1);
		json_kv(&b, "change", id, 0);
		json_kv(&b, "runbook", ch->runbook ? ch->runbook : "", 0);
		json_kv(&b, "target", ch->target ? ch->target : "", 0);
		json_kv(&b, "status", change_status_name(ch->status), 0);
		json_kv(&b, "operator", ch->operator_ ? ch->operator_ : "", 0);
		json_kv(&b, "started", ch->started ? ch->started : "", 0);
		json_kv(&b, "finished", ch->finished ? ch->finished : "", 0);
		json_kv(&b, "reason", ch->reason ? ch->reason : "", 0);
		buf_adds(&b, "}\n");
		fputs(buf_str(&b), stdout);
		buf_release(&b);
	} else {
		struct buf b = BUF_INIT;

		buf_addf(&b, "%s  %-15s %-12s %s\n    %s\n", id,
			 change_status_name(ch->status),
			 ch->target ? ch->target : "?",
			 ch->operator_ ? ch->operator_ : "",
			 ch->reason ? ch->reason : "");
		out_text(b.data, b.len);
		buf_release(&b);
	}
	lc->shown++;
	change_free(ch);
	return 0;
}

int cmd_log(const struct cli *c, struct rb_error *err)
{
	struct store *st = NULL;
	struct log_ctx lc = { c, 0 };
	struct team team;
	int code = 0;

	memset(&team, 0, sizeof(team));
	if (store_open(c->notes, NULL, false, &st, err) < 0)
		return err->cls;
	if (cmd_team_of(c, st, false, &team, err) < 0)
		code = err->cls;
	else if (history_each(st, c->log_n, log_one, &lc, err) < 0)
		code = err->cls;
	else if (!lc.shown && !c->json && !c->quiet)
		printf("no changes recorded in %s\n", store_path(st));
	cmd_team_end(&team, st);
	store_free(st);
	return code;
}

int cmd_show(const struct cli *c, struct rb_error *err)
{
	struct store *st = NULL;
	struct buf text = BUF_INIT;
	char *id = NULL;
	struct team team;
	int code = 0;

	memset(&team, 0, sizeof(team));
	if (store_open(c->notes, NULL, false, &st, err) < 0 ||
	    cmd_team_of(c, st, false, &team, err) < 0 ||
	    store_resolve(st, c->args[0], &id, err) < 0 ||
	    store_read_note(st, id, &text, err) < 0) {
		code = err->cls ? (int)err->cls : RB_ERR_USAGE;
		goto out;
	}
	if (c->json) {
		struct buf b = BUF_INIT;

		buf_adds(&b, "{");
		json_kv(&b, "event", "note", 1);
		json_kv(&b, "change", id, 0);
		buf_adds(&b, ",\"note\":");
		json_str_n(&b, text.data, text.len);
		buf_adds(&b, "}\n");
		fputs(buf_str(&b), stdout);
		buf_release(&b);
	} else {
		out_text(text.data, text.len);
	}
out:
	buf_release(&text);
	free(id);
	cmd_team_end(&team, st);
	store_free(st);
	return code;
}

/* The notes remote a command needs, fetched; usage error without one. */
static int team_needed(const struct cli *c, struct store *st,
		       struct team *t, struct rb_error *err)
{
	if (cmd_team_of(c, st, true, t, err) < 0)
		return -1;
	if (!t->rm) {
		rb_error_set(err, RB_ERR_USAGE,
			     "%s: expected a notes remote (--remote NAME, RUNBOOK_REMOTE, or git config runbook.remote NAME in %s), found none; nothing was done",
			     cli_cmd_name(c->cmd), store_path(st));
		return -1;
	}
	return 0;
}

int cmd_sync(const struct cli *c, struct rb_error *err)
{
	struct store *st = NULL;
	struct strvec pending = STRVEC_INIT;
	struct team team;
	int code = 0;

	memset(&team, 0, sizeof(team));
	if (store_open(c->notes, NULL, false, &st, err) < 0 ||
	    team_needed(c, st, &team, err) < 0 ||
	    remote_pending(team.rm, &pending, err) < 0 ||
	    remote_push(team.rm, err) < 0) {
		code = err->cls ? (int)err->cls : RB_ERR_CONNECT;
		goto out;
	}
	if (c->json) {
		printf("{\"event\":\"sync\",\"pushed\":%zu}\n", pending.n);
	} else if (!c->quiet) {
		for (size_t i = 0; i < pending.n; i++)
			fprintf(stderr, "runbook: pushed %s\n", pending.v[i]);
		fprintf(stderr, "runbook: the notes remote %s has every note (%zu pushed now)\n",
			remote_label(team.rm), pending.n);
	}
out:
	strvec_release(&pending);
	cmd_team_end(&team, st);
	store_free(st);
	return code;
}

int cmd_unlock(const struct cli *c, struct rb_error *err)
{
	struct store *st = NULL;
	struct team team;
	char *was = NULL, oid[41];
	const char *target = c->args[0];
	int code = 0;

	memset(&team, 0, sizeof(team));
	if (!c->force || !c->reason || !*c->reason) {
		rb_error_set(err, RB_ERR_USAGE,
			     "unlock: expected --force and --reason WHY (breaking a lock is recorded), found %s; nothing was done",
			     c->force ? "no --reason" : "no --force");
		return RB_ERR_USAGE;
	}
	if (store_open(c->notes, NULL, false, &st, err) < 0 ||
	    team_needed(c, st, &team, err) < 0) {
		code = err->cls;
		goto out;
	}
	if (team_unlock(&team, st, target, c->reason, &was, oid, err) < 0) {
		code = err->cls;
		goto out;
	}
	if (!c->quiet)
		fprintf(stderr, "runbook: broke the lock of target %s on %s, held by %s; recorded (commit %.12s)\n",
			target, remote_label(team.rm), was, oid);
	if (team.queued) {
		rb_error_set(err, RB_ERR_CONNECT, "%s", team.err.msg);
		code = RB_ERR_CONNECT;
	}
out:
	free(was);
	cmd_team_end(&team, st);
	store_free(st);
	return code;
}

