/*
 * notify: loading the runbook's `notify:` list, and running it as a
 * listener of the change's start and end.
 *
 * Invariant: nothing here can change how a change ends. The listener
 * returns 0 whatever its commands do; their outcomes go to the change's
 * timeline and to notices, never to the exit code. Commands run only on
 * EV_OPEN and EV_CLOSE, which the engine emits from its main thread
 * while no worker runs, so holding the bus lock (an immediate listener)
 * for a bounded time stops nothing else.
 */
#include "notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "change.h"
#include "diag.h"
#include "error.h"
#include "exec.h"
#include "redact.h"
#include "runbook.h"
#include "secrets.h"
#include "suggest.h"
#include "yamltree.h"

static const char *const events[] = {
	"start", "applied", "failed", "rolled-back", "rollback-failed",
	"interrupted", "rehearsed", "applied-with-failures",
};
#define N_EVENTS (sizeof(events) / sizeof(events[0]))

static const char *const keys[] = { "name", "when", "run", "timeout", "env" };
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

#define SECRET_REF_OPEN "{{ secrets."

/* ------------------------------------------------------------ loading */

static bool text(const struct ynode *n)
{
	return n->type == YN_SCALAR && !ynode_is_null(n) &&
	       strspn(n->text, " \t\r\n") < n->len;
}

static void set_str(struct strval *v, const struct ynode *n)
{
	v->s = xstrndup(n->text, n->len);
	v->pos = n->pos;
}

static void load_on(struct diag *d, const struct ynode *n, const char *path,
		    unsigned *out)
{
	const struct ynode *const *items = (const struct ynode *const *)&n;
	size_t count = 1;
	struct buf list = BUF_INIT;

	if (n->type == YN_SEQ) {
		items = (const struct ynode *const *)n->items;
		count = n->n;
		if (count == 0) {
			ynode_bad(d, n, path, "an event or a list of events");
			return;
		}
	}
	for (size_t j = 0; j < N_EVENTS; j++)
		buf_addf(&list, "%s%s", j ? ", " : "", events[j]);
	*out = 0;
	for (size_t i = 0; i < count; i++) {
		const struct ynode *x = items[i];
		const char *near;
		size_t j;

		for (j = 0; x->type == YN_SCALAR && j < N_EVENTS; j++)
			if (strcmp(x->text, events[j]) == 0)
				break;
		if (x->type == YN_SCALAR && j < N_EVENTS) {
			*out |= 1u << j;
			continue;
		}
		near = x->type == YN_SCALAR ?
		       suggest_closest(x->text, events, N_EVENTS) : NULL;
		{
			struct buf f = BUF_INIT;

			ynode_found(&f, x);
			diag_at(d, &x->pos,
				"%s: expected one of the events %s, found %s%s%s%s",
				path, buf_str(&list), buf_str(&f),
				near ? "; did you mean " : "",
				near ? near : "", near ? "?" : "");
			buf_release(&f);
		}
	}
	buf_release(&list);
}

