/*
 * SSH executor with libssh2. Connection set-up (handshake, host key,
 * auth) runs in libssh2's blocking mode bounded by
 * libssh2_session_set_timeout(); commands run in non-blocking mode in
 * one poll() loop that drains stdout and stderr together, watches the
 * cancel fd and the deadline, and sends keepalives.
 */
#include "exec_ssh.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libssh2.h>

#include "buf.h"
#include "error.h"
#include "exec.h"
#include "quote.h"
#include "sys.h"

#define CONNECT_TIMEOUT_MS 10000u
#define KEEPALIVE_S 10
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
	LIBSSH2_CHANNEL *pre;	/* opened ahead for the next command */
	long orphan;		/* group of a command cut off by a lost link */
	char *orphan_guard;	/* its change id */
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

/* ---- host keys ---- */

static void base64(struct buf *out, const unsigned char *p, size_t n, bool pad)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16;
		size_t left = n - i;

		if (left > 1)
			v |= (unsigned)p[i + 1] << 8;
		if (left > 2)
			v |= p[i + 2];
		buf_addc(out, tab[(v >> 18) & 63]);
		buf_addc(out, tab[(v >> 12) & 63]);
		if (left > 1)
			buf_addc(out, tab[(v >> 6) & 63]);
		else if (pad)
			buf_addc(out, '=');
		if (left > 2)
			buf_addc(out, tab[v & 63]);
		else if (pad)
			buf_addc(out, '=');
	}
}

struct keytype {
	int hostkey;		/* LIBSSH2_HOSTKEY_TYPE_* */
	int kh;			/* LIBSSH2_KNOWNHOST_KEY_* */
	const char *name;	/* in known_hosts */
	const char *show;	/* as OpenSSH prints it */
	const char *scan;	/* ssh-keyscan -t */
};

static const struct keytype keytypes[] = {
	{ LIBSSH2_HOSTKEY_TYPE_RSA, LIBSSH2_KNOWNHOST_KEY_SSHRSA, "ssh-rsa", "RSA", "rsa" },
	{ LIBSSH2_HOSTKEY_TYPE_DSS, LIBSSH2_KNOWNHOST_KEY_SSHDSS, "ssh-dss", "DSA", "dsa" },
	{ LIBSSH2_HOSTKEY_TYPE_ECDSA_256, LIBSSH2_KNOWNHOST_KEY_ECDSA_256, "ecdsa-sha2-nistp256", "ECDSA", "ecdsa" },
	{ LIBSSH2_HOSTKEY_TYPE_ECDSA_384, LIBSSH2_KNOWNHOST_KEY_ECDSA_384, "ecdsa-sha2-nistp384", "ECDSA", "ecdsa" },
	{ LIBSSH2_HOSTKEY_TYPE_ECDSA_521, LIBSSH2_KNOWNHOST_KEY_ECDSA_521, "ecdsa-sha2-nistp521", "ECDSA", "ecdsa" },
	{ LIBSSH2_HOSTKEY_TYPE_ED25519, LIBSSH2_KNOWNHOST_KEY_ED25519, "ssh-ed25519", "ED25519", "ed25519" },
};

static const struct keytype *keytype_of(int hostkey)
{
	for (size_t i = 0; i < sizeof(keytypes) / sizeof(keytypes[0]); i++)
		if (keytypes[i].hostkey == hostkey)
			return &keytypes[i];
	return NULL;
}

/* The name known_hosts uses: host, or [host]:port off port 22. */
static void kh_name(struct buf *b, const char *host, unsigned port)
{
	if (port == 22)
		buf_adds(b, host);
	else
		buf_addf(b, "[%s]:%u", host, port);
}

/*
 * Loads known_hosts line by line (libssh2_knownhost_readfile() stops
 * at the first line it cannot parse). Lines it cannot read and
 * @cert-authority lines are skipped; @revoked keys are collected in
 * revoked (their base64 blobs).
 */
