/*
 * SSH executor with libssh2. Connection set-up (handshake, host key,
 * auth) runs in libssh2's blocking mode bounded by
 * libssh2_session_set_timeout(); commands run in non-blocking mode in
 * one poll() loop that drains stdout and stderr together, watches the
 * cancel fd and the deadline, and sends keepalives. The host key is
 * checked against known_hosts by knownhosts.c.
 */
#include "exec_ssh.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libssh2.h>

#include "buf.h"
#include "error.h"
#include "exec.h"
#include "knownhosts.h"
#include "quote.h"
#include "sys.h"

#define CONNECT_TIMEOUT_MS 10000u
/* After the command's channel reached EOF, how long closing may take. */
#define CLOSE_WAIT_MS 5000u
/* Markers of the wrapper: start a line, never appear in text. */
#define PID_MARK "\036rb-pid "
#define EXIT_MARK "\036rb-exit "
/* How far into stdout the pid report is looked for. */
#define PID_SCAN 65536u
/* Stdout kept back so the exit marker is never passed on. */
#define HOLD 32u

struct exec_ssh {
	struct exec base;
	struct ssh_params p;	/* strings owned (copied) */
	struct strvec ids;
	int sock;
	LIBSSH2_SESSION *s;
	bool dead;		/* the connection was lost */
	/* ServerAliveInterval, ServerAliveCountMax set (not the defaults) */
	bool interval_set, count_set;
	LIBSSH2_CHANNEL *pre;	/* opened ahead for the next command */
	long orphan;		/* group of a command cut off by a lost link */
	char *orphan_guard;	/* its change id */
	struct strvec defs;	/* default key files, after the agent */
	/* set by the socket and disconnect callbacks (sock_recv, said_bye) */
	unsigned long long last_rx;	/* when the host last sent a byte */
	bool peer_closed;	/* it closed the connection, or it broke */
	char bye[160];		/* its SSH_MSG_DISCONNECT text, sanitised */
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void init_libssh2(void)
{
	init_rc = libssh2_init(0);
}

const char *exec_ssh_version(void)
{
	static char v[64];

	snprintf(v, sizeof(v), "libssh2 %s", libssh2_version(0));
	return v;
}

static const char *where(const struct exec_ssh *x, struct buf *b)
{
	buf_reset(b);
	if (strcmp(x->p.name, x->p.address) == 0)
		buf_addf(b, "%s port %u", x->p.address, x->p.port);
	else
		buf_addf(b, "%s (%s port %u)", x->p.name, x->p.address,
			 x->p.port);
	return buf_str(b);
}

static const char *ssh_errmsg(LIBSSH2_SESSION *s)
{
	char *msg = NULL;

	if (!s || libssh2_session_last_error(s, &msg, NULL, 0) == 0 || !msg)
		return "no detail from libssh2";
	return msg;
}

/* ---- TCP ---- */

static int tcp_connect(const struct exec_ssh *x, unsigned timeout_ms,
		       struct rb_error *err)
{
	struct addrinfo hints = { 0 }, *res = NULL;
	char port[16];
	int rc, fd = -1, last = 0;
	struct buf w = BUF_INIT;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%u", x->p.port);
	rc = getaddrinfo(x->p.address, port, &hints, &res);
	if (rc) {
		rb_error_set(err, RB_ERR_CONNECT,
			     "cannot connect to %s: expected a host name that resolves, found: %s; nothing was run there",
			     where(x, &w), gai_strerror(rc));
		buf_release(&w);
		return -1;
	}
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		unsigned long long end = sys_now_ms() + timeout_ms;
		struct pollfd pf;
		socklen_t len = sizeof(last);
		int one = 1;

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
				   SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0) {
			last = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 &&
		    errno != EINPROGRESS) {
			last = errno;
			close(fd);
			fd = -1;
			continue;
		}
		pf.fd = fd;
		pf.events = POLLOUT;
		for (;;) {
			unsigned long long t = sys_now_ms();

			rc = t < end ? poll(&pf, 1, (int)(end - t)) : 0;
			if (rc < 0 && errno == EINTR)
				continue;
			break;
		}
		if (rc == 0) {
			last = ETIMEDOUT;
		} else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &last, &len) < 0) {
			last = errno;
		}
		if (last) {
			close(fd);
			fd = -1;
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	}
	freeaddrinfo(res);
	if (fd < 0)
		rb_error_set(err, RB_ERR_CONNECT,
			     "cannot connect to %s: expected an SSH server, found: %s; nothing was run there; safe to run again once the host is reachable",
			     where(x, &w), last == ETIMEDOUT ?
			     "no answer within the connect timeout" : strerror(last));
	buf_release(&w);
	return fd;
}