/* An env value is literal text, or exactly {{ secrets.NAME }}. */
static void load_env(struct diag *d, const struct ynode *n, const char *path,
		     const struct runbook *rb, struct notify_spec *ns)
{
	size_t cap = 0;

	if (n->type != YN_MAP) {
		ynode_bad(d, n, path, "a mapping of environment variables");
		return;
	}
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *k = n->keys[i], *v = n->items[i];
		struct buf p = BUF_INIT;
		struct kv kv = { 0 };

		buf_addf(&p, "%s.%s", path, k->text);
		if (!is_var_name(k->text) || strncmp(k->text, "RUNBOOK_", 8) == 0) {
			diag_at(d, &k->pos,
				"%s: expected an environment variable name of letters, digits and _ not starting with RUNBOOK_ (runbook sets those), found \"%s\"",
				buf_str(&p), k->text);
		} else if (v->type != YN_SCALAR || ynode_is_null(v)) {
			ynode_bad(d, v, buf_str(&p), "a string");
		} else if (strstr(v->text, "{{")) {
			size_t o = strlen(SECRET_REF_OPEN), len = v->len;
			bool ref = len > o + 3 &&
				   strncmp(v->text, SECRET_REF_OPEN, o) == 0 &&
				   strcmp(v->text + len - 3, " }}") == 0;
			char *name = ref ? xstrndup(v->text + o, len - o - 3)
					 : NULL;

			if (!ref || !runbook_secret(rb, name))
				ynode_bad(d, v, buf_str(&p),
				    ref ? "{{ secrets.NAME }} of a declared secret"
					: "text, or exactly {{ secrets.NAME }} (notify values are not templates: the change's id, status and target are in RUNBOOK_* variables)");
			else
				kv.key = xstrdup(k->text);
			free(name);
		} else {
			kv.key = xstrdup(k->text);
		}
		buf_release(&p);
		if (!kv.key)
			continue;
		kv.key_pos = k->pos;
		kv.val = xstrndup(v->text, v->len);
		kv.pos = v->pos;
		ns->env = xgrow(ns->env, &cap, ns->n_env + 1, sizeof(*ns->env));
		ns->env[ns->n_env++] = kv;
	}
}

static void load_one(struct diag *d, const struct ynode *n, size_t idx,
		     struct runbook *rb, struct notify_spec *ns)
{
	struct buf path = BUF_INIT, sub = BUF_INIT;
	const struct ynode *x;

	buf_addf(&path, "notify[%zu]", idx);
	ns->pos = n->pos;
	ns->on = NOTIFY_ON_ALL;
	ns->timeout_ms = NOTIFY_DEFAULT_TIMEOUT_MS;
	if (n->type != YN_MAP) {
		ynode_bad(d, n, buf_str(&path), "a mapping with run (and when, timeout, env, name)");
		goto out;
	}
	for (size_t i = 0; i < n->n; i++) {
		const char *k = n->keys[i]->text, *near;
		size_t j;

		for (j = 0; j < N_KEYS && strcmp(k, keys[j]) != 0; j++)
			;
		if (j < N_KEYS)
			continue;
		near = suggest_closest(k, keys, N_KEYS);
		diag_at(d, &n->keys[i]->pos,
			"%s.%s: expected one of the keys name, when, run, timeout, env, found unknown key \"%s\"%s%s%s",
			buf_str(&path), k, k, near ? "; did you mean " : "",
			near ? near : "", near ? "?" : "");
	}
	buf_reset(&sub);
	buf_addf(&sub, "%s.run", buf_str(&path));
	if (!(x = ynode_get(n, "run")))
		diag_at(d, &n->pos, "%s: expected a key \"run\", found none",
			buf_str(&sub));
	else if (!text(x))
		ynode_bad(d, x, buf_str(&sub), "a non-empty command");
	else if (strstr(x->text, "{{"))
		ynode_bad(d, x, buf_str(&sub), "a command without {{ }} (it runs on this machine with RUNBOOK_CHANGE, RUNBOOK_STATUS, RUNBOOK_TARGET, RUNBOOK_SUMMARY ... in its environment: use \"$RUNBOOK_TARGET\")");
	else
		set_str(&ns->run, x);
	if ((x = ynode_get(n, "name"))) {
		size_t chars = 0;
		bool ctl = false;

		buf_reset(&sub);
		buf_addf(&sub, "%s.name", buf_str(&path));
		for (size_t i = 0; i < x->len; i++) {
			unsigned char c = (unsigned char)x->text[i];

			ctl |= c < 0x20 || c == 0x7f;
			chars += (c & 0xc0) != 0x80;
		}
		if (!text(x) || ctl || chars > RB_MAX_STEP_NAME)
			ynode_bad(d, x, buf_str(&sub), "a name of at most 200 characters on one line");
		else
			set_str(&ns->name, x);
	}
	if ((x = ynode_get(n, "when"))) {
		buf_reset(&sub);
		buf_addf(&sub, "%s.when", buf_str(&path));
		load_on(d, x, buf_str(&sub), &ns->on);
	}
	if ((x = ynode_get(n, "timeout"))) {
		unsigned ms = 0;

		buf_reset(&sub);
		buf_addf(&sub, "%s.timeout", buf_str(&path));
		if (!text(x) || parse_duration(x->text, &ms) < 0 || ms == 0)
			ynode_bad(d, x, buf_str(&sub), "a duration above zero, such as 10s (at most 24h)");
		else
			ns->timeout_ms = ms;
	}
	if ((x = ynode_get(n, "env"))) {
		buf_reset(&sub);
		buf_addf(&sub, "%s.env", buf_str(&path));
		load_env(d, x, buf_str(&sub), rb, ns);
	}
out:
	buf_release(&path);
	buf_release(&sub);
}

