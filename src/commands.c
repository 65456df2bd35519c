/*
 * The commands: what each `runbook COMMAND` does, in terms of the
 * modules below. With main.c and the report, the only code that
 * prints: results on stdout, notices and warnings on stderr. Errors go
 * back to main.c in a struct rb_error, which prints them once.
 */
#include "commands.h"

#include "commands_fleet.h"
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apply.h"
#include "buf.h"
#include "change.h"
#include "cli.h"
#include "completion.h"
#include "diag.h"
#include "error.h"
#include "event.h"
#include "history.h"
#include "hosts.h"
#include "journal.h"
#include "json.h"
#include "inventory.h"
#include "load.h"
#include "lock.h"
#include "note.h"
#include "notify.h"
#include "plan.h"
#include "record.h"
#include "remote.h"
#include "render.h"
#include "replay.h"
#include "report.h"
#include "rollback.h"
#include "team.h"
#include "runbook.h"
#include "skeleton.h"
#include "store.h"
#include "sys.h"
#include "validate.h"

const char cmd_retry_hint[] = "nothing was run; fix the file and run again";

void cmd_json_diags(struct diag *d, const char *file, bool ok)
{
	struct buf b = BUF_INIT;

	diag_json(d, file, ok, &b);
	fputs(buf_str(&b), stdout);
	buf_release(&b);
}

/*
 * Loads and validates one file. Returns the model, or NULL after
 * printing its problems (or filling err when it cannot be read).
 */
static struct runbook *load_checked(const struct cli *c, const char *file,
				    struct rb_error *err)
{
	struct runbook *rb = NULL;
	bool inv_bad = false;
	struct diag d;

	diag_init(&d, file);
	runbook_load(file, &rb, &d, err);
	if (rb)
		inv_bad = cmd_inventory(c, rb, &d, err) < 0;
	if (rb)
		runbook_validate(rb, c->var_names, c->n_var_names, &d);
	if (diag_count(&d) || inv_bad) {
		runbook_free(rb);
		rb = NULL;
		if (c->json && c->cmd == CMD_VALIDATE) {
			diag_print(&d, stderr);
			cmd_json_diags(&d, file, false);
		} else {
			diag_print(&d, stderr);
		}
		if (err->cls == RB_OK)
			rb_error_set(err, RB_ERR_INVALID, "%s", cmd_retry_hint);
	}
	diag_release(&d);
	return rb;
}

int cmd_validate(const struct cli *c)
{
	bool diagnosed = false;
	int code = 0;

	for (size_t i = 0; i < c->n_args; i++) {
		struct rb_error err = RB_ERROR_INIT;
		struct runbook *rb;

		if (inventory_sniff(c->args[i])) {
			if (cmd_validate_inventory(c, c->args[i]))
				code = RB_ERR_INVALID;
			diagnosed |= code != 0;
			continue;
		}
		rb = load_checked(c, c->args[i], &err);
		if (!rb) {
			if (strcmp(err.msg, cmd_retry_hint) != 0) {
				/* unreadable: no diagnostics were printed */
				fprintf(stderr, "runbook: %s\n", err.msg);
				if (c->json) {
					struct diag d;
					struct src_pos start = { 1, 1 };

					diag_init(&d, c->args[i]);
					diag_at(&d, &start, "%s", err.msg);
					cmd_json_diags(&d, c->args[i], false);
					diag_release(&d);
				}
			}
			else
				diagnosed = true;
			code = RB_ERR_INVALID;
			continue;
		}
		if (c->json) {
			struct diag none;

			diag_init(&none, c->args[i]);
			cmd_json_diags(&none, c->args[i], true);
		} else if (!c->quiet) {
			printf("%s: ok (%zu preflight, %zu steps, %zu verify, %zu metrics, %zu target%s)\n",
			       c->args[i], rb->n_phase[PHASE_PREFLIGHT],
			       rb->n_phase[PHASE_STEPS],
			       rb->n_phase[PHASE_VERIFY],
			       rb->n_phase[PHASE_METRICS], rb->n_targets,
			       rb->n_targets == 1 ? "" : "s");
		}
		runbook_free(rb);
	}
	if (diagnosed)
		fprintf(stderr, "%s\n", cmd_retry_hint);
	return code;
}

static const struct target *pick_target(const struct runbook *rb,
					const char *name,
					struct rb_error *err)
{
	const struct target *t;
	struct buf list = BUF_INIT;

