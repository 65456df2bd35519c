/*
 * One long-lived remote shell per host (ssh_shell.h is the manual).
 *
 * Invariant: a command's output is what lies between its ESC-go (or,
 * on stderr, the previous ESC-end) and its ESC-end on each stream;
 * runbook holds back at most a marker's length of either stream, so
 * memory stays bounded whatever the command prints. The shell is only
 * reused after both ESC-end markers of the last command arrived.
 */
#include "ssh_shell.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <libssh2.h>

#include "buf.h"
#include "error.h"
#include "exec.h"
#include "quote.h"
#include "ssh_link.h"
#include "sys.h"

/* After a stop was sent, how long the shell may take to report the end. */
#define STOP_WAIT_MS 5000u
/* A marker's tail ("pid 12345", "end 255", "go") is never longer. */
#define TAIL_MAX 32u

/*
 * What the subshell execs: a new session (setsid in a subshell, which
 * is no group leader, does not fork), whose shell reports its pid,
 * runs the command from RB_C with stdin /dev/null, stops what the
 * command left in its group and exits with its status. $0 is the
 * change id, so a later stop recognises the group. A simple command
 * (shell_exec_ok()) is exec'd by the subshell instead of forked again.
 * The TERM trap (a handler: the subshell has TERM at its default) lets
 * this shell outlive a stop of its group and exit with the status, so
 * the remote shell above it never reports the death of a child. This
 * shell's own stderr is /dev/null (the command gets the real one as
 * fd 2), so its "Terminated" for the stopped command goes nowhere.
 */
#define INNER_HEAD \
	"printf '\\036rb %s pid %s\\n' \"$RB_N\" \"$$\"; unset RB_N; trap : TERM; " \
	"c=$RB_C; unset RB_C; exec 3>&2 2>/dev/null; (set --; eval \"unset c; "
#define INNER_TAIL \
	"$c\") </dev/null 2>&3 3>&-; s=$?; trap '' TERM; kill -TERM 0; exit $s"

/*
 * What the remote bash must show to run commands as jobs: job control
 * on without a terminal, and $BASHPID (bash 4 and later). Only `set -m`
 * turns it on there (bash -m wants a terminal), so each script says it.
 */
#define JOBS_CHECK "'set -m; case $- in *m*) [ -n \"$BASHPID\" ] ;; *) exit 1 ;; esac'"

/*
 * The function a bash with job control runs a simple command with,
 * defined once per shell (bash reads a pipe a byte at a time, so each
 * command's script is kept short): rb_run NONCE DIR COMMAND [NAME=VALUE
 * ...]. The command is a background job, so bash gives it a process
 * group of its own whose leader is the subshell; the subshell reports
 * that it began and its $BASHPID in one write (one packet less per
 * step), enters DIR (if not empty), exports the env and execs the
 * command; bash waits for it, then stops what it left in its group.
 * With job control bash's wait also returns when the job is stopped
 * (SIGSTOP, SIGTSTP): the status is then 128+signal, and SIGCONT after
 * the SIGTERM lets what was stopped take it.
 */
#define JOBS_RUN \
	"rb_run() {\nset -m\n(printf '\\036rb %s go\\n\\036rb %s pid %s\\n' " \
	"\"$1\" \"$1\" \"$BASHPID\"\n" \
	"[ -z \"$2\" ] || cd -- \"$2\" || exit 126\n" \
	"rb_c=$3; shift 3\nfor rb_e; do export \"$rb_e\"; done\n" \
	"set --\neval \"exec $rb_c\") </dev/null 2>&3 3>&- &\n" \
	"wait \"$!\"; rb_s=$?\nkill -s TERM -- \"-$!\" 2>/dev/null && " \
	"kill -s CONT -- \"-$!\" 2>/dev/null\n" \
	"printf '\\036rb %s end %s\\n' \"$1\" \"$rb_s\"\n" \
	"printf '\\036rb %s end\\n' \"$1\" >&3\n}\n"

/*
 * bash imports functions from the environment (BASH_FUNC_name%%), even
 * in posix mode: the regular builtins the scripts use must be the
 * builtins. Special builtins (unset, export, eval, exec, set, shift)
 * come before functions in posix mode. Sent once, with JOBS_RUN, and
 * first thing to /bin/sh too, which is bash on some systems.
 */
