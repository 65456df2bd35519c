/*
 * SSH executor with libssh2: one command on one host over the link
 * that ssh_link.c keeps (connection, auth, keepalives). A command runs
 * in non-blocking mode in one poll() loop that drains stdout and stderr
 * together, watches the cancel fd and the deadline, and sends
 * keepalives.
 */
#include "exec_ssh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libssh2.h>

#include "buf.h"
#include "error.h"
#include "exec.h"
#include "quote.h"
#include "ssh_link.h"
#include "ssh_shell.h"
#include "sys.h"

/* After the command's channel reached EOF, how long closing may take. */
#define CLOSE_WAIT_MS 5000u
/* Markers of the wrapper: start a line, never appear in text. */
#define PID_MARK "\036rb-pid "
#define EXIT_MARK "\036rb-exit "
/* How far into stdout the pid report is looked for. */
#define PID_SCAN 65536u
/* Stdout kept back so the exit marker is never passed on. */
#define HOLD 32u

/*
 * What the channel execs: the script comes on stdin, out of `ps`'s
 * sight; the change id as $1 lets a later stop recognise the group.
 */
static void exec_line(struct buf *out, const struct exec_cmd *cmd)
{
	buf_adds(out, "exec /bin/sh -s");
	for (char *const *e = cmd->env; e && *e; e++) {
		if (strncmp(*e, "RUNBOOK_CHANGE_ID=", 18) == 0) {
			buf_adds(out, " runbook-change-");
			shell_quote(out, *e + 18);
		}
	}
}

/*
 * The script /bin/sh reads from the channel: it reports its pid (sshd
 * made it a session and process group leader), changes directory,
 * exports env, evaluates the command in a subshell with stdin from
 * /dev/null (so `exit` or a syntax error ends only the subshell and no
 * third shell starts), stops what the command left running in its
 * group, and reports the exit status. Command and values travel on
 * stdin, never on a command line that other users can read.
 */
static void script(struct buf *out, const struct exec_cmd *cmd)
{
	buf_adds(out, "printf '\\n" PID_MARK "%s\\n' \"$$\"\n");
	if (cmd->dir) {
		buf_adds(out, "cd -- ");
		shell_quote(out, cmd->dir);
		buf_adds(out, " || { printf '" EXIT_MARK "126\\n'; exit 126; }\n");
	}
	for (char *const *e = cmd->env; e && *e; e++) {
		const char *eq = strchr(*e, '=');

		if (!eq)
			continue;
		buf_addf(out, "export %.*s=", (int)(eq - *e), *e);
		shell_quote(out, eq + 1);
		buf_addc(out, '\n');
	}
	buf_adds(out, "rb_c=");
	shell_quote(out, cmd->command);
	buf_adds(out, "\n(set --; eval \"unset rb_c; $rb_c\") </dev/null\n"
		      "rb_s=$?\ntrap '' TERM\nkill -TERM 0 2>/dev/null\n"
		      "printf '" EXIT_MARK "%s\\n' \"$rb_s\"\n");
}


static void out_pid(struct exec_ssh *x, const struct exec_cmd *cmd,
		    const struct exec_sink *sink, long pid)
{
	x->orphan = 0;
	free(x->orphan_guard);
	x->orphan_guard = NULL;
	for (char *const *e = cmd->env; e && *e; e++)
		if (strncmp(*e, "RUNBOOK_CHANGE_ID=", 18) == 0)
			x->orphan_guard = xstrdup(*e + 18);
	if (sink->started)
		sink->started(sink->ctx, pid, 0);
}

struct outstate {
	struct buf first;	/* stdout until the pid line is complete */
	bool pid_done;
	bool pid_told;
	long pid;
	struct buf hold;	/* the last HOLD bytes of stdout */
	int exit_code;		/* from the exit marker, -1: none */
};

