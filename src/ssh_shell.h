/*
 * Commands over one long-lived remote shell per host (the SSH
 * executor's fast transport, docs/ssh.md "One remote shell per host").
 *
 * The first command of a connection opens one channel that runs
 * `exec /bin/sh -s runbook-change-ID`; every command after that is a
 * short script written to that shell's stdin. The shell runs each
 * command in a subshell that becomes `setsid /bin/sh -c ...`: its own
 * session and process group, stdin /dev/null, the step's dir and env,
 * the command text in its environment (never on a command line), what
 * it leaves in its group sent SIGTERM when it ends. On a host with
 * bash 4+, that shell becomes `bash --posix -s` and each command is a
 * background job with job control on: its own process group without
 * setsid; a simple command that bash reads as dash does is exec'd by
 * the job's subshell (RUNBOOK_SSH_NOBASH=1 keeps /bin/sh). Its stdout and
 * stderr are the channel's; the shell frames them with markers that
 * hold a fresh 128-bit random nonce per command:
 *
 *   stdout: ESC-go, ESC-pid PID, the command's stdout, ESC-end STATUS
 *   stderr: the command's stderr, ESC-end
 *
 * (ESC is "\036rb NONCE "; each marker ends with a newline.) What the
 * command writes can end a stream only by writing the nonce, which it
 * is never given: the odds of it doing so by chance are 2^-128 per
 * marker. Bytes with no final newline, NULs and \036 pass through
 * unchanged; a marker cut across two reads is held back, never passed.
 * Bytes before ESC-go are what processes left behind by an earlier
 * command wrote late: they are dropped, not charged to this command.
 *
 * A shell found dead before it began a command (no ESC-go: an idle
 * close, a shell killed between commands) is replaced once and the
 * command sent again; one that dies after ESC-go leaves the outcome
 * unknown (EXEC_LOST; the group is stopped if its pid came). A host
 * without `setsid` keeps one channel per command (exec_ssh.c).
 */
#ifndef RUNBOOK_SSH_SHELL_H
#define RUNBOOK_SSH_SHELL_H

#include "exec.h"

struct exec_ssh;
struct rb_error;

/* ssh_shell_run() found no remote shell to use: run on a channel. */
#define SSH_SHELL_UNAVAILABLE 2

/*
 * Runs cmd on x's remote shell, opening it (and connecting) first if
 * needed. Returns as exec_ops.run does (0 or -1 with err), or
 * SSH_SHELL_UNAVAILABLE (nothing started) when the host cannot have
 * one: x then remembers to use channels.
 */
int ssh_shell_run(struct exec_ssh *x, const struct exec_cmd *cmd,
		  const struct exec_sink *sink, struct exec_result *out,
		  struct rb_error *err);

#endif