void notify_load(struct diag *d, const struct ynode *n, struct runbook *rb)
{
	if (n->type != YN_SEQ) {
		ynode_bad(d, n, "notify", "a list of notify commands ({ when: [failed], run: COMMAND })");
		return;
	}
	rb->notify = xcalloc(n->n ? n->n : 1, sizeof(*rb->notify));
	rb->n_notify = n->n;
	for (size_t i = 0; i < n->n; i++)
		load_one(d, n->items[i], i, rb, &rb->notify[i]);
}

/* ------------------------------------------------------------ running */

#define OUTPUT_KEEP 2048	/* bytes of a command's output kept */

struct notifier {
	const struct runbook *rb;
	struct change_rec *ch;
	int (*renote)(void *arg, struct rb_error *err);
	void *arg;
	const struct redactor *red;	/* the engine's, from EV_OPEN */
	struct redactor *own;		/* until then: built-in patterns */
	char *target;
	size_t n_hosts;
	struct strvec notices;
};

struct notifier *notifier_new(const struct runbook *rb,
			      struct change_rec *ch,
			      int (*renote)(void *arg, struct rb_error *err),
			      void *arg)
{
	struct notifier *n;

	if (!rb->n_notify)
		return NULL;
	n = xcalloc(1, sizeof(*n));
	n->rb = rb;
	n->ch = ch;
	n->renote = renote;
	n->arg = arg;
	n->own = redactor_new();
	redactor_add_builtins(n->own);
	return n;
}

void notifier_free(struct notifier *n)
{
	if (!n)
		return;
	redactor_free(n->own);
	free(n->target);
	strvec_release(&n->notices);
	free(n);
}

const struct strvec *notifier_notices(const struct notifier *n)
{
	return &n->notices;
}

static const struct redactor *red(const struct notifier *n)
{
	return n->red ? n->red : n->own;
}

struct captured {
	struct buf out;
};

static void on_output(void *ctx, enum exec_stream s, const char *data,
		      size_t len)
{
	struct captured *c = ctx;
	size_t room = OUTPUT_KEEP > c->out.len ? OUTPUT_KEEP - c->out.len : 0;

	(void)s;
	buf_add(&c->out, data, len < room ? len : room);
}

static void push_env(struct strvec *v, const char *name, const char *value)
{
	struct buf b = BUF_INIT;

	buf_addf(&b, "%s=%s", name, value ? value : "");
	strvec_push_owned(v, buf_detach(&b));
}

/* The first line of s, at most 300 bytes, for a summary or a message. */
static void first_line(struct buf *b, const char *s)
{
	size_t len = strcspn(s, "\n");

	buf_add(b, s, len > 300 ? 300 : len);
}

/*
 * Runs one spec for event ev_name; returns its timeline result and
 * fills msg (redacted) when it did not succeed.
 */
static const char *run_one(struct notifier *n, const struct notify_spec *ns,
			   const struct strvec *base, struct exec *ex,
			   struct exec_result *res, struct buf *msg)
{
	struct strvec env = STRVEC_INIT, unset = STRVEC_INIT;
	struct secrets S = SECRETS_INIT;
	struct rb_error err = RB_ERROR_INIT;
	struct captured cap = { BUF_INIT };
	struct exec_sink sink = { on_output, NULL, NULL, &cap };
	struct exec_cmd cmd;
	struct redactor *scratch = NULL;
	const char *result = "failed";
	bool secrets_ok = true;