static void out_data(struct outstate *o, const struct exec_sink *sink,
		     const char *data, size_t len)
{
	if (!o->pid_done) {
		const char *m, *nl;

		/*
		 * "\n\036rb-pid N\n" comes first from our script; what a login
		 * startup file printed before it is passed on as output.
		 */
		buf_add(&o->first, data, len);
		m = memmem(o->first.data, o->first.len, "\n" PID_MARK,
			   strlen(PID_MARK) + 1);
		nl = m ? memchr(m + 1, '\n', o->first.len - (size_t)(m + 1 - o->first.data)) : NULL;
		if (!nl && o->first.len < PID_SCAN)
			return;
		o->pid_done = true;
		if (nl) {
			size_t before = (size_t)(m - o->first.data);

			o->pid = strtol(m + 1 + strlen(PID_MARK), NULL, 10);
			if (before)
				sink->output(sink->ctx, EXEC_STDOUT, o->first.data, before);
			data = nl + 1;
			len = o->first.len - (size_t)(nl + 1 - o->first.data);
		} else {
			data = o->first.data;
			len = o->first.len;
		}
	}
	buf_add(&o->hold, data, len);
	if (o->hold.len > HOLD) {
		size_t pass = o->hold.len - HOLD;

		sink->output(sink->ctx, EXEC_STDOUT, o->hold.data, pass);
		memmove(o->hold.data, o->hold.data + pass, HOLD);
		o->hold.len = HOLD;
		o->hold.data[HOLD] = '\0';
	}
}

/* At EOF: strip the exit marker from the held tail, pass the rest on. */
static void out_end(struct outstate *o, const struct exec_sink *sink)
{
	const char *m = NULL;

	if (!o->pid_done && o->first.len) {
		o->pid_done = true;
		buf_add(&o->hold, o->first.data, o->first.len);
	}
	o->exit_code = -1;
	for (size_t i = o->hold.len; i-- > 0;) {
		if (o->hold.data[i] == '\036') {
			m = o->hold.data + i;
			break;
		}
	}
	if (m && strncmp(m, EXIT_MARK, strlen(EXIT_MARK)) == 0 &&
	    o->hold.data[o->hold.len - 1] == '\n') {
		char *end;
		long v = strtol(m + strlen(EXIT_MARK), &end, 10);

		if (*end == '\n' && end + 1 == o->hold.data + o->hold.len &&
		    v >= 0 && v <= 255) {
			o->exit_code = (int)v;
			o->hold.len = (size_t)(m - o->hold.data);
		}
	}
	if (o->hold.len)
		sink->output(sink->ctx, EXEC_STDOUT, o->hold.data, o->hold.len);
}

static int signal_number(const char *name)
{
	static const struct { const char *n; int v; } sigs[] = {
		{ "HUP", 1 }, { "INT", 2 }, { "QUIT", 3 }, { "ILL", 4 },
		{ "ABRT", 6 }, { "FPE", 8 }, { "KILL", 9 }, { "SEGV", 11 },
		{ "PIPE", 13 }, { "ALRM", 14 }, { "TERM", 15 }, { "USR1", 10 },
		{ "USR2", 12 },
	};

	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (strcmp(sigs[i].n, name) == 0)
			return sigs[i].v;
	return 0;
}

static bool lost(int rc)
{
	return rc < 0 && rc != LIBSSH2_ERROR_EAGAIN;
}

/*
 * Gets a channel, execs the shell and sends it the script. A session
 * that cannot give a channel (dropped while idle, e.g. by sshd's
 * ClientAliveInterval) is replaced once: nothing was started on it.
 * Returns 0 (running), -1 with err (nothing started), or 1 when the
 * link broke while the script was being sent.
 */
static int start_command(struct exec_ssh *x, const struct exec_cmd *cmd,
			 const char *text, size_t len, LIBSSH2_CHANNEL **out,
			 struct rb_error *err)
{
	struct buf w = BUF_INIT, line = BUF_INIT;
	int rc = LIBSSH2_ERROR_CHANNEL_FAILURE;