/* ---- auth ---- */

/*
 * A login: the keys offered so far, in order, and how the server
 * answered. Each refused key costs one of the server's MaxAuthTries,
 * so the configured keys go first and nothing is offered twice.
 */
struct auth {
	struct exec_ssh *x;
	LIBSSH2_AGENT *ag;	/* connected, keys listed; NULL: no agent */
	struct libssh2_agent_publickey **keys;	/* the agent's, in order */
	bool *offered;		/* keys[i] was offered */
	size_t n_keys;
	struct strvec files;	/* key files looked at */
	struct buf tried;	/* "KEY (how it went), ...", for messages */
	int attempts;		/* keys the server answered or closed on */
	bool ok;
	bool stop;		/* the login ended: closed, or no answer */
};

static int b64_value(char c)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c ? strchr(tab, c) : NULL;

	return p ? (int)(p - tab) : -1;
}

/*
 * The key of a KEY.pub file ("type base64 [comment]"), decoded into
 * out. False without such a file or such a line: then the agent cannot
 * be asked for the key, and the file itself is offered.
 */
static bool pub_blob(const char *priv, struct buf *out)
{
	struct buf path = BUF_INIT;
	char line[16384];
	const char *s;
	unsigned v = 0;
	int bits = 0;
	FILE *f;
	bool ok;

	buf_addf(&path, "%s.pub", priv);
	f = fopen(buf_str(&path), "re");
	buf_release(&path);
	if (!f)
		return false;
	ok = fgets(line, sizeof(line), f) != NULL;
	fclose(f);
	s = ok ? line + strcspn(line, " \t") : "";
	s += strspn(s, " \t");
	for (; ok && *s && !strchr("= \t\r\n", *s); s++) {
		int d = b64_value(*s);

		if (d < 0)
			return false;
		v = v << 6 | (unsigned)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf_addc(out, (char)(v >> bits & 0xff));
		}
	}
	return ok && out->len > 0;
}

static void tried_add(struct auth *a, const char *what, const char *how)
{
	buf_addf(&a->tried, "%s%s (%s)", a->tried.len ? ", " : "", what, how);
}

/*
 * Notes how an offered key went (rc from libssh2). A server that closed
 * the connection, or one that stopped answering, ends the login: the
 * next key would only fail the same way.
 */
static void answered(struct auth *a, int rc, const char *what)
{
	struct exec_ssh *x = a->x;

	if (rc == 0) {
		a->ok = true;
		return;
	}
	if (x->peer_closed) {
		/* libssh2 reports the close as a refused key: it was not */
		a->attempts++;
		a->stop = true;
		tried_add(a, what, "the server closed the login");
		return;
	}
	switch (rc) {
	case LIBSSH2_ERROR_AUTHENTICATION_FAILED:
	case LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED:
		a->attempts++;
		tried_add(a, what, "rejected");
		break;
	case LIBSSH2_ERROR_FILE:
		tried_add(a, what, "cannot be read without a passphrase, or not a key");
		break;
	case LIBSSH2_ERROR_TIMEOUT:
	case LIBSSH2_ERROR_SOCKET_SEND:
	case LIBSSH2_ERROR_SOCKET_RECV:
	case LIBSSH2_ERROR_SOCKET_DISCONNECT:
		a->stop = true;
		tried_add(a, what, ssh_errmsg(x->s));
		break;
	default:
		tried_add(a, what, ssh_errmsg(x->s));
		break;
	}
}

/* Connects to ssh-agent and lists its keys; without one, a->ag is NULL. */
static void agent_open(struct auth *a)
{
	const char *sock = getenv("SSH_AUTH_SOCK");
	struct libssh2_agent_publickey *id = NULL;
	size_t cap = 0;

	if (!sock || !*sock)
		return;
	a->ag = libssh2_agent_init(a->x->s);
	if (!a->ag)
		return;
	if (libssh2_agent_connect(a->ag) != 0 ||
	    libssh2_agent_list_identities(a->ag) != 0) {
		tried_add(a, "ssh-agent", "not reachable");
		libssh2_agent_free(a->ag);
		a->ag = NULL;
		return;
	}
	while (libssh2_agent_get_identity(a->ag, &id, id) == 0) {
		a->keys = xgrow(a->keys, &cap, a->n_keys + 1, sizeof(*a->keys));
		a->keys[a->n_keys++] = id;
	}
	a->offered = xcalloc(a->n_keys + 1, sizeof(*a->offered));
}

