/*
 * Executors run one rendered command on one host. The engine (apply.c)
 * knows nothing of how: exec_local.c forks /bin/sh -c, an SSH backend
 * opens a channel. Output is handed to the sink as it arrives, stdout
 * and stderr kept apart; nothing is buffered here without bound.
 */
#ifndef RUNBOOK_EXEC_H
#define RUNBOOK_EXEC_H

#include <stdbool.h>
#include <stddef.h>

struct rb_error;

enum exec_stream { EXEC_STDOUT = 1, EXEC_STDERR = 2 };

struct exec_cmd {
	const char *command;	/* for /bin/sh -c; secrets resolved */
	char *const *env;	/* extra "NAME=value" entries, NULL-terminated */
	char *const *unset;	/* names removed from the environment */
	const char *dir;	/* working directory, or NULL */
	unsigned timeout_ms;
	int cancel_fd;		/* readable when the run must stop, or -1 */
};

struct exec_sink {
	void (*output)(void *ctx, enum exec_stream s, const char *data,
		       size_t len);
	void (*tick)(void *ctx);	/* about every 100 ms, may be NULL */
	/* the command's process group leader started (may be NULL) */
	void (*started)(void *ctx, long pid, unsigned long long start_time);
	void *ctx;
};

enum exec_end {
	EXEC_EXITED,		/* exit_code is valid */
	EXEC_SIGNALED,		/* killed by signal (not by us) */
	EXEC_TIMED_OUT,		/* we stopped it at its timeout */
	EXEC_CANCELLED,		/* we stopped it because cancel_fd fired */
	EXEC_LOST,		/* the host was lost while it ran: outcome unknown */
};

struct exec_result {
	enum exec_end end;
	int exit_code;
	int signal;
	unsigned long long duration_ms;
	char why[512];		/* EXEC_LOST: what happened */
};

struct exec;

struct exec_ops {
	/*
	 * Runs cmd. Returns 0 when the command ran, however it ended (see
	 * out->end); -1 with err set when it could not be started or the
	 * host was lost, when nothing is known of how it ended.
	 */
	int (*run)(struct exec *ex, const struct exec_cmd *cmd,
		   const struct exec_sink *sink, struct exec_result *out,
		   struct rb_error *err);
	void (*close)(struct exec *ex);
	/*
	 * Stops the process group pid left running by a runner that died
	 * (or by a lost connection), only if it is still the one recorded:
	 * locally pid + start_time must match; remotely its command line
	 * must contain guard (the change id). TERM, then KILL after the
	 * grace. True if a group was found and stopped.
	 */
	bool (*stop_orphan)(struct exec *ex, long pid,
			    unsigned long long start_time, const char *guard);
};

struct exec {
	const struct exec_ops *ops;
};

/* The executor for this machine. Never fails. */
struct exec *exec_local_new(void);

static inline int exec_run(struct exec *ex, const struct exec_cmd *cmd,
			   const struct exec_sink *sink,
			   struct exec_result *out, struct rb_error *err)
{
	return ex->ops->run(ex, cmd, sink, out, err);
}

static inline bool exec_stop(struct exec *ex, long pid,
			     unsigned long long start_time, const char *guard)
{
	return ex && ex->ops->stop_orphan &&
	       ex->ops->stop_orphan(ex, pid, start_time, guard);
}

static inline void exec_close(struct exec *ex)
{
	if (ex)
		ex->ops->close(ex);
}

/*
 * Start time of a local process (clock ticks since boot, from
 * /proc/PID/stat), or 0 if it is gone: with the pid it names one
 * process for good, so a recorded pid that was reused is never
 * signalled.
 */
unsigned long long exec_proc_start_time(long pid);
/*
 * Stops a local process group left running by a runner that died:
 * only if pid still has start_time. TERM, then KILL after the grace.
 * Returns true if a group was found and stopped.
 */
bool exec_stop_orphan(long pid, unsigned long long start_time);

/* Grace between SIGTERM and SIGKILL when a command is stopped. */
#define EXEC_KILL_GRACE_MS 2000u
/* After the command exits, how long its leftovers may hold the pipes. */
#define EXEC_DRAIN_MS 500u

#endif
