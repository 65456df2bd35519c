/*
 * The apply engine. One struct engine per run; one struct host_run per
 * host with its variables (vars, captures, --var, built-ins) and the
 * list of steps that ran there, in order: that list, walked backwards,
 * is the rollback. Invariant: a step is in the list from the moment it
 * was started, so a step that failed half-way is rolled back too.
 *
 * Output of every command is read once: raw blocks of whole lines (at
 * most 8 MiB) go to the pattern matcher, and a redacted copy feeds the
 * head and tail kept for messages and the live --verbose stream. Memory
 * is bounded whatever the output size.
 */
#include "apply.h"

#include "change.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "diff.h"
#include "error.h"
#include "exec.h"
#include "exec_ssh.h"
#include "sshconfig.h"
#include "hash.h"
#include "json.h"
#include "match.h"
#include "redact.h"
#include "template.h"
#include "vars.h"
#include "sys.h"

#define EXCERPT 4096u
#define BLOCK_MAX (8u << 20)
#define SECRET_FILE_MAX 65536

/* ---- signals: first SIGINT/SIGTERM cancels steps, second rollbacks */

static volatile sig_atomic_t sig_count;
static int cancel_pipe[2] = { -1, -1 };
static int cancel2_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;
	char c = (char)sig;

	sig_count++;
	if (sig_count == 1)
		(void)!write(cancel_pipe[1], &c, 1);
	else
		(void)!write(cancel2_pipe[1], &c, 1);
	errno = saved;
}

