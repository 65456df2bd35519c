/*
 * Local executor: /bin/sh -c COMMAND in its own process group, stdin
 * /dev/null, stdout and stderr on two pipes read by one poll() loop.
 *
 * A simple command that runs a program is exec'd by the shell, not
 * forked (shell_exec_ok()); one of plain words is spawned without the
 * shell (plain_args()).
 *
 * Invariants: the child is started with posix_spawn() (no copy of our
 * address space), its group, signals, mask and fds set before exec; the
 * command text travels in its environment, not its argv; the
 * group is killed (TERM, grace, KILL) on timeout or cancel; after the
 * shell exits the pipes are drained for a bounded time (a grandchild
 * may hold them open), then the whole group is killed; every child is
 * reaped.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "exec.h"
#include "quote.h"
#include "sys.h"

extern char **environ;

/* environ less cmd->unset, with cmd->env entries replacing or adding. */
static void build_env(struct strvec *env, char *const *extra,
		      char *const *unset)
{
	for (char **e = environ; *e; e++) {
		const char *eq = strchr(*e, '=');
		size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
		bool replaced = false;

		for (char *const *x = extra; x && *x && !replaced; x++)
			replaced = strncmp(*x, *e, n) == 0 && (*x)[n] == '=';
		for (char *const *u = unset; u && *u && !replaced; u++)
			replaced = strlen(*u) == n && strncmp(*u, *e, n) == 0;
		if (!replaced)
			strvec_push(env, *e);
	}
	for (char *const *x = extra; x && *x; x++)
		strvec_push(env, *x);
}

/*
 * Starts path (/bin/sh, or the program of a plain command) as its own
 * process group leader, default signals, an
 * empty mask, stdin /dev/null. posix_spawn() (clone with CLONE_VFORK in
 * glibc) does not copy our page tables as fork() would: with libgit2,
 * libssh2 and their crypto mapped, that copy was most of a step's cost.
 * Returns 0, or an errno (exec or chdir failed: nothing ran).
 */
static int spawn(pid_t *pid, const char *path, const struct exec_cmd *cmd,
		 char **argv, char **envp, int out_w, int err_w, int devnull)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t all, none;
	int rc;

	sigfillset(&all);
	sigemptyset(&none);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP |
				 POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawn_file_actions_adddup2(&fa, devnull, 0);
	posix_spawn_file_actions_adddup2(&fa, out_w, 1);
	posix_spawn_file_actions_adddup2(&fa, err_w, 2);
	if (cmd->dir)
		posix_spawn_file_actions_addchdir_np(&fa, cmd->dir);
	rc = posix_spawn(pid, path, &fa, &at, argv, envp);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return rc;
}

/* A pollable handle on the child's exit, or -1 (then we poll by time). */
static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	return -1;
#endif
}

unsigned long long exec_proc_start_time(long pid)
{
	char path[64], buf[1024];
	unsigned long long t = 0;
	const char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* the name in parentheses may hold spaces: count from the last ')' */
	p = strrchr(buf, ')');
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (p)
		t = strtoull(p + 1, NULL, 10);
	return t;
}

bool exec_stop_orphan(long pid, unsigned long long start_time)
{
	unsigned long long end;

	if (pid <= 1 || !start_time ||
	    exec_proc_start_time(pid) != start_time)
		return false;
	kill(-(pid_t)pid, SIGTERM);
	end = sys_now_ms() + EXEC_KILL_GRACE_MS;
	while (sys_now_ms() < end) {
		if (kill(-(pid_t)pid, 0) < 0 && errno == ESRCH)
			return true;
		usleep(20000);
	}
	kill(-(pid_t)pid, SIGKILL);
	return true;
}

static void kill_group(pid_t pgid, int sig)
{
	if (kill(-pgid, sig) < 0 && errno == ESRCH)
		return;
}

struct pipes {
	int fd[2];	/* stdout, stderr read ends; -1 when closed */
};

/* Reads what is available; closes a pipe at EOF. */
static void pump(struct pipes *p, struct pollfd *pfd, const struct exec_sink *sink)
{
	char chunk[65536];

	for (int i = 0; i < 2; i++) {
		ssize_t r;

		if (p->fd[i] < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		r = read(p->fd[i], chunk, sizeof(chunk));
		if (r > 0) {
			sink->output(sink->ctx, i == 0 ? EXEC_STDOUT : EXEC_STDERR,
				     chunk, (size_t)r);
		} else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
			close(p->fd[i]);
			p->fd[i] = -1;
		}
	}
}