#define JOBS_PREAMBLE "unset -f printf kill wait cd read command [ 2>/dev/null\n"

/* One stream of the shell's channel, and where its framing stands. */
struct stream {
	struct buf acc;		/* not yet passed on: a marker may start here */
	enum exec_stream which;
	bool pass;		/* pass bytes before the next marker (else drop) */
	bool ended;		/* this command's ESC-end came */
};

/* A command on the shell: its nonce, pid and end. */
struct shrun {
	char mark[64];		/* "\036rb NONCE " */
	size_t mlen;
	struct stream out, err;
	bool went;		/* ESC-go came: the shell began the command */
	long pid;
	int status;		/* from ESC-end, -1: none yet */
};

static int nonce(char *mark, size_t size, size_t *len)
{
	unsigned char r[16];
	int n;

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return -1;
	n = snprintf(mark, size, "\036rb ");
	for (size_t i = 0; i < sizeof(r); i++)
		n += snprintf(mark + n, size - (size_t)n, "%02x", r[i]);
	n += snprintf(mark + n, size - (size_t)n, " ");
	*len = (size_t)n;
	return 0;
}

static void emit(struct stream *st, const struct exec_sink *sink,
		 struct buf *keep, const char *data, size_t len)
{
	if (!len)
		return;
	if (keep)
		buf_add(keep, data, len);
	else if (st->pass && sink)
		sink->output(sink->ctx, st->which, data, len);
}