static void signals_setup(void)
{
	struct sigaction sa;

	sig_count = 0;
	if (cancel_pipe[0] < 0) {
		(void)!pipe2(cancel_pipe, O_CLOEXEC | O_NONBLOCK);
		(void)!pipe2(cancel2_pipe, O_CLOEXEC | O_NONBLOCK);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void signals_restore(void)
{
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
}

/* ---- the engine ---- */

struct step_pats {
	struct pattern *out, *err, *not_out, *not_err, *metric;
	struct pattern **cap;
};

struct applied {
	const struct step *s;
	enum step_result result;	/* of the step */
	enum step_result rb_result;	/* of its rollback */
	char *rb_exec, *rb_display;	/* NULL if it could not be rendered */
	char *rb_record;		/* secrets as {{ secrets.NAME }} */
	char *rb_error;
	bool masked;		/* replay: the record's rollback was redacted */
	bool rb_masked;		/* rb_record differs from what runs: redacted */
};

/* What one preflight command showed, for rehearse. */
struct snap {
	bool taken;
	enum step_result result;
	int exit_code;
	struct buf out;		/* redacted stdout, the first SNAP_MAX bytes */
	unsigned long long total;	/* redacted bytes in all */
	uint32_t crc;		/* of all of them */
	struct strvec caps;	/* "name = value", redacted */
};

#define SNAP_MAX (1u << 20)

struct host_run {
	const struct host *h;
	struct snap *snap[2];	/* rehearse: baseline, after the rollback */
	struct snap *keep;	/* where the running command's stdout goes */
	struct exec *ex;	/* the host's executor (SSH or local) */
	struct exec *local_ex;	/* for `local: true` steps on a remote host */
	struct varset vars;
	struct applied *ap;
	size_t n_ap, cap_ap;
	size_t changed_order;	/* 0: unchanged; else order of first change */
	bool rollback_failed;
};

struct secret_val {
	const char *name;
	char *value;
	size_t len;
};

struct engine {
	const struct runbook *rb;
	const struct apply_opts *o;
	char change_id[128];
	struct redactor *red;
	struct secret_val *secrets;
	size_t n_secrets;
	struct strvec unset;	/* secret sources removed from commands' env */
	struct step_pats *pats[PHASE_COUNT];
	struct host_run *hosts;
	size_t n_hosts;
	size_t n_changed;
	bool failed;
	bool interrupted;
	bool metrics_after;	/* the metrics phase now running is "after" */
	int snap_pass;		/* rehearse: 0 baseline, 1 after the rollback */
	/*
	 * Hosts of a batch run on worker threads. mu serialises what they
	 * share: output, the journal hook, the failure state, counters.
	 */
	pthread_mutex_t mu;
	pthread_mutex_t jmu;	/* the journal hook: one writer at a time */
	size_t per;		/* hosts per batch */
	bool checking;		/* rehearse: failures are mismatches */
	struct buf mismatch;	/* rehearse: preflights that failed on the check */
	struct buf fail_msg;	/* what failed first, redacted */
	bool tty;
	int host_w, name_w;	/* column widths of progress lines */
	bool live_shown;
	unsigned long long live_start;
	const char *live_what;
	const char *live_host;
	const char *live_name;
};

/* ---- output: progress lines, live line, JSON events ---- */

static const char *color(const struct engine *E, const char *code)
{
	return E->o->color ? code : "";
}

static void live_clear(struct engine *E)
{
	if (E->live_shown) {
		fputs("\r\033[K", stderr);
		E->live_shown = false;
	}
}

static void live_set(struct engine *E, const char *what, const char *host,
		     const char *name)
{
	pthread_mutex_lock(&E->mu);
	E->live_what = what;
	E->live_host = host;
	E->live_name = name;
	E->live_start = sys_now_ms();
	pthread_mutex_unlock(&E->mu);
}

static void live_tick(void *ctx)
{
	struct engine *E = *(struct engine **)ctx;	/* struct cmd_cap starts with it */
	double secs;

	pthread_mutex_lock(&E->mu);
	if (!E->tty || E->o->quiet || E->o->verbose || !E->live_what ||
	    E->per > 1) {
		pthread_mutex_unlock(&E->mu);
		return;
	}
	secs = (double)(sys_now_ms() - E->live_start) / 1000.0;
	fprintf(stderr, "\r\033[K  %-8s %-9s %-*s %-*s %5.1fs", "...",
		E->live_what, E->host_w, E->live_host, E->name_w, E->live_name,
		secs);
	fflush(stderr);
	E->live_shown = true;
	pthread_mutex_unlock(&E->mu);
}

/* Prints one redacted line to stderr (progress); not with --quiet. */
static void say(struct engine *E, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void say(struct engine *E, const char *fmt, ...)
{
	struct buf raw = BUF_INIT, red = BUF_INIT;
	va_list ap;

	if (E->o->quiet)
		return;
	va_start(ap, fmt);
	buf_vaddf(&raw, fmt, ap);
	va_end(ap);
	redact_append(E->red, &red, raw.data ? raw.data : "", raw.len);
	pthread_mutex_lock(&E->mu);
	live_clear(E);
	fputs(buf_str(&red), stderr);
	fflush(stderr);
	pthread_mutex_unlock(&E->mu);
	buf_release(&raw);
	buf_release(&red);
}

/* "key": value, the value redacted before it is encoded */
static void jkv(const struct engine *E, struct buf *b, const char *key,
		const char *value)
{
	char *red = redact_str(E->red, value);

	json_kv(b, key, red, 0);
	free(red);
}

/* One event line; every string in fields was added with jkv(). */
static void json_event(struct engine *E, const char *event, struct buf *fields)
{
	struct buf line = BUF_INIT;
	char t[40];

	if (!E->o->json)
		return;
	sys_now_utc(t);
	buf_adds(&line, "{");
	json_kv(&line, "event", event, 1);
	json_kv(&line, "change", E->change_id, 0);
	json_kv(&line, "time", t, 0);
	if (fields && fields->len)
		buf_add(&line, fields->data, fields->len);
	buf_adds(&line, "}\n");
	pthread_mutex_lock(&E->mu);
	fputs(buf_str(&line), stdout);
	fflush(stdout);
	pthread_mutex_unlock(&E->mu);
	buf_release(&line);
}

static int hook(struct engine *E, struct journal_event *ev)
{
	struct rb_error err = RB_ERROR_INIT;
	int rc;

	if (!E->o->hooks.event)
		return 0;
	ev->change_id = E->change_id;
	ev->red = E->red;
	/* not under mu: an fsync must not hold up other hosts' output */
	pthread_mutex_lock(&E->jmu);
	rc = E->o->hooks.event(E->o->hooks.ctx, ev, &err);
	pthread_mutex_unlock(&E->jmu);
	if (rc < 0) {
		pthread_mutex_lock(&E->mu);
		if (!E->failed) {
			E->failed = true;
			buf_addf(&E->fail_msg, "cannot record the change: %s",
				 err.msg);
		}
		pthread_mutex_unlock(&E->mu);
		return -1;
	}
	return 0;
}

/* ---- secrets ---- */

static int load_secret_file(const struct secret *s, struct secret_val *v,
			    struct rb_error *err)
{
	struct buf data = BUF_INIT;
	struct stat st;
	int fd = open(s->from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int ret = -1;

	if (fd < 0) {
		rb_error_errno(err, RB_ERR_INVALID,
			       "secret %s: expected a readable file '%s'; nothing was run, fix it and run again",
			       s->name, s->from);
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rb_error_set(err, RB_ERR_INVALID,
			     "secret %s: expected a regular file '%s'; nothing was run",
			     s->name, s->from);
		goto out;
	}
	if (st.st_mode & S_IROTH) {
		rb_error_set(err, RB_ERR_INVALID,
			     "secret %s: expected a file only its owner can read, found '%s' readable by everyone (run chmod o-r on it); nothing was run",
			     s->name, s->from);
		goto out;
	}
	for (;;) {
		ssize_t r;

		buf_grow(&data, 4096);
		r = read(fd, data.data + data.len, 4096);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rb_error_errno(err, RB_ERR_INVALID,
				       "secret %s: cannot read '%s'; nothing was run",
				       s->name, s->from);
			goto out;
		}
		if (r == 0)
			break;
		data.len += (size_t)r;
		data.data[data.len] = '\0';
		if (data.len > SECRET_FILE_MAX) {
			rb_error_set(err, RB_ERR_INVALID,
				     "secret %s: expected at most 64 KiB in '%s'; nothing was run",
				     s->name, s->from);
			goto out;
		}
	}
	/* one trailing newline is the file's, not the secret's */
	if (data.len && data.data[data.len - 1] == '\n')
		data.data[--data.len] = '\0';
	if (data.len && data.data[data.len - 1] == '\r')
		data.data[--data.len] = '\0';
	if (strlen(buf_str(&data)) != data.len) {
		rb_error_set(err, RB_ERR_INVALID,
			     "secret %s: expected text, found a NUL byte in '%s'; nothing was run",
			     s->name, s->from);
		goto out;
	}
	v->len = data.len;
	v->value = buf_detach(&data);
	ret = 0;
out:
	if (data.data)
		explicit_bzero(data.data, data.cap);
	buf_release(&data);
	close(fd);
	return ret;
}

static int load_secrets(struct engine *E, struct rb_error *err)
{
	const struct runbook *rb = E->rb;

	E->secrets = xcalloc(rb->n_secrets ? rb->n_secrets : 1,
			     sizeof(*E->secrets));
	for (size_t i = 0; i < rb->n_secrets; i++) {
		const struct secret *s = &rb->secrets[i];
		struct secret_val *v = &E->secrets[i];

		v->name = s->name;
		if (s->source == SECRET_ENV) {
			const char *val = getenv(s->from);

			if (!val) {
				rb_error_set(err, RB_ERR_INVALID,
					     "secret %s: expected environment variable %s to be set, found it unset; nothing was run, set it and run again",
					     s->name, s->from);
				return -1;
			}
			v->value = xstrdup(val);
			v->len = strlen(val);
			strvec_push(&E->unset, s->from);
		} else if (load_secret_file(s, v, err) < 0) {
			return -1;
		}
		E->n_secrets = i + 1;
		redactor_add_secret(E->red, s->name, v->value);
	}
	return 0;
}

static void free_secrets(struct engine *E)
{
	for (size_t i = 0; i < E->n_secrets; i++) {
		if (E->secrets[i].value) {
			explicit_bzero(E->secrets[i].value, E->secrets[i].len);
			free(E->secrets[i].value);
		}
	}
	free(E->secrets);
}

/* ---- rendering ---- */

struct lookup_ctx {
	struct engine *E;
	struct host_run *H;
};

static const char *lookup(void *ctx, const char *name)
{
	struct lookup_ctx *lc = ctx;

	if (strncmp(name, "secrets.", 8) == 0) {
		for (size_t i = 0; i < lc->E->n_secrets; i++)
			if (strcmp(lc->E->secrets[i].name, name + 8) == 0)
				return lc->E->secrets[i].value;
		return NULL;
	}
	return varset_get(&lc->H->vars, name);
}

/*
 * Renders tpl for execution (*exec, with secrets; may be NULL), for
 * display (*display, masked) and for the record (*record, secrets kept
 * as {{ secrets.NAME }}; may be NULL), the last two redacted. Returns
 * 0, or -1 with err.
 */
static int render3m(struct engine *E, struct host_run *H, const char *tpl,
		    enum tpl_mode mode, char **exec, char **display,
		    char **record, bool *masked, struct rb_error *err)
{
	struct lookup_ctx lc = { E, H };
	struct buf x = BUF_INIT, d = BUF_INIT, r = BUF_INIT;
	int ret = -1;

	if ((exec && tpl_render(tpl, mode, TPL_SECRET_RESOLVE, lookup, &lc,
				&x, err) < 0) ||
	    tpl_render(tpl, mode, TPL_SECRET_MASK, lookup, &lc, &d, err) < 0 ||
	    (record && tpl_render(tpl, mode, TPL_SECRET_KEEP, lookup, &lc,
				  &r, err) < 0))
		goto out;
	if (exec)
		*exec = buf_detach(&x);
	*display = redact_str(E->red, buf_str(&d));
	if (record) {
		*record = redact_str(E->red, buf_str(&r));
		if (masked)
			*masked = strcmp(*record, buf_str(&r)) != 0;
	}
	ret = 0;
out:
	if (x.data)
		explicit_bzero(x.data, x.len);
	buf_release(&x);
	buf_release(&d);
	buf_release(&r);
	return ret;
}

static int render3(struct engine *E, struct host_run *H, const char *tpl,
		   enum tpl_mode mode, char **exec, char **display,
		   char **record, struct rb_error *err)
{
	return render3m(E, H, tpl, mode, exec, display, record, NULL, err);
}

static int render(struct engine *E, struct host_run *H, const char *tpl,
		  enum tpl_mode mode, char **exec, char **display,
		  struct rb_error *err)
{
	return render3(E, H, tpl, mode, exec, display, NULL, err);
}

static void free_exec(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* ---- one command's output ---- */

struct stream_cap {
	struct buf block;	/* raw, whole lines, for patterns */
	struct buf head;	/* redacted, first EXCERPT bytes */
	struct buf tail;	/* redacted, last bytes (<= 2 * EXCERPT) */
	unsigned long long total;	/* raw bytes read */
	unsigned long long emitted;	/* redacted bytes seen by the tail */
	struct redact_stream *rs;
	bool line_start;	/* for --verbose prefixes */
	struct snap *keep;	/* stdout only: rehearse keeps it */
};

struct cmd_cap {
	struct engine *E;	/* first: live_tick reads it */
	const char *host;
	bool in_rollback;
	const struct step *s;
	const struct step_pats *p;
	bool check;		/* apply expect and capture */
	struct stream_cap st[2];
	bool out_ok, err_ok, not_out_hit, not_err_hit;
	char **cap_vals;
	char *metric_val;
	bool pattern_failed;
	struct rb_error perr;
};

static void cap_emit(struct stream_cap *sc, struct cmd_cap *c,
		     const char *data, size_t len)
{
	if (sc->keep) {
		struct snap *k = sc->keep;

		if (k->out.len < SNAP_MAX)
			buf_add(&k->out, data, len < SNAP_MAX - k->out.len ?
					  len : SNAP_MAX - k->out.len);
		k->total += len;
		k->crc = crc32c(k->crc, data, len);
	}
	if (sc->head.len < EXCERPT) {
		size_t n = EXCERPT - sc->head.len;

		buf_add(&sc->head, data, len < n ? len : n);
	}
	buf_add(&sc->tail, data, len);
	sc->emitted += len;
	if (sc->tail.len > 2 * EXCERPT) {
		memmove(sc->tail.data, sc->tail.data + sc->tail.len - EXCERPT,
			EXCERPT);
		sc->tail.len = EXCERPT;
		sc->tail.data[EXCERPT] = '\0';
	}
	if (c->E->o->verbose && !c->E->o->quiet) {
		pthread_mutex_lock(&c->E->mu);
		live_clear(c->E);
		for (size_t i = 0; i < len; i++) {
			if (sc->line_start)
				fprintf(stderr, "    %s| ",
					sc == &c->st[0] ? " " : "!");
			fputc(data[i], stderr);
			sc->line_start = data[i] == '\n';
		}
		fflush(stderr);
		pthread_mutex_unlock(&c->E->mu);
	}
}

static void emit_out(void *ctx, const char *data, size_t len)
{
	struct cmd_cap *c = ctx;

	cap_emit(&c->st[0], c, data, len);
}

static void emit_err(void *ctx, const char *data, size_t len)
{
	struct cmd_cap *c = ctx;

	cap_emit(&c->st[1], c, data, len);
}

/* Matches one block of whole lines of stream i against what is still open. */
static void match_block(struct cmd_cap *c, int i, const char *data, size_t len)
{
	const struct step_pats *p = c->p;
	struct pattern *pos = i == 0 ? p->out : p->err;
	struct pattern *neg = i == 0 ? p->not_out : p->not_err;
	bool *pos_ok = i == 0 ? &c->out_ok : &c->err_ok;
	bool *neg_hit = i == 0 ? &c->not_out_hit : &c->not_err_hit;
	int r;

	if (!c->check || c->pattern_failed)
		return;
#define TRY(expr) do { r = (expr); if (r < 0) { c->pattern_failed = true; return; } } while (0)
	if (pos && !*pos_ok) {
		TRY(pattern_match(pos, data, len, NULL, &c->perr));
		*pos_ok = r == 1;
	}
	if (neg && !*neg_hit) {
		TRY(pattern_match(neg, data, len, NULL, &c->perr));
		*neg_hit = r == 1;
	}
	if (i != 0)
		return;
	for (size_t k = 0; k < c->s->n_capture; k++) {
		if (c->cap_vals[k])
			continue;
		TRY(pattern_match(p->cap[k], data, len, &c->cap_vals[k],
				  &c->perr));
	}
	if (p->metric && !c->metric_val)
		TRY(pattern_match(p->metric, data, len, &c->metric_val,
				  &c->perr));
#undef TRY
}

static void cap_output(void *ctx, enum exec_stream s, const char *data,
		       size_t len)
{
	struct cmd_cap *c = ctx;
	int i = s == EXEC_STDOUT ? 0 : 1;
	struct stream_cap *sc = &c->st[i];

	sc->total += len;
	redact_stream_feed(sc->rs, data, len);
	if (!c->check)
		return;
	buf_add(&sc->block, data, len);
	if (sc->block.len > BLOCK_MAX) {
		char *nl = memrchr(sc->block.data, '\n', sc->block.len);
		size_t cut = nl ? (size_t)(nl - sc->block.data) + 1 : BLOCK_MAX;

		match_block(c, i, sc->block.data, cut);
		memmove(sc->block.data, sc->block.data + cut,
			sc->block.len - cut);
		sc->block.len -= cut;
		sc->block.data[sc->block.len] = '\0';
	}
}

static void cap_init(struct cmd_cap *c, struct engine *E, struct host_run *H,
		     const struct step *s, const struct step_pats *p,
		     bool check)
{
	const char *host = H->h->spec;

	memset(c, 0, sizeof(*c));
	c->E = E;
	c->host = host;
	c->s = s;
	c->p = p;
	c->check = check;
	c->cap_vals = xcalloc(s->n_capture ? s->n_capture : 1, sizeof(char *));
	c->st[0].rs = redact_stream_new(E->red, emit_out, c);
	c->st[1].rs = redact_stream_new(E->red, emit_err, c);
	c->st[0].line_start = c->st[1].line_start = true;
	if (H->keep) {
		struct snap *k = H->keep;

		/* a retry starts the record again */
		buf_reset(&k->out);
		k->total = 0;
		k->crc = 0;
		c->st[0].keep = k;
	}
}

static void cap_finish(struct cmd_cap *c)
{
	for (int i = 0; i < 2; i++) {
		redact_stream_flush(c->st[i].rs);
		if (c->st[i].block.len)
			match_block(c, i, c->st[i].block.data,
				    c->st[i].block.len);
		buf_release(&c->st[i].block);
		if (c->E->o->verbose && !c->E->o->quiet &&
		    !c->st[i].line_start)
			fputc('\n', stderr);
	}
}

static void cap_release(struct cmd_cap *c)
{
	for (int i = 0; i < 2; i++) {
		redact_stream_free(c->st[i].rs);
		buf_release(&c->st[i].block);
		buf_release(&c->st[i].head);
		buf_release(&c->st[i].tail);
	}
	for (size_t k = 0; c->cap_vals && k < c->s->n_capture; k++)
		free(c->cap_vals[k]);
	free(c->cap_vals);
	free(c->metric_val);
}

/*
 * Head and tail of both streams for the note: up to 1 KiB from the start
 * and 1 KiB from the end of each (redacted already).
 */
static char *cap_output_text(const struct cmd_cap *c)
{
	struct buf b = BUF_INIT;

	for (int i = 0; i < 2; i++) {
		const struct stream_cap *sc = &c->st[i];
		size_t head = sc->head.len < 1024 ? sc->head.len : 1024;

		if (!sc->emitted)
			continue;
		if (i == 1)
			buf_adds(&b, "--- stderr ---\n");
		if (sc->emitted <= 2048 && sc->emitted == sc->tail.len) {
			buf_add(&b, sc->tail.data, sc->tail.len);
		} else {
			size_t t = sc->tail.len < 1024 ? sc->tail.len : 1024;
			const char *tp = sc->tail.data + sc->tail.len - t;

			/* do not split a UTF-8 sequence */
			while (t && ((unsigned char)*tp & 0xc0) == 0x80) {
				tp++;
				t--;
			}
			while (head && head < sc->head.len &&
			       ((unsigned char)sc->head.data[head] & 0xc0) == 0x80)
				head--;
			buf_add(&b, sc->head.data, head);
			buf_addf(&b, "\n[... %llu bytes in all ...]\n",
				 sc->emitted);
			buf_add(&b, tp, t);
		}
		if (b.len && b.data[b.len - 1] != '\n')
			buf_addc(&b, '\n');
	}
	return buf_detach(&b);
}

/* The last lines of a stream, for messages: at most 3 lines / 300 bytes. */
static void excerpt(struct buf *out, const struct stream_cap *sc)
{
	const char *t = buf_str(&sc->tail);
	size_t len = sc->tail.len, start;
	int lines = 0;

	while (len && (t[len - 1] == '\n' || t[len - 1] == '\r'))
		len--;
	if (!len) {
		buf_adds(out, "(nothing)");
		return;
	}
	start = len;
	while (start > 0 && len - start < 300) {
		if (t[start - 1] == '\n' && ++lines == 3)
			break;
		start--;
	}
	/* do not start inside a UTF-8 sequence */
	while (start < len && ((unsigned char)t[start] & 0xc0) == 0x80)
		start++;
	if (start > 0 || sc->emitted > sc->tail.len)
		buf_adds(out, "...");
	for (size_t i = start; i < len; i++) {
		unsigned char ch = (unsigned char)t[i];

		if (ch == '\n')
			buf_adds(out, " | ");
		else if (ch < 0x20 || ch == 0x7f)
			buf_addf(out, "\\x%02x", ch);
		else
			buf_addc(out, (char)ch);
	}
}

/* ---- running one command ---- */

struct outcome {
	enum step_result result;
	bool started;		/* the command ran at all */
	int exit_code;
	unsigned long long ms;
	struct buf why;		/* redacted: expected ..., found ... */
	bool cancelled;
	char **cap_vals;	/* taken from the capture on success */
	char *metric_val;
	char *output;		/* redacted head and tail, for the record */
};

static void outcome_release(struct outcome *o, size_t n_cap)
{
	buf_release(&o->why);
	if (o->cap_vals)
		for (size_t k = 0; k < n_cap; k++)
			free(o->cap_vals[k]);
	free(o->cap_vals);
	free(o->metric_val);
	free(o->output);
	memset(o, 0, sizeof(*o));
}

static bool exit_expected(const struct step *s, int code)
{
	for (size_t i = 0; i < s->expect.n_exit; i++)
		if (s->expect.exit_codes[i] == code)
			return true;
	return false;
}

static void exit_list(struct buf *b, const struct step *s)
{
	for (size_t i = 0; i < s->expect.n_exit; i++)
		buf_addf(b, "%s%d", i ? (i + 1 == s->expect.n_exit ? " or " : ", ") : "",
			 s->expect.exit_codes[i]);
}

/*
 * Runs one command and judges it. check: apply the step's expect and
 * capture (run commands); otherwise exit 0 is success (rollback,
 * skip_if judge their own way). cancel_fd: which signal pipe stops it.
 */
static int hook(struct engine *E, struct journal_event *ev);

/* The process group is recorded so recovery can stop it if we die. */
static void cap_started(void *ctx, long pid, unsigned long long start_time)
{
	struct cmd_cap *c = ctx;
	struct journal_event ev = { 0 };

	ev.type = JEV_PID;
	ev.host = c->host;
	ev.phase = c->s->phase;
	ev.index = c->s->index;
	ev.name = c->s->name.s;
	ev.pid = pid;
	ev.start_time = start_time;
	ev.in_rollback = c->in_rollback;
	hook(c->E, &ev);
}

static void run_cmd(struct engine *E, struct host_run *H, const struct step *s,
		    const struct step_pats *p, const char *cmd, bool check,
		    int cancel_fd, struct outcome *o)
{
	struct strvec env = STRVEC_INIT;
	struct cmd_cap c;
	struct exec_result r = { 0 };
	struct rb_error err = RB_ERROR_INIT;
	struct exec_sink sink = { cap_output, NULL, cap_started, NULL };
	char *dir = NULL, *dir_disp = NULL;
	struct exec_cmd ec;
	char tmo[32];

	memset(o, 0, sizeof(*o));
	o->exit_code = -1;
	o->result = RES_FAILED;
	cap_init(&c, E, H, s, p, check);
	c.in_rollback = cancel_fd == cancel2_pipe[0];
	sink.ctx = &c;
	if (E->tty && !E->o->quiet && !E->o->verbose)
		sink.tick = live_tick;

	for (size_t i = 0; i < s->n_env; i++) {
		char *val = NULL, *disp = NULL;

		if (render(E, H, s->env[i].val, TPL_RAW, &val, &disp, &err) < 0) {
			buf_addf(&o->why, "env %s: %s", s->env[i].key, err.msg);
			goto out;
		}
		{
			struct buf kv = BUF_INIT;

			buf_addf(&kv, "%s=%s", s->env[i].key, val);
			strvec_push_owned(&env, buf_detach(&kv));
		}
		free_exec(val);
		free(disp);
	}
	{
		struct buf kv = BUF_INIT;

		buf_addf(&kv, "RUNBOOK_CHANGE_ID=%s", E->change_id);
		strvec_push_owned(&env, buf_detach(&kv));
		buf_addf(&kv, "RUNBOOK_HOST=%s", H->h->spec);
		strvec_push_owned(&env, buf_detach(&kv));
		buf_addf(&kv, "RUNBOOK_TARGET=%s", E->o->target->name);
		strvec_push_owned(&env, buf_detach(&kv));
		buf_addf(&kv, "RUNBOOK_STEP=%s", s->name.s);
		strvec_push_owned(&env, buf_detach(&kv));
	}
	if (s->dir.s && render(E, H, s->dir.s, TPL_RAW, &dir, &dir_disp,
			       &err) < 0) {
		buf_addf(&o->why, "dir: %s", err.msg);
		goto out;
	}
	ec.command = cmd;
	ec.env = env.v;
	ec.unset = E->unset.v;
	ec.dir = dir;
	ec.timeout_ms = s->timeout_ms;
	ec.cancel_fd = cancel_fd;
	if (exec_run(s->local && H->local_ex ? H->local_ex : H->ex, &ec, &sink,
		     &r, &err) < 0) {
		cap_finish(&c);
		buf_addf(&o->why, "expected the command to start, found: %s",
			 err.msg);
		goto out;
	}
	o->started = true;
	cap_finish(&c);
	o->ms = r.duration_ms;
	o->exit_code = r.exit_code;
	format_duration(s->timeout_ms, tmo);
	switch (r.end) {
	case EXEC_TIMED_OUT:
		o->result = RES_TIMEOUT;
		if (r.why[0])
			buf_addf(&o->why, "expected it to finish within %s, found it still running; %s",
				 tmo, r.why);
		else
			buf_addf(&o->why, "expected it to finish within %s, found it still running; stopped it (its process group got SIGTERM, then SIGKILL)",
				 tmo);
		goto out;
	case EXEC_CANCELLED:
		o->cancelled = true;
		buf_addf(&o->why, "interrupted by a signal; %s",
			 r.why[0] ? r.why : "stopped it");
		goto out;
	case EXEC_LOST:
		buf_addf(&o->why, "expected the command to finish, found: %s",
			 r.why);
		goto out;
	case EXEC_SIGNALED:
		buf_addf(&o->why, "expected exit ");
		exit_list(&o->why, s);
		buf_addf(&o->why, ", found killed by signal %d (%s)", r.signal,
			 strsignal(r.signal));
		goto out;
	case EXEC_EXITED:
		break;
	}
	if (!check) {
		if (r.exit_code == 0)
			o->result = RES_OK;
		else {
			buf_addf(&o->why, "expected exit 0, found exit %d; stderr: ",
				 r.exit_code);
			excerpt(&o->why, &c.st[1]);
		}
		goto out;
	}
	if (c.pattern_failed) {
		buf_adds(&o->why, c.perr.msg);
		goto out;
	}
	if (!exit_expected(s, r.exit_code)) {
		buf_adds(&o->why, "expected exit ");
		exit_list(&o->why, s);
		buf_addf(&o->why, ", found exit %d", r.exit_code);
		if (r.exit_code > 128 && r.exit_code < 128 + 65)
			buf_addf(&o->why, " (a shell's code for a command killed by signal %d, %s)",
				 r.exit_code - 128, strsignal(r.exit_code - 128));
		buf_adds(&o->why, "; stderr: ");
		excerpt(&o->why, &c.st[1]);
		if (c.st[1].tail.len == 0) {
			buf_adds(&o->why, "; stdout: ");
			excerpt(&o->why, &c.st[0]);
		}
		goto out;
	}
#define PAT_FAIL(pat, stream, fmt) do { \
		buf_addf(&o->why, fmt, pattern_source(pat)); \
		excerpt(&o->why, &c.st[stream]); goto out; } while (0)
	if (p->out && !c.out_ok)
		PAT_FAIL(p->out, 0, "expected stdout to match '%s', found no match; stdout: ");
	if (p->err && !c.err_ok)
		PAT_FAIL(p->err, 1, "expected stderr to match '%s', found no match; stderr: ");
	if (p->not_out && c.not_out_hit)
		PAT_FAIL(p->not_out, 0, "expected stdout not to match '%s', found a match; stdout: ");
	if (p->not_err && c.not_err_hit)
		PAT_FAIL(p->not_err, 1, "expected stderr not to match '%s', found a match; stderr: ");
#undef PAT_FAIL
	for (size_t k = 0; k < s->n_capture; k++) {
		if (!c.cap_vals[k]) {
			buf_addf(&o->why, "expected stdout to match capture %s '%s', found no match; stdout: ",
				 s->capture[k].key, pattern_source(p->cap[k]));
			excerpt(&o->why, &c.st[0]);
			goto out;
		}
	}
	if (p->metric && !c.metric_val) {
		buf_addf(&o->why, "expected stdout to match '%s', found no match; stdout: ",
			 pattern_source(p->metric));
		excerpt(&o->why, &c.st[0]);
		goto out;
	}
	o->result = RES_OK;
	o->cap_vals = c.cap_vals;
	c.cap_vals = NULL;
	o->metric_val = c.metric_val;
	c.metric_val = NULL;
out:
	o->output = cap_output_text(&c);
	cap_release(&c);
	strvec_release(&env);
	free_exec(dir);
	free(dir_disp);
	{
		/* whatever a message quotes goes through the redactor */
		char *red = redact_str(E->red, buf_str(&o->why));

		buf_reset(&o->why);
		buf_adds(&o->why, red);
		free(red);
	}
}

/* ---- steps, phases, rollback ---- */

static void progress(struct engine *E, enum step_result res, const char *what,
		     const char *host, const char *name, unsigned long long ms,
		     const char *why)
{
	const char *mark, *col;
	char dur[32];

	switch (res) {
	case RES_OK:
	case RES_ROLLED_BACK:
		mark = "ok";
		col = "\033[32m";
		break;
	case RES_SKIPPED:
		mark = "skipped";
		col = "\033[33m";
		break;
	case RES_NOT_RUN:
		mark = "-";
		col = "";
		break;
	default:
		mark = res == RES_TIMEOUT ? "TIMEOUT" : "FAILED";
		col = "\033[1;31m";
		break;
	}
	format_duration((unsigned)ms, dur);
	pthread_mutex_lock(&E->mu);	/* both lines together */
	say(E, "  %s%-8s%s %-9s %-*s %-*s %6s\n", color(E, col), mark,
	    color(E, *col ? "\033[0m" : ""), what, E->host_w, host,
	    E->name_w, name, dur);
	if (why && *why)
		say(E, "           %s\n", why);
	pthread_mutex_unlock(&E->mu);
}

static void event_fields(const struct engine *E, struct buf *f,
			 const char *host, const struct step *s,
			 const char *what, const char *result, int exit_code,
			 unsigned long long ms, const char *command,
			 const char *why)
{
	jkv(E, f, "host", host);
	jkv(E, f, "phase", what);
	jkv(E, f, "name", s->name.s);
	jkv(E, f, "result", result);
	if (exit_code >= 0)
		buf_addf(f, ",\"exit\":%d", exit_code);
	buf_addf(f, ",\"duration_ms\":%llu", ms);
	if (command)
		jkv(E, f, "command", command);
	if (why && *why)
		jkv(E, f, "message", why);
}

static void fail(struct engine *E, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void fail(struct engine *E, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&E->mu);
	if (!E->failed) {
		E->failed = true;
		va_start(ap, fmt);
		buf_vaddf(&E->fail_msg, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&E->mu);
}

/* Sleeps ms unless the first signal arrives; false if it did. */
static bool pause_ms(unsigned ms)
{
	struct pollfd p = { cancel_pipe[0], POLLIN, 0 };
	unsigned long long end = sys_now_ms() + ms;

	for (;;) {
		unsigned long long now = sys_now_ms();

		if (sig_count)
			return false;
		if (now >= end)
			return true;
		if (poll(&p, 1, (int)(end - now)) > 0)
			return false;
	}
}

static void mark_changed(struct engine *E, struct host_run *H)
{
	pthread_mutex_lock(&E->mu);
	if (!H->changed_order)
		H->changed_order = ++E->n_changed;
	pthread_mutex_unlock(&E->mu);
}

/* Renders a step's rollback now, with the variables in force. */
static void render_rollback(struct engine *E, struct host_run *H,
			    struct applied *a)
{
	struct rb_error err = RB_ERROR_INIT;

	free_exec(a->rb_exec);
	free(a->rb_display);
	free(a->rb_record);
	free(a->rb_error);
	a->rb_exec = a->rb_display = a->rb_record = a->rb_error = NULL;
	if (a->s->rollback_none)
		return;
	if (a->masked) {
		a->rb_error = xstrdup("the recorded rollback contains text a redact pattern masked, so it cannot be replayed as it was; undo it by hand");
		return;
	}
	if (!a->s->rollback.s) {
		/* replay: the record has none (it needed the step's captures) */
		a->rb_error = xstrdup("no rollback command was recorded for this step: it needs values the step had not produced when it stopped; undo it by hand");
		return;
	}
	if (render3m(E, H, a->s->rollback.s, TPL_SHELL, &a->rb_exec,
		     &a->rb_display, &a->rb_record, &a->rb_masked, &err) < 0)
		a->rb_error = redact_str(E->red, err.msg);
}

/* Record forms of a step's env and dir, for the journal. */
static void record_env_dir(struct engine *E, struct host_run *H,
			   const struct step *s, struct strvec *env, char **dir)
{
	struct rb_error err = RB_ERROR_INIT;

	for (size_t i = 0; i < s->n_env; i++) {
		char *disp = NULL, *rec = NULL;
		struct buf kv = BUF_INIT;

		if (render3(E, H, s->env[i].val, TPL_RAW, NULL, &disp, &rec,
			    &err) < 0)
			continue;
		buf_addf(&kv, "%s=%s", s->env[i].key, rec);
		strvec_push_owned(env, buf_detach(&kv));
		free(disp);
		free(rec);
	}
	*dir = NULL;
	if (s->dir.s) {
		char *disp = NULL;

		if (render3(E, H, s->dir.s, TPL_RAW, NULL, &disp, dir, &err) == 0)
			free(disp);
	}
}

/*
 * Runs one step or check on one host: skip_if, then the command with
 * its retries. Returns true if it succeeded (or was skipped).
 */
static bool run_step(struct engine *E, struct host_run *H, const struct step *s)
{
	const struct step_pats *p = &E->pats[s->phase][s->index];
	const char *what = phase_name(s->phase);
	struct journal_event ev = { 0 };
	struct rb_error err = RB_ERROR_INIT;
	struct outcome o = { 0 };
	struct applied *a = NULL;
	char *cmd = NULL, *disp = NULL, *rec = NULL, *rec_dir = NULL;
	char *metric_red = NULL;
	struct strvec rec_env = STRVEC_INIT;
	bool ok = false, started = false;

	if (E->failed || sig_count)
		return false;
	if (render3(E, H, s->run.s, TPL_SHELL, &cmd, &disp, &rec, &err) < 0) {
		char *why = redact_str(E->red, err.msg);

		progress(E, RES_FAILED, what, H->h->spec, s->name.s, 0, why);
		fail(E, "%s '%s' on %s: %s", what, s->name.s, H->h->spec, why);
		free(why);
		return false;
	}
	live_set(E, what, H->h->spec, s->name.s);

	if (s->skip_if.s) {
		char *sk = NULL, *skd = NULL;
		struct step probe = *s;

		if (render(E, H, s->skip_if.s, TPL_SHELL, &sk, &skd, &err) < 0) {
			char *why = redact_str(E->red, err.msg);

			progress(E, RES_FAILED, what, H->h->spec, s->name.s, 0, why);
			fail(E, "%s '%s' on %s: skip_if: %s", what, s->name.s,
			     H->h->spec, why);
			free(why);
			goto out;
		}
		probe.n_capture = 0;
		run_cmd(E, H, &probe, p, sk, false, cancel_pipe[0], &o);
		free_exec(sk);
		free(skd);
		if (o.cancelled || o.result == RES_TIMEOUT ||
		    (o.exit_code < 0 && o.result != RES_OK)) {
			progress(E, o.result == RES_TIMEOUT ? RES_TIMEOUT : RES_FAILED,
				 what, H->h->spec, s->name.s, o.ms, buf_str(&o.why));
			if (o.cancelled)
				E->interrupted = true;
			fail(E, "%s '%s' on %s: skip_if: %s", what, s->name.s,
			     H->h->spec, buf_str(&o.why));
			outcome_release(&o, 0);
			goto out;
		}
		if (o.exit_code == 0) {
			struct buf f = BUF_INIT;

			/* recorded as skipped: never rolled back */
			ev.type = JEV_STEP_BEGIN;
			ev.host = H->h->spec;
			ev.phase = s->phase;
			ev.index = s->index;
			ev.name = s->name.s;
			ev.command = rec;
			ev.rollback_none = s->rollback_none;
			ev.timeout_ms = s->timeout_ms;
			if (hook(E, &ev) < 0)
				goto out;
			ev.type = JEV_STEP_END;
			ev.result = RES_SKIPPED;
			ev.exit_code = -1;
			ev.duration_ms = o.ms;
			if (hook(E, &ev) < 0)
				goto out;
			progress(E, RES_SKIPPED, what, H->h->spec, s->name.s,
				 o.ms, "skip_if exited 0: already done");
			event_fields(E, &f, H->h->spec, s, what, "skipped", -1,
				     o.ms, disp, NULL);
			json_event(E, "step", &f);
			buf_release(&f);
			outcome_release(&o, 0);
			ok = true;
			goto out;
		}
		outcome_release(&o, 0);
	}

	if (s->phase == PHASE_STEPS) {
		/* from here on the step may change the host: roll it back */
		H->ap = xgrow(H->ap, &H->cap_ap, H->n_ap + 1, sizeof(*H->ap));
		a = &H->ap[H->n_ap++];
		memset(a, 0, sizeof(*a));
		a->s = s;
		a->result = RES_NOT_RUN;
		render_rollback(E, H, a);
		mark_changed(E, H);
	}
	ev.type = JEV_STEP_BEGIN;
	ev.host = H->h->spec;
	ev.phase = s->phase;
	ev.index = s->index;
	ev.name = s->name.s;
	ev.command = rec;
	ev.rollback = a ? a->rb_record : NULL;
	ev.rollback_masked = a && a->rb_masked;
	ev.rollback_none = s->rollback_none;
	ev.local = s->local;
	record_env_dir(E, H, s, &rec_env, &rec_dir);
	ev.env = rec_env.v;
	ev.dir = rec_dir;
	ev.timeout_ms = s->timeout_ms;
	if (hook(E, &ev) < 0)
		goto out;

	if (E->o->rehearse && s->phase == PHASE_PREFLIGHT)
		H->keep = &H->snap[E->snap_pass][s->index];
	for (unsigned attempt = 0;; attempt++) {
		run_cmd(E, H, s, p, cmd, true, cancel_pipe[0], &o);
		started |= o.started;
		if (o.result == RES_OK || o.cancelled || attempt >= s->retries)
			break;
		say(E, "  %-8s %-9s %-14s %s  attempt %u of %u: %s\n", "retry",
		    what, H->h->spec, s->name.s, attempt + 1, s->retries + 1,
		    buf_str(&o.why));
		outcome_release(&o, s->n_capture);
		if (!pause_ms(s->retry_delay_ms)) {
			o.cancelled = true;
			o.result = RES_FAILED;
			buf_adds(&o.why, "interrupted by a signal");
			break;
		}
	}
	if (H->keep) {
		H->keep->taken = true;
		H->keep->result = o.result;
		H->keep->exit_code = o.exit_code;
		for (size_t k = 0; o.result == RES_OK && k < s->n_capture; k++) {
			struct buf kv = BUF_INIT;
			char *v = redact_str(E->red, o.cap_vals[k]);

			buf_addf(&kv, "%s = %s", s->capture[k].key, v);
			strvec_push_owned(&H->keep->caps, buf_detach(&kv));
			free(v);
		}
		H->keep = NULL;
	}
	if (o.result == RES_OK && s->n_capture) {
		ev.cap_names = xcalloc(s->n_capture, sizeof(char *));
		ev.cap_values = xcalloc(s->n_capture, sizeof(char *));
		for (size_t k = 0; k < s->n_capture; k++) {
			((char **)ev.cap_names)[k] = s->capture[k].key;
			((char **)ev.cap_values)[k] = redact_str(E->red, o.cap_vals[k]);
		}
		ev.n_caps = s->n_capture;
	}
	if (o.result == RES_OK) {
		/* later wins: --var beats a capture of the same name */
		for (size_t k = 0; k < s->n_capture; k++)
			if (!varset_get(E->o->cli_vars, s->capture[k].key))
				varset_set(&H->vars, s->capture[k].key,
					   o.cap_vals[k]);
		if (a)
			render_rollback(E, H, a);	/* with its own captures */
		ok = true;
	}
	if (o.cancelled)
		E->interrupted = true;
	/* a command that never started changed nothing: no rollback */
	if (a)
		a->result = started ? o.result : RES_NOT_RUN;

	ev.type = JEV_STEP_END;
	ev.result = o.result;
	ev.exit_code = o.exit_code;
	ev.duration_ms = o.ms;
	ev.rollback = a ? a->rb_record : NULL;
	ev.rollback_masked = a && a->rb_masked;
	ev.output = o.output;
	if (s->phase == PHASE_METRICS && o.metric_val) {
		metric_red = redact_str(E->red, o.metric_val);
		ev.metric = metric_red;
		ev.metric_after = E->metrics_after;
	}
	progress(E, o.result, what, H->h->spec, s->name.s, o.ms,
		 ok ? NULL : buf_str(&o.why));
	{
		struct buf f = BUF_INIT;

		event_fields(E, &f, H->h->spec, s, what, step_result_name(o.result),
			     o.exit_code, o.ms, disp, ok ? NULL : buf_str(&o.why));
		if (s->phase == PHASE_METRICS && o.metric_val)
			jkv(E, &f, "value", o.metric_val);
		json_event(E, "step", &f);
		buf_release(&f);
	}
	if (s->phase == PHASE_METRICS && o.metric_val)
		say(E, "           %s = %s\n", s->name.s, o.metric_val);
	hook(E, &ev);
	for (size_t k = 0; k < ev.n_caps; k++)
		free(((char **)ev.cap_values)[k]);
	free((void *)ev.cap_names);
	free((void *)ev.cap_values);
	free(metric_red);
	if (!ok && E->checking)
		buf_addf(&E->mismatch, "%s%s '%s' on %s: %s",
			 E->mismatch.len ? "; " : "", what, s->name.s,
			 H->h->spec, buf_str(&o.why));
	else if (!ok && s->phase != PHASE_METRICS)
		fail(E, "%s '%s' on %s: %s", what, s->name.s, H->h->spec,
		     buf_str(&o.why));
	outcome_release(&o, s->n_capture);
out:
	live_set(E, NULL, NULL, NULL);
	free_exec(cmd);
	free(disp);
	free(rec);
	free(rec_dir);
	strvec_release(&rec_env);
	/* a metric that cannot be measured is reported, never fatal */
	return ok || s->phase == PHASE_METRICS;
}

/* ---- hosts in parallel ---- */

typedef void host_fn(struct engine *E, struct host_run *H, void *arg);

struct pool {
	struct engine *E;
	const size_t *idx;	/* hosts to visit, in this order */
	size_t n, next;
	host_fn *fn;
	void *arg;
};

static bool engine_failed(struct engine *E)
{
	bool f;

	pthread_mutex_lock(&E->mu);
	f = E->failed;
	pthread_mutex_unlock(&E->mu);
	return f;
}

static void *pool_worker(void *arg)
{
	struct pool *P = arg;

	for (;;) {
		size_t i;

		pthread_mutex_lock(&P->E->mu);
		i = P->next++;
		pthread_mutex_unlock(&P->E->mu);
		if (i >= P->n)
			break;
		P->fn(P->E, &P->E->hosts[P->idx[i]], P->arg);
	}
	return NULL;
}

static unsigned forks_of(const struct engine *E);

/*
 * Calls fn for each host of idx, at most --forks at once; each host on
 * one thread from start to end, so its steps stay in order. Returns
 * when all are done.
 */
static void for_hosts(struct engine *E, const size_t *idx, size_t n,
		      host_fn *fn, void *arg)
{
	struct pool P = { E, idx, n, 0, fn, arg };
	size_t nt = n < forks_of(E) ? n : forks_of(E), started = 0;
	pthread_t *th;
	pthread_attr_t attr;

	if (nt <= 1) {
		pool_worker(&P);
		return;
	}
	th = xcalloc(nt, sizeof(*th));
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 1u << 20);
	for (; started < nt; started++)
		if (pthread_create(&th[started], &attr, pool_worker, &P) != 0)
			break;
	pthread_attr_destroy(&attr);
	if (!started)
		pool_worker(&P);	/* no thread to be had: do it here */
	for (size_t k = 0; k < started; k++)
		pthread_join(th[k], NULL);
	free(th);
}

static void phase_host(struct engine *E, struct host_run *H, void *arg)
{
	enum phase ph = *(enum phase *)arg;

	for (size_t i = 0; i < E->rb->n_phase[ph] && !engine_failed(E) &&
	     !sig_count; i++)
		run_step(E, H, &E->rb->phases[ph][i]);
}

static void run_phase(struct engine *E, size_t from, size_t to, enum phase ph)
{
	size_t *idx = xcalloc(to - from + 1, sizeof(*idx));

	for (size_t h = from; h < to; h++)
		idx[h - from] = h;
	if (!engine_failed(E) && !sig_count)
		for_hosts(E, idx, to - from, phase_host, &ph);
	free(idx);
}

/* Rolls back one host, newest step first; stops at its first failure. */
static void rollback_host(struct engine *E, struct host_run *H)
{
	for (size_t i = H->n_ap; i-- > 0;) {
		struct applied *a = &H->ap[i];
		struct journal_event ev = { 0 };
		struct outcome o = { 0 };
		struct buf f = BUF_INIT;

		if (a->result == RES_SKIPPED || a->result == RES_NOT_RUN ||
		    a->rb_result == RES_ROLLED_BACK)
			continue;
		if (a->s->rollback_none) {
			a->rb_result = RES_ROLLED_BACK;
			progress(E, RES_NOT_RUN, "rollback", H->h->spec,
				 a->s->name.s, 0, "rollback: none (nothing to undo)");
			continue;
		}
		if (sig_count >= 2) {
			H->rollback_failed = true;
			a->rb_result = RES_ROLLBACK_FAILED;
			return;
		}
		if (!a->rb_exec) {
			/* the step failed before it produced what its rollback needs */
			render_rollback(E, H, a);
		}
		if (!a->rb_exec) {
			a->rb_result = RES_ROLLBACK_FAILED;
			H->rollback_failed = true;
			progress(E, RES_ROLLBACK_FAILED, "rollback", H->h->spec,
				 a->s->name.s, 0, a->rb_error);
			return;
		}
		ev.type = JEV_ROLLBACK_BEGIN;
		ev.host = H->h->spec;
		ev.phase = PHASE_STEPS;
		ev.index = a->s->index;
		ev.name = a->s->name.s;
		ev.command = a->rb_record;
		hook(E, &ev);
		live_set(E, "rollback", H->h->spec, a->s->name.s);
		run_cmd(E, H, a->s, &E->pats[PHASE_STEPS][a->s->index],
			a->rb_exec, false, cancel2_pipe[0], &o);
		live_set(E, NULL, NULL, NULL);
		a->rb_result = o.result == RES_OK ? RES_ROLLED_BACK :
						    RES_ROLLBACK_FAILED;
		ev.type = JEV_ROLLBACK_END;
		ev.result = a->rb_result;
		ev.exit_code = o.exit_code;
		ev.duration_ms = o.ms;
		hook(E, &ev);
		progress(E, a->rb_result == RES_ROLLED_BACK ? RES_OK : RES_FAILED,
			 "rollback", H->h->spec, a->s->name.s, o.ms,
			 a->rb_result == RES_ROLLED_BACK ? NULL : buf_str(&o.why));
		event_fields(E, &f, H->h->spec, a->s, "rollback",
			     step_result_name(a->rb_result), o.exit_code, o.ms,
			     a->rb_display,
			     a->rb_result == RES_ROLLED_BACK ? NULL : buf_str(&o.why));
		json_event(E, "rollback", &f);
		buf_release(&f);
		outcome_release(&o, 0);
		if (a->rb_result != RES_ROLLED_BACK) {
			H->rollback_failed = true;
			return;
		}
	}
}

static void rollback_one(struct engine *E, struct host_run *H, void *arg)
{
	(void)arg;
	rollback_host(E, H);
}

/* Rolls back every changed host, most recently changed first. */
static bool rollback_all(struct engine *E)
{
	bool ok = true;

	size_t per = E->per ? E->per : 1, *idx;

	if (E->n_changed)
		say(E, "rolling back %zu host%s in reverse order\n",
		    E->n_changed, E->n_changed == 1 ? "" : "s");
	idx = xcalloc(E->n_hosts + 1, sizeof(*idx));
	/* the newest batch first; in a batch the latest changed first */
	for (size_t b = (E->n_hosts + per - 1) / per; b-- > 0;) {
		size_t n = 0, end = (b + 1) * per < E->n_hosts ?
				    (b + 1) * per : E->n_hosts;

		for (size_t k = E->n_changed; k > 0; k--)
			for (size_t h = b * per; h < end; h++)
				if (E->hosts[h].changed_order == k)
					idx[n++] = h;
		for_hosts(E, idx, n, rollback_one, NULL);
		for (size_t i = 0; i < n; i++)
			ok &= !E->hosts[idx[i]].rollback_failed;
	}
	free(idx);
	return ok;
}

/* What was not undone, for the closing message. */
static void pending_list(struct engine *E, struct buf *b)
{
	for (size_t h = 0; h < E->n_hosts; h++) {
		struct host_run *H = &E->hosts[h];

		for (size_t i = H->n_ap; i-- > 0;) {
			struct applied *a = &H->ap[i];

			if (a->result == RES_SKIPPED ||
			    a->result == RES_NOT_RUN ||
			    a->rb_result == RES_ROLLED_BACK)
				continue;
			buf_addf(b, "%s'%s' on %s", b->len ? ", " : "",
				 a->s->name.s, H->h->spec);
		}
	}
}

static int compile_patterns(struct engine *E, struct rb_error *err)
{
	char msg[256];
	size_t off;

#define COMPILE(dst, sv) do { if ((sv).s && !((dst) = pattern_compile((sv).s, msg, sizeof(msg), &off))) { \
		rb_error_set(err, RB_ERR_INVALID, "pattern '%s': %s; nothing was run", (sv).s, msg); return -1; } } while (0)
	for (int ph = 0; ph < PHASE_COUNT; ph++) {
		E->pats[ph] = xcalloc(E->rb->n_phase[ph] + 1, sizeof(struct step_pats));
		for (size_t i = 0; i < E->rb->n_phase[ph]; i++) {
			const struct step *s = &E->rb->phases[ph][i];
			struct step_pats *p = &E->pats[ph][i];

			COMPILE(p->out, s->expect.out);
			COMPILE(p->err, s->expect.err);
			COMPILE(p->not_out, s->expect.not_out);
			COMPILE(p->not_err, s->expect.not_err);
			COMPILE(p->metric, s->pattern);
			p->cap = xcalloc(s->n_capture + 1, sizeof(*p->cap));
			for (size_t k = 0; k < s->n_capture; k++) {
				struct strval sv = { .s = s->capture[k].val };

				COMPILE(p->cap[k], sv);
			}
		}
	}
#undef COMPILE
	return 0;
}

static void free_patterns(struct engine *E)
{
	for (int ph = 0; ph < PHASE_COUNT; ph++) {
		if (!E->pats[ph])
			continue;
		for (size_t i = 0; i < E->rb->n_phase[ph]; i++) {
			struct step_pats *p = &E->pats[ph][i];

			pattern_free(p->out);
			pattern_free(p->err);
			pattern_free(p->not_out);
			pattern_free(p->not_err);
			pattern_free(p->metric);
			for (size_t k = 0; p->cap && k < E->rb->phases[ph][i].n_capture; k++)
				pattern_free(p->cap[k]);
			free(p->cap);
		}
		free(E->pats[ph]);
	}
}

static unsigned forks_of(const struct engine *E)
{
	return E->o->forks ? E->o->forks : 20;
}

static void mutex_init(pthread_mutex_t *mu)
{
	pthread_mutexattr_t a;

	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(mu, &a);
	pthread_mutexattr_destroy(&a);
}

/* The local user name, for SSH hosts that name none. */
static char *local_user(void)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	const char *u = getenv("USER");

	if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 && res)
		return xstrdup(res->pw_name);
	return xstrdup(u && *u ? u : "root");
}

