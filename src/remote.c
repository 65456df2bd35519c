/*
 * The notes remote with libgit2 (remote.h is the manual). Fetches go
 * through git_remote_fetch() for every kind of remote. Pushes over the
 * network go through git_remote_push(): receive-pack moves the ref
 * only from the value we sent (a compare-and-swap on the server), and
 * libgit2 refuses a push that is not a fast-forward. libgit2 1.5's
 * local transport moves the remote ref with force once it exists, so
 * two pushers there could overwrite each other: for a local path or
 * file:// remote we copy the objects into the remote repository
 * ourselves and move its ref with git_reference_create_matching(),
 * the same compare-and-swap under the ref's lock the notes branch
 * uses (store.c).
 *
 * Invariant: a remote ref only ever moves to a descendant of the value
 * we read; a local ref only by compare-and-swap too.
 */
#include "remote.h"

#include <errno.h>
#include <git2.h>
#include <git2/sys/odb_backend.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "knownhosts.h"
#include "store.h"
#include "sys.h"

#define TRACK_NOTES "refs/runbook/remote/notes"
#define TRACK_LOCKS "refs/runbook/remote/locks/"
#define REMOTE_LOCKS "refs/runbook/locks/"
#define OUTGOING "refs/runbook/outgoing/"
#define UNRELEASED "refs/runbook/unreleased/"
#define MAX_RACES 50
/*
 * Refusals in a row while the remote ref stayed put before we call it a
 * refusal, not a race: another pusher may hold the ref's lock a moment
 * before it moves it (GIT_ELOCKED here, "cannot lock ref" over SSH).
 */
#define MAX_STUCK 8

struct remote {
	git_repository *repo;
	char *name;		/* as configured, or NULL for a bare URL */
	char *url;
	char *label;
	bool local;		/* a path or file:// */
	char *local_path;
	struct remote_opts o;
	/* the SSH credentials tried so far, for this connection */
	int cred_step;
	struct rb_error cert_err;
	bool rejected;		/* the last push's ref update was refused */
	char reject_msg[256];	/* ... and why, as the server said */
	/* the lock this process holds */
	char *lock_target;
	git_oid lock_oid;
};

static void git_fail(struct rb_error *err, enum rb_err_class cls,
		     const struct remote *r, const char *what)
{
	const git_error *e = git_error_last();

	rb_error_set(err, cls, "notes remote %s: %s: %s", r->label, what,
		     e && e->message ? e->message : "unknown libgit2 error");
}

bool remote_target_ok(const char *target)
{
	struct buf b = BUF_INIT;
	int ok = 0;

	if (!target || !*target || strchr(target, '/'))
		return false;
	buf_addf(&b, REMOTE_LOCKS "%s", target);
	if (git_reference_name_is_valid(&ok, buf_str(&b)) < 0)
		ok = 0;
	buf_release(&b);
	return ok != 0;
}

/* A path, file://, or a URL of a network transport. */
static void classify(struct remote *r)
{
	const char *u = r->url;

	if (strncmp(u, "file://", 7) == 0) {
		r->local = true;
		r->local_path = xstrdup(u + 7);
	} else if (strstr(u, "://")) {
		r->local = false;
	} else if (u[0] == '/' || u[0] == '.' || !strchr(u, ':') ||
		   (strchr(u, '/') && strchr(u, '/') < strchr(u, ':'))) {
		/* git's rule: a colon before any slash makes it scp-like */
		r->local = true;
		r->local_path = xstrdup(u);
	}
}

int remote_open(const char *gitdir, const char *name,
		const struct remote_opts *o, struct remote **out,
		struct rb_error *err)
{
	struct remote *r = NULL;
	git_repository *repo = NULL;
	git_config *cfg = NULL;
	git_buf conf = { 0 }, url = { 0 };
	struct buf label = BUF_INIT, key = BUF_INIT;
	int ret = -1;

	*out = NULL;
	if (!name || !*name)
		name = getenv("RUNBOOK_REMOTE");
	if (git_repository_open(&repo, gitdir) < 0) {
		rb_error_set(err, RB_ERR_USAGE,
			     "cannot open the notes repository '%s' for its remote: %s",
			     gitdir, git_error_last() ? git_error_last()->message : "?");
		goto out;
	}
	if ((!name || !*name) && git_repository_config(&cfg, repo) == 0 &&
	    git_config_get_string_buf(&conf, cfg, "runbook.remote") == 0)
		name = conf.ptr;
	if (!name || !*name) {
		ret = 0;	/* no team remote */
		goto out;
	}
	r = xcalloc(1, sizeof(*r));
	r->repo = repo;
	repo = NULL;
	if (o)
		r->o = *o;
	buf_addf(&key, "remote.%s.url", name);
	if (!cfg)
		git_repository_config(&cfg, r->repo);
	/* not git_remote_lookup(): it applies insteadOf (new_remote()) */
	if (cfg && git_config_get_string_buf(&url, cfg, buf_str(&key)) == 0 &&
	    url.ptr && *url.ptr) {
		r->name = xstrdup(name);
		r->url = xstrdup(url.ptr);
		buf_addf(&label, "'%s' (%s)", name, r->url);
	} else {
		r->url = xstrdup(name);
		buf_addf(&label, "'%s'", name);
	}
	r->label = buf_detach(&label);
	classify(r);
	*out = r;
	r = NULL;
	ret = 0;
out:
	git_buf_dispose(&url);
	buf_release(&key);
	git_buf_dispose(&conf);
	git_config_free(cfg);
	git_repository_free(repo);
	remote_free(r);
	return ret;
}

