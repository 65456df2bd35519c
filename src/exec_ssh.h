/*
 * The SSH executor (PRODUCT.md §6): one libssh2 session per host for
 * the whole change. Commands run on one long-lived remote shell per
 * host (ssh_shell.h: framing, process groups, a shell that dies); a
 * host without setsid, or every host with RUNBOOK_SSH_CHANNELS set in
 * the environment, gets one channel per command, as below.
 *
 * Connecting checks the host key against known_hosts (read line by
 * line, so one bad line hides nothing after it; @revoked honoured) and
 * authenticates with public keys: the configured identities first (each
 * through ssh-agent when the agent holds the key of its KEY.pub, else
 * from the file), then the agent's other keys, then the default files.
 * With identities_only (IdentitiesOnly yes), as in OpenSSH, only the
 * configured identities (the agent's copy of one counts), or the default
 * files when there is none; the agent's other keys never.
 * A server that ends the login (MaxAuthTries) is reported as such, with
 * the number of attempts and how to avoid it.
 * Unknown key: refused with the key type and its SHA256 fingerprint in
 * OpenSSH's form and how to trust it; with accept_new it is appended to
 * known_hosts. Changed key: always refused, loudly.
 *
 * On a channel, each command runs as `exec /bin/sh -s runbook-change-ID` under the
 * remote login shell, and the script comes on the channel's stdin, so
 * neither the command nor env values (secrets) are on a command line
 * other users can read. The script reports its pid (sshd made it a
 * session and process group leader), changes directory, exports env
 * (all quoted), evaluates the command in a subshell with stdin from
 * /dev/null, sends SIGTERM to what the command left in its group and
 * reports the exit status; both reports are removed from the output
 * (what a login startup file prints before them is passed on). A
 * session that cannot open a channel (dropped while idle) is replaced
 * once before the command starts; every wait on a host is bounded, so
 * a frozen host ends a run as lost instead of hanging it. A command whose
 * channel closes without a status and without a signal has an unknown
 * outcome and counts as failed (libssh2 reports 0 for "no status").
 * A command that times out or is cancelled is stopped on the remote
 * host too: its process group gets SIGTERM, then SIGKILL after the
 * grace, through a second channel.
 *
 * A connection lost while a command runs ends that run with
 * EXEC_LOST (the command may have done part of its work). A link that
 * goes silent is taken for lost too: a keepalive goes out after
 * alive_interval_s seconds without a byte from the host and every
 * alive_interval_s seconds after, and when alive_count_max of them are
 * unanswered one more interval later the link is dead, within
 * alive_interval_s * (alive_count_max + 1) seconds of the host's last
 * byte (SSH_DEAD_AFTER_S by default), whatever the command's timeout.
 * The keepalives are never turned off. The next run
 * reconnects (the host key is checked again); if that fails, run
 * returns -1 with class RB_ERR_CONNECT.
 *
 * The connection, its keepalives and struct ssh_params are ssh_link.h's.
 * One struct exec serves one thread at a time. exec_ssh_new() may be
 * called from several threads at once.
 */
#ifndef RUNBOOK_EXEC_SSH_H
#define RUNBOOK_EXEC_SSH_H

#include "ssh_link.h"

struct exec;
struct rb_error;

/*
 * Connects, checks the host key and authenticates. Returns 0 and the
 * executor in *out, or -1 with err set (class RB_ERR_CONNECT) saying
 * what failed (address, key and fingerprint, user and the methods
 * tried) and that nothing was run on the host.
 */
int exec_ssh_new(const struct ssh_params *p, struct exec **out,
		 struct rb_error *err);

/*
 * The same executor, not connected yet: its first run connects (and
 * fails with -1, class RB_ERR_CONNECT, if it cannot). For rollback
 * replay, where one unreachable host must not stop the others.
 */
struct exec *exec_ssh_lazy(const struct ssh_params *p);

/* "libssh2 1.10.0", for --version and the notes. */
const char *exec_ssh_version(void);

#endif