/*
 * Where and how to reach a host: the runbook's user, address and port
 * first, then ~/.ssh/config, then the defaults. Keys after the agent:
 * the host's identity (or its target's), IdentityFile of the config,
 * then ~/.ssh/id_ed25519, id_ecdsa, id_rsa.
 */
struct reach {
	struct ssh_params p;
	struct ssh_host_config cfg;
	struct strvec ids;
	char *user;
};

static int reach_init(struct reach *R, const struct host *h,
		      const char *identity, const char *known_hosts,
		      bool accept_new, struct rb_error *err)
{
	static const char *const defaults[] = { ".ssh/id_ed25519",
						".ssh/id_ecdsa", ".ssh/id_rsa" };

	memset(R, 0, sizeof(*R));
	if (sshconfig_lookup(NULL, h->address, &R->cfg, err) < 0)
		return -1;
	R->user = h->user ? xstrdup(h->user) :
		  R->cfg.user ? xstrdup(R->cfg.user) : local_user();
	if (h->identity || identity)
		strvec_push(&R->ids, h->identity ? h->identity : identity);
	for (size_t i = 0; i < R->cfg.identity_files.n; i++)
		strvec_push(&R->ids, R->cfg.identity_files.v[i]);
	for (size_t i = 0; i < 3; i++)
		strvec_push_owned(&R->ids, sys_home_file(defaults[i]));
	R->p.name = h->spec;
	R->p.address = R->cfg.hostname ? R->cfg.hostname : h->address;
	R->p.port = h->port ? h->port : R->cfg.port ? R->cfg.port : 22;
	R->p.user = R->user;
	R->p.identities = R->ids.v;
	R->p.known_hosts = known_hosts;
	R->p.accept_new = accept_new;
	return 0;
}