void remote_free(struct remote *r)
{
	if (!r)
		return;
	git_repository_free(r->repo);
	free(r->name);
	free(r->url);
	free(r->label);
	free(r->local_path);
	free(r->lock_target);
	free(r);
}

const char *remote_label(const struct remote *r)
{
	return r->label;
}

/* --- SSH: keys and host keys, as for targets (docs/ssh.md) --- */

/* "user@host:path", "ssh://user@host:port/path": host and port. */
/*
 * An anonymous libgit2 remote for our URL. url.*.insteadOf is not
 * applied: libgit2 1.5 scans the whole config for it with a regex and
 * leaks PCRE2 match data for every entry that does not match.
 */
static int new_remote(struct remote *r, git_remote **out)
{
	git_remote_create_options o;

	git_remote_create_options_init(&o, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	o.repository = r->repo;
	o.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF |
		  GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	return git_remote_create_with_opts(out, r->url, &o);
}

static void url_host(const char *url, char *host, size_t n, unsigned *port)
{
	const char *p = url, *end;

	*port = 22;
	if (strncmp(p, "ssh://", 6) == 0 || strncmp(p, "git+ssh://", 10) == 0 ||
	    strncmp(p, "ssh+git://", 10) == 0) {
		p = strstr(p, "://") + 3;
		end = p + strcspn(p, "/");
		if (memchr(p, '@', (size_t)(end - p)))
			p = (const char *)memchr(p, '@', (size_t)(end - p)) + 1;
		if (*p == '[') {
			const char *rb = memchr(p, ']', (size_t)(end - p));

			if (rb) {
				snprintf(host, n, "%.*s", (int)(rb - p - 1), p + 1);
				if (rb[1] == ':')
					*port = (unsigned)strtoul(rb + 2, NULL, 10);
				return;
			}
		}
		{
			const char *colon = memchr(p, ':', (size_t)(end - p));

			if (colon) {
				*port = (unsigned)strtoul(colon + 1, NULL, 10);
				end = colon;
			}
		}
		snprintf(host, n, "%.*s", (int)(end - p), p);
		return;
	}
	end = p + strcspn(p, ":");
	if (memchr(p, '@', (size_t)(end - p)))
		p = (const char *)memchr(p, '@', (size_t)(end - p)) + 1;
	snprintf(host, n, "%.*s", (int)(end - p), p);
}

/* libgit2's name of a host key type -> libssh2's */
static int key_type(git_cert_ssh_raw_type_t t)
{
	switch (t) {
	case GIT_CERT_SSH_RAW_TYPE_RSA: return LIBSSH2_HOSTKEY_TYPE_RSA;
	case GIT_CERT_SSH_RAW_TYPE_DSS: return LIBSSH2_HOSTKEY_TYPE_DSS;
	case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_256: return LIBSSH2_HOSTKEY_TYPE_ECDSA_256;
	case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_384: return LIBSSH2_HOSTKEY_TYPE_ECDSA_384;
	case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_521: return LIBSSH2_HOSTKEY_TYPE_ECDSA_521;
	case GIT_CERT_SSH_RAW_TYPE_KEY_ED25519: return LIBSSH2_HOSTKEY_TYPE_ED25519;
	default: return -1;
	}
}

static int cert_check(git_cert *cert, int valid, const char *host,
		      void *payload)
{
	struct remote *r = payload;
	const git_cert_hostkey *hk = (const git_cert_hostkey *)cert;
	char name[256];
	unsigned port;

	(void)valid;
	(void)host;
	if (cert->cert_type != GIT_CERT_HOSTKEY_LIBSSH2 ||
	    !(hk->type & GIT_CERT_SSH_RAW)) {
		rb_error_set(&r->cert_err, RB_ERR_CONNECT,
			     "notes remote %s: expected an SSH host key to check, found none; nothing was fetched or pushed",
			     r->label);
		return -1;
	}
	url_host(r->url, name, sizeof(name), &port);
	if (knownhosts_check_key(hk->hostkey, hk->hostkey_len,
				 key_type(hk->raw_type), name, port,
				 r->o.known_hosts, r->o.accept_new,
				 &r->cert_err) < 0)
		return -1;
	return 0;
}

/*
 * The agent first, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa: libgit2
 * calls again after each refusal, and we move to the next.
 */
static int credentials(git_credential **out, const char *url,
		       const char *user_from_url, unsigned int allowed,
		       void *payload)
{
	static const char *const keys[] = { ".ssh/id_ed25519", ".ssh/id_ecdsa",
					    ".ssh/id_rsa" };
	struct remote *r = payload;
	const char *user = user_from_url;

	(void)url;
	if (!user || !*user)
		user = getenv("USER") ? getenv("USER") : "root";
	if (allowed & GIT_CREDENTIAL_USERNAME)
		return git_credential_username_new(out, user);
	if (!(allowed & GIT_CREDENTIAL_SSH_KEY))
		return GIT_PASSTHROUGH;
	while (r->cred_step <= (int)(sizeof(keys) / sizeof(keys[0]))) {
		int step = r->cred_step++;
		char *priv;
		int rc;

		if (step == 0) {
			if (getenv("SSH_AUTH_SOCK") && *getenv("SSH_AUTH_SOCK"))
				return git_credential_ssh_key_from_agent(out, user);
			continue;
		}
		priv = sys_home_file(keys[step - 1]);
		if (access(priv, R_OK) != 0) {
			free(priv);
			continue;
		}
		{
			struct buf pub = BUF_INIT;

			buf_addf(&pub, "%s.pub", priv);
			rc = git_credential_ssh_key_new(out, user,
							access(buf_str(&pub), R_OK) == 0 ?
							buf_str(&pub) : NULL,
							priv, NULL);
			buf_release(&pub);
		}
		free(priv);
		return rc;
	}
	return GIT_EUSER;	/* every key was refused */
}

static void callbacks(struct remote *r, git_remote_callbacks *cb)
{
	r->cred_step = 0;
	rb_error_clear(&r->cert_err);
	cb->certificate_check = cert_check;
	cb->credentials = credentials;
	cb->payload = r;
}

/* The error of a failed connection: the host key's, else libgit2's. */
static void connect_fail(struct remote *r, const char *what,
			 struct rb_error *err)
{
	if (r->cert_err.cls != RB_OK) {
		rb_error_set(err, RB_ERR_CONNECT, "notes remote %s: %s",
			     r->label, r->cert_err.msg);
		return;
	}
	git_fail(err, RB_ERR_CONNECT, r, what);
	if (r->cred_step > 3)
		rb_error_set(err, RB_ERR_CONNECT,
			     "notes remote %s: %s: every key was refused (ssh-agent, ~/.ssh/id_ed25519, id_ecdsa, id_rsa)",
			     r->label, what);
}

/* --- rebuilding notes on a new tip --- */

static int ref_oid(git_repository *repo, const char *name, git_oid *out)
{
	return git_reference_name_to_id(out, repo, name);
}

/*
 * A copy of commit c on top of onto: the files c changed against its
 * first parent (or all of them, for a root) put into onto's tree.
 */
static int replay_commit(git_repository *repo, git_commit *c,
			 const git_oid *onto, git_oid *out)
{
	git_commit *parent = NULL, *base = NULL;
	git_tree *ptree = NULL, *tree = NULL, *btree = NULL, *newtree = NULL;
	git_diff *diff = NULL;
	git_tree_update *up = NULL;
	git_oid tid;
	size_t n;
	int ret = -1;

	if ((git_commit_parentcount(c) &&
	     (git_commit_parent(&parent, c, 0) < 0 ||
	      git_commit_tree(&ptree, parent) < 0)) ||
	    git_commit_tree(&tree, c) < 0 ||
	    git_commit_lookup(&base, repo, onto) < 0 ||
	    git_commit_tree(&btree, base) < 0 ||
	    git_diff_tree_to_tree(&diff, repo, ptree, tree, NULL) < 0)
		goto out;
	n = git_diff_num_deltas(diff);
	up = xcalloc(n ? n : 1, sizeof(*up));
	for (size_t i = 0; i < n; i++) {
		const git_diff_delta *d = git_diff_get_delta(diff, i);

		if (d->status == GIT_DELTA_DELETED) {
			up[i].action = GIT_TREE_UPDATE_REMOVE;
			up[i].path = d->old_file.path;
		} else {
			up[i].action = GIT_TREE_UPDATE_UPSERT;
			up[i].id = d->new_file.id;
			up[i].filemode = d->new_file.mode;
			up[i].path = d->new_file.path;
		}
	}
	if (git_tree_create_updated(&tid, repo, btree, n, up) < 0 ||
	    git_tree_lookup(&newtree, repo, &tid) < 0)
		goto out;
	{
		const git_commit *parents[1] = { base };

		if (git_commit_create(out, repo, NULL, git_commit_author(c),
				      git_commit_committer(c), "UTF-8",
				      git_commit_message(c), newtree, 1,
				      parents) < 0)
			goto out;
	}
	ret = 0;
out:
	free(up);
	git_diff_free(diff);
	git_tree_free(newtree);
	git_tree_free(btree);
	git_tree_free(tree);
	git_tree_free(ptree);
	git_commit_free(base);
	git_commit_free(parent);
	return ret;
}

/* Our commits since the common base, replayed oldest first on onto. */
static int rebuild(git_repository *repo, const git_oid *local,
		   const git_oid *onto, git_oid *out)
{
	git_revwalk *w = NULL;
	git_oid base, id, cur = *onto;
	int ret = -1;

	if (git_revwalk_new(&w, repo) < 0 ||
	    git_revwalk_sorting(w, GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE) < 0 ||
	    git_revwalk_push(w, local) < 0)
		goto out;
	if (git_merge_base(&base, repo, local, onto) == 0 &&
	    git_revwalk_hide(w, &base) < 0)
		goto out;
	while (git_revwalk_next(&id, w) == 0) {
		git_commit *c = NULL;
		git_oid next;

		if (git_commit_lookup(&c, repo, &id) < 0)
			goto out;
		if (replay_commit(repo, c, &cur, &next) < 0) {
			git_commit_free(c);
			goto out;
		}
		git_commit_free(c);
		cur = next;
	}
	*out = cur;
	ret = 0;
out:
	git_revwalk_free(w);
	return ret;
}

/*
 * runbook-notes brought up to the remote's tip as last fetched:
 * nothing to do, a fast-forward, or our unpushed notes rebuilt on it.
 */
static int integrate(struct remote *r, struct rb_error *err)
{
	for (int attempt = 0; attempt < MAX_RACES; attempt++) {
		git_oid L, R, next, zero;
		git_reference *ref = NULL;
		bool have_l;
		int rc;

		if (ref_oid(r->repo, TRACK_NOTES, &R) < 0)
			return 0;	/* the remote has no notes yet */
		have_l = ref_oid(r->repo, NOTES_REF, &L) == 0;
		if (have_l && (git_oid_equal(&L, &R) ||
			       git_graph_descendant_of(r->repo, &L, &R) == 1))
			return 0;
		if (!have_l || git_graph_descendant_of(r->repo, &R, &L) == 1) {
			next = R;
		} else if (rebuild(r->repo, &L, &R, &next) < 0) {
			git_fail(err, RB_ERR_PARTIAL, r,
				 "cannot rebuild the local notes on the remote's");
			return -1;
		}
		memset(&zero, 0, sizeof(zero));
		rc = git_reference_create_matching(&ref, r->repo, NOTES_REF,
						   &next, 1, have_l ? &L : &zero,
						   "runbook: notes from the remote");
		git_reference_free(ref);
		if (rc == 0)
			return 0;
		if (rc != GIT_EMODIFIED && rc != GIT_EEXISTS && rc != GIT_ELOCKED) {
			git_fail(err, RB_ERR_PARTIAL, r,
				 "cannot move the runbook-notes branch");
			return -1;
		}
	}
	rb_error_set(err, RB_ERR_PARTIAL,
		     "notes remote %s: the runbook-notes branch kept moving while we brought it up to date; run again",
		     r->label);
	return -1;
}

int remote_fetch(struct remote *r, struct rb_error *err)
{
	static char notes[] = "+" NOTES_REF ":" TRACK_NOTES;
	static char locks[] = "+" REMOTE_LOCKS "*:" TRACK_LOCKS "*";
	char *specs[] = { notes, locks };
	git_strarray refspecs = { specs, 2 };
	git_fetch_options fo;
	git_remote *gr = NULL;
	int ret = -1;

	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	if (r->local && access(r->local_path, F_OK) != 0) {
		rb_error_errno(err, RB_ERR_CONNECT,
			       "notes remote %s: cannot fetch: no git repository at '%s'",
			       r->label, r->local_path);
		goto out;
	}
	if (new_remote(r, &gr) < 0) {
		git_fail(err, RB_ERR_USAGE, r, "not a remote git can use");
		goto out;
	}
	callbacks(r, &fo.callbacks);
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	fo.update_fetchhead = 0;
	if (git_remote_fetch(gr, &refspecs, &fo, "runbook: fetch") < 0) {
		connect_fail(r, "cannot fetch", err);
		goto out;
	}
	ret = integrate(r, err);
out:
	git_remote_free(gr);
	return ret;
}

/* --- pushing one ref --- */

struct pack_sink {
	git_odb_writepack *wp;
	git_indexer_progress stats;
};

static int pack_to_sink(void *data, size_t size, void *payload)
{
	struct pack_sink *s = payload;

	return s->wp->append(s->wp, data, size, &s->stats);
}

/*
 * The local push: the objects of new that old lacks go into the remote
 * repository as one pack, then its ref moves from old (NULL: absent)
 * to new under the ref's lock. 1 when the ref was not at old.
 */
static int push_local(struct remote *r, const git_oid *new, const char *dst,
		      const git_oid *old, struct rb_error *err)
{
	git_repository *rr = NULL;
	git_packbuilder *pb = NULL;
	git_revwalk *w = NULL;
	git_odb *odb = NULL;
	git_reference *ref = NULL;
	struct pack_sink sink = { NULL, { 0 } };
	git_oid zero;
	int ret = -1, rc;

	if (git_repository_open_bare(&rr, r->local_path) < 0 &&
	    git_repository_open(&rr, r->local_path) < 0) {
		connect_fail(r, "cannot open the remote repository", err);
		return -1;
	}
	if (git_packbuilder_new(&pb, r->repo) < 0 ||
	    git_revwalk_new(&w, r->repo) < 0 || git_revwalk_push(w, new) < 0)
		goto fail;
	if (old)
		git_revwalk_hide(w, old);	/* unknown here: send everything */
	if (git_packbuilder_insert_walk(pb, w) < 0 ||
	    git_repository_odb(&odb, rr) < 0 ||
	    git_odb_write_pack(&sink.wp, odb, NULL, NULL) < 0 ||
	    git_packbuilder_foreach(pb, pack_to_sink, &sink) < 0 ||
	    sink.wp->commit(sink.wp, &sink.stats) < 0)
		goto fail;
	memset(&zero, 0, sizeof(zero));
	rc = git_reference_create_matching(&ref, rr, dst, new, 1,
					   old ? old : &zero, "runbook: push");
	if (rc == 0)
		ret = 0;
	else if (rc == GIT_EMODIFIED || rc == GIT_EEXISTS || rc == GIT_ELOCKED)
		ret = 1;
	else
		git_fail(err, RB_ERR_CONNECT, r, "cannot update the remote");
	goto out;
fail:
	git_fail(err, RB_ERR_CONNECT, r, "cannot send the objects");
out:
	if (sink.wp)
		sink.wp->free(sink.wp);
	git_reference_free(ref);
	git_odb_free(odb);
	git_revwalk_free(w);
	git_packbuilder_free(pb);
	git_repository_free(rr);
	return ret;
}

/* The server's word on our ref update (NULL status: accepted). */
static int push_update(const char *refname, const char *status, void *payload)
{
	struct remote *r = payload;

	(void)refname;
	if (status) {
		r->rejected = true;
		snprintf(r->reject_msg, sizeof(r->reject_msg), "%s", status);
	}
	return 0;
}

/*
 * The network push: new is put on a local ref under refs/runbook/
 * outgoing/ (git pushes refs, not ids) and pushed without force.
 * 1 when the remote refused it as not a fast-forward or because the
 * ref moved under us.
 */
static int push_net(struct remote *r, const git_oid *new, const char *dst,
		    struct rb_error *err)
{
	git_push_options po;
	git_remote *gr = NULL;
	git_reference *ref = NULL;
	struct buf src = BUF_INIT, spec = BUF_INIT;
	char *specs[1];
	git_strarray refspecs = { specs, 1 };
	int ret = -1, rc;

	git_push_options_init(&po, GIT_PUSH_OPTIONS_VERSION);
	buf_addf(&src, OUTGOING "%d", (int)getpid());
	buf_addf(&spec, "%s:%s", buf_str(&src), dst);
	specs[0] = (char *)buf_str(&spec);
	if (git_reference_create(&ref, r->repo, buf_str(&src), new, 1,
				 "runbook: to push") < 0 ||
	    new_remote(r, &gr) < 0) {
		git_fail(err, RB_ERR_CONNECT, r, "cannot prepare the push");
		goto out;
	}
	callbacks(r, &po.callbacks);
	po.callbacks.push_update_reference = push_update;
	r->rejected = false;
	snprintf(r->reject_msg, sizeof(r->reject_msg), "not a fast-forward");
	rc = git_remote_push(gr, &refspecs, &po);
	if (rc == GIT_ENONFASTFORWARD || (rc == 0 && r->rejected)) {
		ret = 1;
	} else if (rc < 0) {
		connect_fail(r, "cannot push", err);
	} else {
		ret = 0;
	}
out:
	if (ref)
		git_reference_delete(ref);
	git_reference_free(ref);
	git_remote_free(gr);
	buf_release(&src);
	buf_release(&spec);
	return ret;
}

/* 0 pushed, 1 lost a race (fetch and try again), -1 err. */
static int push_ref(struct remote *r, const git_oid *new, const char *dst,
		    const git_oid *old, struct rb_error *err)
{
	if (r->local)
		return push_local(r, new, dst, old, err);
	return push_net(r, new, dst, err);
}

/* True when ref is no longer at old (NULL: absent) after a fetch. */
static bool moved(struct remote *r, const char *ref, const git_oid *old)
{
	git_oid now;

	if (ref_oid(r->repo, ref, &now) < 0)
		return old != NULL;
	return !old || !git_oid_equal(&now, old);
}

/*
 * A push refused while the remote ref stayed where we built on: no
 * race, the server will not take it (a protected branch, a hook, no
 * write access).
 */
static void refused(struct remote *r, const char *what, struct rb_error *err)
{
	rb_error_set(err, RB_ERR_CONNECT,
		     "notes remote %s: the server refused to update %s: %s (a protected ref, a hook, or no write access?)",
		     r->label, what, r->local ? "the ref is locked" : r->reject_msg);
}

int remote_push(struct remote *r, struct rb_error *err)
{
	int stuck = 0;

	for (int attempt = 0; attempt < MAX_RACES; attempt++) {
		git_oid L, R;
		git_reference *ref = NULL;
		bool have_r;
		int rc;

		if (ref_oid(r->repo, NOTES_REF, &L) < 0)
			return 0;	/* no notes at all */
		have_r = ref_oid(r->repo, TRACK_NOTES, &R) == 0;
		if (have_r && (git_oid_equal(&L, &R) ||
			       git_graph_descendant_of(r->repo, &R, &L) == 1))
			return 0;	/* nothing of ours is missing there */
		rc = push_ref(r, &L, NOTES_REF, have_r ? &R : NULL, err);
		if (rc < 0)
			return -1;
		if (rc == 0) {
			/* what the remote has now, as a fetch would say */
			git_reference_create(&ref, r->repo, TRACK_NOTES, &L, 1,
					     "runbook: pushed");
			git_reference_free(ref);
			return 0;
		}
		if (remote_fetch(r, err) < 0)
			return -1;
		if (moved(r, TRACK_NOTES, have_r ? &R : NULL))
			stuck = 0;
		else if (++stuck >= MAX_STUCK) {
			refused(r, "runbook-notes", err);
			return -1;
		}
		if (attempt)
			usleep((useconds_t)(1000 + rand() % 20000));
	}
	rb_error_set(err, RB_ERR_CONNECT,
		     "notes remote %s: lost the race to push %d times in a row; the notes stay queued here: run 'runbook sync'",
		     r->label, MAX_RACES);
	return -1;
}

int remote_pending(struct remote *r, struct strvec *out, struct rb_error *err)
{
	git_revwalk *w = NULL;
	git_oid L, R, id;
	int ret = -1;

	if (ref_oid(r->repo, NOTES_REF, &L) < 0)
		return 0;
	if (git_revwalk_new(&w, r->repo) < 0 ||
	    git_revwalk_sorting(w, GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE) < 0 ||
	    git_revwalk_push(w, &L) < 0 ||
	    (ref_oid(r->repo, TRACK_NOTES, &R) == 0 &&
	     git_revwalk_hide(w, &R) < 0)) {
		git_fail(err, RB_ERR_PARTIAL, r, "cannot list the notes not pushed");
		goto out;
	}
	while (git_revwalk_next(&id, w) == 0) {
		git_commit *c = NULL;
		struct buf line = BUF_INIT;
		char hex[13];

		if (git_commit_lookup(&c, r->repo, &id) < 0)
			continue;
		git_oid_tostr(hex, sizeof(hex), &id);
		buf_addf(&line, "%s %s", hex, git_commit_summary(c) ?
			 git_commit_summary(c) : "");
		strvec_push_owned(out, buf_detach(&line));
		git_commit_free(c);
	}
	ret = 0;
out:
	git_revwalk_free(w);
	return ret;
}

/* --- locks --- */

/* The value of "key: value" in a lock commit's message, or NULL. */
static char *msg_field(const char *msg, const char *key)
{
	size_t kl = strlen(key);

	for (const char *p = msg; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, key, kl) == 0 && p[kl] == ':' && p[kl + 1] == ' ') {
			const char *v = p + kl + 2;

			return xstrndup(v, strcspn(v, "\n"));
		}
	}
	return NULL;
}