	if (!name && rb->n_targets == 1)
		return &rb->targets[0];
	if (name && (t = runbook_target(rb, name)))
		return t;
	for (size_t i = 0; i < rb->n_targets; i++)
		buf_addf(&list, "%s%s", i ? ", " : "", rb->targets[i].name);
	if (name)
		rb_error_set(err, RB_ERR_USAGE,
			     "--target: expected one of %s, found \"%s\"; nothing was run",
			     buf_str(&list), name);
	else
		rb_error_set(err, RB_ERR_USAGE,
			     "expected --target, one of %s (this runbook has several); nothing was run",
			     buf_str(&list));
	buf_release(&list);
	return NULL;
}

/* The target to act on, narrowed by --limit; free out->hosts after. */
static int pick_hosts(const struct cli *c, const struct runbook *rb,
		      struct target *out, struct rb_error *err)
{
	const struct target *t = pick_target(rb, c->target, err);
	struct buf list = BUF_INIT;
	char *what = NULL;

	memset(out, 0, sizeof(*out));
	if (!t)
		return -1;
	if (!c->limit) {
		*out = *t;
		out->hosts = xcalloc(t->n_hosts + 1, sizeof(*out->hosts));
		memcpy(out->hosts, t->hosts, t->n_hosts * sizeof(*t->hosts));
		goto serial;
	}
	if (target_limit(t, c->limit, out, &what) == 0)
		goto serial;
	for (size_t h = 0; h < t->n_hosts; h++)
		buf_addf(&list, "%s%s", h ? ", " : "", t->hosts[h].spec);
	rb_error_set(err, RB_ERR_USAGE,
		     "--limit: expected host names or globs of target %s (%s), found \"%s\", which names none; nothing was run",
		     t->name, buf_str(&list), what);
	buf_release(&list);
	free(what);
	free(out->hosts);
	out->hosts = NULL;
	return -1;
serial:
	if (c->n_serial) {	/* --serial: borrowed from c */
		out->waves = c->serial;
		out->n_waves = c->n_serial;
	}
	return 0;
}

int cmd_plan(const struct cli *c, struct rb_error *err)
{
	struct runbook *rb = load_checked(c, c->args[0], err);
	struct target t;
	int ret = -1;

	if (!rb)
		return -1;
	if (pick_hosts(c, rb, &t, err) == 0 &&
	    plan_write(rb, &t, &c->vars, c->json, stdout, err) == 0)
		ret = 0;
	free(t.hosts);
	runbook_free(rb);
	return ret;
}

/* The closing JSON object of a command that ran no engine. */
static void json_done(const char *id, enum change_status status, int code,
		      const char *msg)
{
	struct buf b = BUF_INIT;
	char t[40];

	sys_now_utc(t);
	buf_adds(&b, "{");
	json_kv(&b, "event", "done", 1);
	json_kv(&b, "change", id, 0);
	json_kv(&b, "time", t, 0);
	json_kv(&b, "status", change_status_name(status), 0);
	buf_addf(&b, ",\"exit\":%d", code);
	if (code && msg)
		json_kv(&b, "message", msg, 0);
	buf_adds(&b, "}\n");
	fputs(buf_str(&b), stdout);
	buf_release(&b);
}

/* history_settle(), with what it has to say printed. */
int cmd_settle(struct store *st, const char *target, char **busy,
		      enum change_status *bs, bool quiet, struct rb_error *err)
{
	struct strvec notices = STRVEC_INIT;
	int ret = history_settle(st, target, busy, bs, &notices, err);

	for (size_t i = 0; i < notices.n; i++)
		if (!quiet || strncmp(notices.v[i], "warning:", 8) == 0)
			fprintf(stderr, "runbook: %s\n", notices.v[i]);
	strvec_release(&notices);
	return ret;
}

/* A notice list printed as runbook says things, then emptied. */
static void say(struct strvec *notices)
{
	for (size_t i = 0; i < notices->n; i++)
		fprintf(stderr, "runbook: %s\n", notices->v[i]);
	strvec_release(notices);
}

/* team_open() of the command's --remote, notices said. */
int cmd_team_of(const struct cli *c, struct store *st, bool strict,
		struct team *t, struct rb_error *err)
{
	struct remote_opts o = { c->known_hosts, c->accept_new };
	struct strvec notices = STRVEC_INIT;
	int rc = team_open(t, st, c->remote, &o, strict, &notices, err);

	say(&notices);
	return rc;
}