static void reach_release(struct reach *R)
{
	sshconfig_release(&R->cfg);
	strvec_release(&R->ids);
	free(R->user);
}

struct connect_ctx {
	const char *identity;	/* the target's */
	const char *known_hosts;
	bool accept_new;
	struct rb_error err;	/* the first failure */
	size_t n_failed;
};

static void connect_one(struct engine *E, struct host_run *H, void *arg)
{
	struct connect_ctx *C = arg;
	struct rb_error err = RB_ERROR_INIT;
	struct reach R;
	int rc;

	if (H->h->local) {
		H->ex = exec_local_new();
		return;
	}
	rc = reach_init(&R, H->h, C->identity, C->known_hosts, C->accept_new,
			&err);
	if (rc == 0)
		rc = exec_ssh_new(&R.p, &H->ex, &err);
	if (rc == 0)
		H->local_ex = exec_local_new();
	if (rc < 0) {
		pthread_mutex_lock(&E->mu);
		if (!C->n_failed++)
			C->err = err;
		pthread_mutex_unlock(&E->mu);
	}
	reach_release(&R);
}

/* Connects every host (in parallel), before anything runs anywhere. */
static int connect_hosts(struct engine *E, const char *identity,
			 const char *known_hosts, bool accept_new,
			 struct rb_error *err)
{
	struct connect_ctx C = { identity, known_hosts, accept_new,
				 RB_ERROR_INIT, 0 };
	size_t *idx = xcalloc(E->n_hosts + 1, sizeof(*idx));