	*out = NULL;
	exec_line(&line, cmd);
	for (int attempt = 0; attempt < 2; attempt++) {
		LIBSSH2_CHANNEL *ch;
		unsigned long long end;
		size_t off = 0;

		if (!x->s || x->dead) {
			ssh_link_close(x);
			if (ssh_link_connect(x, err) < 0) {
				buf_release(&w);
				buf_release(&line);
				return -1;
			}
			/* a command cut off by the lost link may still run */
			if (x->orphan && x->orphan_guard)
				ssh_link_stop_group(x, x->orphan, x->orphan_guard);
			x->orphan = 0;
		}
		end = sys_now_ms() + SSH_CONNECT_TIMEOUT_MS;
		ch = ssh_link_channel(x, cmd->cancel_fd, SSH_CONNECT_TIMEOUT_MS);
		if (!ch) {
			x->dead = true;
			continue;
		}
		while ((rc = libssh2_channel_exec(ch, buf_str(&line))) ==
		       LIBSSH2_ERROR_EAGAIN && sys_now_ms() < end)
			ssh_link_wait(x, cmd->cancel_fd, 100);
		if (rc) {
			ssh_link_free_channel(x, ch, 1000);
			x->dead = true;
			continue;
		}
		while (off < len) {
			ssize_t n = libssh2_channel_write(ch, text + off, len - off);

			if (n == LIBSSH2_ERROR_EAGAIN) {
				if (sys_now_ms() > end)
					break;
				ssh_link_wait(x, -1, 100);
				continue;
			}
			if (n < 0)
				break;
			off += (size_t)n;
		}
		while (off == len &&
		       (rc = libssh2_channel_send_eof(ch)) == LIBSSH2_ERROR_EAGAIN &&
		       sys_now_ms() < end)
			ssh_link_wait(x, -1, 100);
		*out = ch;
		buf_release(&w);
		buf_release(&line);
		return off == len && rc == 0 ? 0 : 1;
	}
	rb_error_set(err, RB_ERR_CONNECT,
		     "cannot start the command on %s: %s; the command did not start",
		     ssh_link_where(x, &w), ssh_link_errmsg(x->s));
	buf_release(&w);
	buf_release(&line);
	return -1;
}

/* What one read of the channel brought. */
enum got { GOT_NOTHING, GOT_DATA, GOT_EOF, GOT_LOST };

/*
 * Reads what the channel has on stdout, then on stderr, and passes it
 * on; tells the sink the command's pid once its report is complete.
 * Both streams are read each time so neither can stall the other.
 */
static enum got read_channel(struct exec_ssh *x, const struct exec_cmd *cmd,
			     const struct exec_sink *sink, LIBSSH2_CHANNEL *ch,
			     struct outstate *os)
{
	char data[32768];
	ssize_t n1, n2;

	n1 = libssh2_channel_read(ch, data, sizeof(data));
	if (n1 > 0) {
		out_data(os, sink, data, (size_t)n1);
		if (os->pid && !os->pid_told) {
			os->pid_told = true;
			out_pid(x, cmd, sink, os->pid);
		}
	}
	n2 = libssh2_channel_read_stderr(ch, data, sizeof(data));
	if (n2 > 0)
		sink->output(sink->ctx, EXEC_STDERR, data, (size_t)n2);
	if (lost((int)n1) || lost((int)n2))
		return GOT_LOST;
	if (libssh2_channel_eof(ch) && n1 <= 0 && n2 <= 0)
		return GOT_EOF;
	return n1 > 0 || n2 > 0 ? GOT_DATA : GOT_NOTHING;
}

/* Where the wait for a command stands, and how it ended. */
struct waiting {
	unsigned long long deadline;	/* 0: no timeout */
	unsigned long long last_tick;
	unsigned long long closing;	/* when the stop was sent */
	bool stopping;		/* timed out or cancelled: being stopped */
	bool eof;		/* the channel reached EOF */
	bool dead;		/* the host left the keepalives unanswered */
	enum exec_end end;	/* EXEC_TIMED_OUT or EXEC_CANCELLED if stopping */
	struct ssh_alive alive;	/* the keepalives while it runs */
};