	for (size_t i = 0; i < base->n; i++)
		strvec_push(&env, base->v[i]);
	for (size_t i = 0; i < n->rb->n_secrets; i++)
		if (n->rb->secrets[i].source == SECRET_ENV)
			strvec_push(&unset, n->rb->secrets[i].from);
	for (size_t i = 0; i < ns->n_env; i++) {
		const char *v = ns->env[i].val;

		if (strncmp(v, SECRET_REF_OPEN, strlen(SECRET_REF_OPEN)) == 0) {
			char *name = xstrndup(v + strlen(SECRET_REF_OPEN),
					      strlen(v) - strlen(SECRET_REF_OPEN) - 3);

			if (!S.n && secrets_ok) {
				scratch = redactor_new();
				secrets_ok = secrets_load(&S, n->rb->secrets,
							  n->rb->n_secrets,
							  false, scratch,
							  &err) == 0;
			}
			v = secrets_ok ? secrets_get(&S, name) : NULL;
			free(name);
			if (!v) {
				buf_addf(msg, "not run: %s", secrets_ok ?
					 "its secret has no value" : err.msg);
				goto out;
			}
		}
		push_env(&env, ns->env[i].key, v);
	}
	memset(&cmd, 0, sizeof(cmd));
	cmd.command = ns->run.s;
	cmd.env = env.v;
	cmd.unset = unset.v;
	cmd.timeout_ms = ns->timeout_ms;
	cmd.cancel_fd = -1;
	if (exec_run(ex, &cmd, &sink, res, &err) < 0) {
		buf_addf(msg, "could not start: %s", err.msg);
		goto out;
	}
	if (res->end == EXEC_EXITED && res->exit_code == 0) {
		result = "ok";
		goto out;
	}
	if (res->end == EXEC_TIMED_OUT) {
		char d[32];

		format_duration(ns->timeout_ms, d);
		result = "timeout";
		buf_addf(msg, "timed out after %s; its process group was killed",
			 d);
	} else if (res->end == EXEC_EXITED) {
		buf_addf(msg, "exited %d", res->exit_code);
	} else {
		buf_addf(msg, "killed by signal %d", res->signal);
	}
	if (cap.out.len) {
		buf_adds(msg, ": ");
		first_line(msg, buf_str(&cap.out));
	}
out:
	secrets_release(&S);
	redactor_free(scratch);
	buf_release(&cap.out);
	strvec_release(&env);
	strvec_release(&unset);
	return result;
}

