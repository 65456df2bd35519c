/*
 * The change record and its journal encoding. Records are applied in
 * the order they were written; applying the same sequence always gives
 * the same record, which is what makes recovery after kill -9 exact.
 */
#include "change.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "hash.h"
#include "json.h"
#include "secrets.h"
#include "yamltree.h"
#include "sys.h"

const char *step_result_name(enum step_result r)
{
	static const char *const n[] = { "not-run", "ok", "failed", "skipped",
					 "timeout", "rolled-back",
					 "rollback-failed" };

	return n[r];
}

const char *change_status_name(enum change_status s)
{
	static const char *const n[] = { "running", "applied", "rolled-back",
					 "rollback-failed", "failed",
					 "interrupted", "rehearsed",
					 "applied-with-failures" };

	return n[s];
}

bool change_status_final(enum change_status s)
{
	/* interrupted as a runner records it: rolled back, then stopped */
	return s == CHANGE_APPLIED || s == CHANGE_ROLLED_BACK ||
	       s == CHANGE_FAILED || s == CHANGE_REHEARSED ||
	       s == CHANGE_INTERRUPTED || s == CHANGE_APPLIED_WITH_FAILURES;
}

void change_id_new(const char *name, char out[128])
{
	unsigned char rnd[4] = { 0 };
	struct tm tm;
	time_t t = time(NULL);
	char stamp[32];

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		unsigned long long x = sys_now_ms() ^ (unsigned long long)getpid();

		memcpy(rnd, &x, sizeof(rnd));
	}
	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(out, 128, "%s-%s-%02x%02x%02x%02x", stamp, name, rnd[0],
		 rnd[1], rnd[2], rnd[3]);
}

/* Reads "YYYYMMDDTHHMMSSZ" at s, every field in range; false if not. */
static bool strptime_utc(const char *s, struct tm *tm)
{
	static const char shape[] = "ddddddddTddddddZ";
	int v[6], w[6] = { 4, 2, 2, 2, 2, 2 }, at = 0;

	for (size_t i = 0; shape[i]; i++)
		if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') :
				      s[i] != shape[i])
			return false;
	for (int f = 0; f < 6; f++) {
		v[f] = 0;
		if (f == 3)
			at++;	/* the 'T' */
		for (int k = 0; k < w[f]; k++)
			v[f] = v[f] * 10 + (s[at++] - '0');
	}
	if (v[0] < 1970 || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 ||
	    v[3] > 23 || v[4] > 59 || v[5] > 60)
		return false;
	tm->tm_year = v[0] - 1900;
	tm->tm_mon = v[1] - 1;
	tm->tm_mday = v[2];
	tm->tm_hour = v[3];
	tm->tm_min = v[4];
	tm->tm_sec = v[5];
	return true;
}

bool change_id_check(const char *id, time_t now, char why[160])
{
	static const int days[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31,
				    30, 31 };
	size_t n = strlen(id);
	struct tm tm = { 0 };
	char name[RB_MAX_NAME + 1];
	const char *end;
	time_t t;
	bool leap;

	if (n < 16 + 1 + 1 + 1 + 8 || n > 16 + 2 + RB_MAX_NAME + 8 ||
	    !strptime_utc(id, &tm) || id[16] != '-' || id[n - 9] != '-') {
		snprintf(why, 160,
			 "expected a change id YYYYMMDDTHHMMSSZ-<runbook>-<8 hex>, found \"%.80s\"",
			 id);
		return false;
	}
	end = id + n - 8;
	for (const char *p = end; *p; p++) {
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) {
			snprintf(why, 160,
				 "expected a change id ending in 8 lowercase hex digits, found \"%.80s\"",
				 id);
			return false;
		}
	}
	memcpy(name, id + 17, (size_t)(n - 26));
	name[n - 26] = '\0';
	leap = (tm.tm_year % 4 == 0 && tm.tm_year % 100 != 0) ||
	       (tm.tm_year + 1900) % 400 == 0;
	if (!is_runbook_name(name) || tm.tm_mday > days[tm.tm_mon] ||
	    (tm.tm_mon == 1 && tm.tm_mday == 29 && !leap)) {
		snprintf(why, 160, "expected a change id with a runbook name and a real date, found \"%.80s\"",
			 id);
		return false;
	}
	t = timegm(&tm);
	if (t > now + CHANGE_ID_SKEW) {
		snprintf(why, 160,
			 "change id %.80s is dated %ld s in the future of this clock",
			 id, (long)(t - now));
		return false;
	}
	return true;
}