void cmd_team_end(struct team *t, struct store *st)
{
	struct strvec notices = STRVEC_INIT;

	team_close(t, st, &notices);
	say(&notices);
}

/* Opens the notes, settles old journals, takes the target's lock. */
static int begin_change(const struct cli *c, const char *near,
			const char *target, const char *change_id,
			struct store **st, struct lock **lk, struct team *t,
			struct rb_error *err)
{
	enum change_status bs = CHANGE_INTERRUPTED;
	char *busy = NULL, *stale_info = NULL;
	bool stale = false;

	*st = NULL;
	*lk = NULL;
	if (store_open(c->notes, near, true, st, err) < 0 ||
	    cmd_team_of(c, *st, true, t, err) < 0)
		return -1;
	if (lock_take(store_dir(*st), target, change_id, lk, &stale,
		      &stale_info, err) < 0)
		return -1;
	if (stale)
		fprintf(stderr, "runbook: warning: took over the lock of target %s left by a process that died (%s)\n",
			target, stale_info);
	free(stale_info);
	if (cmd_settle(*st, target, &busy, &bs, c->quiet, err) < 0)
		return -1;
	if (busy && bs == CHANGE_RUNNING) {
		rb_error_set(err, RB_ERR_BUSY,
			     "target %s has change %s running in another runbook process (its journal is locked); nothing was run; try again when it has finished",
			     target, busy);
		free(busy);
		return -1;
	}
	if (busy) {
		rb_error_set(err, RB_ERR_BUSY,
			     "target %s has an unfinished change %s (%s); nothing was run; finish it first with: runbook rollback %s",
			     target, busy, change_status_name(bs), busy);
		free(busy);
		return -1;
	}
	if (t->rm) {
		char *op = store_operator(*st);
		int rc = remote_lock(t->rm, target, change_id, op, err);

		free(op);
		if (rc < 0 || team_check_foreign(*st, target, err) < 0)
			return -1;
		t->first = true;
	}
	return 0;
}

/*
 * TERM=dumb (an Emacs shell, a serial console, a CI log that claims a
 * tty) or no TERM at all: no colors and no redrawn line, as when stderr
 * is not a terminal.
 */
static bool term_dumb(void)
{
	const char *t = getenv("TERM");

	return !t || !*t || strcmp(t, "dumb") == 0;
}

static void report_opts_of(const struct cli *c, struct report_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->json = c->json;
	o->quiet = c->quiet;
	o->verbose = c->verbose;
	o->tty = isatty(2) && !term_dumb();
	o->color = !c->no_color && o->tty;
}

/* A warning when the change's last note did not make it into git. */
/* Where the note went, or that it did not. */
static void warn_unnoted(const struct change_rec *ch, const struct store *st,
			 bool quiet)
{
	if (ch->id && ch->has_note && ch->noted == ch->status && !quiet)
		fprintf(stderr, "runbook: note of %s committed to %s (branch runbook-notes, commit %.12s)\n",
			ch->id, store_path(st), ch->note_oid ? ch->note_oid : "?");
	else if (ch->id && !ch->has_note && !quiet)
		fprintf(stderr, "runbook: warning: the change note of %s was not committed; its journal under %s/journal keeps the record; run 'runbook status' to commit it\n",
			ch->id, store_dir(st));
	else if (ch->id && ch->noted != ch->status)
		fprintf(stderr, "runbook: warning: the final note of %s was not committed; its journal under %s/journal keeps the record; run 'runbook status' to commit it\n",
			ch->id, store_dir(st));
}

/* reason and expected as the note says them: {{ }} rendered */
static int render_reason(const struct runbook *rb, const struct target *t,
			 const struct varset *vars, const char *id,
			 struct change_rec *ch, struct rb_error *err)
{
	char *reason = NULL, *expected = NULL;

	if (render_change_text(rb, rb->reason.s, t->name, vars, id, &reason,
			       err) < 0 ||
	    render_change_text(rb, rb->expected.s, t->name, vars, id,
			       &expected, err) < 0) {
		free(reason);
		return -1;
	}
	free(ch->reason);
	ch->reason = reason;
	free(ch->expected);
	ch->expected = expected;
	return 0;
}

