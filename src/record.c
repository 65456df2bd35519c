/*
 * Recorder. The order for every event: build the JSON record, append it
 * to the journal (fsync), then apply the same bytes to the model. A
 * failed append fails the hook, which stops the engine from starting
 * anything new.
 */
#include "record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "change.h"
#include "diag.h"
#include "error.h"
#include "failpoint.h"
#include "journal.h"
#include "json.h"
#include "note.h"
#include "hash.h"
#include "redact.h"
#include "runbook.h"
#include "store.h"
#include "sys.h"
#include "yamltree.h"

struct recorder {
	struct store *st;
	struct change_rec *c;
	const struct redactor *red;
	struct journal *j;
	/*
	 * The journal could not be written (an fsync failed): from then on
	 * the model still follows what happens, and the note committed at
	 * the end is the record; the journal is set aside, never trusted.
	 */
	bool broken;
	struct redactor *own;	/* built-in patterns, when no engine's is known */
	struct buf file;	/* the runbook file as applied (has_file) */
	bool has_file;
};

struct recorder *recorder_new(struct store *st, struct change_rec *c,
			      const struct redactor *red)
{
	struct recorder *r = xcalloc(1, sizeof(*r));

	r->st = st;
	r->c = c;
	r->red = red;
	return r;
}

/*
 * Writes the whole record as one journal record, for a change known
 * only from its note (its journal is elsewhere, or was set aside): a
 * rollback of it must be recoverable like any other. The record holds
 * the note's front matter, the one format that carries every field and
 * that note_parse() reads back, so no field can be forgotten here.
 */
static int snapshot(struct recorder *r, struct rb_error *err)
{
	struct buf fm = BUF_INIT, rec = BUF_INIT;
	int ret;

	note_front_matter(r->c, &fm);
	buf_adds(&rec, "{");
	json_kv(&rec, "t", "snapshot", 1);
	buf_adds(&rec, ",\"note\":");
	json_str_n(&rec, fm.data, fm.len);
	buf_adds(&rec, "}");
	ret = journal_append(r->j, rec.data, rec.len, err);
	buf_release(&fm);
	buf_release(&rec);
	return ret;
}

int recorder_resume(struct store *st, struct change_rec *c,
		    const struct redactor *red, struct recorder **out,
		    struct rb_error *err)
{
	struct recorder *r = recorder_new(st, c, red);
	struct buf live = BUF_INIT, done = BUF_INIT;
	bool had;

	buf_addf(&live, "%s/journal/%s.log", store_dir(st), c->id);
	buf_addf(&done, "%s/journal/done/%s.log", store_dir(st), c->id);
	had = access(buf_str(&live), F_OK) == 0 ||
	      access(buf_str(&done), F_OK) == 0;
	buf_release(&live);
	buf_release(&done);
	if (journal_open(store_dir(st), c->id, &r->j, err) < 0 ||
	    (!had && snapshot(r, err) < 0)) {
		recorder_free(r);
		return -1;
	}
	*out = r;
	return 0;
}

void recorder_free(struct recorder *r)
{
	if (!r)
		return;
	journal_close(r->j);
	redactor_free(r->own);
	buf_release(&r->file);
	free(r);
}

struct change_rec *recorder_change(struct recorder *r)
{
	return r->c;
}

int record_apply(void *ctx, const char *payload, size_t len)
{
	struct change_rec *c = ctx;
	struct ynode *n = NULL;
	struct diag d;

	diag_init(&d, "journal");
	if (ytree_parse(payload, len, &n, &d) == 0 && n) {
		const struct ynode *t = ynode_get(n, "t"), *note = ynode_get(n, "note");

		if (t && t->text && strcmp(t->text, "snapshot") == 0) {
			struct change_rec *snap = NULL, tmp;
			struct rb_error err = RB_ERROR_INIT;

			/* the whole record: it replaces what came before */
			if (note && note->text &&
			    note_parse(note->text, note->len, NULL, &snap, &err) == 0) {
				tmp = *c;
				*c = *snap;
				*snap = tmp;
				change_free(snap);
			}
		} else {
			change_apply_record(c, n);
		}
	}
	ytree_free(n);
	diag_release(&d);
	return 0;
}

