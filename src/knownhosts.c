/*
 * known_hosts: reading it line by line, checking a host's key against
 * it, appending accepted new keys. Invariant: a key is trusted only if
 * the file holds it for the host and holds it nowhere as @revoked, or
 * if the host is unknown, accept_new was given and the key's line was
 * appended and fsynced; every other outcome is an error before
 * anything runs on the host.
 */
#include "knownhosts.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "hash.h"
#include "sys.h"

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

/* ---- the check ---- */

/* Serialises reading and appending known_hosts within the process. */
static pthread_mutex_t kh_mu = PTHREAD_MUTEX_INITIALIZER;

/* The key a host offered, and what the messages about it say. */
struct offer {
	const char *where;	/* the host, as messages name it */
	const char *address;
	unsigned port;
	const char *path;	/* the known_hosts file */
	const struct keytype *kt;
	const char *key;	/* raw, as libssh2 has it */
	size_t len;
	struct buf fp;		/* "SHA256:..." as OpenSSH prints it */
	struct buf b64;		/* the key as known_hosts writes it */
	struct buf name;	/* the host as known_hosts names it */
};

/* "name port N", or "name (address port N)" when they differ. */
static void where_text(struct buf *b, const char *name, const char *address,
		       unsigned port)
{
	if (strcmp(name, address) == 0)
		buf_addf(b, "%s port %u", address, port);
	else
		buf_addf(b, "%s (%s port %u)", name, address, port);
}

static const char *ssh_errmsg(LIBSSH2_SESSION *s)
{
	char *msg = NULL;

	if (!s || libssh2_session_last_error(s, &msg, NULL, 0) == 0 || !msg)
		return "no detail from libssh2";
	return msg;
}

/*
 * True (err set) if the offered key is in an @revoked line: such a key
 * is refused for every host, before any lookup could accept it.
 */
static bool revoked_key(const struct strvec *revoked, const struct offer *o,
			struct rb_error *err)
{
	for (size_t i = 0; i < revoked->n; i++) {
		if (strcmp(revoked->v[i], buf_str(&o->b64)) == 0) {
			rb_error_set(err, RB_ERR_CONNECT,
				     "refusing %s: its %s host key %s is marked @revoked in %s; nothing was run there",
				     o->where, o->kt->show, buf_str(&o->fp), o->path);
			return true;
		}
	}
	return false;
}

/*
 * The file has another key of this type for the host. Always an error:
 * the message is OpenSSH's warning, and off port 22 it also names the
 * plain host name, under which libssh2 looks too.
 */
static void changed_key(const struct offer *o, struct rb_error *err)
{
	struct buf alt = BUF_INIT, alt2 = BUF_INIT;

	/* libssh2 also looks under the plain name off port 22 */
	if (o->port != 22) {
		buf_addf(&alt, " (or under the plain name %s)", o->address);
		buf_addf(&alt2, " (for a key under the plain name: ssh-keygen -R %s -f %s)",
			 o->address, o->path);
	}
	rb_error_set(err, RB_ERR_CONNECT,
		     "@@@ WARNING: THE HOST KEY OF %s HAS CHANGED @@@ it is now the %s key %s, which is not the key %s records for %s%s. Someone may be intercepting the connection, or the host was reinstalled. Nothing was run there, and --accept-new-host-keys never accepts a changed key. If the change is expected, check the new fingerprint with the host's owner, then remove the old key with: ssh-keygen -R '%s' -f %s%s",
		     o->where, o->kt->show, buf_str(&o->fp), o->path,
		     buf_str(&o->name), buf_str(&alt), buf_str(&o->name), o->path,
		     buf_str(&alt2));
	buf_release(&alt);
	buf_release(&alt2);
}

/*
 * No key of this type for the host. A host known with a key of another
 * type is no new host: refused like a changed key. A new host's key is
 * appended with accept_new, refused otherwise with how to trust it.
 */
static int unknown_key(LIBSSH2_KNOWNHOSTS *kh, const struct offer *o,
		       bool accept_new, struct rb_error *err)
{
	struct libssh2_knownhost *found = NULL;
	struct buf line = BUF_INIT;
	int ret = -1;

	if (libssh2_knownhost_checkp(kh, o->address, (int)o->port,
				     o->key, o->len,
				     LIBSSH2_KNOWNHOST_TYPE_PLAIN |
				     LIBSSH2_KNOWNHOST_KEYENC_RAW,
				     &found) == LIBSSH2_KNOWNHOST_CHECK_MISMATCH) {
		rb_error_set(err, RB_ERR_CONNECT,
			     "@@@ WARNING: %s OFFERS A %s HOST KEY (%s), BUT %s RECORDS IT WITH A KEY OF ANOTHER TYPE @@@ runbook treats this like a changed key: nothing was run there, and --accept-new-host-keys does not accept it. Check the new key with the host's owner, then add it with: ssh-keyscan -p %u -t %s %s >> %s",
			     o->where, o->kt->show, buf_str(&o->fp), o->path,
			     o->port, o->kt->scan, o->address, o->path);
		goto out;
	}
	if (accept_new) {
		buf_addf(&line, "%s %s %s\n", buf_str(&o->name), o->kt->name,
			 buf_str(&o->b64));
		ret = kh_append(o->path, buf_str(&line), err);
		goto out;
	}
	rb_error_set(err, RB_ERR_CONNECT,
		     "the host key of %s is not known: %s key fingerprint is %s; nothing was run there. Check the fingerprint with the host's owner, then trust it with: ssh-keyscan -p %u -t %s %s >> %s (or run again with --accept-new-host-keys)",
		     o->where, o->kt->show, buf_str(&o->fp), o->port,
		     o->kt->scan, o->address, o->path);
out:
	buf_release(&line);
	return ret;
}