/* apply and rehearse: one change, locked, journaled and noted. */
int cmd_apply(const struct cli *c, struct rb_error *err)
{
	struct runbook *rb = load_checked(c, c->args[0], err);
	struct store *st = NULL;
	struct lock *lk = NULL;
	struct change_rec *ch = NULL;
	struct recorder *rec = NULL;
	struct report *rep = NULL;
	struct notifier *nt = NULL;
	struct report_opts ro;
	struct listener ls[3];
	struct apply_opts o;
	struct target t = { 0 };
	struct team team;
	unsigned long long waited = 0;
	char id[128], *shown = NULL;
	int code;

	memset(&team, 0, sizeof(team));
	if (!rb)
		return err->cls;
	hosts_resolve_identities(rb);
	memset(&o, 0, sizeof(o));
	if (pick_hosts(c, rb, &t, err) < 0) {
		code = err->cls;
		goto out;
	}
	o.target = &t;
	if (cmd_confirm_target(c, &t, rb->reason.s, err) < 0) {
		code = err->cls;
		goto out;
	}
	change_id_new(rb->name.s, id);
	while (begin_change(c, rb->file, o.target->name, id, &st, &lk, &team,
			    err) < 0) {
		if (!cmd_wait_busy(c, &waited, err, &shown)) {
			code = err->cls;
			goto out;
		}
		cmd_team_end(&team, st);
		lock_release(lk);
		store_free(st);
		memset(&team, 0, sizeof(team));
		rb_error_clear(err);
	}
	ch = change_from_runbook(rb, o.target, &c->vars, store_operator(st));
	ch->mode = xstrdup(c->cmd == CMD_REHEARSE ? "rehearse" : "apply");
	if (c->limit)
		ch->limit = xstrdup(c->limit);
	if (rb->n_phase[PHASE_WATCH]) {
		char d[32], i[32];
		struct buf w = BUF_INIT;

		format_duration(rb->watch_duration_ms, d);
		format_duration(rb->watch_interval_ms, i);
		if (c->no_watch)
			buf_addf(&w, "skipped (--no-watch)");
		else
			buf_addf(&w, "%s, every %s", d, i);
		ch->watch = buf_detach(&w);
	}
	if (render_reason(rb, o.target, &c->vars, id, ch, err) < 0) {
		code = err->cls;
		goto out;
	}
	rec = recorder_new(st, ch, NULL);
	if (recorder_keep_runbook(rec, rb, err) < 0 && !c->quiet)
		fprintf(stderr, "runbook: warning: %s; the note is committed without it\n",
			err->msg);
	rb_error_clear(err);
	report_opts_of(c, &ro);
	report_fit_runbook(&ro, rb, o.target);
	rep = report_new(&ro);
	ls[0] = recorder_listener(rec);
	ls[1] = report_listener(rep);
	if ((nt = notifier_new(rb, ch, recorder_renote, rec)))
		ls[2] = notifier_listener(nt);	/* after the recorder */
	o.change_id = id;
	o.cli_vars = &c->vars;
	o.forks = c->forks;
	o.rehearse = c->cmd == CMD_REHEARSE;
	o.no_watch = c->no_watch;
	o.known_hosts = c->known_hosts;
	o.accept_new = c->accept_new;
	o.listeners = ls;
	o.n_listeners = nt ? 3 : 2;
	code = apply_run(rb, &o, err);
	if (team.first_failed) {
		rb_error_set(err, RB_ERR_CONNECT,
			     "the running note of %s could not be pushed to the team: %s; nothing was run on any host; safe to run again once the remote can be reached",
			     id, team.err.msg);
		code = RB_ERR_CONNECT;
	}
	warn_unnoted(ch, st, c->quiet);
	for (size_t i = 0; nt && i < notifier_notices(nt)->n; i++)
		fprintf(stderr, "runbook: warning: %s\n",
			notifier_notices(nt)->v[i]);
out:
	cmd_team_end(&team, st);
	notifier_free(nt);
	report_free(rep);
	recorder_free(rec);
	change_free(ch);
	lock_release(lk);
	store_free(st);
	free(t.hosts);
	free(shown);
	runbook_free(rb);
	return code;
}

/*
 * --last: the newest change with something left to undo, said before it
 * runs. 1 when every change is undone already (said too).
 */
static int last_change(const struct cli *c, struct store *st, char **id,
		       struct strvec *notices, struct rb_error *err)
{
	struct rb_error e2 = RB_ERROR_INIT;
	char *newest = NULL;

	if (history_last(st, c->target, true, id, notices, err) == 0)
		return 0;
	if (history_last(st, c->target, false, &newest, notices, &e2) < 0)
		return -1;	/* no change at all: err says so */
	if (!c->quiet)
		fprintf(stderr, "runbook: nothing left to roll back: no change%s%s has anything left to undo (the newest is %s)\n",
			c->target ? " on target " : "", c->target ? c->target : "",
			newest);
	free(newest);
	rb_error_clear(err);
	return 1;
}