static int kh_load(LIBSSH2_KNOWNHOSTS *kh, const char *path,
		   struct strvec *revoked, struct rb_error *err)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (!f) {
		if (errno == ENOENT)
			return 0;
		rb_error_errno(err, RB_ERR_CONNECT,
			       "cannot read known hosts file '%s'", path);
		return -1;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		char *p = line;

		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		p += strspn(p, " \t");
		if (!*p || *p == '#')
			continue;
		if (strncmp(p, "@revoked", 8) == 0 && (p[8] == ' ' || p[8] == '\t')) {
			/* @revoked patterns type base64 [comment] */
			char *save = NULL, *tok;
			int field = 0;

			strtok_r(p, " \t", &save);
			while ((tok = strtok_r(NULL, " \t", &save)) && ++field < 3)
				;
			if (tok)
				strvec_push(revoked, tok);
			continue;
		}
		if (*p == '@')
			continue;
		/* a line libssh2 cannot parse hides nothing else */
		(void)libssh2_knownhost_readline(kh, p, strlen(p),
						 LIBSSH2_KNOWNHOST_FILE_OPENSSH);
	}
	free(line);
	fclose(f);
	return 0;
}

static int kh_append(const char *path, const char *line, struct rb_error *err)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	int fd, ret = -1;
	struct buf b = BUF_INIT;
	struct stat st;

	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			rb_error_errno(err, RB_ERR_CONNECT,
				       "cannot create '%s' for known hosts", dir);
			free(dir);
			return -1;
		}
	}
	free(dir);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		rb_error_errno(err, RB_ERR_CONNECT,
			       "cannot append to known hosts file '%s'", path);
		return -1;
	}
	/* never glue our line to a last line without a newline */
	if (fstat(fd, &st) == 0 && st.st_size > 0) {
		int rfd = open(path, O_RDONLY | O_CLOEXEC);
		char last = '\n';

		if (rfd >= 0) {
			if (pread(rfd, &last, 1, st.st_size - 1) != 1)
				last = '\n';
			close(rfd);
		}
		if (last != '\n')
			buf_addc(&b, '\n');
	}
	buf_adds(&b, line);
	/* one write: concurrent appenders never interleave lines */
	if (write(fd, b.data, b.len) != (ssize_t)b.len || fsync(fd) < 0)
		rb_error_errno(err, RB_ERR_CONNECT,
			       "cannot append to known hosts file '%s'", path);
	else
		ret = 0;
	close(fd);
	buf_release(&b);
	return ret;
}

static pthread_mutex_t kh_mu = PTHREAD_MUTEX_INITIALIZER;