/*
 * The deadline passed or cancel_fd fired: stops the command's group on
 * the host, then the channel is read until it ends, for at most
 * CLOSE_WAIT_MS. Returns false when there is nothing to wait for (out->
 * why says so): the command had not reported its pid yet (a slow
 * login; closing the channel is all), or the host did not answer the
 * stop, so the group is stopped when runbook reaches it again.
 */
static bool begin_stop(struct exec_ssh *x, struct waiting *wt, long pid,
		       unsigned long long t, struct exec_result *out)
{
	struct buf w = BUF_INIT;
	bool wait = false;

	wt->stopping = true;
	wt->end = wt->deadline && t >= wt->deadline ? EXEC_TIMED_OUT :
						      EXEC_CANCELLED;
	if (!pid) {
		/* not even started (a slow login): closing is all */
		snprintf(out->why, sizeof(out->why),
			 "gave up on %s before the command reported that it had started (the remote login was still running); its channel was closed",
			 ssh_link_where(x, &w));
		goto out;
	}
	if (!ssh_link_stop_group(x, pid, NULL)) {
		/* no answer: stop it when the host is back */
		snprintf(out->why, sizeof(out->why),
			 "could not stop it on %s (the host did not answer); it may still run there until runbook reaches the host again",
			 ssh_link_where(x, &w));
		x->orphan = pid;
		x->dead = true;
		goto out;
	}
	libssh2_session_set_blocking(x->s, 0);
	wt->closing = sys_now_ms();
	wait = true;
out:
	buf_release(&w);
	return wait;
}

/*
 * The one loop of a run: drains stdout and stderr, ticks the sink,
 * watches the deadline and cancel_fd, sends keepalives and waits at
 * most 100 ms at a time. Ends at EOF (wt->eof), when a stop is over or
 * gave up (wt->stopping), or when the link broke (neither; wt->dead if
 * the keepalives found it dead).
 */
static void wait_command(struct exec_ssh *x, const struct exec_cmd *cmd,
			 const struct exec_sink *sink, LIBSSH2_CHANNEL *ch,
			 struct outstate *os, struct waiting *wt,
			 struct exec_result *out)
{
	for (;;) {
		enum got got = read_channel(x, cmd, sink, ch, os);
		unsigned long long t;

		if (got == GOT_LOST)
			return;
		if (got == GOT_EOF) {
			wt->eof = true;
			return;
		}
		if (got == GOT_DATA)
			continue;
		t = sys_now_ms();
		if (sink->tick && t - wt->last_tick >= 100) {
			sink->tick(sink->ctx);
			wt->last_tick = t;
		}
		if (!wt->stopping && ((wt->deadline && t >= wt->deadline) ||
				      ssh_link_cancelled(cmd->cancel_fd))) {
			if (!begin_stop(x, wt, os->pid, t, out))
				return;
			continue;
		}
		if (wt->stopping && sys_now_ms() - wt->closing > CLOSE_WAIT_MS)
			return;
		if (!wt->stopping && ssh_link_dead(x, &wt->alive, t)) {
			wt->dead = true;
			return;
		}
		ssh_link_wait(x, wt->stopping ? -1 : cmd->cancel_fd, 100);
	}
}

/* Closes the channel and waits for the server's close: CLOSE_WAIT_MS in all. */
static void close_channel(struct exec_ssh *x, LIBSSH2_CHANNEL *ch)
{
	unsigned long long t0 = sys_now_ms();

	while (libssh2_channel_close(ch) == LIBSSH2_ERROR_EAGAIN &&
	       sys_now_ms() - t0 < CLOSE_WAIT_MS)
		ssh_link_wait(x, -1, 100);
	while (libssh2_channel_wait_closed(ch) == LIBSSH2_ERROR_EAGAIN &&
	       sys_now_ms() - t0 < CLOSE_WAIT_MS)
		ssh_link_wait(x, -1, 100);
}

/*
 * How a command that ran to its end ended: by a signal, with the exit
 * status its script reported, or, when the channel closed without that
 * report, unknown (EXEC_LOST; libssh2 says 0 for "no exit status", so
 * its status is never believed). Then the command may still run: its
 * group is stopped if its change id is known.
 */
