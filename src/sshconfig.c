/*
 * OpenSSH client config lookup. One pass over the file and its includes,
 * line by line, like readconf.c: each line is split into a keyword and
 * words, and a flag says whether the current Host or Match block applies.
 * Invariant: a value is taken only while the block applies and only if
 * none was taken before (IdentityFile appends), so the first value
 * obtained wins; the result is built aside and handed out only when the
 * whole lookup succeeded.
 */
#include "sshconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

#define MAX_IDENTITIES 100	/* SSH_MAX_IDENTITY_FILES */
#define WS " \t\r\n\f"

struct ident {
	char *raw;		/* as written; expanded at the end */
	char *path;		/* where it was written, for errors */
	unsigned line;
};

struct lookup {
	const char *host;	/* the alias, as the runbook wrote it */
	char *home;		/* NULL: unknown */
	char *luser;		/* local user name, looked up when needed */
	unsigned nfiles;
	struct rb_error *err;

	/* values obtained so far; the first one wins */
	char *hostname;		/* tokens expanded */
	char *user;
	unsigned port;
	char *hostkeyalias;
	struct ident *ids;
	size_t nids, capids;
	int identities_only;	/* 1 yes, 0 no, -1 not set */
	int alive_interval;	/* seconds; -1: not set */
	int alive_count;	/* -1: not set */
};

/* A value fit for a message: at most 64 bytes, control bytes escaped. */
struct shown {
	char s[64 * 4 + 8];
};

static struct shown show(const char *v)
{
	struct shown r;
	size_t o = 0, i;

	for (i = 0; v[i] && i < 64; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			o += (size_t)snprintf(r.s + o, sizeof(r.s) - o, "\\x%02x",
					      c);
		else
			r.s[o++] = (char)c;
	}
	if (v[i])
		o += (size_t)snprintf(r.s + o, sizeof(r.s) - o, "...");
	r.s[o] = '\0';
	return r;
}