static void agent_close(struct auth *a)
{
	if (a->ag) {
		libssh2_agent_disconnect(a->ag);
		libssh2_agent_free(a->ag);
	}
	free(a->keys);
	free(a->offered);
}

/* The agent's key with this blob, or -1. */
static long agent_key(const struct auth *a, const struct buf *blob)
{
	for (size_t i = 0; i < a->n_keys; i++)
		if (a->keys[i]->blob_len == blob->len &&
		    memcmp(a->keys[i]->blob, blob->data, blob->len) == 0)
			return (long)i;
	return -1;
}

static int agent_offer(struct auth *a, size_t i)
{
	a->offered[i] = true;
	return libssh2_agent_userauth(a->ag, a->x->p.user, a->keys[i]);
}

/*
 * Offers the key of file priv: through the agent when it holds the key
 * of priv.pub (the file may be locked by a passphrase), else from the
 * file. A file seen before, or a key the agent already offered, is
 * skipped: offering it again would only cost an attempt.
 */
static void offer_file(struct auth *a, const char *priv)
{
	struct exec_ssh *x = a->x;
	struct buf blob = BUF_INIT, pub = BUF_INIT;
	long i = -1;
	int rc;

	for (size_t k = 0; k < a->files.n; k++)
		if (strcmp(a->files.v[k], priv) == 0)
			return;
	strvec_push(&a->files, priv);
	if (pub_blob(priv, &blob))
		i = agent_key(a, &blob);
	buf_release(&blob);
	if (i >= 0) {
		if (!a->offered[i]) {
			buf_addf(&pub, "%s (through ssh-agent)", priv);
			answered(a, agent_offer(a, (size_t)i), buf_str(&pub));
		}
		buf_release(&pub);
		return;
	}
	if (access(priv, R_OK) != 0) {
		tried_add(a, priv, strerror(errno));
		return;
	}
	buf_addf(&pub, "%s.pub", priv);
	rc = libssh2_userauth_publickey_fromfile_ex(
		x->s, x->p.user, (unsigned)strlen(x->p.user),
		access(buf_str(&pub), R_OK) == 0 ? buf_str(&pub) : NULL,
		priv, NULL);
	buf_release(&pub);
	answered(a, rc, priv);
}

/* The agent's keys not offered yet, in the agent's order. */
static void offer_agent(struct auth *a)
{
	size_t refused = 0;

	for (size_t i = 0; i < a->n_keys && !a->ok && !a->stop; i++) {
		int rc;

		if (a->offered[i])
			continue;
		rc = agent_offer(a, i);
		if (rc == 0) {
			a->ok = true;
		} else if (a->x->peer_closed) {
			a->attempts++;
			a->stop = true;
		} else if (rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED ||
			   rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED) {
			a->attempts++;
			refused++;
		} else {
			answered(a, rc, "a key of ssh-agent");
		}
	}
	if (refused || (a->stop && a->x->peer_closed))
		buf_addf(&a->tried, "%sssh-agent (%zu key%s rejected%s)",
			 a->tried.len ? ", " : "", refused, refused == 1 ? "" : "s",
			 a->stop && a->x->peer_closed ?
			 ", then the server closed the login" : "");
}

static void unseen_files(const struct auth *a, char *const *files,
			 struct buf *out)
{
	for (char *const *f = files; f && *f; f++) {
		bool seen = false;

		for (size_t k = 0; k < a->files.n && !seen; k++)
			seen = strcmp(a->files.v[k], *f) == 0;
		if (!seen && access(*f, R_OK) == 0)
			buf_addf(out, "%s%s", out->len ? ", " : "", *f);
	}
}

static void agent_left(const struct auth *a, struct buf *out)
{
	size_t left = 0;

	for (size_t i = 0; i < a->n_keys; i++)
		left += !a->offered[i];
	if (left)
		buf_addf(out, "%s%zu key%s of ssh-agent", out->len ? ", " : "",
			 left, left == 1 ? "" : "s");
}

/*
 * What a closed login left out: key files not looked at, agent keys not
 * offered; with IdentitiesOnly only what it allows (see only_note).
 */