/* "operator X on machine M (pid P), change C, since S" */
static char *holder_text(const char *msg)
{
	const char *keys[] = { "operator", "machine", "pid", "change", "since" };
	char *v[5];
	struct buf b = BUF_INIT, shown = BUF_INIT;

	for (size_t i = 0; i < 5; i++)
		v[i] = msg_field(msg, keys[i]);
	buf_addf(&b, "%s on machine %s (pid %s), change %s, since %s",
		 v[0] ? v[0] : "?", v[1] ? v[1] : "?", v[2] ? v[2] : "?",
		 v[3] ? v[3] : "?", v[4] ? v[4] : "?");
	for (size_t i = 0; i < 5; i++)
		free(v[i]);
	/* from the remote: shown, never obeyed */
	buf_add_visible(&shown, b.data, b.len, false);
	buf_release(&b);
	return buf_detach(&shown);
}

/* The tip of target's lock as last fetched: held (1), free (0), -1. */
static int lock_state(struct remote *r, const char *target, git_oid *tip,
		      bool *exists, char **holder)
{
	struct buf name = BUF_INIT;
	git_commit *c = NULL;
	int ret = 0;

	*exists = false;
	if (holder)
		*holder = NULL;
	buf_addf(&name, TRACK_LOCKS "%s", target);
	if (ref_oid(r->repo, buf_str(&name), tip) < 0)
		goto out;
	*exists = true;
	if (git_commit_lookup(&c, r->repo, tip) < 0) {
		ret = -1;
		goto out;
	}
	if (strncmp(git_commit_message(c), "runbook lock: held", 18) == 0) {
		ret = 1;
		if (holder)
			*holder = holder_text(git_commit_message(c));
	}
out:
	git_commit_free(c);
	buf_release(&name);
	return ret;
}