	for (size_t h = 0; h < E->n_hosts; h++)
		idx[h] = h;
	for_hosts(E, idx, E->n_hosts, connect_one, &C);
	free(idx);
	if (!C.n_failed)
		return 0;
	*err = C.err;
	if (C.n_failed > 1) {
		size_t len = strlen(err->msg);

		snprintf(err->msg + len, sizeof(err->msg) - len,
			 " (and %zu more host%s could not be reached)",
			 C.n_failed - 1, C.n_failed == 2 ? "" : "s");
	}
	return -1;
}

/* The hosts' state and variables; connect_hosts() reaches them later. */
static void setup_hosts(struct engine *E)
{
	const struct target *t = E->o->target;

	E->n_hosts = t->n_hosts;
	E->hosts = xcalloc(t->n_hosts, sizeof(*E->hosts));
	for (size_t h = 0; h < t->n_hosts; h++) {
		struct host_run *H = &E->hosts[h];

		H->h = &t->hosts[h];
		if (E->o->rehearse)
			for (int k = 0; k < 2; k++)
				H->snap[k] = xcalloc(E->rb->n_phase[PHASE_PREFLIGHT] + 1,
						     sizeof(struct snap));
		for (size_t i = 0; i < E->rb->n_vars; i++)
			varset_set(&H->vars, E->rb->vars[i].key, E->rb->vars[i].val);
		varset_copy(&H->vars, E->o->cli_vars);
		varset_set(&H->vars, "change.id", E->change_id);
		varset_set(&H->vars, "target", t->name);
		varset_set(&H->vars, "host", H->h->spec);
		varset_set(&H->vars, "runbook.name", E->rb->name.s);
	}
}