static void not_offered(const struct auth *a, struct buf *out)
{
	const struct exec_ssh *x = a->x;

	unseen_files(a, x->ids.v, out);
	if (!x->p.identities_only)
		agent_left(a, out);
	if (!x->p.identities_only || !x->ids.n)
		unseen_files(a, x->defs.v, out);
}

/* With IdentitiesOnly: that it held keys back, and which. */
static void only_note(const struct auth *a, struct buf *out)
{
	struct buf never = BUF_INIT;

	if (!a->x->p.identities_only)
		return;
	agent_left(a, &never);
	if (a->x->ids.n)
		unseen_files(a, a->x->defs.v, &never);
	buf_adds(out, "; IdentitiesOnly yes (~/.ssh/config) allows only the configured keys (`identity`, IdentityFile; without them the default key files)");
	if (never.len)
		buf_addf(out, ", so not offered: %s", buf_str(&never));
	buf_release(&never);
}

static void login_failed(struct auth *a, const char *methods,
			 struct rb_error *err)
{
	struct exec_ssh *x = a->x;
	struct buf w = BUF_INIT, left = BUF_INIT, said = BUF_INIT,
		   only = BUF_INIT;

	only_note(a, &only);
	if (!x->peer_closed || !a->attempts) {
		rb_error_set(err, RB_ERR_CONNECT,
			     "cannot log in to %s as %s: expected a key the server accepts, tried %s; the server accepts: %s%s; nothing was run there; safe to run again after fixing access",
			     where(x, &w), x->p.user,
			     a->tried.len ? buf_str(&a->tried) :
			     "no key (no ssh-agent, no identity file found)",
			     methods, buf_str(&only));
		buf_release(&w);
		buf_release(&only);
		return;
	}
	not_offered(a, &left);
	if (x->bye[0])
		buf_addf(&said, " (it said: %s)", x->bye);
	rb_error_set(err, RB_ERR_CONNECT,
		     "cannot log in to %s as %s: the server closed the login after %d attempt%s%s; tried %s%s%s%s. "
		     "An SSH server ends a login after MaxAuthTries refused keys (default 6), and every key of ssh-agent it refuses counts. "
		     "Fix: set `identity` for the host (or IdentityFile for it in ~/.ssh/config) to the key it accepts, which runbook offers first; "
		     "or keep fewer keys in ssh-agent (ssh-add -d KEY); nothing was run there; safe to run again after fixing access",
		     where(x, &w), x->p.user, a->attempts,
		     a->attempts == 1 ? "" : "s", buf_str(&said),
		     buf_str(&a->tried), left.len ? "; not offered: " : "",
		     buf_str(&left), buf_str(&only));
	buf_release(&w);
	buf_release(&left);
	buf_release(&said);
	buf_release(&only);
}

/*
 * Public key login: the configured identities (the runbook's, then
 * IdentityFile), the agent's other keys, then the default files. With
 * IdentitiesOnly, as in ssh: the configured identities alone (through
 * the agent if it holds them), or the default files if none is.
 */
static int authenticate(struct exec_ssh *x, struct rb_error *err)
{
	struct auth a = { .x = x, .files = STRVEC_INIT, .tried = BUF_INIT };
	struct buf w = BUF_INIT;
	bool only = x->p.identities_only;
	const char *methods;

	methods = libssh2_userauth_list(x->s, x->p.user,
					(unsigned)strlen(x->p.user));
	if (!methods) {
		if (libssh2_userauth_authenticated(x->s))
			return 0;
		rb_error_set(err, RB_ERR_CONNECT,
			     "cannot log in to %s as %s: the server closed the connection before naming its methods (%s); nothing was run there",
			     where(x, &w), x->p.user, ssh_errmsg(x->s));
		buf_release(&w);
		return -1;
	}
	if (strstr(methods, "publickey")) {
		agent_open(&a);
		for (size_t i = 0; !a.ok && !a.stop && i < x->ids.n; i++)
			offer_file(&a, x->ids.v[i]);
		if (!a.ok && !a.stop && !only)
			offer_agent(&a);
		for (size_t i = 0; !a.ok && !a.stop && (!only || !x->ids.n) &&
		     i < x->defs.n; i++)
			offer_file(&a, x->defs.v[i]);
	}
	if (!a.ok)
		login_failed(&a, methods, err);
	agent_close(&a);
	strvec_release(&a.files);
	buf_release(&a.tried);
	return a.ok ? 0 : -1;
}

/* ---- session ---- */

