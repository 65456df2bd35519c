/*
 * Host resolution: a host as the runbook names it, plus ~/.ssh/config,
 * plus identities, becomes an executor. The runbook's user, address and
 * port come first, then ~/.ssh/config, then the defaults (the local
 * user, port 22). Keys: the configured ones first, the host's identity
 * (or its target's) and IdentityFile of the config; then the agent's
 * other keys; then ~/.ssh/id_ed25519, id_ecdsa, id_rsa. IdentitiesOnly
 * yes in the config: the configured ones alone (none: the default files).
 * ServerAliveInterval (but 0) and ServerAliveCountMax set the keepalives.
 */
#ifndef RUNBOOK_HOSTS_H
#define RUNBOOK_HOSTS_H

#include <stdbool.h>

struct exec;
struct host;
struct rb_error;
struct runbook;

struct host_access {
	const char *identity;	/* the target's identity file, or NULL */
	const char *known_hosts;	/* NULL: ~/.ssh/known_hosts */
	bool accept_new;	/* trust unknown (never changed) host keys */
};

/*
 * The executors of host h: *ex runs its commands, *local_ex (remote
 * hosts only, else NULL) runs its `local: true` steps here. lazy: do
 * not connect now, the first command does (replay: one lost host must
 * not stop the others). Returns 0, or -1 with err (RB_ERR_CONNECT, or
 * RB_ERR_INVALID for a bad ~/.ssh/config) and nothing to close.
 * May be called from several threads at once.
 */
int hosts_open(const struct host *h, const struct host_access *a, bool lazy,
	       struct exec **ex, struct exec **local_ex, struct rb_error *err);

/*
 * Identity paths as a user reading the file takes them: ~/x is under
 * $HOME, a relative path is relative to the runbook's directory; made
 * absolute in rb so the recorded path works from anywhere (replay).
 */
void hosts_resolve_identities(struct runbook *rb);

#endif
