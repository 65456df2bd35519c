/*
 * The SSH link to one host, under the executor (exec_ssh.c): TCP,
 * handshake, host key (knownhosts.c), authentication, the session and
 * its channels, the keepalive accounting that finds a dead link, and
 * stopping a remote process group from a side channel. Set-up runs in
 * libssh2's blocking mode bounded by libssh2_session_set_timeout();
 * everything after it in non-blocking mode, every wait bounded.
 */
#include "ssh_link.h"

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

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void init_libssh2(void)
{
	init_rc = libssh2_init(0);
}

int ssh_link_init(void)
{
	pthread_once(&init_once, init_libssh2);
	return init_rc;
}

const char *ssh_link_where(const struct exec_ssh *x, struct buf *b)
{
	buf_reset(b);
	if (strcmp(x->p.name, x->p.address) == 0)
		buf_addf(b, "%s port %u", x->p.address, x->p.port);
	else
		buf_addf(b, "%s (%s port %u)", x->p.name, x->p.address,
			 x->p.port);
	return buf_str(b);
}

const char *ssh_link_errmsg(LIBSSH2_SESSION *s)
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
			     ssh_link_where(x, &w), gai_strerror(rc));
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
			     ssh_link_where(x, &w), last == ETIMEDOUT ?
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
		tried_add(a, what, ssh_link_errmsg(x->s));
		break;
	default:
		tried_add(a, what, ssh_link_errmsg(x->s));
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
			     ssh_link_where(x, &w), x->p.user,
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
		     ssh_link_where(x, &w), x->p.user, a->attempts,
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
			     ssh_link_where(x, &w), x->p.user, ssh_link_errmsg(x->s));
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

void ssh_link_close(struct exec_ssh *x)
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
		if (x->sh && !x->dead)
			libssh2_channel_free(x->sh);
		x->sh = NULL;
		if (!x->dead)
			libssh2_session_disconnect(x->s, "runbook done");
		/*
		 * Then nothing is left to wait for: libssh2_session_free()
		 * closes any channel still listed (one whose free above timed
		 * out), and a host slow to answer would make it give up with
		 * LIBSSH2_ERROR_TIMEOUT, the session unfreed.
		 */
		if (x->sock >= 0)
			shutdown(x->sock, SHUT_RDWR);
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
		int one = 1;

		/*
		 * sshd leaves Nagle on for sessions without a tty: its next
		 * small packet waits for our ACK of the last one, which
		 * Linux would delay up to 40 ms. ACK now, every read.
		 */
		setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
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

int ssh_link_connect(struct exec_ssh *x, struct rb_error *err)
{
	unsigned tmo = x->p.connect_timeout_ms ? x->p.connect_timeout_ms :
						 SSH_CONNECT_TIMEOUT_MS;
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
			     ssh_link_where(x, &w), ssh_link_errmsg(x->s));
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
	ssh_link_close(x);
	return -1;
}

/* Waits for the socket as libssh2 wants it, or for cancel_fd, up to ms. */
void ssh_link_wait(struct exec_ssh *x, int cancel_fd, int ms)
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

bool ssh_link_cancelled(int fd)
{
	struct pollfd pf = { fd, POLLIN, 0 };

	return fd >= 0 && poll(&pf, 1, 0) == 1 && (pf.revents & POLLIN);
}

/*
 * A channel for a command: the one opened ahead, or a new one (an open
 * left in progress by ssh_link_preopen() is finished). NULL if the session
 * cannot give one within ms.
 */
LIBSSH2_CHANNEL *ssh_link_channel(struct exec_ssh *x, int cancel_fd,
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
		ssh_link_wait(x, cancel_fd, 100);
	}
	return ch;
}

/* Asks for the next command's channel now, while nothing waits on it. */
void ssh_link_preopen(struct exec_ssh *x)
{
	if (x->pre || x->dead || !x->s)
		return;
	libssh2_session_set_blocking(x->s, 0);
	x->pre = libssh2_channel_open_session(x->s);
}

/* Frees a channel, waiting at most ms; false (session unusable) if not. */
bool ssh_link_free_channel(struct exec_ssh *x, LIBSSH2_CHANNEL *ch, unsigned ms)
{
	unsigned long long end = sys_now_ms() + ms;
	int rc;

	libssh2_session_set_blocking(x->s, 0);
	while ((rc = libssh2_channel_free(ch)) == LIBSSH2_ERROR_EAGAIN) {
		if (sys_now_ms() > end)
			return false;
		ssh_link_wait(x, -1, 100);
	}
	return true;
}