bool change_id_matches(const char *id, const char *what)
{
	size_t n = strlen(what);
	const char *hex = strrchr(id, '-');

	if (strncmp(id, what, n) == 0)
		return true;
	if (n < 4 || !hex || strspn(what, "0123456789abcdef") != n)
		return false;
	return strncmp(hex + 1, what, n) == 0;
}

struct change_rec *change_new(void)
{
	struct change_rec *c = xcalloc(1, sizeof(*c));

	c->status = CHANGE_RUNNING;
	return c;
}

static void free_step(struct rec_step *s)
{
	free(s->host);
	free(s->name);
	free(s->command);
	free(s->rollback);
	free(s->dir);
	free(s->backup);
	strvec_release(&s->env);
	free(s->output);
	free(s->message);
	free(s->rb_output);
	free(s->snap_out);
}

void change_free(struct change_rec *c)
{
	if (!c)
		return;
	free(c->id);
	free(c->runbook);
	free(c->mode);
	free(c->limit);
	free(c->watch);
	free(c->file);
	free(c->file_sha256);
	free(c->target);
	free(c->owner);
	free(c->reason);
	free(c->expected);
	free(c->operator_);
	free(c->started);
	free(c->finished);
	free(c->identity);
	free(c->baseline);
	free(c->baseline_diff);
	free(c->rolled_back_by);
	free(c->rolled_back_at);
	free(c->rollback_reason);
	strvec_release(&c->rollback_forced);
	free(c->note_oid);
	strvec_release(&c->hosts);
	varset_release(&c->vars);
	varset_release(&c->secrets);
	varset_release(&c->host_ids);
	varset_release(&c->outcomes);
	strvec_release(&c->redact);
	for (size_t i = 0; i < c->n_captures; i++) {
		free(c->captures[i].host);
		free(c->captures[i].name);
		free(c->captures[i].value);
	}
	free(c->captures);
	for (size_t i = 0; i < c->n_metrics; i++) {
		free(c->metrics[i].host);
		free(c->metrics[i].name);
		free(c->metrics[i].before);
		free(c->metrics[i].after);
		free(c->metrics[i].after_rollback);
	}
	free(c->metrics);
	for (size_t i = 0; i < c->n_steps; i++)
		free_step(&c->steps[i]);
	free(c->steps);
	for (size_t i = 0; i < c->n_events; i++) {
		free(c->events[i].kind);
		free(c->events[i].host);
		free(c->events[i].name);
		free(c->events[i].result);
		free(c->events[i].message);
	}
	free(c->events);
	free(c);
}

struct rec_event *change_add_event(struct change_rec *c, const char *kind,
				   const char *host, enum phase phase,
				   const char *name, const char *result)
{
	struct rec_event *e;

	c->events = xgrow(c->events, &c->cap_events, c->n_events + 1,
			  sizeof(*c->events));
	e = &c->events[c->n_events++];
	memset(e, 0, sizeof(*e));
	e->kind = xstrdup(kind);
	e->host = xstrdup(host ? host : "");
	e->phase = phase;
	e->name = xstrdup(name ? name : "?");
	e->result = xstrdup(result ? result : "");
	e->exit_code = -1;
	return e;
}

/* Whether s, a step of host, is left to roll back. */
static bool pending(const struct rec_step *s, const char *host)
{
	if (s->phase != PHASE_STEPS || strcmp(s->host, host) != 0)
		return false;
	if (!s->running && (s->result == RES_SKIPPED ||
			    s->result == RES_NOT_RUN))
		return false;
	/* rollback: none, or undone already: nothing left to do */
	return s->rb_result != RES_ROLLED_BACK && !s->rollback_none;
}

size_t change_pending_total(const struct change_rec *c)
{
	size_t total = 0;

	for (size_t h = 0; h < c->hosts.n; h++)
		for (size_t i = 0; i < c->n_steps; i++)
			total += pending(&c->steps[i], c->hosts.v[h]);
	return total;
}

int change_by_hand(struct change_rec *c, const char *spec, struct strvec *out,
		   struct rb_error *err)
{
	const char *at = strchr(spec, '@');
	size_t nlen = at ? (size_t)(at - spec) : strlen(spec);
	struct buf pend = BUF_INIT;
	size_t found = 0;