static int fail(struct lookup *L, const char *path, unsigned line,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Sets err to "path:line: <message>", class RB_ERR_INVALID; returns -1. */
static int fail(struct lookup *L, const char *path, unsigned line,
		const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	buf_addf(&b, "%s:%u: ", path, line);
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	rb_error_set(L->err, RB_ERR_INVALID, "%s", buf_str(&b));
	buf_release(&b);
	return -1;
}

static char *lower(char *s)
{
	for (char *p = s; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return s;
}

/* The passwd entry of name, or of our uid when name is NULL. */
static int pw_get(const char *name, char **user, char **dir)
{
	struct passwd pw, *res = NULL;
	size_t sz = 1024;
	char *b = NULL;
	int r;

	for (;;) {
		b = xrealloc(b, sz);
		if (name)
			r = getpwnam_r(name, &pw, b, sz, &res);
		else
			r = getpwuid_r(getuid(), &pw, b, sz, &res);
		if (r != ERANGE || sz >= (1u << 20))
			break;
		sz *= 2;
	}
	r = r == 0 && res ? 0 : -1;
	if (r == 0 && user)
		*user = xstrdup(pw.pw_name);
	if (r == 0 && dir)
		*dir = xstrdup(pw.pw_dir);
	free(b);
	return r;
}

static const char *need_home(struct lookup *L, const char *path,
			     unsigned line, const char *what)
{
	if (!L->home)
		fail(L, path, line,
		     "%s: expected a home directory for ~, found neither $HOME nor a passwd entry for uid %u",
		     what, (unsigned)getuid());
	return L->home;
}

static const char *need_luser(struct lookup *L, const char *path,
			      unsigned line, const char *what)
{
	const char *env;

	if (L->luser)
		return L->luser;
	if (pw_get(NULL, &L->luser, NULL) == 0)
		return L->luser;
	env = getenv("USER");
	if (env && *env)
		return L->luser = xstrdup(env);
	fail(L, path, line,
	     "%s: expected a local user name, found no passwd entry for uid %u and no $USER",
	     what, (unsigned)getuid());
	return NULL;
}

/*
 * Glob matching with * and ?, as ssh's match_pattern(), but remembering
 * only the last star: O(len(s) * len(p)) however the pattern is built.
 */
static bool wild_match(const char *s, const char *p)
{
	const char *star = NULL, *resume = NULL;

	while (*s) {
		if (*p == '?' || (*p && *p == *s)) {
			s++;
			p++;
		} else if (*p == '*') {
			star = p++;
			resume = s;
		} else if (star) {
			p = star + 1;
			s = ++resume;
		} else {
			return false;
		}
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

/*
 * A comma-separated pattern list, as ssh's match_pattern_list(): 1 if a
 * plain entry matched, -1 if a !entry did (that wins), else 0.
 */
static int match_list(const char *s, const char *list, bool fold)
{
	char *str = xstrdup(s), *l = xstrdup(list), *cur = l, *sub;
	int r = 0;

	if (fold) {
		lower(str);
		lower(l);
	}
	while ((sub = strsep(&cur, ",")) != NULL) {
		bool neg = *sub == '!';

		if (!wild_match(str, sub + neg))
			continue;
		if (neg) {
			r = -1;
			break;
		}
		r = 1;
	}
	free(str);
	free(l);
	return r;
}

/*
 * Splits the rest of a line into words like ssh's argv_split(): quotes
 * group, a backslash escapes a quote, a backslash or (outside quotes) a
 * space, and a # at the start of a word ends the line. Returns -1 on an
 * unterminated quote.
 */
static int split_words(const char *s, struct strvec *out)
{
	size_t i = 0;

	while (s[i]) {
		struct buf w = BUF_INIT;
		char q = 0;

		if (s[i] == ' ' || s[i] == '\t') {
			i++;
			continue;
		}
		if (s[i] == '#')
			break;
		for (; s[i]; i++) {
			char c = s[i], n = s[i + 1];

			if (c == '\\' && (n == '\'' || n == '"' || n == '\\' ||
					  (!q && n == ' '))) {
				buf_addc(&w, n);
				i++;
			} else if (!q && (c == ' ' || c == '\t')) {
				break;
			} else if (!q && (c == '"' || c == '\'')) {
				q = c;
			} else if (q && c == q) {
				q = 0;
			} else {
				buf_addc(&w, c);
			}
		}
		strvec_push_owned(out, buf_detach(&w));
		if (q)
			return -1;
	}
	return 0;
}

/* ssh's a2port(): 1-65535 in decimal, or a TCP service name. */
static unsigned parse_port(const char *s)
{
	struct servent se, *res = NULL;
	unsigned long v = 0;
	char b[1024];
	size_t i;

	for (i = 0; s[i] >= '0' && s[i] <= '9' && v <= 65535; i++)
		v = v * 10 + (unsigned long)(s[i] - '0');
	if (i > 0 && s[i] == '\0')
		return v <= 65535 ? (unsigned)v : 0;
	if (getservbyname_r(s, "tcp", &se, b, sizeof(b), &res) == 0 && res)
		return ntohs((unsigned short)res->s_port);
	return 0;
}

/* ssh's multistate flag: 1 for yes or true, 0 for no or false, else -1. */
static int parse_flag(const char *s)
{
	if (strcasecmp(s, "yes") == 0 || strcasecmp(s, "true") == 0)
		return 1;
	if (strcasecmp(s, "no") == 0 || strcasecmp(s, "false") == 0)
		return 0;
	return -1;
}

/*
 * ssh's convtime(): numbers of seconds, each with an optional unit (s,
 * m, h, d, w, either case), summed; "90", "1m30s". -1 if malformed,
 * negative or over INT_MAX seconds.
 */
static int parse_time(const char *s)
{
	long total = 0;

	if (!*s)
		return -1;
	while (*s) {
		char *end;
		long secs, mul = 1;

		errno = 0;
		secs = strtol(s, &end, 10);
		if (end == s || errno == ERANGE || secs < 0)
			return -1;
		switch (*end) {
		case '\0':
			break;
		case 's':
		case 'S':
			end++;
			break;
		case 'm':
		case 'M':
			mul = 60;
			end++;
			break;
		case 'h':
		case 'H':
			mul = 60 * 60;
			end++;
			break;
		case 'd':
		case 'D':
			mul = 24 * 60 * 60;
			end++;
			break;
		case 'w':
		case 'W':
			mul = 7 * 24 * 60 * 60;
			end++;
			break;
		default:
			return -1;
		}
		if (secs > INT_MAX / mul)
			return -1;
		secs *= mul;
		if (total > INT_MAX - secs)
			return -1;
		total += secs;
		s = end;
	}
	return (int)total;
}

/* ssh's atoi_err(): a decimal number from 0 to INT_MAX, else -1. */
static int parse_count(const char *s)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || *end || errno == ERANGE || v < 0 || v > INT_MAX)
		return -1;
	return (int)v;
}

enum tokens { TOK_HOSTNAME, TOK_IDENTITY };

/* Appends the value of token %key; 1 if done, 0 if unknown, -1 error. */
static int token(struct lookup *L, enum tokens set, char key,
		 const char *path, unsigned line, struct buf *out)
{
	const char *what = set == TOK_HOSTNAME ? "HostName" : "IdentityFile";
	const char *v;
	char host[256];

	if (set == TOK_HOSTNAME) {
		if (key != 'h')
			return 0;
		buf_adds(out, L->host);
		return 1;
	}
	switch (key) {
	case 'd':
		if (!(v = need_home(L, path, line, what)))
			return -1;
		buf_adds(out, v);
		return 1;
	case 'h': {
		size_t at = out->len;

		buf_adds(out, L->hostname ? L->hostname : L->host);
		lower(out->data + at);
		return 1;
	}
	case 'i':
		buf_addf(out, "%u", (unsigned)getuid());
		return 1;
	case 'k':
		buf_adds(out, L->hostkeyalias ? L->hostkeyalias : L->host);
		return 1;
	case 'L':
	case 'l':
		if (gethostname(host, sizeof(host)) < 0) {
			rb_error_errno(L->err, RB_ERR_INVALID,
				       "%s:%u: %s: cannot get the local host name for %%%c",
				       path, line, what, key);
			return -1;
		}
		host[sizeof(host) - 1] = '\0';
		if (key == 'L')
			host[strcspn(host, ".")] = '\0';
		buf_adds(out, host);
		return 1;
	case 'n':
		buf_adds(out, L->host);
		return 1;
	case 'p':
		buf_addf(out, "%u", L->port ? L->port : 22);
		return 1;
	case 'r':
		if (!(v = L->user ? L->user : need_luser(L, path, line, what)))
			return -1;
		buf_adds(out, v);
		return 1;
	case 'u':
		if (!(v = need_luser(L, path, line, what)))
			return -1;
		buf_adds(out, v);
		return 1;
	default:
		return 0;
	}
}

/* Expands %tokens (and ${NAME} when env) of s onto out, like ssh. */
static int expand(struct lookup *L, enum tokens set, bool env, const char *s,
		  const char *path, unsigned line, struct buf *out)
{
	const char *what = set == TOK_HOSTNAME ? "HostName" : "IdentityFile";
	const char *known = set == TOK_HOSTNAME ? "%%, %h" :
		"%%, %d, %h, %i, %k, %L, %l, %n, %p, %r, %u";

	for (; *s; s++) {
		int r;

		if (env && s[0] == '$' && s[1] == '{') {
			const char *end = strchr(s + 2, '}');
			char *name;
			const char *v;

			if (!end)
				return fail(L, path, line,
					    "%s: expected '}' after \"${\", found the end of the value",
					    what);
			if (end == s + 2)
				return fail(L, path, line,
					    "%s: expected a variable name in \"${}\", found none",
					    what);
			name = xstrndup(s + 2, (size_t)(end - s - 2));
			v = getenv(name);
			if (!v) {
				fail(L, path, line,
				     "%s: expected environment variable %s to be set, found it unset",
				     what, show(name).s);
				free(name);
				return -1;
			}
			free(name);
			buf_adds(out, v);
			s = end;
			continue;
		}
		if (*s != '%') {
			buf_addc(out, *s);
			continue;
		}
		if (*++s == '%') {
			buf_addc(out, '%');
			continue;
		}
		if (*s == '\0')
			return fail(L, path, line,
				    "%s: expected a token letter after '%%', found the end of the value",
				    what);
		r = token(L, set, *s, path, line, out);
		if (r < 0)
			return -1;
		if (r == 0)
			return fail(L, path, line,
				    "%s: expected one of the tokens %s, found \"%%%s\"",
				    what, known, show((char[]){ *s, '\0' }).s);
	}
	return 0;
}

/* Appends the directory that a leading ~ or ~user of s stands for. */
static int tilde(struct lookup *L, const char *s, const char *path,
		 unsigned line, const char *what, struct buf *out,
		 const char **rest)
{
	size_t n;
	char *name, *dir = NULL;

	*rest = s;
	if (*s != '~')
		return 0;
	n = strcspn(s + 1, "/");
	*rest = s + 1 + n;
	if (n == 0) {
		if (!need_home(L, path, line, what))
			return -1;
		buf_adds(out, L->home);
		return 0;
	}
	name = xstrndup(s + 1, n);
	if (pw_get(name, NULL, &dir) < 0) {
		fail(L, path, line, "%s: expected a known user after '~', found \"~%s\"",
		     what, show(name).s);
		free(name);
		return -1;
	}
	buf_adds(out, dir);
	free(name);
	free(dir);
	return 0;
}

/*
 * ssh's check on a config file, with Debian's user-group-modes: owned by
 * us or root, not writable by others, and writable by its group only if
 * that is the owner's private group (his primary group, no other member).
 */
static bool secure_perms(const struct stat *st)
{
	struct passwd pw, *pres = NULL;
	struct group gr, *gres = NULL;
	char *pb = NULL, *gb = NULL;
	bool ok = false;

	if (st->st_uid != 0 && st->st_uid != getuid())
		return false;
	if (st->st_mode & 002)
		return false;
	if (!(st->st_mode & 020))
		return true;
	pb = xmalloc(16384);
	gb = xmalloc(65536);
	if (getpwuid_r(st->st_uid, &pw, pb, 16384, &pres) == 0 && pres &&
	    pw.pw_gid == st->st_gid &&
	    getgrgid_r(st->st_gid, &gr, gb, 65536, &gres) == 0 && gres) {
		ok = true;
		for (char **m = gr.gr_mem; *m; m++)
			if (strcmp(*m, pw.pw_name) != 0)
				ok = false;
	}
	free(pb);
	free(gb);
	return ok;
}

/*
 * Reads all of path (at most SSHCONFIG_MAX_SIZE bytes) into out. A file
 * that is not there leaves *missing set; a directory reads as empty.
 */
static int read_text(struct lookup *L, const char *path, bool check_perm,
		     bool *missing, struct buf *out)
{
	struct stat st;
	int fd, ret = -1;

	*missing = false;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR) {
			*missing = true;
			return 0;
		}
		rb_error_errno(L->err, RB_ERR_INVALID,
			       "cannot open ssh config '%s'", path);
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		rb_error_errno(L->err, RB_ERR_INVALID,
			       "cannot stat ssh config '%s'", path);
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		ret = 0;
		goto out;
	}
	if (check_perm && !secure_perms(&st)) {
		rb_error_set(L->err, RB_ERR_INVALID,
			     "bad owner or permissions on ssh config '%s': expected owner uid %u or root, not writable by others nor by a group other than the owner's own (ssh refuses it too), found owner uid %u and mode %04o",
			     path, (unsigned)getuid(), (unsigned)st.st_uid,
			     (unsigned)(st.st_mode & 07777));
		goto out;
	}
	for (;;) {
		ssize_t n;

		buf_grow(out, 65536);
		n = read(fd, out->data + out->len, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rb_error_errno(L->err, RB_ERR_INVALID,
				       "cannot read ssh config '%s'", path);
			goto out;
		}
		if (n == 0)
			break;
		out->len += (size_t)n;
		out->data[out->len] = '\0';
		if (out->len > SSHCONFIG_MAX_SIZE) {
			rb_error_set(L->err, RB_ERR_INVALID,
				     "ssh config '%s' is too large: expected at most %u bytes, found more",
				     path, SSHCONFIG_MAX_SIZE);
			goto out;
		}
	}
	ret = 0;
out:
	close(fd);
	return ret;
}