/*
 * Runs a short command on its own channel, up to ms. Returns its exit
 * status, or -1 if it could not run or did not finish in time. The
 * login shell only execs /bin/sh with it: a bash login shell would run
 * it with the functions the environment exports (BASH_FUNC_kill%%...).
 */
static int side_command(struct exec_ssh *x, const char *command, unsigned ms)
{
	bool done = false;
	LIBSSH2_CHANNEL *ch;
	unsigned long long end = sys_now_ms() + ms;
	struct buf line = BUF_INIT;
	char sink[256];
	int rc;

	if (!(ch = ssh_link_channel(x, -1, ms)))
		return -1;
	buf_adds(&line, "exec /bin/sh -c ");
	shell_quote_always(&line, command);
	while ((rc = libssh2_channel_exec(ch, buf_str(&line))) ==
	       LIBSSH2_ERROR_EAGAIN && sys_now_ms() < end)
		ssh_link_wait(x, -1, 50);
	buf_release(&line);
	while (rc == 0 && sys_now_ms() < end) {
		ssize_t n = libssh2_channel_read(ch, sink, sizeof(sink));

		if (n == LIBSSH2_ERROR_EAGAIN)
			n = libssh2_channel_read_stderr(ch, sink, sizeof(sink));
		if (libssh2_channel_eof(ch)) {
			done = true;
			break;
		}
		if (n == LIBSSH2_ERROR_EAGAIN)
			ssh_link_wait(x, -1, 50);
		else if (n < 0)
			break;
	}
	while (libssh2_channel_close(ch) == LIBSSH2_ERROR_EAGAIN && sys_now_ms() < end)
		ssh_link_wait(x, -1, 50);
	while (libssh2_channel_wait_closed(ch) == LIBSSH2_ERROR_EAGAIN &&
	       sys_now_ms() < end)
		ssh_link_wait(x, -1, 50);
	if (rc == 0 && done)
		rc = libssh2_channel_get_exit_status(ch);
	else
		rc = -1;
	if (!ssh_link_free_channel(x, ch, end > sys_now_ms() ? (unsigned)(end - sys_now_ms()) : 0))
		x->dead = true;
	return rc;
}

/*
 * TERM the remote group, KILL it after the grace, from a second
 * channel. With a guard, only if the group leader's command line still
 * holds it (a pid reused since is left alone). True if it was stopped.
 */
bool ssh_link_stop_group(struct exec_ssh *x, long pid, const char *guard)
{
	struct buf c = BUF_INIT;
	unsigned polls = EXEC_KILL_GRACE_MS / 100;
	int rc;

	if (pid <= 1)
		return false;
	buf_addf(&c, "p=%ld; ", pid);
	if (guard) {	/* its $0 (a shell), or its environment (fast) */
		buf_adds(&c, "g=");
		shell_quote(&c, guard);
		buf_adds(&c, "; { ps -o args= -p $p 2>/dev/null | grep -qF -- \"$g\" || "
			     "tr '\\0' '\\n' </proc/$p/environ 2>/dev/null | "
			     "grep -qxF -- \"RUNBOOK_CHANGE_ID=$g\"; } || exit 3; ");
	}
	/*
	 * Zombies waiting for a slow init to reap them do not count. kill
	 * in its POSIX form: dash's builtin refuses `kill -TERM -- -PID`.
	 */
	buf_addf(&c, "alive() { if o=$(ps -eo pgid=,stat= 2>/dev/null); then "
		     "printf '%%s\\n' \"$o\" | awk -v g=\"$p\" "
		     "'$1 == g && $2 !~ /^Z/ { f = 1 } END { exit !f }'; "
		     "else kill -s 0 -- -$p 2>/dev/null; fi; }; "
		     /* not its own group yet: it is about to exec setsid */
		     "kill -s TERM -- -$p 2>/dev/null || "
		     "kill -s TERM $p 2>/dev/null || exit 3; n=0; "
		     "while alive; do "
		     "if [ $n -ge %u ]; then kill -s KILL -- -$p 2>/dev/null; break; fi; "
		     "n=$((n + 1)); sleep 0.1; done; exit 0", polls);
	rc = side_command(x, buf_str(&c), EXEC_KILL_GRACE_MS + 5000);
	buf_release(&c);
	return rc == 0;
}

bool ssh_link_dead(struct exec_ssh *x, struct ssh_alive *wt,
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

void ssh_link_dead_why(const struct exec_ssh *x, char *why, size_t size)
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
	snprintf(why, size,
		 "lost the connection to %s while the command ran: the link is dead (%s: it froze or the network broke); it may have done part of its work, so it is safe to run again only once it has been rolled back",
		 ssh_link_where(x, &w), buf_str(&how));
	buf_release(&w);
	buf_release(&how);
}