static int sig_of(git_signature **out, const char *who)
{
	const char *lt = who ? strchr(who, '<') : NULL;
	const char *gt = lt ? strchr(lt, '>') : NULL;
	char *name, *email;
	int rc;

	if (!lt || !gt)
		return git_signature_now(out, who && *who ? who : "runbook",
					 "runbook@localhost");
	name = xstrndup(who, (size_t)(lt - who));
	while (*name && name[strlen(name) - 1] == ' ')
		name[strlen(name) - 1] = '\0';
	email = xstrndup(lt + 1, (size_t)(gt - lt - 1));
	rc = git_signature_now(out, *name ? name : "runbook", email);
	free(name);
	free(email);
	return rc;
}

/* A lock commit with message msg on parent (NULL: the first). */
static int lock_commit(struct remote *r, const char *who, const char *msg,
		       const git_oid *parent, git_oid *out)
{
	git_treebuilder *tb = NULL;
	git_tree *tree = NULL;
	git_commit *p = NULL;
	git_signature *sig = NULL;
	git_oid tid;
	int ret = -1;

	if (git_treebuilder_new(&tb, r->repo, NULL) < 0 ||
	    git_treebuilder_write(&tid, tb) < 0 ||
	    git_tree_lookup(&tree, r->repo, &tid) < 0 ||
	    (parent && git_commit_lookup(&p, r->repo, parent) < 0) ||
	    sig_of(&sig, who) < 0)
		goto out;
	{
		const git_commit *parents[1] = { p };

		if (git_commit_create(out, r->repo, NULL, sig, sig, "UTF-8",
				      msg, tree, p ? 1 : 0, parents) < 0)
			goto out;
	}
	ret = 0;
out:
	git_signature_free(sig);
	git_commit_free(p);
	git_tree_free(tree);
	git_treebuilder_free(tb);
	return ret;
}