static int read_config(struct lookup *L, const char *path, int depth,
		       bool never, bool *active, bool check_perm);

/* One path of an Include line: a glob(3) pattern, relative to ~/.ssh. */
static int include_one(struct lookup *L, const char *arg, const char *path,
		       unsigned line, int depth, bool never, bool active)
{
	struct buf pat = BUF_INIT;
	glob_t gl = { 0 };
	const char *rest;
	int r, ret = -1;

	if (!*arg) {
		fail(L, path, line, "Include: expected a path, found an empty string");
		goto out;
	}
	if (*arg == '~') {
		if (tilde(L, arg, path, line, "Include", &pat, &rest) < 0)
			goto out;
		buf_adds(&pat, rest);
	} else if (*arg != '/') {
		if (!need_home(L, path, line, "Include"))
			goto out;
		buf_addf(&pat, "%s/.ssh/%s", L->home, arg);
	} else {
		buf_adds(&pat, arg);
	}
	r = glob(buf_str(&pat), 0, NULL, &gl);
	if (r == GLOB_NOMATCH) {
		ret = 0;
		goto out;
	}
	if (r != 0) {
		fail(L, path, line, "Include: cannot expand \"%s\"",
		     show(buf_str(&pat)).s);
		goto out;
	}
	for (size_t k = 0; k < gl.gl_pathc; k++) {
		/* an included file's Host and Match stay in it */
		bool a = active;

		if (depth >= SSHCONFIG_MAX_DEPTH) {
			fail(L, path, line,
			     "Include: expected at most %d nested levels, found more (does a file include itself?)",
			     SSHCONFIG_MAX_DEPTH);
			goto out;
		}
		if (L->nfiles >= SSHCONFIG_MAX_FILES) {
			fail(L, path, line,
			     "Include: expected at most %d files in all, found more",
			     SSHCONFIG_MAX_FILES);
			goto out;
		}
		if (read_config(L, gl.gl_pathv[k], depth + 1, never || !active,
				&a, true) < 0)
			goto out;
	}
	ret = 0;
out:
	globfree(&gl);
	buf_release(&pat);
	return ret;
}