static void disconnect(struct exec_ssh *x)
{
	/*
	 * A dead link must not be waited on: with the socket shut down,
	 * libssh2 frees channels and session at once (it would otherwise
	 * time out waiting for replies and give up freeing them).
	 */
	if (x->dead && x->sock >= 0)
		shutdown(x->sock, SHUT_RDWR);
	if (x->s) {
		libssh2_session_set_blocking(x->s, 1);
		libssh2_session_set_timeout(x->s, 1000);
		if (x->pre && !x->dead)
			libssh2_channel_free(x->pre);
		x->pre = NULL;
		if (!x->dead)
			libssh2_session_disconnect(x->s, "runbook done");
		libssh2_session_free(x->s);
		x->s = NULL;
	}
	if (x->sock >= 0)
		close(x->sock);
	x->sock = -1;
}

/*
 * libssh2 reads the socket through this (as its own _libssh2_recv
 * does, EINTR retried): it notes when the host last sent anything, for
 * the keepalive accounting, and when it closed the connection.
 */
static ssize_t sock_recv(libssh2_socket_t fd, void *data, size_t len,
			 int flags, void **abstract)
{
	struct exec_ssh *x = *abstract;
	ssize_t n;

	do
		n = recv(fd, data, len, flags);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		x->last_rx = sys_now_ms();
		return n;
	}
	if (n == 0) {
		x->peer_closed = true;
		return 0;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return -EAGAIN;
	x->peer_closed = true;
	return -errno;
}

/* The server's SSH_MSG_DISCONNECT ("Too many authentication failures"). */
static void said_bye(LIBSSH2_SESSION *s, int reason, const char *msg,
		     int msg_len, const char *lang, int lang_len,
		     void **abstract)
{
	struct exec_ssh *x = *abstract;
	size_t n = 0;

	(void)s;
	(void)reason;
	(void)lang;
	(void)lang_len;
	x->peer_closed = true;
	/* the server's words go into a message: printable ASCII only */
	for (int i = 0; msg && i < msg_len && n + 1 < sizeof(x->bye); i++)
		x->bye[n++] = msg[i] >= 0x20 && msg[i] < 0x7f ? msg[i] : '?';
	x->bye[n] = '\0';
}

static int connect_host(struct exec_ssh *x, struct rb_error *err)
{
	unsigned tmo = x->p.connect_timeout_ms ? x->p.connect_timeout_ms :
						 CONNECT_TIMEOUT_MS;
	struct buf w = BUF_INIT;

	x->dead = false;
	x->peer_closed = false;
	x->bye[0] = '\0';
	x->sock = tcp_connect(x, tmo, err);
	if (x->sock < 0)
		return -1;
	x->s = libssh2_session_init_ex(NULL, NULL, NULL, x);
	if (!x->s) {
		rb_error_set(err, RB_ERR_CONNECT, "cannot start an SSH session: out of memory");
		goto fail;
	}
	libssh2_session_callback_set(x->s, LIBSSH2_CALLBACK_RECV, (void *)sock_recv);
	libssh2_session_callback_set(x->s, LIBSSH2_CALLBACK_DISCONNECT, (void *)said_bye);
	libssh2_session_set_blocking(x->s, 1);
	libssh2_session_set_timeout(x->s, (long)tmo);
	if (libssh2_session_handshake(x->s, x->sock) != 0) {
		rb_error_set(err, RB_ERR_CONNECT,
			     "cannot connect to %s: expected an SSH server, found no SSH handshake: %s; nothing was run there",
			     where(x, &w), ssh_errmsg(x->s));
		goto fail;
	}
	if (knownhosts_check(x->s, x->p.name, x->p.address, x->p.port,
			     x->p.known_hosts, x->p.accept_new, err) < 0 ||
	    authenticate(x, err) < 0)
		goto fail;
	/* wait_command decides when; libssh2 only spaces them >= 1 s */
	libssh2_keepalive_config(x->s, 1, 1);
	buf_release(&w);
	return 0;
fail:
	buf_release(&w);
	x->dead = true;
	disconnect(x);
	return -1;
}

/* ---- running a command ---- */