static void free_hosts(struct engine *E)
{
	for (size_t h = 0; h < E->n_hosts; h++) {
		struct host_run *H = &E->hosts[h];

		exec_close(H->ex);
		exec_close(H->local_ex);
		varset_release(&H->vars);
		for (int k = 0; k < 2; k++) {
			for (size_t i = 0; H->snap[k] &&
			     i < E->rb->n_phase[PHASE_PREFLIGHT]; i++) {
				buf_release(&H->snap[k][i].out);
				strvec_release(&H->snap[k][i].caps);
			}
			free(H->snap[k]);
		}
		for (size_t i = 0; i < H->n_ap; i++) {
			free_exec(H->ap[i].rb_exec);
			free(H->ap[i].rb_display);
			free(H->ap[i].rb_record);
			free(H->ap[i].rb_error);
		}
		free(H->ap);
	}
	free(E->hosts);
}

/* One preflight command's snapshot as text to compare and diff. */
static void snap_text(const struct snap *k, struct buf *b)
{
	if (!k->taken) {
		buf_adds(b, "[result] not run (skipped)\n");
		return;
	}
	buf_addf(b, "[result] %s, exit %d\n", step_result_name(k->result),
		 k->exit_code);
	for (size_t i = 0; i < k->caps.n; i++)
		buf_addf(b, "[capture] %s\n", k->caps.v[i]);
	buf_adds(b, "[stdout]\n");
	buf_add(b, k->out.data ? k->out.data : "", k->out.len);
	if (k->out.len && k->out.data[k->out.len - 1] != '\n')
		buf_adds(b, "\n[stdout ends without a newline]\n");
	if (k->total > k->out.len)
		buf_addf(b, "[stdout: %llu bytes in all, crc32c %08x; the first %u compared line by line]\n",
			 k->total, (unsigned)k->crc, SNAP_MAX);
}