/* Pushes a lock commit, then records it as the lock's last seen tip. */
static int push_lock(struct remote *r, const char *target, const git_oid *c,
		     const git_oid *old, struct rb_error *err)
{
	struct buf dst = BUF_INIT, track = BUF_INIT;
	git_reference *ref = NULL;
	int rc;

	buf_addf(&dst, REMOTE_LOCKS "%s", target);
	buf_addf(&track, TRACK_LOCKS "%s", target);
	rc = push_ref(r, c, buf_str(&dst), old, err);
	if (rc == 0) {
		git_reference_create(&ref, r->repo, buf_str(&track), c, 1,
				     "runbook: lock pushed");
		git_reference_free(ref);
	}
	buf_release(&dst);
	buf_release(&track);
	return rc;
}

int remote_lock(struct remote *r, const char *target, const char *change,
		const char *operator_, struct rb_error *err)
{
	char host[256] = "localhost", now[40];

	if (!remote_target_ok(target)) {
		rb_error_set(err, RB_ERR_USAGE,
			     "target '%s': expected a name git accepts in a ref (refs/runbook/locks/<target>), found one it refuses; nothing was run",
			     target);
		return -1;
	}
	gethostname(host, sizeof(host) - 1);
	for (int attempt = 0, stuck = 0; attempt < MAX_RACES; attempt++) {
		struct buf msg = BUF_INIT;
		char *holder = NULL;
		git_oid tip, c;
		bool exists;
		int st, rc;

		st = lock_state(r, target, &tip, &exists, &holder);
		if (st == 1) {
			rb_error_set(err, RB_ERR_BUSY,
				     "target %s is locked on the notes remote %s by %s; nothing was run; try again when that change has ended (if its holder is gone: runbook unlock %s --force --reason WHY)",
				     target, r->label, holder, target);
			free(holder);
			return -1;
		}
		sys_now_utc(now);
		buf_addf(&msg, "runbook lock: held %s\n\ntarget: %s\noperator: %s\nmachine: %s\npid: %d\nchange: %s\nsince: %s\n",
			 target, target, operator_, host, (int)getpid(), change,
			 now);
		if (st < 0 || lock_commit(r, operator_, buf_str(&msg),
					  exists ? &tip : NULL, &c) < 0) {
			buf_release(&msg);
			git_fail(err, RB_ERR_PARTIAL, r, "cannot make the lock commit");
			return -1;
		}
		buf_release(&msg);
		rc = push_lock(r, target, &c, exists ? &tip : NULL, err);
		if (rc < 0)
			return -1;
		if (rc == 0) {
			free(r->lock_target);
			r->lock_target = xstrdup(target);
			r->lock_oid = c;
			return 0;
		}
		if (remote_fetch(r, err) < 0)
			return -1;
		{
			struct buf track = BUF_INIT;
			bool m;

			buf_addf(&track, TRACK_LOCKS "%s", target);
			m = moved(r, buf_str(&track), exists ? &tip : NULL);
			buf_release(&track);
			if (m) {
				stuck = 0;
			} else if (++stuck >= MAX_STUCK) {
				refused(r, "the lock", err);
				return -1;
			} else {
				usleep((useconds_t)(1000 + rand() % 20000));
			}
		}
	}
	rb_error_set(err, RB_ERR_BUSY,
		     "target %s: the lock on the notes remote %s kept moving; nothing was run; try again",
		     target, r->label);
	return -1;
}