static void command_end(struct exec_ssh *x, LIBSSH2_CHANNEL *ch,
			const struct outstate *os, struct exec_result *out)
{
	struct buf w = BUF_INIT;
	char *sig = NULL;
	size_t siglen = 0;
	bool stopped;

	libssh2_channel_get_exit_signal(ch, &sig, &siglen, NULL, NULL,
					NULL, NULL);
	if (sig && siglen) {
		out->end = EXEC_SIGNALED;
		out->signal = signal_number(sig);
		out->exit_code = -1;
		libssh2_free(x->s, sig);
		return;
	}
	libssh2_free(x->s, sig);
	if (os->exit_code >= 0) {
		out->end = EXEC_EXITED;
		out->exit_code = os->exit_code;
		return;
	}
	/* libssh2 says 0 for "no exit status": do not believe it */
	out->end = EXEC_LOST;
	out->exit_code = -1;
	/* the server closed the channel; the command may go on */
	stopped = os->pid && x->orphan_guard &&
		  ssh_link_stop_group(x, os->pid, x->orphan_guard);
	snprintf(out->why, sizeof(out->why),
		 "the command's channel on %s closed without an exit status%s; its outcome is unknown (it may have done part of its work)",
		 ssh_link_where(x, &w), stopped ? " while it still ran (stopped it)" : "");
	buf_release(&w);
}


/*
 * Runs one command: starts it (connecting again first if the link was
 * lost), waits for it, and says how it ended. A link lost while the
 * script was sent or while the command ran ends the run as EXEC_LOST
 * (returns 0): the command may have done part of its work.
 */
static int ssh_run(struct exec *ex, const struct exec_cmd *cmd,
		   const struct exec_sink *sink, struct exec_result *out,
		   struct rb_error *err)
{
	struct exec_ssh *x = (struct exec_ssh *)ex;
	struct outstate os = { BUF_INIT, false, false, 0, BUF_INIT, -1 };
	struct buf full = BUF_INIT, w = BUF_INIT;
	LIBSSH2_CHANNEL *ch = NULL;
	unsigned long long start = sys_now_ms();
	struct waiting wt = { .last_tick = start, .end = EXEC_EXITED,
			      .alive.heard = start };
	int rc, ret = -1;

	memset(out, 0, sizeof(*out));
	if (ssh_link_init() != 0) {
		rb_error_set(err, RB_ERR_CONNECT, "cannot initialise libssh2");
		return -1;
	}
	if (x->sh_mode == 0) {
		rc = ssh_shell_run(x, cmd, sink, out, err);
		if (rc != SSH_SHELL_UNAVAILABLE)
			return rc;
	}
	wt.deadline = cmd->timeout_ms ? start + cmd->timeout_ms : 0;
	script(&full, cmd);
	rc = start_command(x, cmd, buf_str(&full), full.len, &ch, err);
	if (rc < 0)
		goto out;
	if (rc > 0) {
		/* the script may have begun: the link went while it was sent */
		x->dead = true;
		out->end = EXEC_LOST;
		out->exit_code = -1;
		out->duration_ms = sys_now_ms() - start;
		snprintf(out->why, sizeof(out->why),
			 "lost the connection to %s while sending the command (%s); it may have started",
			 ssh_link_where(x, &w), ssh_link_errmsg(x->s));
		ret = 0;
		goto out;
	}
	wait_command(x, cmd, sink, ch, &os, &wt, out);
	if (!wt.eof && !wt.stopping) {
		/* the connection broke under a running command */
		x->dead = true;
		x->orphan = os.pid;
		out_end(&os, sink);
		out->end = EXEC_LOST;
		out->exit_code = -1;
		out->duration_ms = sys_now_ms() - start;
		if (wt.dead)
			ssh_link_dead_why(x, out->why, sizeof(out->why));
		else
			snprintf(out->why, sizeof(out->why),
				 "lost the connection to %s while the command ran (%s); it may have done part of its work",
				 ssh_link_where(x, &w), ssh_link_errmsg(x->s));
		ret = 0;
		goto out;
	}
	out_end(&os, sink);
	if (!x->dead)
		close_channel(x, ch);
	out->duration_ms = sys_now_ms() - start;
	if (wt.stopping) {
		out->end = wt.end;
		out->exit_code = -1;
	} else {
		command_end(x, ch, &os, out);
	}
	ret = 0;
out:
	if (ch && !x->dead && !ssh_link_free_channel(x, ch, CLOSE_WAIT_MS))
		x->dead = true;	/* a frozen host: never wait on it again */
	if (ret == 0 && !x->dead)
		ssh_link_preopen(x);
	buf_release(&os.first);
	buf_release(&os.hold);
	if (full.data)
		explicit_bzero(full.data, full.len);	/* held the secrets */
	buf_release(&full);
	buf_release(&w);
	return ret;
}