/*
 * The change CHANGE or --last names, read back from journal or note;
 * 1 when --last finds nothing left to undo.
 */
static int find_change(const struct cli *c, struct store *st,
		       struct change_rec **ch, bool *from_j,
		       struct rb_error *err)
{
	struct strvec notices = STRVEC_INIT;
	char *id = NULL;
	int ret = -1, rc;

	rc = c->last ? last_change(c, st, &id, &notices, err) :
		       history_resolve(st, c->args[0], &id, err);
	if (rc != 0 || history_load(st, id, ch, from_j, &notices, err) < 0) {
		ret = rc > 0 ? 1 : -1;
		goto out;
	}
	if (c->last && !c->quiet)
		fprintf(stderr, "runbook: --last is change %s (%s on %s, started %s by %s)\n",
			(*ch)->id, (*ch)->runbook ? (*ch)->runbook : "?",
			(*ch)->target ? (*ch)->target : "?",
			(*ch)->started ? (*ch)->started : "?",
			(*ch)->operator_ ? (*ch)->operator_ : "?");
	ret = 0;
out:
	/* warnings even when quiet: a cut journal is news */
	for (size_t i = 0; i < notices.n; i++)
		fprintf(stderr, "runbook: %s\n", notices.v[i]);
	strvec_release(&notices);
	free(id);
	return ret;
}

/*
 * Rollback order across changes: a later change on the same target that
 * still stands (applied, partly applied, running) must be rolled back
 * first. With --force, the later ones are named in forced (recorded).
 */
static int check_order(const struct cli *c, struct store *st,
		       const struct change_rec *ch, struct strvec *forced,
		       struct rb_error *err)
{
	struct strvec later = STRVEC_INIT, notices = STRVEC_INIT;
	struct buf list = BUF_INIT;
	int ret = -1;

	if (history_later(st, ch, &later, &notices, err) < 0)
		goto out;
	for (size_t i = 0; i < notices.n; i++)
		fprintf(stderr, "runbook: %s\n", notices.v[i]);
	ret = 0;
	if (!later.n)
		goto out;
	for (size_t i = 0; i < later.n; i++)
		buf_addf(&list, "%s%s (runbook rollback %s)", i ? ", " : "",
			 later.v[i], later.v[i]);
	if (c->force) {
		fprintf(stderr, "runbook: warning: --force: rolling back %s under later changes that still stand on it: %s; recorded in its note\n",
			ch->id, buf_str(&list));
		for (size_t i = 0; i < later.n; i++)
			strvec_push(forced, later.v[i]);
		goto out;
	}
	rb_error_set(err, RB_ERR_BUSY,
		     "change %s is not the last one standing on target %s: later changes still applied there would lose what they stand on: %s; nothing was run; roll them back first, newest first, or pass --force (recorded in the note)",
		     ch->id, ch->target ? ch->target : "local", buf_str(&list));
	ret = -1;
out:
	strvec_release(&later);
	strvec_release(&notices);
	buf_release(&list);
	return ret;
}

/* --by-hand: records each named rollback as done by the operator. */
static int record_by_hand(const struct cli *c, struct change_rec *ch,
			  struct recorder *rec, const struct strvec *hand,
			  struct rb_error *err)
{
	for (size_t i = 0; i < hand->n; i++) {
		struct rec_step *s = &ch->steps[strtoul(hand->v[i], NULL, 10)];

		if (s->rb_result == RES_ROLLED_BACK)
			continue;	/* named twice */
		if (recorder_by_hand(rec, s, err) < 0)
			return -1;
		if (!c->quiet)
			fprintf(stderr, "runbook: recorded that '%s' on %s was undone by hand\n",
				s->name ? s->name : "?", s->host);
	}
	return 0;
}

/*
 * What a replay would run, newest first: one line per rollback (host,
 * step, command), then its dir, env and where it runs, indented; first
 * the change and where its secrets come from. Everything masked.
 */