/* Runs the specs that asked for bit; returns how many ran. */
static size_t fire(struct notifier *n, unsigned bit, const char *ev_name,
		   const char *status, const char *summary, int code)
{
	size_t ran = 0;
	struct strvec base = STRVEC_INIT;
	struct exec *ex = NULL;
	char num[32];
	char *sum = redact_str(red(n), summary);

	push_env(&base, "RUNBOOK_EVENT", ev_name);
	push_env(&base, "RUNBOOK_STATUS", status);
	push_env(&base, "RUNBOOK_CHANGE", n->ch->id);
	push_env(&base, "RUNBOOK_RUNBOOK", n->rb->name.s);
	push_env(&base, "RUNBOOK_TARGET", n->target);
	snprintf(num, sizeof(num), "%zu", n->n_hosts);
	push_env(&base, "RUNBOOK_HOSTS", num);
	push_env(&base, "RUNBOOK_COMMIT", n->ch->note_oid);
	push_env(&base, "RUNBOOK_SUMMARY", sum);
	if (code >= 0) {
		snprintf(num, sizeof(num), "%d", code);
		push_env(&base, "RUNBOOK_EXIT_CODE", num);
	}
	for (size_t i = 0; i < n->rb->n_notify; i++) {
		const struct notify_spec *ns = &n->rb->notify[i];
		struct exec_result res = { 0 };
		struct buf msg = BUF_INIT, name = BUF_INIT;
		struct rec_event *e;
		const char *result;
		char *m;

		if (!(ns->on & bit) || !ns->run.s)
			continue;
		if (!ex)
			ex = exec_local_new();
		ran++;
		if (ns->name.s)
			buf_addf(&name, "%s (%s)", ns->name.s, ev_name);
		else
			buf_addf(&name, "notify[%zu] (%s)", i, ev_name);
		result = run_one(n, ns, &base, ex, &res, &msg);
		m = msg.len ? redact_str(red(n), buf_str(&msg)) : NULL;
		e = change_add_event(n->ch, "notify", NULL, PHASE_STEPS,
				     buf_str(&name), result);
		e->exit_code = res.end == EXEC_EXITED ? res.exit_code : -1;
		e->duration_ms = res.duration_ms;
		e->message = m;
		if (m) {
			struct buf line = BUF_INIT;

			buf_addf(&line, "notify %s %s; recorded in the note, the change's outcome stands",
				 buf_str(&name), m);
			strvec_push_owned(&n->notices, buf_detach(&line));
		}
		buf_release(&msg);
		buf_release(&name);
	}
	exec_close(ex);
	strvec_release(&base);
	free(sum);
	return ran;
}

static unsigned status_bit(enum change_status s)
{
	switch (s) {
	case CHANGE_APPLIED:
		return NOTIFY_ON_APPLIED;
	case CHANGE_FAILED:
		return NOTIFY_ON_FAILED;
	case CHANGE_ROLLED_BACK:
		return NOTIFY_ON_ROLLED_BACK;
	case CHANGE_ROLLBACK_FAILED:
		return NOTIFY_ON_ROLLBACK_FAILED;
	case CHANGE_INTERRUPTED:
		return NOTIFY_ON_INTERRUPTED;
	case CHANGE_REHEARSED:
		return NOTIFY_ON_REHEARSED;
	case CHANGE_APPLIED_WITH_FAILURES:
		/* some hosts failed: who listens for failures hears it too */
		return NOTIFY_ON_APPLIED_WITH_FAILURES | NOTIFY_ON_FAILED;
	default:
		return 0;
	}
}

static int on_event(void *ctx, const struct event *ev, struct rb_error *err)
{
	struct notifier *n = ctx;
	struct buf sum = BUF_INIT;
	struct rb_error e2 = RB_ERROR_INIT;
	const char *status;

	(void)err;	/* a notify never stops the change */
	if (ev->red)
		n->red = ev->red;
	if (ev->type == EV_OPEN && !ev->replay) {
		free(n->target);
		n->target = xstrdup(ev->target ? ev->target : "");
		n->n_hosts = ev->n_hosts;
		buf_addf(&sum, "%s starting on %s (%zu host%s), change %s",
			 n->rb->name.s, n->target, n->n_hosts,
			 n->n_hosts == 1 ? "" : "s", ev->change_id);
		fire(n, NOTIFY_ON_START, "start", "running", buf_str(&sum), -1);
	} else if (ev->type == EV_CLOSE && n->target &&
		   status_bit(ev->status)) {
		status = change_status_name(ev->status);
		buf_addf(&sum, "%s %s on %s", n->rb->name.s, status, n->target);
		if (ev->message && *ev->message) {
			buf_adds(&sum, ": ");
			first_line(&sum, ev->message);
		}
		/* the change is closed: its note takes the outcomes */
		if (fire(n, status_bit(ev->status), status, status,
			 buf_str(&sum), ev->code) && n->renote &&
		    n->renote(n->arg, &e2) < 0)
			strvec_push(&n->notices, e2.msg);
	}
	buf_release(&sum);
	return 0;
}

struct listener notifier_listener(struct notifier *n)
{
	struct listener l = { on_event, n, false,
			      EV_BIT(EV_OPEN) | EV_BIT(EV_CLOSE) };

	return l;
}