/*
 * Journal first, then the model, from the same bytes. When the journal
 * fails, the model still takes the record unless the action it
 * announces will not happen (announced: the engine stops instead).
 */
static int put_ex(struct recorder *r, struct buf *rec, bool announces,
		  bool sync, struct rb_error *err)
{
	if (journal_append_ex(r->j, rec->data, rec->len, sync, err) < 0) {
		r->broken = true;
		if (!announces)
			record_apply(r->c, rec->data, rec->len);
		return -1;
	}
	/* Announced and durable, not yet done: the instant kill -9 tests. */
	failpoint_kill("kill-after-record");
	record_apply(r->c, rec->data, rec->len);
	return 0;
}

static int put(struct recorder *r, struct buf *rec, struct rb_error *err)
{
	return put_ex(r, rec, false, true, err);
}

/* The engine's redactor (it knows the secrets), else our own. */
static const struct redactor *red_of(struct recorder *r)
{
	if (r->red)
		return r->red;
	if (!r->own) {
		r->own = redactor_new();
		redactor_add_builtins(r->own);
	}
	return r->own;
}

static void red_kv(struct recorder *r, struct buf *b, const char *k,
		   const char *v)
{
	char *red;

	if (!v) {
		buf_addf(b, ",\"%s\":null", k);
		return;
	}
	red = redact_str(red_of(r), v);
	json_kv(b, k, red, 0);
	free(red);
}

/* Commits the note of the record as it is now; oid: the commit. */
static int commit_note(struct recorder *r, char oid[41], struct rb_error *err)
{
	struct buf text = BUF_INIT, msg = BUF_INIT;
	int ret;

	note_render(r->c, &text);
	buf_addf(&msg, "%s: %s on %s\n\n%s\n", r->c->runbook,
		 change_status_name(r->c->status), r->c->target,
		 r->c->reason ? r->c->reason : "");
	ret = store_commit_change(r->st, r->c->id, buf_str(&text),
				  r->has_file ? &r->file : NULL,
				  r->c->owner ? r->c->owner : "unknown",
				  r->c->operator_ ? r->c->operator_ : "unknown",
				  buf_str(&msg), oid, err);
	buf_release(&text);
	buf_release(&msg);
	return ret;
}

int recorder_renote(void *recorder, struct rb_error *err)
{
	struct recorder *r = recorder;
	char oid[41];

	if (commit_note(r, oid, err) < 0)
		return -1;
	free(r->c->note_oid);
	r->c->note_oid = xstrdup(oid);
	return 0;
}

int recorder_commit(struct recorder *r, struct rb_error *err)
{
	struct buf rec = BUF_INIT;
	char oid[41];
	int ret = -1;

	/* The record is durable; a crash here leaves a note behind it. */
	failpoint_kill("kill-before-note");
	if (commit_note(r, oid, err) < 0)
		goto out;
	buf_adds(&rec, "{");
	json_kv(&rec, "t", "note", 1);
	json_kv(&rec, "status", change_status_name(r->c->status), 0);
	json_kv(&rec, "oid", oid, 0);
	buf_adds(&rec, "}");
	failpoint_kill("kill-after-note");
	if (r->broken) {
		struct rb_error e2 = RB_ERROR_INIT;

		r->c->has_note = true;
		r->c->noted = r->c->status;
		free(r->c->note_oid);
		r->c->note_oid = xstrdup(oid);
		/* the note is the record now: a stale journal must not win */
		if (r->c->closed && change_status_final(r->c->status) &&
		    journal_set_aside(store_dir(r->st), r->c->id, &e2) < 0) {
			*err = e2;
			goto out;
		}
		ret = 0;
		goto out;
	}
	if (put(r, &rec, err) < 0)
		goto out;
	if (r->c->closed && change_status_final(r->c->status) &&
	    journal_retire(store_dir(r->st), r->c->id, err) < 0)
		goto out;
	ret = 0;
out:
	buf_release(&rec);
	return ret;
}