static void print_plan(FILE *f, const struct change_rec *ch,
		       const struct rollback_plan *p)
{
	struct buf b = BUF_INIT, shown = BUF_INIT;

	buf_addf(&b, "# change %s of runbook %s on target %s, by %s, started %s\n",
		 ch->id, ch->runbook ? ch->runbook : "?",
		 ch->target ? ch->target : "?",
		 ch->operator_ ? ch->operator_ : "?",
		 ch->started ? ch->started : "?");
	for (size_t i = 0; i < ch->secrets.n; i++)
		buf_addf(&b, "# secret %s is read from %s\n", ch->secrets.names[i],
			 ch->secrets.values[i]);
	for (size_t h = 0; h < p->n_hosts; h++) {
		const char *id = varset_get(&ch->host_ids, p->hosts[h].spec);

		if (id || ch->identity)
			buf_addf(&b, "# host %s logs in with %s\n",
				 p->hosts[h].spec, id ? id : ch->identity);
	}
	for (size_t h = 0; h < p->n_hosts; h++) {
		for (size_t i = p->hosts[h].n; i-- > 0;) {
			const struct rollback_item *it = &p->hosts[h].items[i];

			buf_addf(&b, "%s\t%s\t%s\n", p->hosts[h].spec, it->name,
				 it->none ? "none (nothing to undo)" :
				 it->display ? it->display : it->error);
			if (it->local)
				buf_addf(&b, "  runs on this machine (local: true)\n");
			if (it->dir_shown)
				buf_addf(&b, "  dir: %s\n", it->dir_shown);
			if (!it->none && it->display) {
				char t[32];

				format_duration(it->timeout_ms, t);
				buf_addf(&b, "  timeout: %s (rollbacks are not retried)\n",
					 t);
			}
			for (size_t k = 0; k < it->env_shown.n; k++)
				buf_addf(&b, "  env: %s\n", it->env_shown.v[k]);
		}
	}
	/* from a note: shown, never obeyed, even in a pipe */
	buf_add_visible(&shown, b.data, b.len, true);
	fwrite(shown.data, 1, shown.len, f);
	buf_release(&shown);
	buf_release(&b);
}

/*
 * A change this machine never journaled was read from the notes
 * branch, which anyone who can push to it can write: its rollbacks run
 * only after the operator has seen them, here or with --dry-run, and
 * said yes (on a terminal, or with --yes). 0 to go on.
 */
static int confirm_foreign(const struct cli *c, struct change_rec *ch,
			   struct rb_error *err)
{
	struct replay_opts o = { true, c->forks, c->known_hosts, c->accept_new };
	struct strvec notices = STRVEC_INIT;
	struct replay *rp = NULL;
	char answer[16] = "";
	int ret = -1;

	if (c->yes)
		return 0;
	if (replay_new(ch, &o, &notices, &rp, err) < 0)
		goto out;
	if (!replay_pending(rp)) {
		ret = 0;	/* nothing will run */
		goto out;
	}
	fprintf(stderr, "runbook: change %s was not recorded on this machine: its note comes from the notes branch. These rollbacks would run:\n",
		ch->id);
	print_plan(stderr, ch, replay_plan(rp));
	if (isatty(0) && isatty(2)) {
		fputs("runbook: type yes to run them: ", stderr);
		if (fgets(answer, sizeof(answer), stdin) &&
		    strcmp(answer, "yes\n") == 0) {
			ret = 0;
			goto out;
		}
	}
	rb_error_set(err, RB_ERR_USAGE,
		     "nothing was run: check the plan above against the note (runbook show %s), then run again and answer yes, or add --yes",
		     ch->id);
out:
	strvec_release(&notices);
	replay_free(rp);
	return ret;
}

/* Runs the replay under the recorder and the report. */
static int replay_run(const struct cli *c, struct change_rec *ch,
		      struct recorder *rec, struct rb_error *err)
{
	struct replay_opts o = { c->dry_run, c->forks, c->known_hosts,
				 c->accept_new };
	struct strvec notices = STRVEC_INIT;
	struct replay *rp = NULL;
	struct report *rep = NULL;
	struct report_opts ro;
	struct listener ls[2];
	struct rollback_plan *p;
	int code;

	code = replay_new(ch, &o, &notices, &rp, err) < 0 ? (int)err->cls : 0;
	for (size_t i = 0; i < notices.n; i++)
		if (!c->quiet)
			fprintf(stderr, "runbook: %s\n", notices.v[i]);
	strvec_release(&notices);
	if (code)
		goto out;
	p = replay_plan(rp);
	if (!replay_pending(rp)) {
		if (!c->quiet)
			fprintf(stderr, "runbook: nothing left to roll back for change %s\n",
				ch->id);
		goto out;
	}
	if (c->dry_run) {
		if (!c->quiet)
			print_plan(stdout, ch, p);
		goto out;
	}
	report_opts_of(c, &ro);
	report_fit_change(&ro, ch);
	rep = report_new(&ro);
	ls[0] = recorder_listener(rec);
	ls[1] = report_listener(rep);
	p->listeners = ls;
	p->n_listeners = 2;
	code = rollback_run(p, err);
out:
	report_free(rep);
	replay_free(rp);
	return code;
}