static int check_host_key(struct exec_ssh *x, struct rb_error *err)
{
	const char *key;
	size_t len;
	int type, rc, ret = -1;
	const struct keytype *kt;
	const unsigned char *sha;
	struct buf fp = BUF_INIT, b64 = BUF_INIT, w = BUF_INIT, name = BUF_INIT;
	struct buf alt = BUF_INIT, alt2 = BUF_INIT;
	struct strvec revoked = STRVEC_INIT;
	char *path = x->p.known_hosts ? xstrdup(x->p.known_hosts) :
					sys_home_file(".ssh/known_hosts");
	LIBSSH2_KNOWNHOSTS *kh = NULL;
	struct libssh2_knownhost *found = NULL;

	key = libssh2_session_hostkey(x->s, &len, &type);
	kt = key ? keytype_of(type) : NULL;
	if (!kt) {
		rb_error_set(err, RB_ERR_CONNECT,
			     "cannot verify %s: expected a host key of a type runbook knows, found none; nothing was run there",
			     where(x, &w));
		goto out;
	}
	sha = (const unsigned char *)libssh2_hostkey_hash(x->s, LIBSSH2_HOSTKEY_HASH_SHA256);
	buf_adds(&fp, "SHA256:");
	if (sha)
		base64(&fp, sha, 32, false);
	base64(&b64, (const unsigned char *)key, len, true);
	kh_name(&name, x->p.address, x->p.port);

	pthread_mutex_lock(&kh_mu);
	kh = libssh2_knownhost_init(x->s);
	if (!kh || kh_load(kh, path, &revoked, err) < 0) {
		if (!kh)
			rb_error_set(err, RB_ERR_CONNECT,
				     "cannot verify %s: libssh2 could not start its known hosts check",
				     where(x, &w));
		pthread_mutex_unlock(&kh_mu);
		goto out;
	}
	for (size_t i = 0; i < revoked.n; i++) {
		if (strcmp(revoked.v[i], buf_str(&b64)) == 0) {
			rb_error_set(err, RB_ERR_CONNECT,
				     "refusing %s: its %s host key %s is marked @revoked in %s; nothing was run there",
				     where(x, &w), kt->show, buf_str(&fp), path);
			pthread_mutex_unlock(&kh_mu);
			goto out;
		}
	}
	rc = libssh2_knownhost_checkp(kh, x->p.address, (int)x->p.port, key, len,
				      LIBSSH2_KNOWNHOST_TYPE_PLAIN |
				      LIBSSH2_KNOWNHOST_KEYENC_RAW | kt->kh,
				      &found);
	switch (rc) {
	case LIBSSH2_KNOWNHOST_CHECK_MATCH:
		ret = 0;
		break;
	case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
		/* libssh2 also looks under the plain name off port 22 */
		if (x->p.port != 22) {
			buf_addf(&alt, " (or under the plain name %s)", x->p.address);
			buf_addf(&alt2, " (for a key under the plain name: ssh-keygen -R %s -f %s)",
				 x->p.address, path);
		}
		rb_error_set(err, RB_ERR_CONNECT,
			     "@@@ WARNING: THE HOST KEY OF %s HAS CHANGED @@@ it is now the %s key %s, which is not the key %s records for %s%s. Someone may be intercepting the connection, or the host was reinstalled. Nothing was run there, and --accept-new-host-keys never accepts a changed key. If the change is expected, check the new fingerprint with the host's owner, then remove the old key with: ssh-keygen -R '%s' -f %s%s",
			     where(x, &w), kt->show, buf_str(&fp), path,
			     buf_str(&name), buf_str(&alt), buf_str(&name), path,
			     buf_str(&alt2));
		break;
	case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
		/* known with a key of another type: that is no new host */
		if (libssh2_knownhost_checkp(kh, x->p.address, (int)x->p.port,
					     key, len,
					     LIBSSH2_KNOWNHOST_TYPE_PLAIN |
					     LIBSSH2_KNOWNHOST_KEYENC_RAW,
					     &found) == LIBSSH2_KNOWNHOST_CHECK_MISMATCH) {
			rb_error_set(err, RB_ERR_CONNECT,
				     "@@@ WARNING: %s OFFERS A %s HOST KEY (%s), BUT %s RECORDS IT WITH A KEY OF ANOTHER TYPE @@@ runbook treats this like a changed key: nothing was run there, and --accept-new-host-keys does not accept it. Check the new key with the host's owner, then add it with: ssh-keyscan -p %u -t %s %s >> %s",
				     where(x, &w), kt->show, buf_str(&fp), path,
				     x->p.port, kt->scan, x->p.address, path);
			break;
		}
		if (x->p.accept_new) {
			struct buf line = BUF_INIT;

			buf_addf(&line, "%s %s %s\n", buf_str(&name), kt->name,
				 buf_str(&b64));
			ret = kh_append(path, buf_str(&line), err);
			buf_release(&line);
			break;
		}
		rb_error_set(err, RB_ERR_CONNECT,
			     "the host key of %s is not known: %s key fingerprint is %s; nothing was run there. Check the fingerprint with the host's owner, then trust it with: ssh-keyscan -p %u -t %s %s >> %s (or run again with --accept-new-host-keys)",
			     where(x, &w), kt->show, buf_str(&fp), x->p.port,
			     kt->scan, x->p.address, path);
		break;
	default:
		rb_error_set(err, RB_ERR_CONNECT,
			     "cannot verify the host key of %s against %s: %s; nothing was run there",
			     where(x, &w), path, ssh_errmsg(x->s));
		break;
	}
	pthread_mutex_unlock(&kh_mu);
out:
	if (kh)
		libssh2_knownhost_free(kh);
	strvec_release(&revoked);
	buf_release(&fp);
	buf_release(&b64);
	buf_release(&w);
	buf_release(&name);
	buf_release(&alt);
	buf_release(&alt2);
	free(path);
	return ret;
}

/* ---- auth ---- */

static bool try_agent(struct exec_ssh *x, struct buf *tried)
{
	LIBSSH2_AGENT *ag;
	struct libssh2_agent_publickey *id = NULL, *prev = NULL;
	int n = 0;
	bool ok = false;

	if (!getenv("SSH_AUTH_SOCK") || !*getenv("SSH_AUTH_SOCK"))
		return false;
	ag = libssh2_agent_init(x->s);
	if (!ag)
		return false;
	if (libssh2_agent_connect(ag) != 0 ||
	    libssh2_agent_list_identities(ag) != 0) {
		buf_addf(tried, "%sssh-agent (not reachable)", tried->len ? ", " : "");
		goto out;
	}
	while (!ok && libssh2_agent_get_identity(ag, &id, prev) == 0) {
		n++;
		ok = libssh2_agent_userauth(ag, x->p.user, id) == 0;
		prev = id;
	}
	if (!ok)
		buf_addf(tried, "%sssh-agent (%d key%s rejected)",
			 tried->len ? ", " : "", n, n == 1 ? "" : "s");
	libssh2_agent_disconnect(ag);
out:
	libssh2_agent_free(ag);
	return ok;
}