int recorder_settle(struct recorder *r, struct rb_error *err)
{
	struct buf text = BUF_INIT, rec = BUF_INIT;
	struct change_rec *noted = NULL;
	struct rb_error e2 = RB_ERROR_INIT;
	int ret;

	/* the runner died after its commit: the note is there already */
	if (store_read_note(r->st, r->c->id, &text, &e2) == 0 &&
	    note_parse(text.data, text.len, r->c->id, &noted, &e2) == 0 &&
	    noted->status == r->c->status && noted->finished && r->c->finished &&
	    strcmp(noted->finished, r->c->finished) == 0) {
		buf_adds(&rec, "{");
		json_kv(&rec, "t", "note", 1);
		json_kv(&rec, "status", change_status_name(r->c->status), 0);
		buf_adds(&rec, "}");
		ret = put(r, &rec, err);
		if (ret == 0 && r->c->closed && change_status_final(r->c->status))
			ret = journal_retire(store_dir(r->st), r->c->id, err);
	} else {
		ret = recorder_commit(r, err);
	}
	change_free(noted);
	buf_release(&text);
	buf_release(&rec);
	return ret;
}

int recorder_close(struct recorder *r, enum change_status status,
		   struct rb_error *err)
{
	struct buf rec = BUF_INIT;
	char t[40];
	int ret;

	sys_now_utc(t);
	buf_adds(&rec, "{");
	json_kv(&rec, "t", "close", 1);
	json_kv(&rec, "status", change_status_name(status), 0);
	json_kv(&rec, "finished", t, 0);
	buf_adds(&rec, "}");
	ret = put(r, &rec, err);
	buf_release(&rec);
	if (ret == 0 || r->broken)
		ret = recorder_commit(r, err);
	return ret;
}

/*
 * The rollback in its record form, redacted like everything else; if
 * a redact pattern changed it, the record says so: it can no longer be
 * replayed as it was (replay refuses it rather than run masked text).
 */
static void rollback_kv(struct recorder *r, struct buf *b, const char *v,
			bool masked)
{
	char *red;

	red_kv(r, b, "rollback", v);
	if (!v)
		return;
	red = redact_str(red_of(r), v);
	buf_addf(b, ",\"rollback_masked\":%s",
		 masked || strcmp(red, v) ? "true" : "false");
	free(red);
}

static void step_key(struct recorder *r, struct buf *b,
		     const struct event *ev)
{
	red_kv(r, b, "host", ev->host);
	json_kv(b, "phase", phase_name(ev->phase), 0);
	buf_addf(b, ",\"index\":%zu", ev->index);
}

/*
 * The change opens: its journal is created and its first record
 * written, then the note with status running is committed. What the
 * file and --var say may hold secrets too: redacted first.
 */
static int open_change(struct recorder *r, const char *id, const char *now,
		       struct rb_error *err)
{
	char **f[] = { &r->c->owner, &r->c->reason, &r->c->expected,
		       &r->c->file };
	struct buf rec = BUF_INIT;
	int ret = -1;

	for (size_t i = 0; i < r->c->vars.n; i++) {
		char *v = redact_str(red_of(r), r->c->vars.values[i]);

		free(r->c->vars.values[i]);
		r->c->vars.values[i] = v;
	}
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		char *v;

		if (!*f[i])
			continue;
		v = redact_str(red_of(r), *f[i]);
		free(*f[i]);
		*f[i] = v;
	}
	free(r->c->id);
	r->c->id = xstrdup(id);
	free(r->c->started);
	r->c->started = xstrdup(now);
	if (journal_create(store_dir(r->st), r->c->id, &r->j, err) < 0)
		goto out;
	change_rec_open(&rec, r->c);
	if (put(r, &rec, err) < 0 || recorder_commit(r, err) < 0)
		goto out;
	ret = 0;