/*
 * Rehearse: the preflight after the rollback against the baseline.
 * Appends a unified diff per preflight command that differs; returns
 * true when everything came back.
 */
static bool baseline_compare(struct engine *E, struct buf *diff)
{
	bool same = true;

	for (size_t h = 0; h < E->n_hosts; h++) {
		struct host_run *H = &E->hosts[h];

		for (size_t i = 0; i < E->rb->n_phase[PHASE_PREFLIGHT]; i++) {
			const struct step *s = &E->rb->phases[PHASE_PREFLIGHT][i];
			struct buf a = BUF_INIT, b = BUF_INIT, la = BUF_INIT,
				   lb = BUF_INIT;

			snap_text(&H->snap[0][i], &a);
			snap_text(&H->snap[1][i], &b);
			buf_addf(&la, "baseline: preflight '%s' on %s", s->name.s,
				 H->h->spec);
			buf_addf(&lb, "after rollback: preflight '%s' on %s",
				 s->name.s, H->h->spec);
			if (diff_unified(diff, buf_str(&la), buf_str(&lb),
					 buf_str(&a), a.len, buf_str(&b), b.len, 3))
				same = false;
			buf_release(&a);
			buf_release(&b);
			buf_release(&la);
			buf_release(&lb);
		}
	}
	return same;
}

int apply_run(const struct runbook *rb, const struct apply_opts *o,
	      struct rb_error *err)
{
	struct engine E;
	const struct target *t = o->target;
	size_t per = target_batch_size(t);
	struct journal_event ev = { 0 };
	enum change_status status;
	int code = 0;
	bool rolled = true;
	struct buf f = BUF_INIT;

	memset(&E, 0, sizeof(E));
	mutex_init(&E.mu);
	mutex_init(&E.jmu);
	E.rb = rb;
	E.o = o;
	E.per = per;
	E.tty = isatty(2);
	E.red = redactor_new();
	redactor_add_builtins(E.red);
	if (o->change_id)
		snprintf(E.change_id, sizeof(E.change_id), "%s", o->change_id);
	else
		change_id_new(rb->name.s, E.change_id);
	E.host_w = 5;
	for (size_t h = 0; h < t->n_hosts; h++)
		if ((int)strlen(t->hosts[h].spec) > E.host_w)
			E.host_w = (int)strlen(t->hosts[h].spec);
	for (int ph = 0; ph < PHASE_COUNT; ph++)
		for (size_t i = 0; i < rb->n_phase[ph]; i++)
			if ((int)strlen(rb->phases[ph][i].name.s) > E.name_w)
				E.name_w = (int)strlen(rb->phases[ph][i].name.s);
	if (E.host_w > 30)
		E.host_w = 30;
	if (E.name_w > 40)
		E.name_w = 40;
	for (size_t i = 0; i < rb->n_redact; i++) {
		if (redactor_add_pattern(E.red, rb->redact[i].s, err) < 0) {
			code = RB_ERR_INVALID;
			goto out;
		}
	}
	if (load_secrets(&E, err) < 0 || compile_patterns(&E, err) < 0) {
		code = RB_ERR_INVALID;
		goto out;
	}
	setup_hosts(&E);
	signals_setup();

	say(&E, "runbook: change %s: %s on %s (%zu host%s)\n", E.change_id,
	    rb->name.s, t->name, t->n_hosts, t->n_hosts == 1 ? "" : "s");
	jkv(&E, &f, "runbook", rb->name.s);
	jkv(&E, &f, "target", t->name);
	jkv(&E, &f, "status", "running");
	json_event(&E, "change", &f);
	buf_reset(&f);
	ev.type = JEV_OPEN;
	hook(&E, &ev);
	/*
	 * PRODUCT.md §3: the change is open (journal, note) before any host
	 * is reached; a host that cannot be reached, verified or logged
	 * into fails it with nothing run anywhere, and the note says so.
	 */
	if (!E.failed && connect_hosts(&E, t->identity.s, o->known_hosts,
				       o->accept_new, err) < 0) {
		code = err->cls;
		status = CHANGE_FAILED;
		goto closing;
	}

	for (size_t b = 0; b < t->n_hosts && !E.failed && !sig_count; b += per) {
		size_t end = b + per < t->n_hosts ? b + per : t->n_hosts;

		if (per < t->n_hosts)
			say(&E, "batch %zu of %zu\n", b / per + 1,
			    (t->n_hosts + per - 1) / per);
		run_phase(&E, b, end, PHASE_PREFLIGHT);
		run_phase(&E, b, end, PHASE_METRICS);
		run_phase(&E, b, end, PHASE_STEPS);
		run_phase(&E, b, end, PHASE_VERIFY);
		E.metrics_after = true;
		run_phase(&E, b, end, PHASE_METRICS);
		E.metrics_after = false;
	}
	if (sig_count && !E.failed) {
		E.interrupted = true;
		fail(&E, "interrupted by a signal between steps");
	}

	if (!E.failed && o->rehearse) {
		struct buf diff = BUF_INIT, pend = BUF_INIT;
		bool same = false;

		say(&E, "rehearse: applied; rolling back to prove the baseline comes back\n");
		/* every host was changed by a successful apply */
		rolled = rollback_all(&E);
		if (rolled && !sig_count) {
			say(&E, "rehearse: running preflight again to compare with the baseline\n");
			E.snap_pass = 1;
			E.checking = true;
			run_phase(&E, 0, E.n_hosts, PHASE_PREFLIGHT);
			E.checking = false;
			same = !E.failed && !sig_count &&
			       baseline_compare(&E, &diff);
			if (!sig_count) {
				ev.type = JEV_BASELINE;
				ev.baseline_same = same;
				ev.diff = buf_str(&diff);
				hook(&E, &ev);
				memset(&ev, 0, sizeof(ev));
			}
		}
		if (diff.len) {
			live_clear(&E);
			fputs(buf_str(&diff), stderr);
		}
		if (!rolled) {
			pending_list(&E, &pend);
			status = CHANGE_ROLLBACK_FAILED;
			code = RB_ERR_PARTIAL;
			rb_error_set(err, code,
				     "rehearse of %s: the apply passed but its rollback did not finish%s, so %s is partly changed (not undone: %s); do not run it again before checking it (see runbook status)",
				     rb->name.s,
				     sig_count >= 2 ? " (stopped by a second signal)" : "",
				     t->name, buf_str(&pend));
		} else if (sig_count) {
			status = CHANGE_INTERRUPTED;
			code = RB_ERR_INTERRUPTED;
			rb_error_set(err, code,
				     "rehearse of %s: interrupted by a signal; everything was rolled back but the baseline was not compared; safe to run again",
				     rb->name.s);
		} else if (!same) {
			status = CHANGE_FAILED;
			code = RB_ERR_PARTIAL;
			rb_error_set(err, code,
				     "rehearse of %s: the apply and its rollback ran, but the baseline did not come back%s%s%s; %s is not as it was before; check it before running again",
				     rb->name.s, diff.len ? " (diff above)" : "",
				     E.mismatch.len ? ": " : "",
				     buf_str(&E.mismatch), t->name);
		} else {
			status = CHANGE_REHEARSED;
			say(&E, "runbook: %s rehearsed on %s: applied, rolled back, baseline came back (change %s)\n",
			    rb->name.s, t->name, E.change_id);
		}
		jkv(&E, &f, "baseline", same ? "same" : "differs");
		if (diff.len)
			jkv(&E, &f, "diff", buf_str(&diff));
		json_event(&E, "rehearse", &f);
		buf_reset(&f);
		buf_release(&diff);
		buf_release(&pend);
	} else if (!E.failed) {
		status = CHANGE_APPLIED;
		say(&E, "runbook: %s applied on %s (change %s)\n", rb->name.s,
		    t->name, E.change_id);
	} else {
		rolled = rollback_all(&E);
		if (rolled) {
			status = E.interrupted ? CHANGE_INTERRUPTED :
						 CHANGE_ROLLED_BACK;
			code = E.interrupted ? RB_ERR_INTERRUPTED : RB_ERR_FAILED;
			rb_error_set(err, code,
				     "%s failed: %s; every change was rolled back; safe to run again after fixing the cause",
				     rb->name.s, buf_str(&E.fail_msg));
		} else {
			struct buf pend = BUF_INIT;

			pending_list(&E, &pend);
			status = CHANGE_ROLLBACK_FAILED;
			code = RB_ERR_PARTIAL;
			rb_error_set(err, code,
				     "%s failed: %s; the rollback did not finish%s, so %s is partly changed (not undone: %s); do not run apply again before checking it (see runbook status)",
				     rb->name.s, buf_str(&E.fail_msg),
				     sig_count >= 2 ? " (stopped by a second signal)" : "",
				     t->name, buf_str(&pend));
			buf_release(&pend);
		}
	}
closing:
	{
		char *red = redact_str(E.red, err->msg);

		snprintf(err->msg, sizeof(err->msg), "%s", red);
		free(red);
	}
	ev.type = JEV_CLOSE;
	ev.status = status;
	hook(&E, &ev);
	jkv(&E, &f, "status", change_status_name(status));
	buf_addf(&f, ",\"exit\":%d", code);
	if (code)
		jkv(&E, &f, "message", err->msg);
	json_event(&E, "done", &f);
	signals_restore();
out:
	buf_release(&f);
	buf_release(&E.fail_msg);
	buf_release(&E.mismatch);
	free_hosts(&E);
	free_patterns(&E);
	free_secrets(&E);
	strvec_release(&E.unset);
	redactor_free(E.red);
	return code;
}

/* ---- replaying a recorded rollback ---- */