static int authenticate(struct exec_ssh *x, struct rb_error *err)
{
	struct buf tried = BUF_INIT, w = BUF_INIT;
	const char *methods;
	bool ok = false;

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
		ok = try_agent(x, &tried);
		for (size_t i = 0; !ok && x->ids.v && i < x->ids.n; i++) {
			const char *priv = x->ids.v[i];
			struct buf pub = BUF_INIT;
			int rc;

			if (access(priv, R_OK) != 0) {
				buf_addf(&tried, "%s%s (%s)", tried.len ? ", " : "",
					 priv, strerror(errno));
				continue;
			}
			buf_addf(&pub, "%s.pub", priv);
			rc = libssh2_userauth_publickey_fromfile_ex(
				x->s, x->p.user, (unsigned)strlen(x->p.user),
				access(buf_str(&pub), R_OK) == 0 ? buf_str(&pub) : NULL,
				priv, NULL);
			buf_release(&pub);
			ok = rc == 0;
			if (!ok)
				buf_addf(&tried, "%s%s (%s)", tried.len ? ", " : "",
					 priv, rc == LIBSSH2_ERROR_FILE ?
					 "cannot be read without a passphrase, or not a key" :
					 rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED ||
					 rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED ?
					 "rejected" : ssh_errmsg(x->s));
		}
	}
	if (!ok) {
		rb_error_set(err, RB_ERR_CONNECT,
			     "cannot log in to %s as %s: expected a key the server accepts, tried %s; the server accepts: %s; nothing was run there; safe to run again after fixing access",
			     where(x, &w), x->p.user,
			     tried.len ? buf_str(&tried) : "no key (no ssh-agent, no identity file found)",
			     methods);
	}
	buf_release(&tried);
	buf_release(&w);
	return ok ? 0 : -1;
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