/*
 * The check proper, with kh_mu held: loads the file into *kh (the
 * caller frees it, after unlocking), refuses a revoked key, then looks
 * the host up with the key's type and acts on what libssh2 found.
 */
static int check_locked(LIBSSH2_SESSION *s, const struct offer *o,
			bool accept_new, LIBSSH2_KNOWNHOSTS **kh,
			struct rb_error *err)
{
	struct strvec revoked = STRVEC_INIT;
	struct libssh2_knownhost *found = NULL;
	int ret = -1;

	*kh = libssh2_knownhost_init(s);
	if (!*kh || kh_load(*kh, o->path, &revoked, err) < 0) {
		if (!*kh)
			rb_error_set(err, RB_ERR_CONNECT,
				     "cannot verify %s: libssh2 could not start its known hosts check",
				     o->where);
		goto out;
	}
	if (revoked_key(&revoked, o, err))
		goto out;
	switch (libssh2_knownhost_checkp(*kh, o->address, (int)o->port,
					 o->key, o->len,
					 LIBSSH2_KNOWNHOST_TYPE_PLAIN |
					 LIBSSH2_KNOWNHOST_KEYENC_RAW | o->kt->kh,
					 &found)) {
	case LIBSSH2_KNOWNHOST_CHECK_MATCH:
		ret = 0;
		break;
	case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
		changed_key(o, err);
		break;
	case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
		ret = unknown_key(*kh, o, accept_new, err);
		break;
	default:
		rb_error_set(err, RB_ERR_CONNECT,
			     "cannot verify the host key of %s against %s: %s; nothing was run there",
			     o->where, o->path, ssh_errmsg(s));
		break;
	}
out:
	strvec_release(&revoked);
	return ret;
}

/* The check of a key we have in hand: sha is its SHA-256, or NULL. */
static int check_key(LIBSSH2_SESSION *s, const char *key, size_t len,
		     int type, const unsigned char *sha, const char *name,
		     const char *address, unsigned port,
		     const char *known_hosts_path, bool accept_new,
		     struct rb_error *err)
{
	struct offer o = { .address = address, .port = port,
			   .fp = BUF_INIT, .b64 = BUF_INIT, .name = BUF_INIT };
	struct buf w = BUF_INIT;
	char *path = known_hosts_path ? xstrdup(known_hosts_path) :
					sys_home_file(".ssh/known_hosts");
	LIBSSH2_KNOWNHOSTS *kh = NULL;
	unsigned char own[32];
	int ret = -1;

	where_text(&w, name ? name : address, address, port);
	o.where = buf_str(&w);
	o.path = path;
	o.key = key;
	o.len = len;
	o.kt = o.key ? keytype_of(type) : NULL;
	if (!o.kt) {
		rb_error_set(err, RB_ERR_CONNECT,
			     "cannot verify %s: expected a host key of a type runbook knows, found none; nothing was run there",
			     o.where);
		goto out;
	}
	if (!sha) {
		struct sha256 h;

		sha256_init(&h);
		sha256_update(&h, key, len);
		sha256_final(&h, own);
		sha = own;
	}
	buf_adds(&o.fp, "SHA256:");
	base64(&o.fp, sha, 32, false);
	base64(&o.b64, (const unsigned char *)o.key, o.len, true);
	kh_name(&o.name, address, port);

	pthread_mutex_lock(&kh_mu);
	ret = check_locked(s, &o, accept_new, &kh, err);
	pthread_mutex_unlock(&kh_mu);
out:
	if (kh)
		libssh2_knownhost_free(kh);
	buf_release(&o.fp);
	buf_release(&o.b64);
	buf_release(&o.name);
	buf_release(&w);
	free(path);
	return ret;
}

int knownhosts_check(LIBSSH2_SESSION *s, const char *name,
		     const char *address, unsigned port,
		     const char *known_hosts_path, bool accept_new,
		     struct rb_error *err)
{
	size_t len = 0;
	int type = 0;
	const char *key = libssh2_session_hostkey(s, &len, &type);
	const unsigned char *sha = key ? (const unsigned char *)
		libssh2_hostkey_hash(s, LIBSSH2_HOSTKEY_HASH_SHA256) : NULL;

	return check_key(s, key, len, type, sha, name, address, port,
			 known_hosts_path, accept_new, err);
}

int knownhosts_check_key(const char *key, size_t len, int type,
			 const char *address, unsigned port,
			 const char *known_hosts_path, bool accept_new,
			 struct rb_error *err)
{
	LIBSSH2_SESSION *s = libssh2_session_init();
	int ret;

	if (!s) {
		rb_error_set(err, RB_ERR_CONNECT,
			     "cannot verify %s: libssh2 could not start its known hosts check",
			     address);
		return -1;
	}
	ret = check_key(s, key, len, type, NULL, address, address, port,
			known_hosts_path, accept_new, err);
	libssh2_session_free(s);
	return ret;
}