out:
	buf_release(&rec);
	return ret;
}

static int on_event(void *ctx, const struct event *ev, struct rb_error *err)
{
	struct recorder *r = ctx;
	struct buf rec = BUF_INIT;
	char t[40];
	int ret = -1;

	if (ev->red)
		r->red = ev->red;
	sys_now_utc(t);
	buf_adds(&rec, "{");
	switch (ev->type) {
	case EV_OPEN:
		buf_release(&rec);
		return ev->replay ? 0 : open_change(r, ev->change_id, t, err);
	case EV_STEP_BEGIN:
		json_kv(&rec, "t", "step-begin", 1);
		step_key(r, &rec, ev);
		red_kv(r, &rec, "name", ev->name);
		red_kv(r, &rec, "command", ev->command);
		rollback_kv(r, &rec, ev->rollback, ev->rollback_masked);
		buf_addf(&rec, ",\"rollback_none\":%s,\"local\":%s",
			 ev->rollback_none ? "true" : "false",
			 ev->local ? "true" : "false");
		red_kv(r, &rec, "dir", ev->dir);
		buf_adds(&rec, ",\"env\":[");
		for (size_t i = 0; ev->env && ev->env[i]; i++) {
			char *red = redact_str(red_of(r), ev->env[i]);

			if (i)
				buf_addc(&rec, ',');
			json_str(&rec, red);
			free(red);
		}
		buf_addf(&rec, "],\"timeout_ms\":%u", ev->timeout_ms);
		if (ev->backup)
			red_kv(r, &rec, "backup", ev->backup);
		break;
	case EV_STEP_END:
		json_kv(&rec, "t", "step-end", 1);
		step_key(r, &rec, ev);
		red_kv(r, &rec, "name", ev->name);
		json_kv(&rec, "result", step_result_name(ev->result), 0);
		buf_addf(&rec, ",\"exit\":%d,\"duration_ms\":%llu,\"attempts\":%u",
			 ev->exit_code, ev->duration_ms,
			 ev->attempt ? ev->attempt : 1);
		if (ev->why)
			red_kv(r, &rec, "message", ev->why);
		if (ev->phase == PHASE_STEPS)
			rollback_kv(r, &rec, ev->rollback, ev->rollback_masked);
		red_kv(r, &rec, "output", ev->output);
		if (ev->n_caps) {
			buf_adds(&rec, ",\"captures\":{");
			for (size_t i = 0; i < ev->n_caps; i++) {
				char *red = redact_str(red_of(r), ev->cap_values[i]);

				if (i)
					buf_addc(&rec, ',');
				json_str(&rec, ev->cap_names[i]);
				buf_addc(&rec, ':');
				json_str(&rec, red);
				free(red);
			}
			buf_addc(&rec, '}');
		}
		if (ev->metric) {
			red_kv(r, &rec, "metric", ev->metric);
			buf_addf(&rec, ",\"after\":%d", (int)ev->metric_when);
		}
		if (ev->snap_out) {
			struct buf o = BUF_INIT;
			char *red;

			/* the engine redacted it as it came; again, like all */
			buf_add(&o, ev->snap_out, ev->snap_len);
			red = redact_str(red_of(r), buf_str(&o));
			json_kv(&rec, "baseline_stdout", red, 0);
			buf_addf(&rec, ",\"baseline_bytes\":%llu,\"baseline_crc32c\":%u",
				 ev->snap_total, ev->snap_crc);
			free(red);
			buf_release(&o);
		}
		break;
	case EV_ATTEMPT:
		json_kv(&rec, "t", "attempt", 1);
		step_key(r, &rec, ev);
		red_kv(r, &rec, "name", ev->name);
		json_kv(&rec, "result", step_result_name(ev->result), 0);
		buf_addf(&rec, ",\"attempt\":%u,\"exit\":%d,\"duration_ms\":%llu",
			 ev->attempt, ev->exit_code, ev->duration_ms);
		red_kv(r, &rec, "message", ev->why);
		break;
	case EV_ROLLBACK_BEGIN:
		json_kv(&rec, "t", "rollback-begin", 1);
		step_key(r, &rec, ev);
		red_kv(r, &rec, "command", ev->command);
		break;
	case EV_ROLLBACK_END:
		json_kv(&rec, "t", "rollback-end", 1);
		step_key(r, &rec, ev);
		red_kv(r, &rec, "name", ev->name);
		json_kv(&rec, "result", step_result_name(ev->result), 0);
		buf_addf(&rec, ",\"exit\":%d,\"duration_ms\":%llu",
			 ev->exit_code, ev->duration_ms);
		if (ev->rollback_none)
			buf_adds(&rec, ",\"none\":true");
		if (ev->by_hand)
			buf_adds(&rec, ",\"by_hand\":true");
		if (ev->why)
			red_kv(r, &rec, "message", ev->why);
		if (ev->output && *ev->output)
			red_kv(r, &rec, "output", ev->output);
		break;
	case EV_CLOSE:
		buf_release(&rec);
		return recorder_close(r, ev->status, err);
	case EV_BASELINE:
		json_kv(&rec, "t", "baseline", 1);
		json_kv(&rec, "baseline", ev->baseline_same ? "restored" : "differs", 0);
		red_kv(r, &rec, "diff", ev->diff);
		break;
	case EV_HOST:
		json_kv(&rec, "t", "host", 1);
		red_kv(r, &rec, "host", ev->host);
		json_kv(&rec, "outcome", ev->note, 0);
		if (ev->why)
			red_kv(r, &rec, "message", ev->why);
		break;
	case EV_PID:
		json_kv(&rec, "t", "pid", 1);
		step_key(r, &rec, ev);
		buf_addf(&rec, ",\"pid\":%ld,\"start\":%llu,\"rollback\":%s",
			 ev->pid, ev->start_time, ev->in_rollback ? "true" : "false");
		break;
	default:
		/* for people only: nothing in the record changes */
		ret = 0;
		goto out;
	}
	json_kv(&rec, "time", t, 0);
	buf_adds(&rec, "}");
	/*
	 * A step whose begin cannot be recorded is not run. Records that
	 * announce no action are flushed with the next one, before the
	 * next action (PRODUCT.md §3: on disk before the next action).
	 */
	ret = put_ex(r, &rec, ev->type == EV_STEP_BEGIN,
		     ev->type != EV_STEP_END && ev->type != EV_ROLLBACK_END &&
		     ev->type != EV_PID && ev->type != EV_ATTEMPT, err);
out:
	buf_release(&rec);
	return ret;
}

