/*
 * The link to one SSH host, for the SSH executor (exec_ssh.c) alone:
 * the connection (TCP, handshake, host key, authentication), its
 * channels, the keepalives that find a dead link, and stopping a
 * process group on the host from a channel of its own. Everything that
 * waits on the host is bounded; a link found broken is marked dead
 * and never waited on again (the next command connects anew).
 *
 * struct exec_ssh is shared by the two files; only one thread uses one
 * at a time.
 */
#ifndef RUNBOOK_SSH_LINK_H
#define RUNBOOK_SSH_LINK_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "exec.h"

struct rb_error;
struct _LIBSSH2_SESSION;
struct _LIBSSH2_CHANNEL;

/*
 * The defaults of the keepalives (ServerAliveInterval and
 * ServerAliveCountMax set them per host). While a command runs: a
 * keepalive after this many seconds of silence...
 */
#define SSH_KEEPALIVE_S 5
/* ...and this many unanswered that, one interval later, make the link dead. */
#define SSH_KEEPALIVE_MAX 3
/* So a silent link is declared dead this long after the host's last byte. */
#define SSH_DEAD_AFTER_S (SSH_KEEPALIVE_S * (SSH_KEEPALIVE_MAX + 1))

struct ssh_params {
	const char *name;	/* as written in the runbook, for messages */
	const char *address;	/* to connect to, and the known_hosts name */
	unsigned port;
	const char *user;
	char *const *identities;	/* configured key files: offered first */
	char *const *default_identities;	/* after the agent's keys */
	bool identities_only;	/* IdentitiesOnly: identities alone (if none, the defaults) */
	unsigned alive_interval_s;	/* ServerAliveInterval; 0: SSH_KEEPALIVE_S */
	int alive_count_max;	/* ServerAliveCountMax; < 0: SSH_KEEPALIVE_MAX (0 is a count) */
	const char *known_hosts;	/* file; NULL: ~/.ssh/known_hosts */
	bool accept_new;	/* append unknown (never changed) keys */
	unsigned connect_timeout_ms;	/* 0: 10 s */
};

/* How long connecting (and opening a channel) may take. */
#define SSH_CONNECT_TIMEOUT_MS 10000u

struct exec_ssh {
	struct exec base;
	struct ssh_params p;	/* strings owned (copied) */
	struct strvec ids;
	int sock;
	struct _LIBSSH2_SESSION *s;
	bool dead;		/* the connection was lost */
	/* ServerAliveInterval, ServerAliveCountMax set (not the defaults) */
	bool interval_set, count_set;
	struct _LIBSSH2_CHANNEL *pre;	/* opened ahead for the next command */
	struct _LIBSSH2_CHANNEL *sh;	/* the remote shell (ssh_shell.c) */
	int sh_mode;		/* 0: use the remote shell; -1: channels */
	/* the shell has /proc and its pid file: simple commands go fast */
	bool sh_fast;
	/* the shell is a bash with job control (ssh_shell.c script_jobs) */
	bool sh_jobs;
	bool sh_defined;	/* its rb_run function is defined */
	/* what the shell's start printed (login files), for the next command */
	struct buf sh_out, sh_err;
	long orphan;		/* group of a command cut off by a lost link */
	char *orphan_guard;	/* its change id */
	struct strvec defs;	/* default key files, after the agent */
	/* set by the socket and disconnect callbacks (ssh_link.c) */
	unsigned long long last_rx;	/* when the host last sent a byte */
	bool peer_closed;	/* it closed the connection, or it broke */
	char bye[160];		/* its SSH_MSG_DISCONNECT text, sanitised */
};

/* libssh2_init() once per process; its result (0: ready). */
int ssh_link_init(void);

/* "name (address port N)" for messages, in b. */
const char *ssh_link_where(const struct exec_ssh *x, struct buf *b);
/* libssh2's last error on s, or a placeholder. */
const char *ssh_link_errmsg(struct _LIBSSH2_SESSION *s);

/*
 * Connects, checks the host key and authenticates. Returns 0, or -1
 * with err (class RB_ERR_CONNECT) and the link closed.
 */
int ssh_link_connect(struct exec_ssh *x, struct rb_error *err);
/* Closes the session and socket (at once if the link is dead). */
void ssh_link_close(struct exec_ssh *x);

/* Waits for the socket as libssh2 wants it, or for cancel_fd, up to ms. */
void ssh_link_wait(struct exec_ssh *x, int cancel_fd, int ms);
/* True if fd (>= 0) is readable: the run must stop. */
bool ssh_link_cancelled(int fd);

/*
 * A session channel: the one opened ahead, or a new one. NULL if the
 * session cannot give one within ms (the link is then unusable).
 */
struct _LIBSSH2_CHANNEL *ssh_link_channel(struct exec_ssh *x, int cancel_fd,
					  unsigned ms);
/* Asks for the next command's channel now, while nothing waits on it. */
void ssh_link_preopen(struct exec_ssh *x);
/* Frees a channel, waiting at most ms; false (session unusable) if not. */
bool ssh_link_free_channel(struct exec_ssh *x, struct _LIBSSH2_CHANNEL *ch,
			   unsigned ms);

/*
 * TERM the remote process group pid, KILL it after EXEC_KILL_GRACE_MS,
 * from a channel of its own. With a guard, only if the group leader's
 * command line still holds it. True if it was stopped.
 */
bool ssh_link_stop_group(struct exec_ssh *x, long pid, const char *guard);

/* The keepalive count while a command runs. */
struct ssh_alive {
	unsigned long long heard;	/* the host's last byte, as last seen */
	unsigned long long probed;	/* the last keepalive sent */
	int probes;		/* keepalives sent since heard */
};

/*
 * Keepalive accounting while a command runs (libssh2 keeps none): a
 * keepalive after alive_interval_s seconds without a byte from the
 * host, then one every alive_interval_s; any byte from the host
 * (output, the answer sshd gives every keepalive) clears the count.
 * True once alive_count_max went unanswered for one more interval: the
 * link is dead, interval * (count + 1) after the host's last byte (with
 * a count of 0 no keepalive is sent, as in ssh). t: now.
 */
bool ssh_link_dead(struct exec_ssh *x, struct ssh_alive *a,
		   unsigned long long t);
/* Why a link ssh_link_dead() gave up on was given up, into why. */
void ssh_link_dead_why(const struct exec_ssh *x, char *why, size_t size);

#endif