int cmd_rollback(const struct cli *c, struct rb_error *err)
{
	struct store *st = NULL;
	struct lock *lk = NULL;
	struct change_rec *ch = NULL;
	struct recorder *rec = NULL;
	struct strvec hand = STRVEC_INIT, forced = STRVEC_INIT;
	char *stale_info = NULL, *by = NULL;
	struct team team;
	bool stale, from_j;
	int code, rc;

	memset(&team, 0, sizeof(team));
	if (store_open(c->notes, NULL, false, &st, err) < 0 ||
	    cmd_team_of(c, st, false, &team, err) < 0 ||
	    (rc = find_change(c, st, &ch, &from_j, err)) < 0 ||
	    (rc == 0 && !from_j && !c->dry_run &&
	     confirm_foreign(c, ch, err) < 0)) {
		code = err->cls ? (int)err->cls : RB_ERR_USAGE;
		goto out;
	}
	if (rc > 0) {
		code = 0;	/* --last: nothing left to undo, said */
		goto out;
	}
	if (c->dry_run) {
		struct rb_error e2 = RB_ERROR_INIT;

		if (!c->force && change_pending_total(ch) &&
		    check_order(c, st, ch, &forced, &e2) < 0)
			fprintf(stderr, "runbook: warning: %s\n", e2.msg);
		code = replay_run(c, ch, NULL, err);
		goto out;
	}
	if (journal_live(store_dir(st), ch->id)) {
		rb_error_set(err, RB_ERR_BUSY,
			     "change %s is still running in another runbook process (its journal is locked); nothing was run; try again when it has finished",
			     ch->id);
		code = err->cls;
		goto out;
	}
	/* the target asked for confirmation when the change was applied */
	if (ch->confirm && change_pending_total(ch) &&
	    cmd_confirm(c, ch->target ? ch->target : "local", &ch->hosts,
			ch->reason, "rollback", err) < 0) {
		code = err->cls;
		goto out;
	}
	if (lock_take(store_dir(st), ch->target ? ch->target : "local", ch->id,
		      &lk, &stale, &stale_info, err) < 0) {
		code = err->cls;
		goto out;
	}
	free(stale_info);
	by = store_operator(st);
	if (team.rm && !team.offline &&
	    remote_lock(team.rm, ch->target ? ch->target : "local", ch->id, by,
			err) < 0) {
		code = err->cls;
		goto out;
	}
	if (change_pending_total(ch) && check_order(c, st, ch, &forced, err) < 0) {
		code = err->cls;
		goto out;
	}
	for (size_t i = 0; i < c->n_by_hand; i++) {
		if (change_by_hand(ch, c->by_hand[i], &hand, err) < 0) {
			code = err->cls;
			goto out;
		}
	}
	if (ch->closed && change_status_final(ch->status) &&
	    ch->noted == ch->status && ch->has_note &&
	    !change_pending_total(ch)) {
		/* finished and noted: touch neither its journal nor its note */
		if (!c->quiet)
			fprintf(stderr, "runbook: nothing left to roll back for change %s (%s)\n",
				ch->id, change_status_name(ch->status));
		code = 0;
		goto out;
	}
	if (recorder_resume(st, ch, NULL, &rec, err) < 0 ||
	    recorder_rollback_start(rec, by, c->reason, &forced, err) < 0 ||
	    record_by_hand(c, ch, rec, &hand, err) < 0) {
		code = err->cls == RB_ERR_BUSY ? RB_ERR_BUSY : RB_ERR_PARTIAL;
		goto out;
	}
	if (!change_pending_total(ch)) {
		struct rb_error e2 = RB_ERROR_INIT;

		code = replay_run(c, ch, rec, err);	/* stops leftovers, says so */
		/* nothing was left and the record already says so: no new note */
		if (code == 0 && ch->closed && change_status_final(ch->status) &&
		    ch->noted == ch->status)
			goto out;
		if (code == 0 && recorder_close(rec, CHANGE_ROLLED_BACK, &e2) < 0)
			fprintf(stderr, "runbook: warning: %s; the journal keeps the record, run 'runbook status' to commit it\n",
				e2.msg);
		if (code == 0 && c->json)
			json_done(ch->id, CHANGE_ROLLED_BACK, 0, NULL);
		goto out;
	}
	code = replay_run(c, ch, rec, err);
	if (code == 0 || code == RB_ERR_PARTIAL || code == RB_ERR_INTERRUPTED)
		warn_unnoted(ch, st, c->quiet);
	else if (c->json)
		json_done(ch->id, CHANGE_ROLLBACK_FAILED, code, err->msg);
out:
	strvec_release(&hand);
	strvec_release(&forced);
	free(by);
	cmd_team_end(&team, st);
	recorder_free(rec);
	change_free(ch);
	lock_release(lk);
	store_free(st);
	return code;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * new NAME: NAME.yml (or NAME as given when it ends in .yml or .yaml),
 * never over an existing file.
 */
int cmd_new(const struct cli *c, struct rb_error *err)
{
	const char *arg = c->args[0], *base = strrchr(arg, '/');
	size_t len = strlen(arg);
	struct buf file = BUF_INIT, name = BUF_INIT, text = BUF_INIT;
	int fd = -1, code = RB_ERR_USAGE;

	base = base ? base + 1 : arg;
	buf_adds(&file, arg);
	if (len > 4 && strcmp(arg + len - 4, ".yml") == 0)
		buf_add(&name, base, strlen(base) - 4);
	else if (len > 5 && strcmp(arg + len - 5, ".yaml") == 0)
		buf_add(&name, base, strlen(base) - 5);
	else {
		buf_adds(&name, base);
		buf_adds(&file, ".yml");
	}
	if (!skeleton_name_ok(buf_str(&name))) {
		rb_error_set(err, RB_ERR_USAGE,
			     "new: expected a name of lower-case letters, digits, '.', '_' and '-' that starts with a letter or digit (it goes into change ids), found \"%s\"; nothing was written",
			     buf_str(&name));
		goto out;
	}
	fd = open(buf_str(&file), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 && errno == EEXIST) {
		rb_error_set(err, RB_ERR_USAGE,
			     "new: expected a file that does not exist yet, found '%s'; nothing was written, pick another name",
			     buf_str(&file));
		goto out;
	}
	code = RB_ERR_INVALID;
	if (fd < 0) {
		rb_error_errno(err, RB_ERR_INVALID,
			       "new: cannot create '%s'; nothing was written",
			       buf_str(&file));
		goto out;
	}
	skeleton_write(buf_str(&name), buf_str(&file), RUNBOOK_SCHEMA_PATH,
		       &text);
	code = RB_ERR_FAILED;
	if (write_all(fd, text.data, text.len) < 0 || fsync(fd) < 0) {
		rb_error_errno(err, RB_ERR_FAILED,
			       "new: cannot write '%s'; remove it and run again",
			       buf_str(&file));
		goto out;
	}
	if (!c->quiet)
		printf("wrote %s; next: runbook validate %s\n", buf_str(&file),
		       buf_str(&file));
	code = 0;
out:
	if (fd >= 0)
		close(fd);
	buf_release(&file);
	buf_release(&name);
	buf_release(&text);
	return code;
}

/*
 * completion SHELL prints the script; completion targets FILE prints
 * the targets of a runbook that loads, one a line, for the scripts
 * (silently nothing for a file that does not load: Tab must not spill
 * diagnostics over the command line).
 */
int cmd_completion(const struct cli *c, struct rb_error *err)
{
	const char *what = c->args[0];
	struct buf b = BUF_INIT;

	if (strcmp(what, "targets") == 0 && c->n_args == 2) {
		struct runbook *rb = NULL;
		struct rb_error e2 = RB_ERROR_INIT;
		struct diag d;

		diag_init(&d, c->args[1]);
		if (runbook_load(c->args[1], &rb, &d, &e2) == 0 && rb)
			for (size_t i = 0; i < rb->n_targets; i++)
				printf("%s\n", rb->targets[i].name);
		runbook_free(rb);
		diag_release(&d);
		return 0;
	}
	if (c->n_args != 1 || !completion_known(what)) {
		rb_error_set(err, RB_ERR_USAGE,
			     "completion: expected bash, zsh or fish (or targets FILE), found \"%s\"%s",
			     what, c->n_args > 1 ? " and more" : "");
		return RB_ERR_USAGE;
	}
	completion_script(what, &b);
	fputs(buf_str(&b), stdout);
	buf_release(&b);
	return 0;
}