/* Evaluates the criteria of a Match line into *out. */
static int do_match(struct lookup *L, const struct strvec *args,
		    const char *path, unsigned line, bool *out)
{
	bool result = true, unsupported = false;
	size_t nattr = 0, ncf = 0;

	for (size_t i = 0; i < args->n; i++) {
		const char *attr = args->v[i], *arg, *s;
		bool neg = *attr == '!';
		int r;

		attr += neg;
		if (strcasecmp(attr, "all") == 0) {
			if (nattr > ncf || ncf > 1 || i + 1 < args->n)
				return fail(L, path, line,
					    "Match: expected 'all' alone or right after canonical or final, found it combined with other criteria");
			if (neg)
				result = false;
			*out = result && !unsupported;
			return 0;
		}
		nattr++;
		if (strcasecmp(attr, "canonical") == 0 ||
		    strcasecmp(attr, "final") == 0) {
			/* no canonicalization, no final pass: see the header */
			ncf++;
			unsupported = true;
			continue;
		}
		if (strcasecmp(attr, "host") != 0 &&
		    strcasecmp(attr, "originalhost") != 0 &&
		    strcasecmp(attr, "user") != 0 &&
		    strcasecmp(attr, "localuser") != 0 &&
		    strcasecmp(attr, "exec") != 0)
			return fail(L, path, line,
				    "Match: expected all, canonical, final, exec, host, originalhost, user or localuser, found \"%s\"",
				    show(args->v[i]).s);
		if (i + 1 == args->n || !*args->v[i + 1])
			return fail(L, path, line,
				    "Match: expected a pattern list after %s, found %s",
				    show(args->v[i]).s,
				    i + 1 == args->n ? "the end of the line" :
				    "an empty string");
		arg = args->v[++i];
		if (strcasecmp(attr, "exec") == 0) {
			/* never run: see the header */
			unsupported = true;
			continue;
		}
		if (strcasecmp(attr, "host") == 0) {
			s = L->hostname ? L->hostname : L->host;
			r = match_list(s, arg, true) == 1;
		} else if (strcasecmp(attr, "originalhost") == 0) {
			r = match_list(L->host, arg, true) == 1;
		} else if (strcasecmp(attr, "user") == 0) {
			s = L->user ? L->user : need_luser(L, path, line, "Match");
			if (!s)
				return -1;
			r = match_list(s, arg, false) == 1;
		} else {
			if (!(s = need_luser(L, path, line, "Match")))
				return -1;
			r = match_list(s, arg, false) == 1;
		}
		if (r == neg)
			result = false;
	}
	*out = result && !unsupported;
	return 0;
}