int remote_unlock(struct remote *r, struct rb_error *err)
{
	struct buf msg = BUF_INIT;
	git_commit *held = NULL;
	git_oid c;
	int ret = -1, rc;

	if (!r || !r->lock_target)
		return 0;
	if (git_commit_lookup(&held, r->repo, &r->lock_oid) < 0) {
		git_fail(err, RB_ERR_PARTIAL, r, "cannot read our lock");
		goto out;
	}
	buf_addf(&msg, "runbook lock: released %s\n\n%s", r->lock_target,
		 strstr(git_commit_message(held), "\n\n") ?
		 strstr(git_commit_message(held), "\n\n") + 2 : "");
	if (lock_commit(r, git_commit_author(held)->name, buf_str(&msg),
			&r->lock_oid, &c) < 0) {
		git_fail(err, RB_ERR_PARTIAL, r, "cannot make the lock commit");
		goto out;
	}
	rc = push_lock(r, r->lock_target, &c, &r->lock_oid, err);
	if (rc < 0) {
		/* the remote is gone: remote_release_left() retries it */
		struct buf name = BUF_INIT;
		git_reference *keep = NULL;

		buf_addf(&name, UNRELEASED "%s", r->lock_target);
		git_reference_create(&keep, r->repo, buf_str(&name),
				     &r->lock_oid, 1, "runbook: lock to release");
		git_reference_free(keep);
		buf_release(&name);
		goto out;
	}
	/* 1: someone broke it meanwhile; it is not ours to release */
	free(r->lock_target);
	r->lock_target = NULL;
	ret = 0;
out:
	git_commit_free(held);
	buf_release(&msg);
	return ret;
}

