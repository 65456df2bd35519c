/*
 * runbook: command table -> cmd_*(); errors -> exit codes. This is the
 * only file that prints errors or exits; everything below returns them.
 */
#include <errno.h>
#include <libssh2.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "apply.h"
#include "change.h"
#include "hash.h"
#include "journal.h"
#include "lock.h"
#include "note.h"
#include "record.h"
#include "redact.h"
#include "store.h"
#include "buf.h"
#include "cli.h"
#include "config.h"
#include "diag.h"
#include "error.h"
#include "json.h"
#include "load.h"
#include "plan.h"
#include "runbook.h"
#include "validate.h"
#include "sys.h"

static const char retry_hint[] = "nothing was run; fix the file and run again";

static void print_version(void)
{
	int maj, min, rev;
	char pcre[64] = "";

	git_libgit2_version(&maj, &min, &rev);
	pcre2_config(PCRE2_CONFIG_VERSION, pcre);
	printf("runbook %s\nlibyaml %s, libgit2 %d.%d.%d, libssh2 %s, PCRE2 %s\n",
	       RUNBOOK_VERSION, yaml_get_version_string(), maj, min, rev,
	       libssh2_version(0), pcre);
}

static void json_diags(struct diag *d, const char *file, bool ok)
{
	struct buf b = BUF_INIT;

	buf_adds(&b, "{");
	json_kv(&b, "event", "validate", 1);
	json_kv(&b, "file", file, 0);
	buf_addf(&b, ",\"ok\":%s,\"problems\":[", ok ? "true" : "false");
	for (size_t i = 0; i < d->n; i++) {
		buf_addf(&b, "%s{\"line\":%u,\"column\":%u,\"message\":",
			 i ? "," : "", d->v[i].pos.line ? d->v[i].pos.line : 1,
			 d->v[i].pos.col ? d->v[i].pos.col : 1);
		json_str(&b, d->v[i].msg);
		buf_addc(&b, '}');
	}
	buf_adds(&b, "]}\n");
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
	struct diag d;

	diag_init(&d, file);
	runbook_load(file, &rb, &d, err);
	if (rb)
		runbook_validate(rb, c->var_names, c->n_var_names, &d);
	if (diag_count(&d)) {
		runbook_free(rb);
		rb = NULL;
		if (c->json && c->cmd == CMD_VALIDATE) {
			diag_print(&d, stderr);
			json_diags(&d, file, false);
		} else {
			diag_print(&d, stderr);
		}
		if (err->cls == RB_OK)
			rb_error_set(err, RB_ERR_INVALID, "%s", retry_hint);
	}
	diag_release(&d);
	return rb;
}