static int do_host(struct lookup *L, const struct strvec *args,
		   const char *path, unsigned line, bool never, bool *active)
{
	*active = false;
	for (size_t i = 0; i < args->n; i++) {
		const char *p = args->v[i];
		bool neg = *p == '!';

		if (!*p)
			return fail(L, path, line,
				    "Host: expected a pattern, found an empty string");
		if (never)
			break;
		if (!wild_match(L->host, p + neg))
			continue;
		if (neg) {
			*active = false;
			break;
		}
		*active = true;
	}
	return 0;
}

static void add_ident(struct lookup *L, const char *raw, const char *path,
		      unsigned line)
{
	struct ident *id;

	for (size_t i = 0; i < L->nids; i++)
		if (strcmp(L->ids[i].raw, raw) == 0)
			return;
	L->ids = xgrow(L->ids, &L->capids, L->nids + 1, sizeof(*L->ids));
	id = &L->ids[L->nids++];
	id->raw = xstrdup(raw);
	id->path = xstrdup(path);
	id->line = line;
}

enum keyword {
	K_OTHER, K_HOST, K_MATCH, K_INCLUDE, K_HOSTNAME, K_USER, K_PORT,
	K_IDENTITYFILE, K_HOSTKEYALIAS, K_IDENTITIESONLY, K_ALIVEINTERVAL,
	K_ALIVECOUNT,
};