	for (size_t h = 0; h < c->hosts.n; h++) {
		struct rec_step **v;
		size_t n = change_pending(c, c->hosts.v[h], &v);

		for (size_t i = 0; i < n; i++) {
			buf_addf(&pend, "%s'%s' on %s", pend.len ? ", " : "",
				 v[i]->name ? v[i]->name : "?", v[i]->host);
			if (v[i]->name && strlen(v[i]->name) == nlen &&
			    strncmp(v[i]->name, spec, nlen) == 0 &&
			    (!at || strcmp(at + 1, v[i]->host) == 0)) {
				char idx[32];

				snprintf(idx, sizeof(idx), "%zu",
					 (size_t)(v[i] - c->steps));
				strvec_push(out, idx);
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

struct change_rec *change_from_runbook(const struct runbook *rb,
				       const struct target *t,
				       const struct varset *vars,
				       char *operator_)
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
	ch->operator_ = operator_;
	if (t->identity.s)
		ch->identity = xstrdup(t->identity.s);
	ch->confirm = t->confirm;
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
	varset_copy(&ch->vars, vars);
	for (size_t i = 0; i < rb->n_secrets; i++) {
		struct buf src = BUF_INIT;

		secret_source_format(&rb->secrets[i], &src);
		varset_set(&ch->secrets, rb->secrets[i].name, buf_str(&src));
		buf_release(&src);
	}
	return ch;
}

struct rec_step *change_add_step(struct change_rec *c)
{
	struct rec_step *s;

	c->steps = xgrow(c->steps, &c->cap_steps, c->n_steps + 1,
			 sizeof(*c->steps));
	s = &c->steps[c->n_steps++];
	memset(s, 0, sizeof(*s));
	s->exit_code = -1;
	s->rb_exit_code = -1;
	return s;
}

struct rec_step *change_find_step(struct change_rec *c, const char *host,
				  enum phase phase, unsigned index)
{
	for (size_t i = c->n_steps; i-- > 0;) {
		struct rec_step *s = &c->steps[i];

		if (s->phase == phase && s->index == index && s->host &&
		    strcmp(s->host, host) == 0)
			return s;
	}
	return NULL;
}

void change_set_capture(struct change_rec *c, const char *host,
			const char *name, const char *value)
{
	struct rec_capture *x;

	for (size_t i = 0; i < c->n_captures; i++) {
		x = &c->captures[i];
		if (strcmp(x->host, host) == 0 && strcmp(x->name, name) == 0) {
			free(x->value);
			x->value = xstrdup(value);
			return;
		}
	}
	c->captures = xgrow(c->captures, &c->cap_captures, c->n_captures + 1,
			    sizeof(*c->captures));
	x = &c->captures[c->n_captures++];
	x->host = xstrdup(host);
	x->name = xstrdup(name);
	x->value = xstrdup(value);
}

void change_set_metric(struct change_rec *c, const char *host,
		       const char *name, enum metric_when when,
		       const char *value)
{
	struct rec_metric *m = NULL;

	for (size_t i = 0; i < c->n_metrics && !m; i++)
		if (strcmp(c->metrics[i].host, host) == 0 &&
		    strcmp(c->metrics[i].name, name) == 0)
			m = &c->metrics[i];
	if (!m) {
		c->metrics = xgrow(c->metrics, &c->cap_metrics,
				   c->n_metrics + 1, sizeof(*c->metrics));
		m = &c->metrics[c->n_metrics++];
		memset(m, 0, sizeof(*m));
		m->host = xstrdup(host);
		m->name = xstrdup(name);
	}
	switch (when) {
	case METRIC_BEFORE:
		free(m->before);
		m->before = xstrdup(value);
		break;
	case METRIC_AFTER:
		free(m->after);
		m->after = xstrdup(value);
		break;
	case METRIC_AFTER_ROLLBACK:
		free(m->after_rollback);
		m->after_rollback = xstrdup(value);
		break;
	}
}

size_t change_pending(struct change_rec *c, const char *host,
		      struct rec_step ***v)
{
	size_t n = 0;

	*v = xcalloc(c->n_steps + 1, sizeof(**v));
	for (size_t i = c->n_steps; i-- > 0;)
		if (pending(&c->steps[i], host))
			(*v)[n++] = &c->steps[i];
	return n;
}

int change_status_parse(const char *s)
{
	for (int i = CHANGE_RUNNING; i <= CHANGE_APPLIED_WITH_FAILURES; i++)
		if (strcmp(s, change_status_name((enum change_status)i)) == 0)
			return i;
	return -1;
}

int step_result_parse(const char *s)
{
	for (int i = RES_NOT_RUN; i <= RES_ROLLBACK_FAILED; i++)
		if (strcmp(s, step_result_name((enum step_result)i)) == 0)
			return i;
	return -1;
}

static int phase_parse(const char *s)
{
	for (int i = 0; i < PHASE_COUNT; i++)
		if (strcmp(s, phase_name((enum phase)i)) == 0)
			return i;
	return -1;
}

/* ---- encoding ---- */

static void kv(struct buf *b, const char *k, const char *v)
{
	json_kv(b, k, v ? v : "", 0);
}

static void varset_json(struct buf *b, const char *key, const struct varset *vs)
{
	buf_addc(b, ',');
	json_str(b, key);
	buf_adds(b, ":{");
	for (size_t i = 0; i < vs->n; i++) {
		if (i)
			buf_addc(b, ',');
		json_str(b, vs->names[i]);
		buf_addc(b, ':');
		json_str(b, vs->values[i]);
	}
	buf_addc(b, '}');
}

void change_rec_open(struct buf *out, const struct change_rec *c)
{
	buf_adds(out, "{");
	json_kv(out, "t", "open", 1);
	kv(out, "change", c->id);
	kv(out, "runbook", c->runbook);
	if (c->mode)
		kv(out, "mode", c->mode);
	if (c->limit)
		kv(out, "limit", c->limit);
	if (c->watch)
		kv(out, "watch", c->watch);
	kv(out, "file", c->file);
	kv(out, "file_sha256", c->file_sha256);
	kv(out, "target", c->target);
	kv(out, "owner", c->owner);
	kv(out, "reason", c->reason);
	kv(out, "expected", c->expected);
	kv(out, "operator", c->operator_);
	kv(out, "started", c->started);
	if (c->identity)
		kv(out, "identity", c->identity);
	if (c->confirm)
		buf_adds(out, ",\"confirm\":true");
	buf_adds(out, ",\"hosts\":[");
	for (size_t i = 0; i < c->hosts.n; i++) {
		if (i)
			buf_addc(out, ',');
		json_str(out, c->hosts.v[i]);
	}
	buf_addc(out, ']');
	if (c->redact.n) {
		buf_adds(out, ",\"redact\":[");
		for (size_t i = 0; i < c->redact.n; i++) {
			if (i)
				buf_addc(out, ',');
			json_str(out, c->redact.v[i]);
		}
		buf_addc(out, ']');
	}
	varset_json(out, "vars", &c->vars);
	varset_json(out, "secrets", &c->secrets);
	if (c->host_ids.n)
		varset_json(out, "identities", &c->host_ids);
	buf_adds(out, "}");
}

/* ---- decoding ---- */

static const char *str(const struct ynode *n, const char *key)
{
	const struct ynode *v = ynode_get(n, key);

	if (!v || v->type != YN_SCALAR || ynode_is_null(v))
		return NULL;
	return v->text;
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static long num(const struct ynode *n, const char *key, long dflt)
{
	const char *s = str(n, key);

	return s ? strtol(s, NULL, 10) : dflt;
}

static void read_map(const struct ynode *n, const char *key, struct varset *vs)
{
	const struct ynode *m = ynode_get(n, key);

	if (!m || m->type != YN_MAP)
		return;
	for (size_t i = 0; i < m->n; i++)
		if (m->items[i]->type == YN_SCALAR)
			varset_set(vs, m->keys[i]->text, m->items[i]->text);
}

/* The scalars of the list at key (other items are skipped). */
static void read_list(const struct ynode *n, const char *key, struct strvec *sv)
{
	const struct ynode *l = ynode_get(n, key);

	if (!l || l->type != YN_SEQ)
		return;
	for (size_t i = 0; i < l->n; i++)
		if (l->items[i]->type == YN_SCALAR)
			strvec_push(sv, l->items[i]->text);
}

static void replace(char **dst, const char *v)
{
	free(*dst);
	*dst = dup_or_null(v);
}

void change_apply_record(struct change_rec *c, const struct ynode *r)
{
	const char *t = str(r, "t"), *host = str(r, "host");
	const char *ph = str(r, "phase");
	struct rec_step *s = NULL;
	int p = ph ? phase_parse(ph) : -1;
	unsigned idx = (unsigned)num(r, "index", 0);
	const struct ynode *x;

	if (!t)
		return;
	if (host && p >= 0 && strcmp(t, "step-begin") != 0)
		s = change_find_step(c, host, (enum phase)p, idx);

	if (strcmp(t, "open") == 0) {
		replace(&c->id, str(r, "change"));
		replace(&c->runbook, str(r, "runbook"));
		replace(&c->mode, str(r, "mode"));
		replace(&c->limit, str(r, "limit"));
		replace(&c->watch, str(r, "watch"));
		replace(&c->file, str(r, "file"));
		replace(&c->file_sha256, str(r, "file_sha256"));
		replace(&c->target, str(r, "target"));
		replace(&c->owner, str(r, "owner"));
		replace(&c->reason, str(r, "reason"));
		replace(&c->expected, str(r, "expected"));
		replace(&c->operator_, str(r, "operator"));
		replace(&c->started, str(r, "started"));
		replace(&c->identity, str(r, "identity"));
		c->confirm = str(r, "confirm") && strcmp(str(r, "confirm"), "true") == 0;
		strvec_release(&c->hosts);
		read_list(r, "hosts", &c->hosts);
		strvec_release(&c->redact);
		read_list(r, "redact", &c->redact);
		read_map(r, "vars", &c->vars);
		read_map(r, "secrets", &c->secrets);
		read_map(r, "identities", &c->host_ids);
	} else if (strcmp(t, "step-begin") == 0 && host && p >= 0) {
		s = change_add_step(c);
		s->host = xstrdup(host);
		s->phase = (enum phase)p;
		s->index = idx;
		s->name = dup_or_null(str(r, "name"));
		s->command = dup_or_null(str(r, "command"));
		s->rollback = dup_or_null(str(r, "rollback"));
		s->rollback_masked = str(r, "rollback_masked") &&
				     strcmp(str(r, "rollback_masked"), "true") == 0;
		s->rollback_none = str(r, "rollback_none") &&
				   strcmp(str(r, "rollback_none"), "true") == 0;
		s->local = str(r, "local") && strcmp(str(r, "local"), "true") == 0;
		s->dir = dup_or_null(str(r, "dir"));
		s->backup = dup_or_null(str(r, "backup"));
		read_list(r, "env", &s->env);
		s->timeout_ms = (unsigned)num(r, "timeout_ms", 600000);
		s->running = true;
	} else if (strcmp(t, "step-end") == 0 && host && p >= 0) {
		const char *nm = str(r, "name");
		struct rec_event *e = change_add_event(c, "step", host,
			(enum phase)p, nm ? nm : s ? s->name : NULL,
			str(r, "result"));

		e->attempt = (unsigned)num(r, "attempts", 1);
		e->exit_code = (int)num(r, "exit", -1);
		e->duration_ms = (unsigned long long)num(r, "duration_ms", 0);
		e->message = dup_or_null(str(r, "message"));
		if (!s)
			return;	/* nothing ran: it never began */
		replace(&s->message, str(r, "message"));
		int res = str(r, "result") ? step_result_parse(str(r, "result")) : -1;

		s->running = false;
		s->attempts = (unsigned)num(r, "attempts", 1);
		s->result = res >= 0 ? (enum step_result)res : RES_FAILED;
		s->exit_code = (int)num(r, "exit", -1);
		s->duration_ms = (unsigned long long)num(r, "duration_ms", 0);
		if (ynode_get(r, "rollback")) {
			replace(&s->rollback, str(r, "rollback"));
			s->rollback_masked = str(r, "rollback_masked") &&
					     strcmp(str(r, "rollback_masked"), "true") == 0;
		}
		replace(&s->output, str(r, "output"));
		if ((x = ynode_get(r, "captures")) && x->type == YN_MAP)
			for (size_t i = 0; i < x->n; i++)
				if (x->items[i]->type == YN_SCALAR)
					change_set_capture(c, host, x->keys[i]->text,
							   x->items[i]->text);
		/* a metric is known by its step's name: none, no metric */
		if (str(r, "metric") && s->name)
			change_set_metric(c, host, s->name,
					  num(r, "after", 0) == 2 ? METRIC_AFTER_ROLLBACK :
					  num(r, "after", 0) ? METRIC_AFTER :
					  METRIC_BEFORE,
					  str(r, "metric"));
		if (str(r, "baseline_stdout")) {
			s->has_snap = true;
			replace(&s->snap_out, str(r, "baseline_stdout"));
			s->snap_bytes = num(r, "baseline_bytes", 0);
			s->snap_crc = (unsigned)num(r, "baseline_crc32c", 0);
		}
	} else if (strcmp(t, "pid") == 0 && s) {
		s->pid = num(r, "pid", 0);
		s->start_time = str(r, "start") ?
			strtoull(str(r, "start"), NULL, 10) : 0;
	} else if (strcmp(t, "rollback-begin") == 0 && s) {
		s->rb_running = true;
		/* a closed change rolled back later is open until it closes again */
		c->closed = false;
	} else if (strcmp(t, "attempt") == 0 && host && p >= 0) {
		struct rec_event *e = change_add_event(c, "attempt", host,
			(enum phase)p, str(r, "name"), str(r, "result"));

		e->attempt = (unsigned)num(r, "attempt", 1);
		e->exit_code = (int)num(r, "exit", -1);
		e->duration_ms = (unsigned long long)num(r, "duration_ms", 0);
		e->message = dup_or_null(str(r, "message"));
	} else if (strcmp(t, "rollback-end") == 0 && host && p >= 0 &&
		   str(r, "none")) {
		/* rollback: none: nothing to undo, nothing changes in the step */
		change_add_event(c, "rollback", host, (enum phase)p,
				 str(r, "name") ? str(r, "name") : s ? s->name : NULL,
				 "none");
	} else if (strcmp(t, "rollback-end") == 0 && s) {
		bool hand = str(r, "by_hand") && strcmp(str(r, "by_hand"), "true") == 0;
		struct rec_event *e = change_add_event(c, "rollback", host,
			(enum phase)p, s->name, str(r, "result"));

		e->by_hand = hand;
		e->exit_code = (int)num(r, "exit", -1);
		e->duration_ms = (unsigned long long)num(r, "duration_ms", 0);
		e->message = dup_or_null(str(r, "message"));
		s->rb_running = false;
		int res = str(r, "result") ? step_result_parse(str(r, "result")) : -1;

		s->rb_result = res >= 0 ? (enum step_result)res :
					  RES_ROLLBACK_FAILED;
		s->rb_exit_code = (int)num(r, "exit", -1);
		s->rb_duration_ms = (unsigned long long)num(r, "duration_ms", 0);
		replace(&s->rb_output, str(r, "output"));
		s->rb_by_hand = str(r, "by_hand") && strcmp(str(r, "by_hand"), "true") == 0;
	} else if (strcmp(t, "rollback-start") == 0) {
		/* `runbook rollback`: who, when, why; the run keeps its times */
		replace(&c->rolled_back_by, str(r, "by"));
		replace(&c->rolled_back_at, str(r, "at"));
		replace(&c->rollback_reason, str(r, "reason"));
		strvec_release(&c->rollback_forced);
		read_list(r, "forced", &c->rollback_forced);
	} else if (strcmp(t, "close") == 0) {
		int st = str(r, "status") ? change_status_parse(str(r, "status")) : -1;

		c->closed = true;
		c->status = st >= 0 ? (enum change_status)st : CHANGE_FAILED;
		/* a later rollback does not rewrite when the run finished */
		if (!c->finished || !c->rolled_back_at)
			replace(&c->finished, str(r, "finished"));
	} else if (strcmp(t, "host") == 0 && host && str(r, "outcome")) {
		/* max_fail: one host's outcome (docs/notes.md) */
		varset_set(&c->outcomes, host, str(r, "outcome"));
	} else if (strcmp(t, "baseline") == 0) {
		/* "same" is how rehearse said "restored" before 0.12 */
		replace(&c->baseline, str(r, "baseline") &&
			strcmp(str(r, "baseline"), "same") == 0 ? "restored" :
			str(r, "baseline"));
		replace(&c->baseline_diff, str(r, "diff"));
	} else if (strcmp(t, "note") == 0) {
		int st = str(r, "status") ? change_status_parse(str(r, "status")) : -1;

		c->has_note = true;
		c->noted = st >= 0 ? (enum change_status)st : CHANGE_RUNNING;
		replace(&c->note_oid, str(r, "oid"));
	}
}