/* What the recorder hears: everything that changes the record. */
struct listener recorder_listener(struct recorder *r)
{
	struct listener l = { on_event, r, false, 0 };

	l.mask = EV_BIT(EV_OPEN) | EV_BIT(EV_STEP_BEGIN) | EV_BIT(EV_PID) |
		 EV_BIT(EV_ATTEMPT) | EV_BIT(EV_STEP_END) |
		 EV_BIT(EV_ROLLBACK_BEGIN) | EV_BIT(EV_ROLLBACK_END) |
		 EV_BIT(EV_BASELINE) | EV_BIT(EV_HOST) | EV_BIT(EV_CLOSE);
	return l;
}

int recorder_keep_file(struct recorder *r, const char *path,
		       struct rb_error *err)
{
	FILE *f = fopen(path, "rb");
	char chunk[8192];
	size_t n;

	buf_reset(&r->file);
	if (!f) {
		rb_error_errno(err, RB_ERR_INVALID, "cannot read '%s' to keep it beside the note",
			       path);
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(&r->file, chunk, n);
	if (ferror(f)) {
		rb_error_errno(err, RB_ERR_INVALID, "cannot read '%s' to keep it beside the note",
			       path);
		fclose(f);
		return -1;
	}
	fclose(f);
	r->has_file = true;
	return 0;
}

/*
 * An included file, appended to the kept runbook as a block of YAML
 * comments: the committed file stays the runbook as written (it still
 * reads the same), and shows every step that ran (docs/reuse.md).
 */
static int keep_include(struct recorder *r, const char *path,
			struct rb_error *err)
{
	struct buf data = BUF_INIT;
	char hex[65] = "";
	FILE *f = fopen(path, "rb");
	char chunk[8192];
	size_t n;
	int ret = -1;