static const struct {
	const char *name;
	enum keyword kw;
} keywords[] = {
	{ "host", K_HOST },
	{ "match", K_MATCH },
	{ "include", K_INCLUDE },
	{ "hostname", K_HOSTNAME },
	{ "user", K_USER },
	{ "port", K_PORT },
	{ "identityfile", K_IDENTITYFILE },
	{ "hostkeyalias", K_HOSTKEYALIAS },
	{ "identitiesonly", K_IDENTITIESONLY },
	{ "serveraliveinterval", K_ALIVEINTERVAL },
	{ "serveralivecountmax", K_ALIVECOUNT },
};

/*
 * IdentitiesOnly, ServerAliveInterval, ServerAliveCountMax: the value is
 * checked in every block, as ssh does, and taken if the block applies
 * and none was taken before. ServerAliveInterval none takes nothing.
 */
static int do_option(struct lookup *L, enum keyword kw, const char *v,
		     const char *path, unsigned line, bool active)
{
	int n;

	switch (kw) {
	case K_IDENTITIESONLY:
		if ((n = parse_flag(v)) < 0)
			return fail(L, path, line,
				    "IdentitiesOnly: expected yes or no, found \"%s\"",
				    show(v).s);
		if (active && L->identities_only < 0)
			L->identities_only = n;
		return 0;
	case K_ALIVEINTERVAL:
		if (strcmp(v, "none") == 0)
			return 0;
		if ((n = parse_time(v)) < 0)
			return fail(L, path, line,
				    "ServerAliveInterval: expected a time (seconds, or with units: 30s, 1m, 1h30m; at most 2147483647 s) or none, found \"%s\"",
				    show(v).s);
		if (active && L->alive_interval < 0)
			L->alive_interval = n;
		return 0;
	default:
		if ((n = parse_count(v)) < 0)
			return fail(L, path, line,
				    "ServerAliveCountMax: expected a number from 0 to 2147483647, found \"%s\"",
				    show(v).s);
		if (active && L->alive_count < 0)
			L->alive_count = n;
		return 0;
	}
}