/* dash's PATH when the command's environment has none */
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/*
 * A plain command: one program and its words, each of
 * [A-Za-z0-9_@%+:,./=-], blanks between (shell_exec_ok() for the first):
 * sh would only split it at the blanks and exec the program. Then
 * *path is the program, found as sh finds it (a word with a slash as
 * it is, else the first regular executable file in the command's own
 * PATH), and argv its words. False, and the shell runs the command as
 * ever, for anything else, a PATH entry that is empty or relative, or
 * a program not found (sh then says so in its own words). Not used with
 * a step's dir: there sh would also set PWD.
 */
static bool plain_args(struct strvec *argv, struct buf *path,
		       const char *command, char *const *envp)
{
	static const char word[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		"0123456789_@%+:,./=-";
	const char *p = command, *dirs = DEFAULT_PATH;

	if (!shell_exec_ok(command))
		return false;
	for (const char *c = command; *c; c++)
		if (!strchr(word, *c) && !strchr(" \t\n", *c))
			return false;
	while (*(p += strspn(p, " \t\n"))) {
		size_t n = strspn(p, word);

		strvec_push_owned(argv, xstrndup(p, n));
		p += n;
	}
	if (!argv->n)
		return false;
	if (strchr(argv->v[0], '/')) {
		buf_adds(path, argv->v[0]);
		return true;
	}
	for (char *const *e = envp; e && *e; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			dirs = *e + 5;
	for (const char *d = dirs;; d++) {
		size_t n = strcspn(d, ":");
		struct stat st;

		if (*d != '/' || memchr(d, '%', n))
			break;	/* relative, empty or dash's %func: sh */
		buf_reset(path);
		buf_add(path, d, n);
		buf_addf(path, "/%s", argv->v[0]);
		if (stat(buf_str(path), &st) == 0 && S_ISREG(st.st_mode) &&
		    access(buf_str(path), X_OK) == 0)
			return true;
		d += n;
		if (!*d)
			break;
	}
	buf_reset(path);
	return false;
}

/*
 * The shell's argv and environment. The command (with its secrets)
 * goes in the environment, which only its user can read, not on the
 * command line that every user sees in ps; the shell takes it out
 * before running it.
 */
static void shell_args(struct strvec *argv, struct strvec *envp,
		       const struct exec_cmd *cmd)
{
	struct buf c = BUF_INIT;
	size_t k = 0;

	strvec_push(argv, "sh");
	strvec_push(argv, "-c");
	/*
	 * eval keeps the shell from exec'ing the last command, so a simple
	 * command that runs a program is exec'd by hand: the shell becomes
	 * it (same pid and group) instead of forking it.
	 */
	strvec_push(argv, shell_exec_ok(cmd->command) ?
			  "rb_c=$RUNBOOK_COMMAND; unset RUNBOOK_COMMAND; "
			  "eval \"unset rb_c; exec $rb_c\"" :
			  "rb_c=$RUNBOOK_COMMAND; unset RUNBOOK_COMMAND; "
			  "eval \"unset rb_c; $rb_c\"");
	build_env(envp, cmd->env, cmd->unset);
	/* a runbook run by a step must not see its parent's */
	for (size_t i = 0; i < envp->n; i++) {
		if (strncmp(envp->v[i], "RUNBOOK_COMMAND=", 16) == 0)
			free(envp->v[i]);
		else
			envp->v[k++] = envp->v[i];
	}
	envp->n = k;
	if (envp->v)
		envp->v[k] = NULL;

	buf_adds(&c, "RUNBOOK_COMMAND=");
	buf_adds(&c, cmd->command);
	strvec_push_owned(envp, buf_detach(&c));
}

/* A started shell and where its run stands. */
struct child {
	pid_t pid;		/* also its process group */
	int pidfd;		/* -1: none, the exit is polled for by time */
	struct pipes p;
	int status;		/* from waitpid(), once reaped */
	bool reaped;
	enum exec_end end;	/* EXEC_EXITED until timed out or cancelled */
	unsigned long long deadline;
	unsigned long long kill_at;	/* SIGKILL due, or 0 */
	unsigned long long exited_at;	/* when it was reaped */
	unsigned long long last_tick;
};

/*
 * Reaps the shell if it exited and applies the clock at now: after the
 * exit, the pipes may be drained for EXEC_DRAIN_MS, then the leftovers
 * holding them are killed; at the deadline the group gets SIGTERM, and
 * SIGKILL after the grace. True when the run is over.
 */
static bool child_clock(struct child *c, unsigned long long now)
{
	if (!c->reaped) {
		pid_t w = waitpid(c->pid, &c->status, WNOHANG);

		if (w == c->pid) {
			c->reaped = true;
			c->exited_at = now;
		}
	}
	if (c->reaped && c->p.fd[0] < 0 && c->p.fd[1] < 0)
		return true;
	if (c->reaped && now >= c->exited_at + EXEC_DRAIN_MS) {
		/* leftovers hold the pipes: end them */
		kill_group(c->pid, SIGKILL);
		return true;
	}
	if (!c->reaped && c->end == EXEC_EXITED && now >= c->deadline) {
		c->end = EXEC_TIMED_OUT;
		kill_group(c->pid, SIGTERM);
		c->kill_at = now + EXEC_KILL_GRACE_MS;
	}
	if (c->kill_at && now >= c->kill_at) {
		kill_group(c->pid, SIGKILL);
		c->kill_at = 0;
	}
	return false;
}

/*
 * How long poll() may sleep: until the deadline, the kill or a tick
 * (100 ms), and never past the drain bound; 5 ms at most when only
 * the exit is awaited and there is no pidfd to wake us for it.
 */
static int poll_timeout(const struct child *c, unsigned long long now)
{
	unsigned long long wake = now + 100;
	int timeout;

	if (!c->reaped && c->end == EXEC_EXITED && c->deadline < wake)
		wake = c->deadline;
	if (c->kill_at && c->kill_at < wake)
		wake = c->kill_at;
	timeout = (int)(wake > now ? wake - now : 0);
	if (c->pidfd < 0 && !c->reaped && c->p.fd[0] < 0 && c->p.fd[1] < 0 &&
	    timeout > 5)
		timeout = 5;	/* no pidfd: look for the exit often */
	if (c->reaped && wake > c->exited_at + EXEC_DRAIN_MS)
		timeout = (int)(c->exited_at + EXEC_DRAIN_MS > now ?
				c->exited_at + EXEC_DRAIN_MS - now : 0);
	return timeout;
}

/*
 * The one poll() loop: passes output on, stops the group on timeout or
 * cancel, ticks the sink, until the shell is reaped and its pipes are
 * closed or drained. -1 with err if poll() fails (the group is killed
 * and the shell reaped).
 */
static int wait_child(struct child *c, const struct exec_cmd *cmd,
		      const struct exec_sink *sink, struct rb_error *err)
{
	for (;;) {
		struct pollfd pfd[4];
		unsigned long long now = sys_now_ms();
		int n;

		if (child_clock(c, now))
			return 0;
		pfd[0] = (struct pollfd){ c->p.fd[0], POLLIN, 0 };
		pfd[1] = (struct pollfd){ c->p.fd[1], POLLIN, 0 };
		pfd[2] = (struct pollfd){ c->end == EXEC_EXITED ? cmd->cancel_fd : -1,
					  POLLIN, 0 };
		/* the exit itself wakes us, even with both pipes closed */
		pfd[3] = (struct pollfd){ c->reaped ? -1 : c->pidfd, POLLIN, 0 };
		n = poll(pfd, 4, poll_timeout(c, now));
		if (n < 0 && errno != EINTR) {
			rb_error_errno(err, RB_ERR_FAILED, "poll");
			kill_group(c->pid, SIGKILL);
			waitpid(c->pid, &c->status, 0);
			return -1;
		}
		if (n > 0) {
			pump(&c->p, pfd, sink);
			if (pfd[2].fd >= 0 && (pfd[2].revents & POLLIN)) {
				c->end = EXEC_CANCELLED;
				kill_group(c->pid, SIGTERM);
				c->kill_at = sys_now_ms() + EXEC_KILL_GRACE_MS;
			}
		}
		if (sink->tick && sys_now_ms() >= c->last_tick + 100) {
			c->last_tick = sys_now_ms();
			sink->tick(sink->ctx);
		}
	}
}

/* How it ended: the shell's status counts only if we did not stop it. */
static void child_result(const struct child *c, unsigned long long start,
			 struct exec_result *out)
{
	out->duration_ms = sys_now_ms() - start;
	out->end = c->end;
	out->exit_code = -1;
	out->signal = 0;
	if (c->end == EXEC_EXITED) {
		if (WIFEXITED(c->status)) {
			out->exit_code = WEXITSTATUS(c->status);
		} else if (WIFSIGNALED(c->status)) {
			out->end = EXEC_SIGNALED;
			out->signal = WTERMSIG(c->status);
		}
	}
}

/*
 * Runs cmd: spawns the shell with its output on two pipes, waits for
 * it and says how it ended. -1 with err when it could not start (or
 * poll() failed); the fds are closed and the secrets wiped either way.
 */
static int local_run(struct exec *ex, const struct exec_cmd *cmd,
		     const struct exec_sink *sink, struct exec_result *out,
		     struct rb_error *err)
{
	struct strvec argv = STRVEC_INIT, envp = STRVEC_INIT, plain = STRVEC_INIT;
	struct buf path = BUF_INIT;
	int outp[2] = { -1, -1 }, errp[2] = { -1, -1 };
	int devnull = -1, ret = -1, child_errno = 0;
	struct child c = { .pidfd = -1, .p = { { -1, -1 } }, .end = EXEC_EXITED };
	unsigned long long start = sys_now_ms();

	(void)ex;
	c.last_tick = start;
	shell_args(&argv, &envp, cmd);

	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0 || pipe2(outp, O_CLOEXEC) < 0 ||
	    pipe2(errp, O_CLOEXEC) < 0) {
		rb_error_errno(err, RB_ERR_FAILED,
			       "cannot start a command: pipes");
		goto out;
	}
	/* a plain command runs without the shell (RUNBOOK_COMMAND is last) */
	child_errno = -1;
	if (!cmd->dir && plain_args(&plain, &path, cmd->command, envp.v)) {
		char *text = envp.v[envp.n - 1];

		envp.v[envp.n - 1] = NULL;
		child_errno = spawn(&c.pid, buf_str(&path), cmd, plain.v,
				    envp.v, outp[1], errp[1], devnull);
		envp.v[envp.n - 1] = text;
	}
	if (child_errno)	/* not plain, or it did not start: the shell */
		child_errno = spawn(&c.pid, "/bin/sh", cmd, argv.v, envp.v,
				    outp[1], errp[1], devnull);
	if (child_errno) {
		errno = child_errno;
		rb_error_errno(err, RB_ERR_FAILED,
			       cmd->dir ? "cannot start the command in '%s'" :
					  "cannot start /bin/sh%s",
			       cmd->dir ? cmd->dir : "");
		goto out;
	}
	if (sink->started)
		sink->started(sink->ctx, (long)c.pid, exec_proc_start_time(c.pid));
	close(outp[1]);
	close(errp[1]);
	outp[1] = errp[1] = -1;
	c.pidfd = open_pidfd(c.pid);
	c.p.fd[0] = outp[0];
	c.p.fd[1] = errp[0];
	outp[0] = errp[0] = -1;
	fcntl(c.p.fd[0], F_SETFL, O_NONBLOCK);
	fcntl(c.p.fd[1], F_SETFL, O_NONBLOCK);
	c.deadline = start + cmd->timeout_ms;
	if (wait_child(&c, cmd, sink, err) < 0)
		goto out;
	/* the group may still have members that closed their output */
	kill_group(c.pid, SIGKILL);
	child_result(&c, start, out);
	ret = 0;
out:
	for (int i = 0; i < 2; i++)
		if (c.p.fd[i] >= 0)
			close(c.p.fd[i]);
	if (c.pidfd >= 0)
		close(c.pidfd);
	int fds[] = { outp[0], outp[1], errp[0], errp[1], devnull };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	strvec_release(&argv);
	for (size_t i = 0; i < plain.n; i++)	/* rendered: may hold secrets */
		explicit_bzero(plain.v[i], strlen(plain.v[i]));
	strvec_release(&plain);
	buf_release(&path);
	for (size_t i = 0; i < envp.n; i++)	/* secrets: env values, the command */
		explicit_bzero(envp.v[i], strlen(envp.v[i]));
	strvec_release(&envp);
	return ret;
}

static void local_close(struct exec *ex)
{
	free(ex);
}

static bool local_stop(struct exec *ex, long pid, unsigned long long start_time,
		       const char *guard)
{
	(void)ex;
	(void)guard;
	return exec_stop_orphan(pid, start_time);
}

static const struct exec_ops local_ops = { local_run, local_close, local_stop };

struct exec *exec_local_new(void)
{
	struct exec *ex = xcalloc(1, sizeof(*ex));

	ex->ops = &local_ops;
	return ex;
}