/* Waits for the socket as libssh2 wants it, or for cancel_fd, up to ms. */
static void wait_io(struct exec_ssh *x, int cancel_fd, int ms)
{
	struct pollfd pf[2];
	int dirs = libssh2_session_block_directions(x->s), n = 1;

	pf[0].fd = x->sock;
	pf[0].events = 0;
	if (dirs & LIBSSH2_SESSION_BLOCK_INBOUND)
		pf[0].events |= POLLIN;
	if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
		pf[0].events |= POLLOUT;
	if (!pf[0].events)
		pf[0].events = POLLIN;
	if (cancel_fd >= 0) {
		pf[1].fd = cancel_fd;
		pf[1].events = POLLIN;
		n = 2;
	}
	if (poll(pf, (nfds_t)n, ms) < 0 && errno != EINTR)
		return;
}

static bool cancelled(int fd)
{
	struct pollfd pf = { fd, POLLIN, 0 };

	return fd >= 0 && poll(&pf, 1, 0) == 1 && (pf.revents & POLLIN);
}

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

/*
 * A channel for a command: the one opened ahead, or a new one (an open
 * left in progress by preopen() is finished). NULL if the session
 * cannot give one within ms.
 */
static LIBSSH2_CHANNEL *get_channel(struct exec_ssh *x, int cancel_fd,
				    unsigned ms)
{
	LIBSSH2_CHANNEL *ch = x->pre;
	unsigned long long end = sys_now_ms() + ms;

	x->pre = NULL;
	libssh2_session_set_blocking(x->s, 0);
	while (!ch) {
		ch = libssh2_channel_open_session(x->s);
		if (ch)
			break;
		if (libssh2_session_last_errno(x->s) != LIBSSH2_ERROR_EAGAIN ||
		    sys_now_ms() > end)
			return NULL;
		wait_io(x, cancel_fd, 100);
	}
	return ch;
}

/* Asks for the next command's channel now, while nothing waits on it. */
static void preopen(struct exec_ssh *x)
{
	if (x->pre || x->dead || !x->s)
		return;
	libssh2_session_set_blocking(x->s, 0);
	x->pre = libssh2_channel_open_session(x->s);
}

/* Frees a channel, waiting at most ms; false (session unusable) if not. */
static bool free_channel(struct exec_ssh *x, LIBSSH2_CHANNEL *ch, unsigned ms)
{
	unsigned long long end = sys_now_ms() + ms;
	int rc;

	libssh2_session_set_blocking(x->s, 0);
	while ((rc = libssh2_channel_free(ch)) == LIBSSH2_ERROR_EAGAIN) {
		if (sys_now_ms() > end)
			return false;
		wait_io(x, -1, 100);
	}
	return true;
}

/*
 * Runs a short command on its own channel, up to ms. Returns its exit
 * status, or -1 if it could not run or did not finish in time.
 */
static int side_command(struct exec_ssh *x, const char *command, unsigned ms)
{
	bool done = false;
	LIBSSH2_CHANNEL *ch;
	unsigned long long end = sys_now_ms() + ms;
	char sink[256];
	int rc;

	if (!(ch = get_channel(x, -1, ms)))
		return -1;
	while ((rc = libssh2_channel_exec(ch, command)) == LIBSSH2_ERROR_EAGAIN &&
	       sys_now_ms() < end)
		wait_io(x, -1, 50);
	while (rc == 0 && sys_now_ms() < end) {
		ssize_t n = libssh2_channel_read(ch, sink, sizeof(sink));

		if (n == LIBSSH2_ERROR_EAGAIN)
			n = libssh2_channel_read_stderr(ch, sink, sizeof(sink));
		if (libssh2_channel_eof(ch)) {
			done = true;
			break;
		}
		if (n == LIBSSH2_ERROR_EAGAIN)
			wait_io(x, -1, 50);
		else if (n < 0)
			break;
	}
	while (libssh2_channel_close(ch) == LIBSSH2_ERROR_EAGAIN && sys_now_ms() < end)
		wait_io(x, -1, 50);
	while (libssh2_channel_wait_closed(ch) == LIBSSH2_ERROR_EAGAIN &&
	       sys_now_ms() < end)
		wait_io(x, -1, 50);
	if (rc == 0 && done)
		rc = libssh2_channel_get_exit_status(ch);
	else
		rc = -1;
	if (!free_channel(x, ch, end > sys_now_ms() ? (unsigned)(end - sys_now_ms()) : 0))
		x->dead = true;
	return rc;
}

/*
 * TERM the remote group, KILL it after the grace, from a second
 * channel. With a guard, only if the group leader's command line still
 * holds it (a pid reused since is left alone). True if it was stopped.
 */