/* One line, NUL-terminated and free to modify. */
static int do_line(struct lookup *L, char *s, const char *path,
		   unsigned line, int depth, bool never, bool *active)
{
	struct strvec args = STRVEC_INIT;
	enum keyword kw = K_OTHER;
	const char *name;
	size_t n = strlen(s);
	char sep;
	int ret = -1;

	while (n > 0 && strchr(WS, s[n - 1]))
		s[--n] = '\0';
	s += strspn(s, WS);
	if (*s == '\0' || *s == '#')
		return 0;
	name = s;
	s += strcspn(s, WS "=");
	sep = *s;
	if (*s)
		*s++ = '\0';
	s += strspn(s, WS);
	/* one '=' may separate keyword and value, with or without spaces */
	if (sep != '=' && *s == '=') {
		s++;
		s += strspn(s, WS);
	}
	if (split_words(s, &args) < 0) {
		fail(L, path, line, "%s: expected a closing quote, found the end of the line",
		     show(name).s);
		goto out;
	}
	if (args.n == 0) {
		fail(L, path, line, "expected a value after %s, found %s",
		     show(name).s, *s ? "only a comment" : "the end of the line");
		goto out;
	}
	for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
		if (strcasecmp(name, keywords[i].name) == 0)
			kw = keywords[i].kw;
	if (kw >= K_HOSTNAME) {
		if (!*args.v[0]) {
			fail(L, path, line, "expected a value after %s, found an empty string",
			     show(name).s);
			goto out;
		}
		if (args.n > 1) {
			fail(L, path, line, "%s: expected one value, found also \"%s\"",
			     show(name).s, show(args.v[1]).s);
			goto out;
		}
	}

	switch (kw) {
	case K_OTHER:
		break;
	case K_HOST:
		if (do_host(L, &args, path, line, never, active) < 0)
			goto out;
		break;
	case K_MATCH: {
		bool m = false;

		if (do_match(L, &args, path, line, &m) < 0)
			goto out;
		*active = m && !never;
		break;
	}
	case K_INCLUDE:
		for (size_t i = 0; i < args.n; i++)
			if (include_one(L, args.v[i], path, line, depth, never,
					*active) < 0)
				goto out;
		break;
	case K_HOSTNAME:
		if (*active && !L->hostname) {
			struct buf b = BUF_INIT;

			if (expand(L, TOK_HOSTNAME, false, args.v[0], path, line,
				   &b) < 0) {
				buf_release(&b);
				goto out;
			}
			L->hostname = buf_detach(&b);
		}
		break;
	case K_USER:
		if (*active && !L->user)
			L->user = xstrdup(args.v[0]);
		break;
	case K_PORT: {
		/* checked in every block, as ssh does */
		unsigned port = parse_port(args.v[0]);

		if (!port) {
			fail(L, path, line,
			     "Port: expected a number from 1 to 65535 or a service name, found \"%s\"",
			     show(args.v[0]).s);
			goto out;
		}
		if (*active && !L->port)
			L->port = port;
		break;
	}
	case K_IDENTITYFILE:
		if (!*active)
			break;
		if (L->nids >= MAX_IDENTITIES) {
			fail(L, path, line, "IdentityFile: expected at most %d, found more",
			     MAX_IDENTITIES);
			goto out;
		}
		add_ident(L, args.v[0], path, line);
		break;
	case K_HOSTKEYALIAS:
		if (*active && !L->hostkeyalias)
			L->hostkeyalias = xstrdup(args.v[0]);
		break;
	case K_IDENTITIESONLY:
	case K_ALIVEINTERVAL:
	case K_ALIVECOUNT:
		if (do_option(L, kw, args.v[0], path, line, *active) < 0)
			goto out;
		break;
	}
	ret = 0;
out:
	strvec_release(&args);
	return ret;
}