static void ssh_close(struct exec *ex)
{
	struct exec_ssh *x = (struct exec_ssh *)ex;

	ssh_link_close(x);
	free((char *)x->p.name);
	free((char *)x->p.address);
	free((char *)x->p.user);
	free((char *)x->p.known_hosts);
	free(x->orphan_guard);
	strvec_release(&x->ids);
	strvec_release(&x->defs);
	buf_release(&x->sh_out);
	buf_release(&x->sh_err);
	free(x);
}

static bool ssh_stop(struct exec *ex, long pid, unsigned long long start_time,
		     const char *guard)
{
	struct exec_ssh *x = (struct exec_ssh *)ex;
	struct rb_error err = RB_ERROR_INIT;

	(void)start_time;
	if (!guard || ssh_link_init() != 0)
		return false;
	if (!x->s || x->dead) {
		ssh_link_close(x);
		if (ssh_link_connect(x, &err) < 0)
			return false;
	}
	return ssh_link_stop_group(x, pid, guard);
}

const char *exec_ssh_version(void)
{
	static char v[64];

	snprintf(v, sizeof(v), "libssh2 %s", libssh2_version(0));
	return v;
}

static const struct exec_ops ssh_ops = { ssh_run, ssh_close, ssh_stop };

static struct exec_ssh *alloc(const struct ssh_params *p)
{
	struct exec_ssh *x = xcalloc(1, sizeof(*x));

	x->base.ops = &ssh_ops;
	x->sock = -1;
	x->p = *p;
	x->p.name = xstrdup(p->name ? p->name : p->address);
	x->p.address = xstrdup(p->address);
	x->p.user = xstrdup(p->user);
	x->p.known_hosts = p->known_hosts ? xstrdup(p->known_hosts) : NULL;
	x->p.port = p->port ? p->port : 22;
	x->interval_set = p->alive_interval_s > 0;
	x->count_set = p->alive_count_max >= 0;
	if (!p->alive_interval_s)
		x->p.alive_interval_s = SSH_KEEPALIVE_S;
	if (p->alive_count_max < 0)
		x->p.alive_count_max = SSH_KEEPALIVE_MAX;
	for (char *const *i = p->identities; i && *i; i++)
		strvec_push(&x->ids, *i);
	for (char *const *i = p->default_identities; i && *i; i++)
		strvec_push(&x->defs, *i);
	x->p.identities = NULL;
	x->p.default_identities = NULL;
	/* for A/B benchmarks and as a way out: one channel per command */
	if (getenv("RUNBOOK_SSH_CHANNELS"))
		x->sh_mode = -1;
	return x;
}

int exec_ssh_new(const struct ssh_params *p, struct exec **out,
		 struct rb_error *err)
{
	struct exec_ssh *x;

	if (ssh_link_init() != 0) {
		rb_error_set(err, RB_ERR_CONNECT, "cannot initialise libssh2");
		return -1;
	}
	x = alloc(p);
	if (ssh_link_connect(x, err) < 0) {
		ssh_close(&x->base);
		return -1;
	}
	*out = &x->base;
	return 0;
}

struct exec *exec_ssh_lazy(const struct ssh_params *p)
{
	ssh_link_init();
	return &alloc(p)->base;
}