int remote_break(struct remote *r, const char *target, const char *operator_,
		 const char *reason, char **was, struct rb_error *err)
{
	char now[40];

	*was = NULL;
	if (!remote_target_ok(target)) {
		rb_error_set(err, RB_ERR_USAGE,
			     "unlock: expected a target name, found '%s'", target);
		return -1;
	}
	for (int attempt = 0; attempt < MAX_RACES; attempt++) {
		struct buf msg = BUF_INIT;
		git_commit *tipc = NULL;
		char *holder = NULL;
		git_oid tip, c;
		bool exists;
		int st, rc;

		st = lock_state(r, target, &tip, &exists, &holder);
		if (st == 0) {
			rb_error_set(err, RB_ERR_USAGE,
				     "unlock: the lock of target %s on the notes remote %s is not held; nothing was done",
				     target, r->label);
			return -1;
		}
		sys_now_utc(now);
		if (st < 0 || git_commit_lookup(&tipc, r->repo, &tip) < 0) {
			free(holder);
			git_fail(err, RB_ERR_PARTIAL, r, "cannot read the lock");
			return -1;
		}
		buf_addf(&msg, "runbook lock: broken %s\n\ntarget: %s\nbroken_by: %s\nreason: %s\nat: %s\nholder was: %s\n\n%s",
			 target, target, operator_, reason, now, holder,
			 strstr(git_commit_message(tipc), "\n\n") ?
			 strstr(git_commit_message(tipc), "\n\n") + 2 : "");
		git_commit_free(tipc);
		if (lock_commit(r, operator_, buf_str(&msg), &tip, &c) < 0) {
			buf_release(&msg);
			free(holder);
			git_fail(err, RB_ERR_PARTIAL, r, "cannot make the lock commit");
			return -1;
		}
		buf_release(&msg);
		rc = push_lock(r, target, &c, &tip, err);
		if (rc == 0) {
			*was = holder;
			return 0;
		}
		free(holder);
		if (rc < 0 || remote_fetch(r, err) < 0)
			return -1;
	}
	rb_error_set(err, RB_ERR_BUSY,
		     "unlock: the lock of target %s kept moving; run again", target);
	return -1;
}