/* Drops the first n bytes of b. */
static void cut(struct buf *b, size_t n)
{
	if (!n)
		return;
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

/*
 * Finds the next marker (mark, then a tail up to '\n') in st->acc.
 * What comes before it is passed on (st->pass) or dropped, or kept in
 * keep if given. Returns 1 with the tail in tail and the marker taken
 * out of acc, or 0 when there is none yet: then all of acc but what
 * may be the start of a marker has been passed on.
 */
static int take_mark(struct stream *st, const char *mark, size_t mlen,
		     const struct exec_sink *sink, struct buf *keep,
		     char tail[TAIL_MAX])
{
	const char *m;
	size_t k;

	if (!st->acc.len)
		return 0;	/* nothing yet (and memmem wants a buffer) */
	m = memmem(st->acc.data, st->acc.len, mark, mlen);

	if (m) {
		size_t at = (size_t)(m - st->acc.data);
		const char *t = m + mlen;
		size_t room = st->acc.len - at - mlen;
		const char *nl = memchr(t, '\n', room);

		if (!nl && room < TAIL_MAX) {
			emit(st, sink, keep, st->acc.data, at);
			cut(&st->acc, at);
			return 0;
		}
		if (nl && (size_t)(nl - t) < TAIL_MAX) {
			emit(st, sink, keep, st->acc.data, at);
			memcpy(tail, t, (size_t)(nl - t));
			tail[nl - t] = '\0';
			cut(&st->acc, (size_t)(nl + 1 - st->acc.data));
			return 1;
		}
		/* not one of ours after all: text that happens to match */
		emit(st, sink, keep, st->acc.data, at + 1);
		cut(&st->acc, at + 1);
		return take_mark(st, mark, mlen, sink, keep, tail);
	}
	/* keep the longest end of acc that may begin a marker */
	k = st->acc.len < mlen - 1 ? st->acc.len : mlen - 1;
	for (; k > 0; k--)
		if (memcmp(st->acc.data + st->acc.len - k, mark, k) == 0)
			break;
	emit(st, sink, keep, st->acc.data, st->acc.len - k);
	cut(&st->acc, st->acc.len - k);
	return 0;
}

/* Takes every marker the stream holds now, for a running command. */
static void frame(struct exec_ssh *x, struct shrun *r, struct stream *st,
		  const struct exec_cmd *cmd, const struct exec_sink *sink)
{
	char tail[TAIL_MAX];

	while (!st->ended &&
	       take_mark(st, r->mark, r->mlen, sink, NULL, tail) == 1) {
		if (st == &r->err) {
			st->ended = strcmp(tail, "end") == 0;
		} else if (strcmp(tail, "go") == 0) {
			r->went = true;
			st->pass = true;
		} else if (strncmp(tail, "pid ", 4) == 0 && !r->pid) {
			r->pid = strtol(tail + 4, NULL, 10);
			free(x->orphan_guard);
			x->orphan_guard = NULL;
			for (char *const *e = cmd->env; e && *e; e++)
				if (strncmp(*e, "RUNBOOK_CHANGE_ID=", 18) == 0)
					x->orphan_guard = xstrdup(*e + 18);
			if (sink->started && r->pid > 0)
				sink->started(sink->ctx, r->pid, 0);
		} else if (strncmp(tail, "end ", 4) == 0) {
			long v = strtol(tail + 4, NULL, 10);

			r->status = v >= 0 && v <= 255 ? (int)v : 255;
			st->ended = true;
		}
	}
}

/* What one read of the shell's channel brought. */
enum got { GOT_NOTHING, GOT_DATA, GOT_EOF, GOT_LOST };

/*
 * True once sshd said the shell died by a signal: that comes before
 * the channel's EOF, which waits for every process holding its pipes
 * (the command, in a session of its own, may hold them for long).
 */
static bool killed(struct exec_ssh *x)
{
	char *sig = NULL;
	size_t n = 0;
	bool gone;

	libssh2_channel_get_exit_signal(x->sh, &sig, &n, NULL, NULL, NULL, NULL);
	gone = sig && n;
	libssh2_free(x->s, sig);
	return gone;
}

static enum got read_both(struct exec_ssh *x, struct buf *out, struct buf *err)
{
	char data[32768];
	ssize_t n1, n2;

	n1 = libssh2_channel_read(x->sh, data, sizeof(data));
	if (n1 > 0)
		buf_add(out, data, (size_t)n1);
	n2 = libssh2_channel_read_stderr(x->sh, data, sizeof(data));
	if (n2 > 0)
		buf_add(err, data, (size_t)n2);
	if ((n1 < 0 && n1 != LIBSSH2_ERROR_EAGAIN) ||
	    (n2 < 0 && n2 != LIBSSH2_ERROR_EAGAIN))
		return GOT_LOST;
	if (n1 > 0 || n2 > 0)
		return GOT_DATA;
	return libssh2_channel_eof(x->sh) || killed(x) ? GOT_EOF : GOT_NOTHING;
}

/* Writes all of text to the shell within ms; false if it could not. */
static bool send_all(struct exec_ssh *x, const char *text, size_t len,
		     unsigned ms)
{
	unsigned long long end = sys_now_ms() + ms;
	size_t off = 0;

	while (off < len) {
		ssize_t n = libssh2_channel_write(x->sh, text + off, len - off);

		if (n == LIBSSH2_ERROR_EAGAIN) {
			if (sys_now_ms() > end)
				return false;
			ssh_link_wait(x, -1, 100);
			continue;
		}
		if (n < 0)
			return false;
		off += (size_t)n;
	}
	return true;
}

/* Lets the shell go: its channel is freed (or the link is dead). */
static void drop_shell(struct exec_ssh *x)
{
	if (x->sh && !x->dead && !ssh_link_free_channel(x, x->sh, 1000))
		x->dead = true;
	x->sh = NULL;
}

static const char *change_id(const struct exec_cmd *cmd)
{
	for (char *const *e = cmd->env; e && *e; e++)
		if (strncmp(*e, "RUNBOOK_CHANGE_ID=", 18) == 0)
			return *e + 18;
	return NULL;
}

/*
 * Opens the shell: a channel running /bin/sh -s, which answers "ready"
 * if it has setsid (else "none": x falls back to channels). What a
 * login startup file prints first is kept for the next command.
 * Returns 0, SSH_SHELL_UNAVAILABLE, or -1 (x->dead: the link failed).
 */
static int open_shell(struct exec_ssh *x, const struct exec_cmd *cmd)
{
	struct buf line = BUF_INIT, hello = BUF_INIT;
	struct stream out = { BUF_INIT, EXEC_STDOUT, true, false };
	unsigned long long end = sys_now_ms() + SSH_CONNECT_TIMEOUT_MS;
	char mark[64], tail[TAIL_MAX];
	size_t mlen;
	int rc = -1;

	if (nonce(mark, sizeof(mark), &mlen) < 0)
		return SSH_SHELL_UNAVAILABLE;
	x->sh = ssh_link_channel(x, cmd->cancel_fd, SSH_CONNECT_TIMEOUT_MS);
	if (!x->sh) {
		x->dead = true;
		return -1;
	}
	buf_adds(&line, "exec /bin/sh -s");
	if (change_id(cmd)) {
		buf_adds(&line, " runbook-change-");
		shell_quote(&line, change_id(cmd));
	}
	while ((rc = libssh2_channel_exec(x->sh, buf_str(&line))) ==
	       LIBSSH2_ERROR_EAGAIN && sys_now_ms() < end)
		ssh_link_wait(x, cmd->cancel_fd, 100);
	mark[mlen - 1] = '\0';	/* the mark without its space, for printf */
	/*
	 * The shell's own stderr goes nowhere (it would report a stopped
	 * command's death when it reads on, "Killed", outside any command):
	 * each command gets the channel's stderr from fd 3.
	 * The pid file lives in memory where it can: rewritten twice per
	 * command, on ext4 each truncation of it starts a writeback
	 * (auto_da_alloc), ~0.5 ms a step on a disk /tmp.
	 */
	buf_addf(&hello, "exec 3>&2 2>/dev/null\n" JOBS_PREAMBLE
		 "if ! command -v setsid >/dev/null 2>&1; then "
		 "printf '%%s none\\n' '%s'; exit 0\n", mark);
	/*
	 * A bash with job control gives each command its own group
	 * without setsid; it takes over this channel's stdin, so its
	 * branch is part of the last compound command sent (nothing
	 * after it can be read ahead by /bin/sh and lost).
	 */
	if (!getenv("RUNBOOK_SSH_SLOW") && !getenv("RUNBOOK_SSH_NOBASH"))
		buf_addf(&hello, "elif command -v bash >/dev/null 2>&1 && "
			 "bash --posix --norc --noprofile -c %s </dev/null; then "
			 "printf '%%s ready jobs\\n' '%s'; "
			 "exec bash --posix --norc --noprofile -s \"$@\"\n",
			 JOBS_CHECK, mark);
	buf_addf(&hello, "else "
		 "for rb_f in \"$XDG_RUNTIME_DIR\" /dev/shm \"${TMPDIR:-/tmp}\"; do "
		 "[ -n \"$rb_f\" ] && [ -d \"$rb_f\" ] && [ -w \"$rb_f\" ] && break; done\n"
		 "rb_f=$rb_f/runbook-sh.%s\n"
		 "if [ -r /proc/self/stat ] && "
		 "(umask 077; set -C; : >\"$rb_f\"); then "
		 "trap 'rm -f -- \"$rb_f\"' EXIT; "
		 "printf '%%s ready fast\\n' '%s'; "
		 "else printf '%%s ready\\n' '%s'; fi\nfi\n",
		 mark + 4, mark, mark);
	mark[mlen - 1] = ' ';
	if (rc || !send_all(x, hello.data, hello.len, SSH_CONNECT_TIMEOUT_MS)) {
		rc = -1;
		x->dead = true;
		goto out;
	}
	rc = -1;
	for (;;) {
		enum got g = read_both(x, &out.acc, &x->sh_err);

		if (take_mark(&out, mark, mlen, NULL, &x->sh_out, tail) == 1) {
			x->sh_jobs = strcmp(tail, "ready jobs") == 0;
			x->sh_defined = false;
			x->sh_fast = strcmp(tail, "ready fast") == 0 &&
				     !getenv("RUNBOOK_SSH_SLOW");
			rc = x->sh_jobs || x->sh_fast ||
					     strcmp(tail, "ready") == 0 ?
				     0 : SSH_SHELL_UNAVAILABLE;
			break;
		}
		if (g == GOT_LOST || g == GOT_EOF || sys_now_ms() > end)
			break;
		if (g == GOT_NOTHING)
			ssh_link_wait(x, -1, 100);
	}
	if (rc < 0)
		x->dead = true;
out:
	if (rc == SSH_SHELL_UNAVAILABLE) {
		x->sh_mode = -1;
		drop_shell(x);
	}
	buf_release(&line);
	buf_release(&hello);
	buf_release(&out.acc);
	return rc;
}

/*
 * Names bash keeps for itself (read-only, or with a meaning of its
 * own): a step that sets one runs under /bin/sh, as it always did.
 */
static bool bash_env_ok(char *const *env)
{
	static const char *const names[] = {
		"SHELLOPTS", "UID", "EUID", "PPID", "GROUPS", "FUNCNAME",
		"RANDOM", "SRANDOM", "SECONDS", "LINENO", "HISTCMD", "ENV",
		"EPOCHREALTIME", "EPOCHSECONDS", "DIRSTACK", "PIPESTATUS",
		"POSIXLY_CORRECT", "HOSTNAME", "OPTIND", "OPTERR", NULL,
	};

	for (char *const *e = env; e && *e; e++) {
		size_t n = strcspn(*e, "=");

		/* rb_: the names rb_run uses itself */
		if (strncmp(*e, "BASH", 4) == 0 || strncmp(*e, "COMP_", 5) == 0 ||
		    strncmp(*e, "rb_", 3) == 0)
			return false;
		for (const char *const *b = names; *b; b++)
			if (strlen(*b) == n && strncmp(*e, *b, n) == 0)
				return false;
	}
	return true;
}

/* The step's dir and env, in the subshell that becomes the command. */
static void dir_env(struct buf *s, const struct exec_cmd *cmd)
{
	if (cmd->dir) {
		buf_adds(s, "cd -- ");
		shell_quote(s, cmd->dir);
		buf_adds(s, " || exit 126\n");
	}
	for (char *const *e = cmd->env; e && *e; e++) {
		const char *eq = strchr(*e, '=');

		if (!eq)
			continue;
		buf_addf(s, "export %.*s=", (int)(eq - *e), *e);
		shell_quote(s, eq + 1);
		buf_addc(s, '\n');
	}
}

/* The /bin/sh that runs a command the long way: INNER_HEAD/INNER_TAIL. */
static void inner(struct buf *s, const struct shrun *r,
		  const struct exec_cmd *cmd, bool setsid)
{
	const char *id = change_id(cmd);

	buf_adds(s, "RB_N=");
	buf_add(s, r->mark + 4, r->mlen - 5);
	buf_adds(s, " RB_C=");
	shell_quote(s, cmd->command);
	buf_adds(s, setsid ? "\nexport RB_N RB_C\nexec setsid /bin/sh -c " :
			     "\nexport RB_N RB_C\nexec /bin/sh -c ");
	shell_quote(s, shell_exec_ok(cmd->command) ?
			       INNER_HEAD "exec " INNER_TAIL :
			       INNER_HEAD INNER_TAIL);
	buf_adds(s, " runbook-change-");
	shell_quote(s, id ? id : "none");
}

/*
 * The script a bash with job control runs for cmd. A simple command
 * that bash reads as dash does (shell_bash_same()) goes to rb_run
 * (JOBS_RUN): one fork and one exec on the host. Anything else becomes
 * /bin/sh -c INNER in a background job, as on other hosts but without
 * setsid (and with the env set by a /bin/sh first where bash would
 * refuse it).
 */
static void script_jobs(struct buf *s, struct exec_ssh *x,
			const struct shrun *r, const struct exec_cmd *cmd,
			const char *nonce_text)
{
	if (!x->sh_defined)
		buf_adds(s, JOBS_PREAMBLE JOBS_RUN);
	x->sh_defined = true;
	if (shell_bash_same(cmd->command) && bash_env_ok(cmd->env)) {
		buf_addf(s, "rb_run %s ", nonce_text);
		shell_quote_always(s, cmd->dir ? cmd->dir : "");
		buf_addc(s, ' ');
		shell_quote(s, cmd->command);
		for (char *const *e = cmd->env; e && *e; e++) {
			if (!strchr(*e, '='))
				continue;
			buf_addc(s, ' ');
			shell_quote(s, *e);
		}
		buf_addc(s, '\n');
		return;
	}
	buf_addf(s, "printf '\\036rb %s go\\n'\nset -m\n(", nonce_text);
	if (bash_env_ok(cmd->env)) {
		dir_env(s, cmd);
		inner(s, r, cmd, false);
	} else {	/* bash would refuse the env: /bin/sh sets it */
		struct buf in = BUF_INIT;

		dir_env(&in, cmd);
		inner(&in, r, cmd, false);
		buf_adds(s, "exec /bin/sh -c ");
		shell_quote_always(s, buf_str(&in));
		explicit_bzero(in.data, in.len);	/* may hold secrets */
		buf_release(&in);
	}
	buf_adds(s, ") </dev/null 2>&3 3>&- &\nwait \"$!\"; rb_s=$?\n"
		 "kill -s TERM -- \"-$!\" 2>/dev/null && "
		 "kill -s CONT -- \"-$!\" 2>/dev/null\n");
	buf_addf(s, "printf '\\036rb %s end %%s\\n' \"$rb_s\"\n"
		 "printf '\\036rb %s end\\n' >&3\n", nonce_text, nonce_text);
}

/*
 * The script the shell runs for cmd (it holds the command and env).
 * A simple command (shell_exec_ok()) on a shell that has /proc and its
 * pid file goes fast: the subshell reads its own pid, leaves it in the
 * pid file, reports it and becomes the command in a session of its own
 * (setsid does not fork in a process that leads no group); the shell
 * then stops what the command left in that group: one fork and two
 * execs on the host. Anything else runs under INNER_HEAD/INNER_TAIL.
 * A bash with job control runs script_jobs() instead.
 */
static void script(struct buf *s, struct exec_ssh *x, const struct shrun *r,
		   const struct exec_cmd *cmd)
{
	bool fast = x->sh_fast && shell_exec_ok(cmd->command);
	struct buf nonce_text = BUF_INIT;

	buf_add(&nonce_text, r->mark + 4, r->mlen - 5);
	if (x->sh_jobs) {
		script_jobs(s, x, r, cmd, buf_str(&nonce_text));
		buf_release(&nonce_text);
		return;
	}
	buf_addf(s, "printf '\\036rb %s go\\n'\n", buf_str(&nonce_text));
	if (fast) {
		/* the pid before env: a step's IFS must not split it */
		buf_addf(s, "(read rb_p rb_x </proc/self/stat || exit 125\n"
			 "printf '%%s\\n' \"$rb_p\" >\"$rb_f\" || exit 125\n"
			 "printf '\\036rb %s pid %%s\\n' \"$rb_p\"\n"
			 "unset rb_p rb_x\n", buf_str(&nonce_text));
		dir_env(s, cmd);
		buf_adds(s, "set --\nrb_c=");
		shell_quote(s, cmd->command);
		buf_adds(s, "\neval \"exec setsid $rb_c\"\n"
			 ") </dev/null 2>&3 3>&-\nrb_s=$?\n"
			 "if read rb_p <\"$rb_f\"; then : >\"$rb_f\"; "
			 "kill -s TERM -- \"-$rb_p\" 2>/dev/null; fi\n");
	} else {
		buf_adds(s, "(");
		dir_env(s, cmd);
		inner(s, r, cmd, true);
		buf_adds(s, ") </dev/null 2>&3 3>&-\nrb_s=$?\n");
	}
	buf_addf(s, "printf '\\036rb %s end %%s\\n' \"$rb_s\"\n"
		 "printf '\\036rb %s end\\n' >&3\n",
		 buf_str(&nonce_text), buf_str(&nonce_text));
	buf_release(&nonce_text);
}

/* Where the wait for a command stands. */
struct wait {
	unsigned long long deadline;	/* 0: no timeout */
	unsigned long long last_tick;
	unsigned long long stop_sent;	/* 0: not stopping */
	enum exec_end end;	/* EXEC_TIMED_OUT or EXEC_CANCELLED if stopping */
	struct ssh_alive alive;
	bool eof, lost, dead;
};

/*
 * The deadline passed or cancel_fd fired: stops the command's group.
 * False when there is nothing to wait for (out->why says so).
 */
static bool stop_it(struct exec_ssh *x, struct shrun *r, struct wait *w,
		    unsigned long long t, struct exec_result *out)
{
	struct buf at = BUF_INIT;
	bool wait = false;

	w->end = w->deadline && t >= w->deadline ? EXEC_TIMED_OUT :
						   EXEC_CANCELLED;
	w->stop_sent = t ? t : 1;
	if (!r->pid) {
		snprintf(out->why, sizeof(out->why),
			 "gave up on %s before the command reported that it had started; its remote shell was closed",
			 ssh_link_where(x, &at));
		drop_shell(x);
	} else if (!ssh_link_stop_group(x, r->pid, NULL)) {
		snprintf(out->why, sizeof(out->why),
			 "could not stop it on %s (the host did not answer); it may still run there until runbook reaches the host again",
			 ssh_link_where(x, &at));
		x->orphan = r->pid;
		x->dead = true;
	} else {
		wait = true;
	}
	buf_release(&at);
	return wait;
}

/*
 * Reads the shell until this command's two ESC-end markers came, the
 * channel ended (w->eof) or broke (w->lost; w->dead if the keepalives
 * found it dead), or a stop is over or gave up.
 */
static void wait_run(struct exec_ssh *x, struct shrun *r, struct wait *w,
		     const struct exec_cmd *cmd, const struct exec_sink *sink,
		     struct exec_result *out)
{
	libssh2_session_set_blocking(x->s, 0);
	for (;;) {
		enum got g = read_both(x, &r->out.acc, &r->err.acc);
		unsigned long long t;

		frame(x, r, &r->out, cmd, sink);
		frame(x, r, &r->err, cmd, sink);
		if (r->out.ended && r->err.ended)
			return;
		if (g == GOT_LOST || g == GOT_EOF) {
			w->lost = g == GOT_LOST;
			w->eof = g == GOT_EOF;
			return;
		}
		if (g == GOT_DATA)
			continue;
		t = sys_now_ms();
		if (sink->tick && t - w->last_tick >= 100) {
			sink->tick(sink->ctx);
			w->last_tick = t;
		}
		if (!w->stop_sent && ((w->deadline && t >= w->deadline) ||
				      ssh_link_cancelled(cmd->cancel_fd))) {
			if (!stop_it(x, r, w, t, out))
				return;
			continue;
		}
		if (w->stop_sent && t - w->stop_sent > STOP_WAIT_MS)
			return;
		if (!w->stop_sent && ssh_link_dead(x, &w->alive, t)) {
			w->dead = true;
			return;
		}
		ssh_link_wait(x, w->stop_sent ? -1 : cmd->cancel_fd, 100);
	}
}

/* Passes on what the shell's start printed, before the first command. */
static void banner(struct exec_ssh *x, const struct exec_sink *sink)
{
	if (x->sh_out.len)
		sink->output(sink->ctx, EXEC_STDOUT, x->sh_out.data, x->sh_out.len);
	if (x->sh_err.len)
		sink->output(sink->ctx, EXEC_STDERR, x->sh_err.data, x->sh_err.len);
	buf_reset(&x->sh_out);
	buf_reset(&x->sh_err);
}

/* Connects again if the link is gone; stops what a lost link cut off. */
static int reconnect(struct exec_ssh *x, struct rb_error *err)
{
	if (x->s && !x->dead)
		return 0;
	ssh_link_close(x);
	if (ssh_link_connect(x, err) < 0)
		return -1;
	if (x->orphan && x->orphan_guard)
		ssh_link_stop_group(x, x->orphan, x->orphan_guard);
	x->orphan = 0;
	return 0;
}

/*
 * Sends cmd to a shell: 0 when it is on its way, -1 with err (nothing
 * started), or SSH_SHELL_UNAVAILABLE.
 */
static int send_run(struct exec_ssh *x, const struct exec_cmd *cmd,
		    const struct shrun *r, struct buf *text, struct rb_error *err)
{
	struct buf at = BUF_INIT;
	int rc;

	if (reconnect(x, err) < 0)
		return -1;
	if (!x->sh) {
		rc = open_shell(x, cmd);
		if (rc == SSH_SHELL_UNAVAILABLE)
			return rc;
		if (rc < 0 && reconnect(x, err) < 0)
			return -1;
		if (rc < 0 && (rc = open_shell(x, cmd)) != 0) {
			if (rc == SSH_SHELL_UNAVAILABLE)
				return rc;
			rb_error_set(err, RB_ERR_CONNECT,
				     "cannot start a remote shell on %s: %s; the command did not start",
				     ssh_link_where(x, &at), ssh_link_errmsg(x->s));
			buf_release(&at);
			return -1;
		}
	}
	/* built once the shell is open: what it has decides the way */
	script(text, x, r, cmd);
	libssh2_session_set_blocking(x->s, 0);
	if (!send_all(x, text->data, text->len, SSH_CONNECT_TIMEOUT_MS))
		drop_shell(x);	/* not begun: the caller tries a new shell */
	return 0;
}

/* How a command whose shell ended without its ESC-end came out. */
static void unknown_end(struct exec_ssh *x, const struct shrun *r,
			const struct wait *w, struct exec_result *out)
{
	struct buf at = BUF_INIT;
	bool stopped = false;

	out->end = EXEC_LOST;
	out->exit_code = -1;
	if (w->dead) {
		ssh_link_dead_why(x, out->why, sizeof(out->why));
		x->dead = true;
		x->orphan = r->pid;
	} else if (w->lost) {
		x->dead = true;
		x->orphan = r->pid;
		snprintf(out->why, sizeof(out->why),
			 "lost the connection to %s while the command ran (%s); it may have done part of its work",
			 ssh_link_where(x, &at), ssh_link_errmsg(x->s));
	} else {
		/* the command may go on without its shell: stop it first */
		stopped = r->pid && x->orphan_guard &&
			  ssh_link_stop_group(x, r->pid, x->orphan_guard);
		drop_shell(x);
		snprintf(out->why, sizeof(out->why),
			 "the remote shell running the command on %s ended without its exit status%s; its outcome is unknown (it may have done part of its work)",
			 ssh_link_where(x, &at),
			 stopped ? " while the command still ran (stopped it)" : "");
	}
	buf_release(&at);
}

static void shrun_release(struct shrun *r)
{
	buf_release(&r->out.acc);
	buf_release(&r->err.acc);
}

int ssh_shell_run(struct exec_ssh *x, const struct exec_cmd *cmd,
		  const struct exec_sink *sink, struct exec_result *out,
		  struct rb_error *err)
{
	struct buf text = BUF_INIT;
	unsigned long long start = sys_now_ms();
	struct shrun r;
	struct wait w;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	for (int attempt = 0; attempt < 2; attempt++) {
		memset(&r, 0, sizeof(r));
		r.out = (struct stream){ BUF_INIT, EXEC_STDOUT, false, false };
		r.err = (struct stream){ BUF_INIT, EXEC_STDERR, true, false };
		r.status = -1;
		memset(&w, 0, sizeof(w));
		w.last_tick = start;
		w.alive.heard = sys_now_ms();
		w.deadline = cmd->timeout_ms ? start + cmd->timeout_ms : 0;
		if (nonce(r.mark, sizeof(r.mark), &r.mlen) < 0)
			return SSH_SHELL_UNAVAILABLE;
		if (text.data)
			explicit_bzero(text.data, text.len);
		buf_reset(&text);
		rc = send_run(x, cmd, &r, &text, err);
		if (rc != 0)
			goto out;
		if (!x->sh)
			continue;	/* the shell was gone: a new one */
		banner(x, sink);
		wait_run(x, &r, &w, cmd, sink, out);
		if (r.went || w.stop_sent || !(w.eof || w.lost))
			break;
		/* the shell ended before it began the command: nothing ran */
		drop_shell(x);
		if (w.lost)
			x->dead = true;
		shrun_release(&r);
	}
	out->duration_ms = sys_now_ms() - start;
	if (!x->sh && !r.went && !w.stop_sent) {
		struct buf at = BUF_INIT;

		rb_error_set(err, RB_ERR_CONNECT,
			     "cannot start the command on %s: its remote shell ended before it began twice; the command did not start",
			     ssh_link_where(x, &at));
		buf_release(&at);
		rc = -1;
		goto out;
	}
	rc = 0;
	/* a channel ready for a stop, as exec_ssh.c keeps one ready */
	if (x->sh && !x->dead)
		ssh_link_preopen(x);
	if (r.out.ended && r.err.ended && !w.stop_sent) {
		out->end = EXEC_EXITED;
		out->exit_code = r.status;
	} else if (w.stop_sent) {
		out->end = w.end;
		out->exit_code = -1;
		if (!(r.out.ended && r.err.ended))
			drop_shell(x);	/* never reuse a shell mid-command */
	} else {
		unknown_end(x, &r, &w, out);
	}
	/* what is held back is the command's own tail, not a marker */
	r.out.pass = r.out.pass || r.went;
	emit(&r.out, sink, NULL, r.out.acc.data, r.out.ended ? 0 : r.out.acc.len);
	emit(&r.err, sink, NULL, r.err.acc.data, r.err.ended ? 0 : r.err.acc.len);
out:
	shrun_release(&r);
	if (text.data)
		explicit_bzero(text.data, text.len);	/* held the secrets */
	buf_release(&text);
	return rc;
}