static bool stop_remote(struct exec_ssh *x, long pid, const char *guard)
{
	struct buf c = BUF_INIT;
	unsigned polls = EXEC_KILL_GRACE_MS / 100;
	int rc;

	if (pid <= 1)
		return false;
	buf_addf(&c, "p=%ld; ", pid);
	if (guard) {
		buf_adds(&c, "ps -o args= -p $p 2>/dev/null | grep -qF -- ");
		shell_quote(&c, guard);
		buf_adds(&c, " || exit 3; ");
	}
	/* zombies waiting for a slow init to reap them do not count */
	buf_addf(&c, "alive() { if o=$(ps -eo pgid=,stat= 2>/dev/null); then "
		     "printf '%%s\\n' \"$o\" | awk -v g=\"$p\" "
		     "'$1 == g && $2 !~ /^Z/ { f = 1 } END { exit !f }'; "
		     "else kill -0 -- -$p 2>/dev/null; fi; }; "
		     "kill -TERM -- -$p 2>/dev/null || exit 3; n=0; "
		     "while alive; do "
		     "if [ $n -ge %u ]; then kill -KILL -- -$p 2>/dev/null; break; fi; "
		     "n=$((n + 1)); sleep 0.1; done; exit 0", polls);
	rc = side_command(x, buf_str(&c), EXEC_KILL_GRACE_MS + 5000);
	buf_release(&c);
	return rc == 0;
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
			disconnect(x);
			if (connect_host(x, err) < 0) {
				buf_release(&w);
				buf_release(&line);
				return -1;
			}
			/* a command cut off by the lost link may still run */
			if (x->orphan && x->orphan_guard)
				stop_remote(x, x->orphan, x->orphan_guard);
			x->orphan = 0;
		}
		end = sys_now_ms() + CONNECT_TIMEOUT_MS;
		ch = get_channel(x, cmd->cancel_fd, CONNECT_TIMEOUT_MS);
		if (!ch) {
			x->dead = true;
			continue;
		}
		while ((rc = libssh2_channel_exec(ch, buf_str(&line))) ==
		       LIBSSH2_ERROR_EAGAIN && sys_now_ms() < end)
			wait_io(x, cmd->cancel_fd, 100);
		if (rc) {
			free_channel(x, ch, 1000);
			x->dead = true;
			continue;
		}
		while (off < len) {
			ssize_t n = libssh2_channel_write(ch, text + off, len - off);

			if (n == LIBSSH2_ERROR_EAGAIN) {
				if (sys_now_ms() > end)
					break;
				wait_io(x, -1, 100);
				continue;
			}
			if (n < 0)
				break;
			off += (size_t)n;
		}
		while (off == len &&
		       (rc = libssh2_channel_send_eof(ch)) == LIBSSH2_ERROR_EAGAIN &&
		       sys_now_ms() < end)
			wait_io(x, -1, 100);
		*out = ch;
		buf_release(&w);
		buf_release(&line);
		return off == len && rc == 0 ? 0 : 1;
	}
	rb_error_set(err, RB_ERR_CONNECT,
		     "cannot start the command on %s: %s; the command did not start",
		     where(x, &w), ssh_errmsg(x->s));
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
 * a count of 0 no keepalive is sent, as in ssh).
 */
static bool link_dead(struct exec_ssh *x, struct waiting *wt,
		      unsigned long long t)
{
	const unsigned long long every = x->p.alive_interval_s * 1000ull;
	int secs;

	if (x->last_rx > wt->heard) {
		wt->heard = x->last_rx;
		wt->probes = 0;
	}
	if (t < (wt->probes ? wt->probed : wt->heard) + every)
		return false;
	if (wt->probes >= x->p.alive_count_max)
		return true;
	libssh2_keepalive_send(x->s, &secs);
	wt->probes++;
	wt->probed = t;
	return false;
}

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
			 where(x, &w));
		goto out;
	}
	if (!stop_remote(x, pid, NULL)) {
		/* no answer: stop it when the host is back */
		snprintf(out->why, sizeof(out->why),
			 "could not stop it on %s (the host did not answer); it may still run there until runbook reaches the host again",
			 where(x, &w));
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
				      cancelled(cmd->cancel_fd))) {
			if (!begin_stop(x, wt, os->pid, t, out))
				return;
			continue;
		}
		if (wt->stopping && sys_now_ms() - wt->closing > CLOSE_WAIT_MS)
			return;
		if (!wt->stopping && link_dead(x, wt, t)) {
			wt->dead = true;
			return;
		}
		wait_io(x, wt->stopping ? -1 : cmd->cancel_fd, 100);
	}
}