static int read_config(struct lookup *L, const char *path, int depth,
		       bool never, bool *active, bool check_perm)
{
	struct buf text = BUF_INIT;
	bool missing;
	unsigned line = 0;
	char *p, *end;
	int ret = -1;

	L->nfiles++;
	if (read_text(L, path, check_perm, &missing, &text) < 0)
		goto out;
	/* missing or a directory: no text at all (and NULL + 0 is UB) */
	if (!text.data) {
		ret = 0;
		goto out;
	}
	p = text.data;
	end = p + text.len;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

		line++;
		if (memchr(p, '\0', n)) {
			fail(L, path, line, "expected text, found a NUL byte");
			goto out;
		}
		/* the newline, or the buffer's own terminator */
		p[n] = '\0';
		if (do_line(L, p, path, line, depth, never, active) < 0)
			goto out;
		p += n + 1;
	}
	ret = 0;
out:
	buf_release(&text);
	return ret;
}

static void lookup_release(struct lookup *L)
{
	free(L->home);
	free(L->luser);
	free(L->hostname);
	free(L->user);
	free(L->hostkeyalias);
	for (size_t i = 0; i < L->nids; i++) {
		free(L->ids[i].raw);
		free(L->ids[i].path);
	}
	free(L->ids);
}

int sshconfig_lookup(const char *path, const char *host,
		     struct ssh_host_config *out, struct rb_error *err)
{
	struct lookup L = { .host = host, .err = err, .identities_only = -1,
			    .alive_interval = -1, .alive_count = -1 };
	struct ssh_host_config res = SSH_HOST_CONFIG_INIT;
	const char *env = getenv("HOME");
	struct buf def = BUF_INIT;
	bool active = true;
	int ret = -1;

	if (env && *env)
		L.home = xstrdup(env);
	else
		pw_get(NULL, NULL, &L.home);
	if (!path) {
		if (!L.home) {
			rb_error_set(err, RB_ERR_INVALID,
				     "cannot find ~/.ssh/config: expected $HOME or a passwd entry for uid %u, found neither",
				     (unsigned)getuid());
			goto out;
		}
		buf_addf(&def, "%s/.ssh/config", L.home);
	}
	if (read_config(&L, path ? path : buf_str(&def), 0, false, &active, !path) < 0)
		goto out;

	/* IdentityFile is expanded with the final values, as ssh does */
	for (size_t i = 0; i < L.nids; i++) {
		struct buf b = BUF_INIT;
		const char *rest;

		if (tilde(&L, L.ids[i].raw, L.ids[i].path, L.ids[i].line,
			  "IdentityFile", &b, &rest) < 0 ||
		    expand(&L, TOK_IDENTITY, true, rest, L.ids[i].path,
			   L.ids[i].line, &b) < 0) {
			buf_release(&b);
			sshconfig_release(&res);
			goto out;
		}
		strvec_push_owned(&res.identity_files, buf_detach(&b));
	}
	res.hostname = L.hostname;
	res.user = L.user;
	res.port = L.port;
	res.identities_only = L.identities_only == 1;
	res.server_alive_interval = L.alive_interval;
	res.server_alive_count_max = L.alive_count;
	L.hostname = L.user = NULL;
	*out = res;
	ret = 0;
out:
	buf_release(&def);
	lookup_release(&L);
	return ret;
}

void sshconfig_release(struct ssh_host_config *c)
{
	free(c->hostname);
	free(c->user);
	strvec_release(&c->identity_files);
	c->hostname = c->user = NULL;
	c->port = 0;
	c->identities_only = false;
	c->server_alive_interval = c->server_alive_count_max = -1;
}