int remote_locks(struct remote *r, struct strvec *out, struct rb_error *err)
{
	git_reference_iterator *it = NULL;
	const char *name;

	if (git_reference_iterator_glob_new(&it, r->repo, TRACK_LOCKS "*") < 0) {
		git_fail(err, RB_ERR_PARTIAL, r, "cannot list the locks");
		return -1;
	}
	while (git_reference_next_name(&name, it) == 0) {
		const char *target = name + strlen(TRACK_LOCKS);
		char *holder = NULL;
		git_oid tip;
		bool exists;

		if (lock_state(r, target, &tip, &exists, &holder) == 1) {
			struct buf line = BUF_INIT;

			buf_addf(&line, "%s\t%s", target, holder);
			strvec_push_owned(out, buf_detach(&line));
		}
		free(holder);
	}
	git_reference_iterator_free(it);
	return 0;
}

int remote_release_left(struct remote *r, struct strvec *released,
			struct rb_error *err)
{
	git_reference_iterator *it = NULL;
	struct strvec names = STRVEC_INIT;
	const char *name;
	int ret = 0;

	if (git_reference_iterator_glob_new(&it, r->repo, UNRELEASED "*") < 0) {
		git_fail(err, RB_ERR_PARTIAL, r, "cannot list the locks left");
		return -1;
	}
	while (git_reference_next_name(&name, it) == 0)
		strvec_push(&names, name);
	git_reference_iterator_free(it);
	for (size_t i = 0; i < names.n && ret == 0; i++) {
		const char *target = names.v[i] + strlen(UNRELEASED);
		git_reference *ref = NULL;
		git_oid held, tip;
		bool exists;

		if (ref_oid(r->repo, names.v[i], &held) < 0)
			continue;
		/* still ours only if the remote's tip is the commit we pushed */
		if (lock_state(r, target, &tip, &exists, NULL) == 1 &&
		    git_oid_equal(&tip, &held)) {
			free(r->lock_target);
			r->lock_target = xstrdup(target);
			r->lock_oid = held;
			if (remote_unlock(r, err) < 0) {
				ret = -1;
				break;
			}
			strvec_push(released, target);
		}
		if (git_reference_lookup(&ref, r->repo, names.v[i]) == 0)
			git_reference_delete(ref);
		git_reference_free(ref);
	}
	strvec_release(&names);
	return ret;
}