/* Closes the channel and waits for the server's close: CLOSE_WAIT_MS in all. */
static void close_channel(struct exec_ssh *x, LIBSSH2_CHANNEL *ch)
{
	unsigned long long t0 = sys_now_ms();

	while (libssh2_channel_close(ch) == LIBSSH2_ERROR_EAGAIN &&
	       sys_now_ms() - t0 < CLOSE_WAIT_MS)
		wait_io(x, -1, 100);
	while (libssh2_channel_wait_closed(ch) == LIBSSH2_ERROR_EAGAIN &&
	       sys_now_ms() - t0 < CLOSE_WAIT_MS)
		wait_io(x, -1, 100);
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
		  stop_remote(x, os->pid, x->orphan_guard);
	snprintf(out->why, sizeof(out->why),
		 "the command's channel on %s closed without an exit status%s; its outcome is unknown (it may have done part of its work)",
		 where(x, &w), stopped ? " while it still ran (stopped it)" : "");
	buf_release(&w);
}

/* Why a link the keepalives found dead was given up, into out->why. */
static void dead_why(const struct exec_ssh *x, struct exec_result *out)
{
	unsigned every = x->p.alive_interval_s;
	int max = x->p.alive_count_max;
	struct buf w = BUF_INIT, how = BUF_INIT;

	if (max > 0)
		buf_addf(&how, "no answer to %d keepalive%s sent %u s apart, ",
			 max, max == 1 ? "" : "s", every);
	buf_addf(&how, "nothing from the host for %llu s",
		 every * ((unsigned long long)max + 1));
	if (x->interval_set || x->count_set)
		buf_adds(&how, ", with");
	if (x->interval_set)
		buf_addf(&how, " ServerAliveInterval %u", every);
	if (x->interval_set && x->count_set)
		buf_adds(&how, " and");
	if (x->count_set)
		buf_addf(&how, " ServerAliveCountMax %d", max);
	snprintf(out->why, sizeof(out->why),
		 "lost the connection to %s while the command ran: the link is dead (%s: it froze or the network broke); it may have done part of its work, so it is safe to run again only once it has been rolled back",
		 where(x, &w), buf_str(&how));
	buf_release(&w);
	buf_release(&how);
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
			      .heard = start };
	int rc, ret = -1;

	memset(out, 0, sizeof(*out));
	if (init_rc != 0) {
		rb_error_set(err, RB_ERR_CONNECT, "cannot initialise libssh2");
		return -1;
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
			 where(x, &w), ssh_errmsg(x->s));
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
			dead_why(x, out);
		else
			snprintf(out->why, sizeof(out->why),
				 "lost the connection to %s while the command ran (%s); it may have done part of its work",
				 where(x, &w), ssh_errmsg(x->s));
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
	if (ch && !x->dead && !free_channel(x, ch, CLOSE_WAIT_MS))
		x->dead = true;	/* a frozen host: never wait on it again */
	if (ret == 0 && !x->dead)
		preopen(x);
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

	disconnect(x);
	free((char *)x->p.name);
	free((char *)x->p.address);
	free((char *)x->p.user);
	free((char *)x->p.known_hosts);
	free(x->orphan_guard);
	strvec_release(&x->ids);
	strvec_release(&x->defs);
	free(x);
}

static bool ssh_stop(struct exec *ex, long pid, unsigned long long start_time,
		     const char *guard)
{
	struct exec_ssh *x = (struct exec_ssh *)ex;
	struct rb_error err = RB_ERROR_INIT;

	(void)start_time;
	if (!guard || init_rc != 0)
		return false;
	if (!x->s || x->dead) {
		disconnect(x);
		if (connect_host(x, &err) < 0)
			return false;
	}
	return stop_remote(x, pid, guard);
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
	return x;
}

int exec_ssh_new(const struct ssh_params *p, struct exec **out,
		 struct rb_error *err)
{
	struct exec_ssh *x;

	pthread_once(&init_once, init_libssh2);
	if (init_rc != 0) {
		rb_error_set(err, RB_ERR_CONNECT, "cannot initialise libssh2");
		return -1;
	}
	x = alloc(p);
	if (connect_host(x, err) < 0) {
		ssh_close(&x->base);
		return -1;
	}
	*out = &x->base;
	return 0;
}

struct exec *exec_ssh_lazy(const struct ssh_params *p)
{
	pthread_once(&init_once, init_libssh2);
	return &alloc(p)->base;
}