static int connect_host(struct exec_ssh *x, struct rb_error *err)
{
	unsigned tmo = x->p.connect_timeout_ms ? x->p.connect_timeout_ms :
						 CONNECT_TIMEOUT_MS;
	struct buf w = BUF_INIT;

	x->dead = false;
	x->sock = tcp_connect(x, tmo, err);
	if (x->sock < 0)
		return -1;
	x->s = libssh2_session_init();
	if (!x->s) {
		rb_error_set(err, RB_ERR_CONNECT, "cannot start an SSH session: out of memory");
		goto fail;
	}
	libssh2_session_set_blocking(x->s, 1);
	libssh2_session_set_timeout(x->s, (long)tmo);
	if (libssh2_session_handshake(x->s, x->sock) != 0) {
		rb_error_set(err, RB_ERR_CONNECT,
			     "cannot connect to %s: expected an SSH server, found no SSH handshake: %s; nothing was run there",
			     where(x, &w), ssh_errmsg(x->s));
		goto fail;
	}
	if (check_host_key(x, err) < 0 || authenticate(x, err) < 0)
		goto fail;
	libssh2_keepalive_config(x->s, 1, KEEPALIVE_S);
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

static int ssh_run(struct exec *ex, const struct exec_cmd *cmd,
		   const struct exec_sink *sink, struct exec_result *out,
		   struct rb_error *err)
{
	struct exec_ssh *x = (struct exec_ssh *)ex;
	struct outstate os = { BUF_INIT, false, false, 0, BUF_INIT, -1 };
	struct buf full = BUF_INIT, w = BUF_INIT;
	LIBSSH2_CHANNEL *ch = NULL;
	unsigned long long start = sys_now_ms(), last_tick = start, deadline;
	unsigned long long closing = 0;
	bool stopping = false, eof = false;
	enum exec_end end = EXEC_EXITED;
	char data[32768];
	int rc, ret = -1;

	memset(out, 0, sizeof(*out));
	if (init_rc != 0) {
		rb_error_set(err, RB_ERR_CONNECT, "cannot initialise libssh2");
		return -1;
	}
	deadline = cmd->timeout_ms ? start + cmd->timeout_ms : 0;
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

	for (;;) {
		ssize_t n1, n2;
		unsigned long long t;
		int secs;

		n1 = libssh2_channel_read(ch, data, sizeof(data));
		if (n1 > 0) {
			out_data(&os, sink, data, (size_t)n1);
			if (os.pid && !os.pid_told) {
				os.pid_told = true;
				out_pid(x, cmd, sink, os.pid);
			}
		}
		n2 = libssh2_channel_read_stderr(ch, data, sizeof(data));
		if (n2 > 0)
			sink->output(sink->ctx, EXEC_STDERR, data, (size_t)n2);
		if (lost((int)n1) || lost((int)n2)) {
			rc = (int)(n1 < 0 ? n1 : n2);
			break;
		}
		if (libssh2_channel_eof(ch) && n1 <= 0 && n2 <= 0) {
			eof = true;
			break;
		}
		if (n1 > 0 || n2 > 0)
			continue;
		t = sys_now_ms();
		if (sink->tick && t - last_tick >= 100) {
			sink->tick(sink->ctx);
			last_tick = t;
		}
		if (!stopping && ((deadline && t >= deadline) ||
				  cancelled(cmd->cancel_fd))) {
			stopping = true;
			end = deadline && t >= deadline ? EXEC_TIMED_OUT :
							  EXEC_CANCELLED;
			if (!os.pid) {
				/* not even started (a slow login): closing is all */
				snprintf(out->why, sizeof(out->why),
					 "gave up on %s before the command reported that it had started (the remote login was still running); its channel was closed",
					 where(x, &w));
				break;
			}
			if (!stop_remote(x, os.pid, NULL)) {
				/* no answer: stop it when the host is back */
				snprintf(out->why, sizeof(out->why),
					 "could not stop it on %s (the host did not answer); it may still run there until runbook reaches the host again",
					 where(x, &w));
				x->orphan = os.pid;
				x->dead = true;
				break;
			}
			libssh2_session_set_blocking(x->s, 0);
			closing = sys_now_ms();
			continue;
		}
		if (stopping && sys_now_ms() - closing > CLOSE_WAIT_MS)
			break;
		libssh2_keepalive_send(x->s, &secs);
		wait_io(x, stopping ? -1 : cmd->cancel_fd, 100);
	}
	if (!eof && !stopping) {
		/* the connection broke under a running command */
		x->dead = true;
		x->orphan = os.pid;
		out_end(&os, sink);
		out->end = EXEC_LOST;
		out->exit_code = -1;
		out->duration_ms = sys_now_ms() - start;
		snprintf(out->why, sizeof(out->why),
			 "lost the connection to %s while the command ran (%s); it may have done part of its work",
			 where(x, &w), ssh_errmsg(x->s));
		ret = 0;
		goto out;
	}
	out_end(&os, sink);
	if (!x->dead) {
		unsigned long long t0 = sys_now_ms();

		while ((rc = libssh2_channel_close(ch)) == LIBSSH2_ERROR_EAGAIN &&
		       sys_now_ms() - t0 < CLOSE_WAIT_MS)
			wait_io(x, -1, 100);
		while ((rc = libssh2_channel_wait_closed(ch)) == LIBSSH2_ERROR_EAGAIN &&
		       sys_now_ms() - t0 < CLOSE_WAIT_MS)
			wait_io(x, -1, 100);
	}
	out->duration_ms = sys_now_ms() - start;
	if (stopping) {
		out->end = end;
		out->exit_code = -1;
		ret = 0;
		goto out;
	}
	{
		char *sig = NULL;
		size_t siglen = 0;

		libssh2_channel_get_exit_signal(ch, &sig, &siglen, NULL, NULL,
						NULL, NULL);
		if (sig && siglen) {
			out->end = EXEC_SIGNALED;
			out->signal = signal_number(sig);
			out->exit_code = -1;
			libssh2_free(x->s, sig);
			ret = 0;
			goto out;
		}
		libssh2_free(x->s, sig);
	}
	if (os.exit_code < 0) {
		bool stopped;

		/* libssh2 says 0 for "no exit status": do not believe it */
		out->end = EXEC_LOST;
		out->exit_code = -1;
		/* the server closed the channel; the command may go on */
		stopped = os.pid && x->orphan_guard &&
			  stop_remote(x, os.pid, x->orphan_guard);
		snprintf(out->why, sizeof(out->why),
			 "the command's channel on %s closed without an exit status%s; its outcome is unknown (it may have done part of its work)",
			 where(x, &w), stopped ? " while it still ran (stopped it)" : "");
		ret = 0;
		goto out;
	}
	out->end = EXEC_EXITED;
	out->exit_code = os.exit_code;
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
	for (char *const *i = p->identities; i && *i; i++)
		strvec_push(&x->ids, *i);
	x->p.identities = NULL;
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