	if (!f || sha256_file_hex(path, hex) < 0) {
		rb_error_errno(err, RB_ERR_INVALID, "cannot read '%s' to keep it beside the note",
			       path);
		goto out;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(&data, chunk, n);
	if (ferror(f)) {
		rb_error_errno(err, RB_ERR_INVALID, "cannot read '%s' to keep it beside the note",
			       path);
		goto out;
	}
	if (r->file.len && r->file.data[r->file.len - 1] != '\n')
		buf_addc(&r->file, '\n');
	buf_addf(&r->file, "\n# ---- included: %s (sha256 %s) ----\n", path,
		 hex);
	for (size_t i = 0; i < data.len;) {
		const char *nl = memchr(data.data + i, '\n', data.len - i);
		size_t end = nl ? (size_t)(nl - data.data) : data.len;

		buf_adds(&r->file, end > i ? "# " : "#");
		buf_add(&r->file, data.data + i, end - i);
		buf_addc(&r->file, '\n');
		i = end + 1;
	}
	ret = 0;
out:
	if (f)
		fclose(f);
	buf_release(&data);
	return ret;
}

int recorder_keep_runbook(struct recorder *r, const struct runbook *rb,
			  struct rb_error *err)
{
	struct rb_error later = RB_ERROR_INIT;	/* past the first failure */
	int ret = 0;

	if (recorder_keep_file(r, rb->file, err) < 0)
		return -1;
	for (size_t i = 0; i < rb->n_includes; i++) {
		if (keep_include(r, rb->includes[i],
				 ret < 0 ? &later : err) == 0)
			continue;
		/* the runbook is kept; err names the file left out */
		buf_addf(&r->file, "\n# ---- included: %s: could not be read ----\n",
			 rb->includes[i]);
		ret = -1;
	}
	return ret;
}

int recorder_rollback_start(struct recorder *r, const char *by,
			    const char *reason, const struct strvec *forced,
			    struct rb_error *err)
{
	struct buf rec = BUF_INIT;
	char now[40];
	int ret;

	sys_now_utc(now);
	buf_adds(&rec, "{");
	json_kv(&rec, "t", "rollback-start", 1);
	red_kv(r, &rec, "by", by);
	json_kv(&rec, "at", now, 0);
	red_kv(r, &rec, "reason", reason);
	buf_adds(&rec, ",\"forced\":[");
	for (size_t i = 0; i < forced->n; i++) {
		if (i)
			buf_addc(&rec, ',');
		json_str(&rec, forced->v[i]);
	}
	buf_adds(&rec, "]}");
	ret = put(r, &rec, err);
	buf_release(&rec);
	return ret;
}

int recorder_by_hand(struct recorder *r, const struct rec_step *s,
		     struct rb_error *err)
{
	struct event ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = EV_ROLLBACK_END;
	ev.host = s->host;
	ev.phase = s->phase;
	ev.index = s->index;
	ev.name = s->name;
	ev.result = RES_ROLLED_BACK;
	ev.exit_code = -1;
	ev.by_hand = true;
	return on_event(r, &ev, err);
}