static int load_recorded_secrets(struct engine *E, const struct change_rec *c,
				 bool dry_run, struct rb_error *err)
{
	E->secrets = xcalloc(c->secrets.n + 1, sizeof(*E->secrets));
	for (size_t i = 0; i < c->secrets.n; i++) {
		const char *src = c->secrets.values[i];
		struct secret s = { 0 };

		s.name = c->secrets.names[i];
		if (strncmp(src, "env:", 4) == 0) {
			s.source = SECRET_ENV;
			s.from = (char *)src + 4;
		} else if (strncmp(src, "file:", 5) == 0) {
			s.source = SECRET_FILE;
			s.from = (char *)src + 5;
		} else {
			rb_error_set(err, RB_ERR_INVALID,
				     "secret %s: the record names an unknown source \"%s\"; nothing was run",
				     s.name, src);
			return -1;
		}
		E->secrets[i].name = s.name;
		if (dry_run) {
			/* only shown, as [secret:NAME]: no need to read it */
			E->secrets[i].value = xstrdup("");
			E->n_secrets = i + 1;
			continue;
		}
		if (s.source == SECRET_ENV) {
			const char *v = getenv(s.from);

			if (!v) {
				rb_error_set(err, RB_ERR_INVALID,
					     "secret %s: expected environment variable %s to be set (the rollback needs it), found it unset; nothing was run, set it and run again",
					     s.name, s.from);
				return -1;
			}
			E->secrets[i].value = xstrdup(v);
			E->secrets[i].len = strlen(v);
			strvec_push(&E->unset, s.from);
		} else if (load_secret_file(&s, &E->secrets[i], err) < 0) {
			return -1;
		}
		E->n_secrets = i + 1;
		redactor_add_secret(E->red, s.name, E->secrets[i].value);
	}
	return 0;
}

/* The identity a host used: its own, else its target's. */
static const char *host_identity(const struct change_rec *c,
				 const struct host *h)
{
	const char *id = varset_get(&c->host_ids, h->spec);

	return id ? id : c->identity;
}

int rollback_replay(struct change_rec *c, struct replay_opts *ro,
		    struct rb_error *err)
{
	struct engine E;
	struct apply_opts o;
	struct target t;
	struct host *hosts;
	struct step *steps;
	struct kv **envs;
	size_t n_pending = 0;
	int code = 0;
	bool ok = true;

	memset(&E, 0, sizeof(E));
	memset(&o, 0, sizeof(o));
	memset(&t, 0, sizeof(t));
	mutex_init(&E.mu);
	mutex_init(&E.jmu);
	o.forks = ro->forks;
	o.known_hosts = ro->known_hosts;
	o.accept_new = ro->accept_new;
	o.json = ro->json;
	o.quiet = ro->quiet;
	o.verbose = ro->verbose;
	o.color = ro->color;
	o.hooks = ro->hooks;
	o.target = &t;
	t.name = c->target;
	E.o = &o;
	E.tty = isatty(2);
	E.red = redactor_new();
	redactor_add_builtins(E.red);
	snprintf(E.change_id, sizeof(E.change_id), "%s", c->id);
	hosts = xcalloc(c->hosts.n + 1, sizeof(*hosts));
	steps = xcalloc(c->n_steps + 1, sizeof(*steps));
	envs = xcalloc(c->n_steps + 1, sizeof(*envs));
	E.host_w = 5;
	E.name_w = 10;
	for (size_t i = 0; i < c->n_steps; i++)
		if (c->steps[i].name && (int)strlen(c->steps[i].name) > E.name_w)
			E.name_w = (int)strlen(c->steps[i].name) > 40 ? 40 :
				   (int)strlen(c->steps[i].name);
	/* the runbook's own patterns mask the replay's output too */
	for (size_t i = 0; i < c->redact.n; i++) {
		if (redactor_add_pattern(E.red, c->redact.v[i], err) < 0) {
			code = RB_ERR_INVALID;
			goto out;
		}
	}
	if (load_recorded_secrets(&E, c, ro->dry_run, err) < 0) {
		code = RB_ERR_INVALID;
		goto out;
	}
	E.n_hosts = c->hosts.n;
	E.hosts = xcalloc(c->hosts.n + 1, sizeof(*E.hosts));
	for (size_t h = 0; h < c->hosts.n; h++) {
		struct host_run *H = &E.hosts[h];
		struct rec_step **pend;
		size_t n = change_pending(c, c->hosts.v[h], &pend);

		hosts[h].spec = c->hosts.v[h];
		H->h = &hosts[h];
		if ((int)strlen(hosts[h].spec) > E.host_w)
			E.host_w = (int)strlen(hosts[h].spec);
		if (!host_parse(&hosts[h])) {
			rb_error_set(err, RB_ERR_INVALID,
				     "host %s of change %s: expected local or [user@]host[:port], found something else; nothing was run",
				     hosts[h].spec, c->id);
			free(pend);
			code = RB_ERR_INVALID;
			goto out;
		}
		if (hosts[h].local) {
			H->ex = exec_local_new();
		} else if (n) {
			struct reach R;

			/* connected on first use: one lost host stops only itself */
			if (reach_init(&R, &hosts[h], host_identity(c, &hosts[h]),
				       o.known_hosts, o.accept_new, err) < 0) {
				reach_release(&R);
				free(pend);
				code = err->cls;
				goto out;
			}
			H->ex = exec_ssh_lazy(&R.p);
			H->local_ex = exec_local_new();
			reach_release(&R);
		}
		/*
		 * A command the dead runner left running (any phase, or a
		 * rollback) is stopped before anything is undone.
		 */
		for (size_t i = 0; !ro->dry_run && i < c->n_steps; i++) {
			struct rec_step *r = &c->steps[i];
			struct exec *ex = r->local && H->local_ex ? H->local_ex : H->ex;

			if (!r->pid || !r->host ||
			    strcmp(r->host, hosts[h].spec) != 0)
				continue;
			/*
			 * Locally a runner that ended stopped its commands; on
			 * a remote host a lost link may have cut one off: a
			 * failed one there is stopped too (if still running:
			 * the stop is guarded by the change id).
			 */
			if (!(r->running || r->rb_running) &&
			    (hosts[h].local || r->local ||
			     (r->result != RES_FAILED && r->result != RES_TIMEOUT &&
			      r->rb_result != RES_ROLLBACK_FAILED)))
				continue;
			if (!ex && !hosts[h].local) {
				struct reach R;

				if (reach_init(&R, &hosts[h], host_identity(c, &hosts[h]),
					       o.known_hosts, o.accept_new, err) == 0) {
					H->ex = exec_ssh_lazy(&R.p);
					H->local_ex = exec_local_new();
					ex = r->local ? H->local_ex : H->ex;
				}
				reach_release(&R);
			}
			if (exec_stop(ex, r->pid, r->start_time, c->id))
				say(&E, "runbook: stopped process group %ld on %s, left running by the interrupted %s of %s '%s'\n",
				    r->pid, hosts[h].spec,
				    r->rb_running ? "rollback" : "run",
				    phase_name(r->phase), r->name ? r->name : "?");
		}
		/* oldest first in H->ap: rollback_host walks it backwards */
		for (size_t k = n; k-- > 0;) {
			struct rec_step *r = pend[k];
			struct step *s = &steps[r - c->steps];
			struct applied *a;

			s->phase = PHASE_STEPS;
			s->index = r->index;
			s->name.s = r->name ? r->name : (char *)"?";
			s->rollback.s = r->rollback;
			s->rollback_none = r->rollback_none;
			s->dir.s = r->dir;
			s->local = r->local;
			s->timeout_ms = r->timeout_ms ? r->timeout_ms :
						       RB_DEFAULT_TIMEOUT_MS;
			envs[r - c->steps] = xcalloc(r->env.n + 1, sizeof(struct kv));
			for (size_t e = 0; e < r->env.n; e++) {
				char *eq = strchr(r->env.v[e], '=');

				if (!eq)
					continue;
				envs[r - c->steps][s->n_env].key =
					xstrndup(r->env.v[e], (size_t)(eq - r->env.v[e]));
				envs[r - c->steps][s->n_env].val = eq + 1;
				s->n_env++;
			}
			s->env = envs[r - c->steps];
			H->ap = xgrow(H->ap, &H->cap_ap, H->n_ap + 1, sizeof(*H->ap));
			a = &H->ap[H->n_ap++];
			memset(a, 0, sizeof(*a));
			a->s = s;
			a->result = RES_OK;
			a->masked = r->rollback_masked;
			if (!r->rollback_none && !r->rollback) {
				a->rb_error = xstrdup("no rollback command was recorded for this step");
			} else if (!r->rollback_none) {
				render_rollback(&E, H, a);
			}
			n_pending++;
		}
		if (n)
			H->changed_order = ++E.n_changed;
		free(pend);
	}
	ro->pending = n_pending;
	if (!n_pending) {
		say(&E, "runbook: nothing left to roll back for change %s\n", c->id);
		goto out;
	}
	if (ro->dry_run) {
		for (size_t h = 0; h < E.n_hosts; h++)
			for (size_t i = E.hosts[h].n_ap; i-- > 0;) {
				struct applied *a = &E.hosts[h].ap[i];

				if (!E.o->quiet)
					fprintf(stdout, "%s\t%s\t%s\n", E.hosts[h].h->spec,
						a->s->name.s, a->s->rollback_none ? "none (nothing to undo)" :
						a->rb_display ? a->rb_display : a->rb_error);
			}
		goto out;
	}
	{
		unsigned max = 0;

		for (size_t i = 0; i < c->n_steps; i++)
			if (c->steps[i].index > max)
				max = c->steps[i].index;
		E.pats[PHASE_STEPS] = xcalloc((size_t)max + 1,
					      sizeof(struct step_pats));
	}
	signals_setup();
	say(&E, "runbook: rolling back change %s on %s\n", c->id, c->target);
	E.per = E.n_hosts;	/* one batch: every host at once, up to --forks */
	ok = rollback_all(&E);
	signals_restore();
	if (!ok || sig_count) {
		struct buf pend = BUF_INIT;

		pending_list(&E, &pend);
		code = sig_count && ok ? RB_ERR_INTERRUPTED : RB_ERR_PARTIAL;
		rb_error_set(err, code,
			     "the rollback of change %s did not finish (not undone: %s); fix the cause and run 'runbook rollback %s' again: it resumes where it stopped",
			     c->id, pend.len ? buf_str(&pend) : "nothing", c->id);
		buf_release(&pend);
	} else {
		say(&E, "runbook: change %s rolled back\n", c->id);
	}
out:
	free(E.pats[PHASE_STEPS]);
	E.pats[PHASE_STEPS] = NULL;
	for (size_t i = 0; i < c->n_steps; i++) {
		for (size_t e = 0; envs[i] && e < steps[i].n_env; e++)
			free(envs[i][e].key);
		free(envs[i]);
	}
	free(envs);
	free_hosts(&E);
	free(steps);
	for (size_t h = 0; h < c->hosts.n; h++) {
		free(hosts[h].user);
		free(hosts[h].address);
	}
	free(hosts);
	free_secrets(&E);
	strvec_release(&E.unset);
	redactor_free(E.red);
	return code;
}