static int cmd_validate(const struct cli *c)
{
	bool diagnosed = false;
	int code = 0;

	for (size_t i = 0; i < c->n_args; i++) {
		struct rb_error err = RB_ERROR_INIT;
		struct runbook *rb = load_checked(c, c->args[i], &err);

		if (!rb) {
			if (strcmp(err.msg, retry_hint) != 0) {
				/* unreadable: no diagnostics were printed */
				fprintf(stderr, "runbook: %s\n", err.msg);
				if (c->json) {
					struct diag d;
					struct src_pos start = { 1, 1 };

					diag_init(&d, c->args[i]);
					diag_at(&d, &start, "%s", err.msg);
					json_diags(&d, c->args[i], false);
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
			json_diags(&none, c->args[i], true);
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
		fprintf(stderr, "%s\n", retry_hint);
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

static int cmd_plan(const struct cli *c, struct rb_error *err)
{
	struct runbook *rb = load_checked(c, c->args[0], err);
	const struct target *t;
	int ret = -1;

	if (!rb)
		return -1;
	if ((t = pick_target(rb, c->target, err)) &&
	    plan_write(rb, t, &c->vars, c->json, stdout, err) == 0)
		ret = 0;
	runbook_free(rb);
	return ret;
}

/*
 * Journals of changes that ended but whose final note was not
 * committed (the commit failed, or the runner died right after): commit
 * them now. A change of another target is only touched when that
 * target's lock is free: a runner may be writing it right now. Target
 * (if given) is the one whose lock the caller holds; its unfinished
 * change, or a damaged journal that may be its, is returned in
 * *busy_id with its status, and *damaged tells which.
 */
static int settle_journals(struct store *st, const char *target,
			   char **busy_id, enum change_status *busy_status,
			   bool quiet, struct rb_error *err)
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
		bool from_j, torn, stale = false;
		char *jt = NULL, *stale_info = NULL;
		struct rb_error e2 = RB_ERROR_INIT;

		jt = journal_target(st, ids[i]);
		if (jt && (!target || strcmp(jt, target) != 0)) {
			/* in flight elsewhere: leave it to its runner */
			if (lock_take(store_dir(st), jt, ids[i], &other, &stale,
				      &stale_info, &e2) < 0) {
				free(jt);
				continue;
			}
			free(stale_info);
		}
		if (change_load(st, ids[i], &c, &from_j, &torn, &e2) < 0) {
			if (e2.cls != RB_ERR_PARTIAL) {
				/* no record yet: its runner opens it now, or died first */
				lock_release(other);
				free(jt);
				continue;
			}
			fprintf(stderr, "runbook: warning: %s\n", e2.msg);
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
				if (!quiet)
					fprintf(stderr, "runbook: committed the pending note of change %s (%s)\n",
						c->id, change_status_name(c->status));
			} else {
				fprintf(stderr, "runbook: warning: %s\n", e2.msg);
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

static struct change_rec *new_change(const struct runbook *rb,
				     const struct target *t,
				     const struct cli *c, struct store *st)
{
	struct change_rec *ch = change_new();
	char hex[65] = "";

	ch->runbook = xstrdup(rb->name.s);
	ch->file = xstrdup(rb->file);
	if (sha256_file_hex(rb->file, hex) == 0)
		ch->file_sha256 = xstrdup(hex);
	ch->target = xstrdup(t->name);
	ch->owner = xstrdup(rb->owner.s);
	ch->reason = xstrdup(rb->reason.s);
	ch->expected = xstrdup(rb->expected.s);
	ch->operator_ = store_operator(st);
	if (t->identity.s)
		ch->identity = xstrdup(t->identity.s);
	for (size_t h = 0; h < t->n_hosts; h++) {
		strvec_push(&ch->hosts, t->hosts[h].spec);
		if (t->hosts[h].identity)
			varset_set(&ch->host_ids, t->hosts[h].spec,
				   t->hosts[h].identity);
	}
	for (size_t i = 0; i < rb->n_redact; i++)
		strvec_push(&ch->redact, rb->redact[i].s);
	for (size_t i = 0; i < rb->n_vars; i++)
		varset_set(&ch->vars, rb->vars[i].key, rb->vars[i].val);
	varset_copy(&ch->vars, &c->vars);
	for (size_t i = 0; i < rb->n_secrets; i++) {
		struct buf src = BUF_INIT;

		buf_addf(&src, "%s:%s", rb->secrets[i].source == SECRET_ENV ?
			 "env" : "file", rb->secrets[i].from);
		varset_set(&ch->secrets, rb->secrets[i].name, buf_str(&src));
		buf_release(&src);
	}
	return ch;
}

/* Opens the notes, settles old journals, takes the target's lock. */
static int begin_change(const struct cli *c, const char *near,
			const char *target, const char *change_id,
			struct store **st, struct lock **lk,
			struct rb_error *err)
{
	enum change_status bs = CHANGE_INTERRUPTED;
	char *busy = NULL, *stale_info = NULL;
	bool stale = false;

	*st = NULL;
	*lk = NULL;
	if (store_open(c->notes, near, true, st, err) < 0)
		return -1;
	if (lock_take(store_dir(*st), target, change_id, lk, &stale,
		      &stale_info, err) < 0)
		return -1;
	if (stale)
		fprintf(stderr, "runbook: warning: took over the lock of target %s left by a process that died (%s)\n",
			target, stale_info);
	free(stale_info);
	if (settle_journals(*st, target, &busy, &bs, c->quiet, err) < 0)
		return -1;
	if (busy) {
		rb_error_set(err, RB_ERR_BUSY,
			     "target %s has an unfinished change %s (%s); nothing was run; finish it first with: runbook rollback %s",
			     target, busy, change_status_name(bs), busy);
		free(busy);
		return -1;
	}
	return 0;
}

/*
 * identity: ~/x is under $HOME, a relative path is relative to the
 * runbook's directory (as a user reading the file would take it), so
 * the recorded path works from anywhere, for replay too.
 */
static char *identity_path(const char *id, const char *rb_file)
{
	struct buf b = BUF_INIT;
	const char *home = getenv("HOME");

	if (id[0] == '/')
		return xstrdup(id);
	if (id[0] == '~' && id[1] == '/') {
		buf_addf(&b, "%s%s", home && *home ? home : "", id + 1);
	} else {
		const char *slash = strrchr(rb_file, '/');
		char *dir = slash ? xstrndup(rb_file, (size_t)(slash - rb_file)) :
				    xstrdup(".");
		char *abs = realpath(dir, NULL);

		buf_addf(&b, "%s/%s", abs ? abs : dir, id);
		free(abs);
		free(dir);
	}
	return buf_detach(&b);
}

static void fix_identities(struct runbook *rb)
{
	for (size_t t = 0; t < rb->n_targets; t++) {
		struct target *tg = &rb->targets[t];

		if (tg->identity.s) {
			char *p = identity_path(tg->identity.s, rb->file);

			free(tg->identity.s);
			tg->identity.s = p;
		}
		for (size_t h = 0; h < tg->n_hosts; h++) {
			if (tg->hosts[h].identity) {
				char *p = identity_path(tg->hosts[h].identity, rb->file);

				free(tg->hosts[h].identity);
				tg->hosts[h].identity = p;
			}
		}
	}
}

/* apply and rehearse: one change, locked, journaled and noted. */
static int cmd_apply(const struct cli *c, struct rb_error *err)
{
	struct runbook *rb = load_checked(c, c->args[0], err);
	struct store *st = NULL;
	struct lock *lk = NULL;
	struct change_rec *ch = NULL;
	struct recorder *rec = NULL;
	struct apply_opts o;
	char id[128];
	int code;

	if (!rb)
		return err->cls;
	fix_identities(rb);
	memset(&o, 0, sizeof(o));
	if (!(o.target = pick_target(rb, c->target, err))) {
		code = err->cls;
		goto out;
	}
	change_id_new(rb->name.s, id);
	if (begin_change(c, rb->file, o.target->name, id, &st, &lk, err) < 0) {
		code = err->cls;
		goto out;
	}
	ch = new_change(rb, o.target, c, st);
	rec = recorder_new(st, ch, NULL);
	o.change_id = id;
	o.cli_vars = &c->vars;
	o.json = c->json;
	o.quiet = c->quiet;
	o.verbose = c->verbose;
	o.color = !c->no_color && isatty(2);
	o.forks = c->forks;
	o.rehearse = c->cmd == CMD_REHEARSE;
	o.known_hosts = c->known_hosts;
	o.accept_new = c->accept_new;
	o.hooks.event = recorder_event;
	o.hooks.ctx = rec;
	code = apply_run(rb, &o, err);
	if (ch->id && !ch->has_note && !c->quiet)
		fprintf(stderr, "runbook: warning: the change note of %s was not committed; its journal under %s/journal keeps the record; run 'runbook status' to commit it\n",
			ch->id, store_dir(st));
	else if (ch->id && ch->noted != ch->status)
		fprintf(stderr, "runbook: warning: the final note of %s was not committed; its journal under %s/journal keeps the record; run 'runbook status' to commit it\n",
			ch->id, store_dir(st));
out:
	recorder_free(rec);
	change_free(ch);
	lock_release(lk);
	store_free(st);
	runbook_free(rb);
	return code;
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
static char *note_started(const char *text)
{
	const char *p = strstr(text, "\nstarted: \"");
	const char *e;

	if (!p)
		return xstrdup("");
	p += 11;
	e = strchr(p, '"');
	return e ? xstrndup(p, (size_t)(e - p)) : xstrdup("");
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
	strvec_push_owned(&b->started, note_started(text));
	return 0;
}

/* store_each() in the order changes started, newest first. */
static int each_by_start(struct store *st, size_t limit,
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

/* The newest change id (of target, if given) among notes and journals. */
static int last_change(struct store *st, const char *target, char **id,
		       struct rb_error *err);

struct newest {
	char *id, *started;
	const char *target;	/* only changes of this target, or NULL */
};

/* The target of a note's front matter is this one. */
static bool note_target_is(const char *text, const char *target)
{
	struct buf want = BUF_INIT;
	bool yes;

	buf_adds(&want, "\ntarget: ");
	json_str(&want, target);
	buf_addc(&want, '\n');
	yes = strstr(text, buf_str(&want)) != NULL;
	buf_release(&want);
	return yes;
}

static int first_id(void *ctx, const char *id, const char *text, size_t len)
{
	struct newest *n = ctx;

	(void)len;
	if (n->target && !note_target_is(text, n->target))
		return 0;
	n->id = xstrdup(id);
	n->started = note_started(text);
	return 1;
}

/* Newer: a later second, or the same second and a later start. */
static bool newer(const char *id, const char *started, const struct newest *n)
{
	int c;

	if (!n->id)
		return true;
	c = strncmp(id, n->id, ID_SECOND);
	return c > 0 || (c == 0 && strcmp(started, n->started) > 0);
}

static int last_change(struct store *st, const char *target, char **id,
		       struct rb_error *err)
{
	struct newest best = { NULL, NULL, target };
	char **ids = NULL;
	size_t n = 0;

	*id = NULL;
	/* first_id() stops the walk at the first change it takes */
	if (each_by_start(st, 0, first_id, &best, err) < 0 ||
	    journal_list(store_dir(st), &ids, &n, err) < 0) {
		free(best.id);
		free(best.started);
		return -1;
	}
	/* unfinished changes may be newer than every note */
	for (size_t i = 0; i < n; i++) {
		struct change_rec *ch = NULL;
		struct rb_error e2 = RB_ERROR_INIT;
		bool fj, torn;

		if ((!best.id || strncmp(ids[i], best.id, ID_SECOND) >= 0) &&
		    change_load(st, ids[i], &ch, &fj, &torn, &e2) == 0 &&
		    (!target || (ch->target && strcmp(ch->target, target) == 0)) &&
		    newer(ids[i], ch->started ? ch->started : "", &best)) {
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
			     "expected a recorded change%s%s, found none in %s",
			     target ? " on target " : "", target ? target : "",
			     store_path(st));
		return -1;
	}
	return 0;
}

/* A change id from a prefix: notes first, then unfinished journals. */
static int resolve_change(struct store *st, const char *prefix, char **id,
			  struct rb_error *err)
{
	char **ids = NULL;
	size_t n = 0, hits = 0;

	if (store_resolve(st, prefix, id, err) == 0)
		return 0;
	if (journal_list(store_dir(st), &ids, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (strncmp(ids[i], prefix, strlen(prefix)) == 0 && !hits++)
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

/*
 * --by-hand STEP[@HOST]: the pending rollbacks it names, or -1 with
 * err (usage) listing what is pending.
 */
static int by_hand_steps(struct change_rec *ch, const char *spec,
			 struct strvec *out_idx, struct rb_error *err)
{
	const char *at = strchr(spec, '@');
	size_t nlen = at ? (size_t)(at - spec) : strlen(spec);
	struct buf pend = BUF_INIT;
	size_t found = 0;

	for (size_t h = 0; h < ch->hosts.n; h++) {
		struct rec_step **v;
		size_t n = change_pending(ch, ch->hosts.v[h], &v);

		for (size_t i = 0; i < n; i++) {
			buf_addf(&pend, "%s'%s' on %s", pend.len ? ", " : "",
				 v[i]->name ? v[i]->name : "?", v[i]->host);
			if (v[i]->name && strlen(v[i]->name) == nlen &&
			    strncmp(v[i]->name, spec, nlen) == 0 &&
			    (!at || strcmp(at + 1, v[i]->host) == 0)) {
				char idx[32];

				snprintf(idx, sizeof(idx), "%zu", (size_t)(v[i] - ch->steps));
				strvec_push(out_idx, idx);
				found++;
			}
		}
		free(v);
	}
	if (!found)
		rb_error_set(err, RB_ERR_USAGE,
			     "--by-hand: expected a step still to roll back, as STEP or STEP@HOST (%s), found \"%s\"; nothing was done",
			     pend.len ? buf_str(&pend) : "none is left", spec);
	buf_release(&pend);
	return found ? 0 : -1;
}

/* Rollbacks still to run for the change, over all its hosts. */
static size_t pending_total(struct change_rec *ch)
{
	size_t total = 0;

	for (size_t h = 0; h < ch->hosts.n; h++) {
		struct rec_step **v;

		total += change_pending(ch, ch->hosts.v[h], &v);
		free(v);
	}
	return total;
}

static int cmd_rollback(const struct cli *c, struct rb_error *err)
{
	struct store *st = NULL;
	struct lock *lk = NULL;
	struct change_rec *ch = NULL;
	struct recorder *rec = NULL;
	struct replay_opts o;
	char *id = NULL, *stale_info = NULL;
	bool from_j, torn, stale;
	struct strvec hand = STRVEC_INIT;
	struct redactor *hand_red = NULL;
	int code;

	if (store_open(c->notes, NULL, false, &st, err) < 0 ||
	    (c->last ? last_change(st, c->target, &id, err) :
		       resolve_change(st, c->args[0], &id, err)) < 0 ||
	    change_load(st, id, &ch, &from_j, &torn, err) < 0) {
		code = err->cls ? (int)err->cls : RB_ERR_USAGE;
		goto out;
	}
	if (torn && !c->quiet)
		fprintf(stderr, "runbook: warning: the journal of %s ended in a torn record (a crash while writing it); it was cut off\n",
			id);
	memset(&o, 0, sizeof(o));
	o.json = c->json;
	o.quiet = c->quiet;
	o.verbose = c->verbose;
	o.color = !c->no_color && isatty(2);
	o.dry_run = c->dry_run;
	o.forks = c->forks;
	o.known_hosts = c->known_hosts;
	o.accept_new = c->accept_new;
	if (c->dry_run) {
		code = rollback_replay(ch, &o, err);
		goto out;
	}
	if (lock_take(store_dir(st), ch->target ? ch->target : "local", id,
		      &lk, &stale, &stale_info, err) < 0) {
		code = err->cls;
		goto out;
	}
	free(stale_info);
	for (size_t i = 0; i < c->n_by_hand; i++) {
		if (by_hand_steps(ch, c->by_hand[i], &hand, err) < 0) {
			code = err->cls;
			goto out;
		}
	}
	if (ch->closed && change_status_final(ch->status) &&
	    ch->noted == ch->status && ch->has_note && !pending_total(ch)) {
		/* finished and noted: touch neither its journal nor its note */
		if (!c->quiet)
			fprintf(stderr, "runbook: nothing left to roll back for change %s (%s)\n",
				ch->id, change_status_name(ch->status));
		code = 0;
		goto out;
	}
	if (recorder_resume(st, ch, NULL, &rec, err) < 0) {
		code = RB_ERR_PARTIAL;
		goto out;
	}
	o.hooks.event = recorder_event;
	o.hooks.ctx = rec;
	if (hand.n) {
		hand_red = redactor_new();
		redactor_add_builtins(hand_red);
	}
	for (size_t i = 0; i < hand.n; i++) {
		struct rec_step *s = &ch->steps[strtoul(hand.v[i], NULL, 10)];
		struct journal_event ev = { 0 };

		ev.red = hand_red;
		if (s->rb_result == RES_ROLLED_BACK)
			continue;	/* named twice */
		ev.type = JEV_ROLLBACK_END;
		ev.host = s->host;
		ev.phase = s->phase;
		ev.index = s->index;
		ev.name = s->name;
		ev.result = RES_ROLLED_BACK;
		ev.exit_code = -1;
		ev.by_hand = true;
		if (recorder_event(rec, &ev, err) < 0) {
			code = RB_ERR_PARTIAL;
			goto out;
		}
		if (!c->quiet)
			fprintf(stderr, "runbook: recorded that '%s' on %s was undone by hand\n",
				s->name ? s->name : "?", s->host);
	}
	code = rollback_replay(ch, &o, err);
	/* nothing was left and the record already says so: no new note */
	if (code == 0 && !o.pending && ch->closed &&
	    change_status_final(ch->status) && ch->noted == ch->status)
		goto out;
	if (code == 0 || code == RB_ERR_PARTIAL || code == RB_ERR_INTERRUPTED) {
		struct rb_error e2 = RB_ERROR_INIT;
		enum change_status fin = code == 0 ? CHANGE_ROLLED_BACK :
					 CHANGE_ROLLBACK_FAILED;

		if (recorder_close(rec, fin, &e2) < 0) {
			fprintf(stderr, "runbook: warning: %s; the journal keeps the record, run 'runbook status' to commit it\n",
				e2.msg);
		}
	}
	if (c->json) {
		struct buf b = BUF_INIT;
		char t[40];

		sys_now_utc(t);	/* as the engine's events */
		buf_adds(&b, "{");
		json_kv(&b, "event", "done", 1);
		json_kv(&b, "change", id, 0);
		json_kv(&b, "time", t, 0);
		json_kv(&b, "status", change_status_name(code == 0 ? CHANGE_ROLLED_BACK :
					CHANGE_ROLLBACK_FAILED), 0);
		buf_addf(&b, ",\"exit\":%d", code);
		if (code)
			json_kv(&b, "message", err->msg, 0);
		buf_adds(&b, "}\n");
		fputs(buf_str(&b), stdout);
		buf_release(&b);
	}
out:
	strvec_release(&hand);
	redactor_free(hand_red);
	recorder_free(rec);
	change_free(ch);
	lock_release(lk);
	store_free(st);
	free(id);
	return code;
}

static int cmd_status(const struct cli *c, struct rb_error *err)
{
	struct store *st = NULL;
	char **ids = NULL, *busy = NULL;
	enum change_status bs;
	size_t n = 0, shown = 0;
	int code = 0;

	if (store_open(c->notes, NULL, false, &st, err) < 0)
		return err->cls;
	/* commits pending notes first, so what is left is unfinished */
	if (settle_journals(st, NULL, &busy, &bs, c->quiet, err) < 0 ||
	    journal_list(store_dir(st), &ids, &n, err) < 0) {
		code = err->cls;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct change_rec *ch = NULL;
		struct rb_error e2 = RB_ERROR_INIT;
		bool from_j, torn;
		char *holder;
		const char *state;
		struct buf applied = BUF_INIT, running = BUF_INIT;

		if (change_load(st, ids[i], &ch, &from_j, &torn, &e2) < 0) {
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
		if (holder && strstr(holder, ch->id))
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
	if (!shown && !c->json && !c->quiet)
		printf("no unfinished changes in %s\n", store_path(st));
out:
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	free(busy);
	store_free(st);
	return code;
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

	if (note_parse(text, len, &ch, &err) < 0) {
		printf("%s  (unreadable note: %s)\n", id, err.msg);
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
		printf("%s  %-15s %-12s %s\n    %s\n", id,
		       change_status_name(ch->status),
		       ch->target ? ch->target : "?",
		       ch->operator_ ? ch->operator_ : "",
		       ch->reason ? ch->reason : "");
	}
	lc->shown++;
	change_free(ch);
	return 0;
}

static int cmd_log(const struct cli *c, struct rb_error *err)
{
	struct store *st = NULL;
	struct log_ctx lc = { c, 0 };
	int code = 0;

	if (store_open(c->notes, NULL, false, &st, err) < 0)
		return err->cls;
	if (each_by_start(st, c->log_n, log_one, &lc, err) < 0)
		code = err->cls;
	else if (!lc.shown && !c->json && !c->quiet)
		printf("no changes recorded in %s\n", store_path(st));
	store_free(st);
	return code;
}

static int cmd_show(const struct cli *c, struct rb_error *err)
{
	struct store *st = NULL;
	struct buf text = BUF_INIT;
	char *id = NULL;
	int code = 0;

	if (store_open(c->notes, NULL, false, &st, err) < 0 ||
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
		fwrite(text.data, 1, text.len, stdout);
	}
out:
	buf_release(&text);
	free(id);
	store_free(st);
	return code;
}

int main(int argc, char **argv)
{
	struct cli c;
	struct rb_error err = RB_ERROR_INIT;
	int code = 0;

	if (cli_parse(&c, argc, argv, &err) < 0) {
		fprintf(stderr, "runbook: %s\n", err.msg);
		cli_release(&c);
		return RB_ERR_USAGE;
	}
	if (c.version) {
		print_version();
		goto out;
	}
	if (c.help) {
		if (c.cmd == CMD_NONE)
			cli_usage(stdout);
		else
			cli_cmd_help(stdout, c.cmd);
		goto out;
	}
	switch (c.cmd) {
	case CMD_VALIDATE:
		code = cmd_validate(&c);
		goto out;
	case CMD_PLAN:
		if (cmd_plan(&c, &err) < 0)
			code = err.cls ? (int)err.cls : 1;
		break;
	case CMD_APPLY:
	case CMD_REHEARSE:
		code = cmd_apply(&c, &err);
		break;
	case CMD_ROLLBACK:
		code = cmd_rollback(&c, &err);
		break;
	case CMD_STATUS:
		code = cmd_status(&c, &err);
		break;
	case CMD_LOG:
		code = cmd_log(&c, &err);
		break;
	case CMD_SHOW:
		code = cmd_show(&c, &err);
		break;
	default:
		rb_error_set(&err, RB_ERR_USAGE,
			     "'runbook %s' is not available in this version yet; nothing was run",
			     cli_cmd_name(c.cmd));
		code = RB_ERR_USAGE;
		break;
	}
	if (code && err.msg[0]) {
		if (strcmp(err.msg, retry_hint) == 0)
			fprintf(stderr, "%s\n", retry_hint);
		else
			fprintf(stderr, "runbook: %s\n", err.msg);
	}
out:
	fflush(stdout);
	if (ferror(stdout)) {
		/* apply's code says what happened to the target: keep it */
		fprintf(stderr, "runbook: could not write all output to stdout: %s\n",
			strerror(errno));
		if (c.cmd != CMD_APPLY && !code)
			code = 1;
	}
	cli_release(&c);
	return code;
}
