/*
 * libgit2 behind the notes. Commits are built from trees (a tree
 * builder per level: changes/YYYY/MM), written with update_ref NULL,
 * and the branch is then moved with git_reference_create_matching()
 * against the tip the commit was built on; a concurrent writer makes
 * that fail with GIT_EMODIFIED (or GIT_EEXISTS / GIT_ELOCKED), and we
 * rebuild on the new tip. Gitdir writes are fsynced.
 */
#include "store.h"

#include <errno.h>
#include <git2.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "change.h"
#include "error.h"
#include "statedir.h"

struct store {
	git_repository *repo;
	char *dir;
	char *path;
	int (*on_commit)(void *ctx, struct rb_error *err);
	void *on_commit_ctx;
};

static bool inited;

static void git_init_once(void)
{
	if (inited)
		return;
	git_libgit2_init();
	git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 1);
	inited = true;
}

static void git_fail(struct rb_error *err, enum rb_err_class cls,
		     const char *what)
{
	const git_error *e = git_error_last();

	rb_error_set(err, cls, "%s: %s", what, e && e->message ? e->message :
		     "unknown libgit2 error");
}

static int finish_open(struct store *s, struct rb_error *err)
{
	struct buf d = BUF_INIT;
	const char *gitdir = git_repository_path(s->repo);

	buf_addf(&d, "%srunbook", gitdir);
	if (state_dir(buf_str(&d), true, err) < 0) {
		buf_release(&d);
		return -1;
	}
	s->dir = buf_detach(&d);
	s->path = xstrdup(git_repository_workdir(s->repo) ?
			  git_repository_workdir(s->repo) : gitdir);
	return 0;
}

/*
 * git_repository_open(), saying whose a repository is when libgit2
 * refuses one another user owns (its own message names only the
 * safe.directory setting it looked for).
 */
static int open_repo(git_repository **repo, const char *path,
		     const char *what, struct rb_error *err)
{
	struct stat st;
	struct passwd *pw;
	char owner[64];
	size_t top;
	int rc = git_repository_open(repo, path);

	if (rc == 0)
		return 0;
	/* libgit2 1.5 may return the config lookup's error, not GIT_EOWNER */
	if (stat(path, &st) < 0 ||
	    (rc != GIT_EOWNER && st.st_uid == geteuid())) {
		git_fail(err, RB_ERR_USAGE, what);
		return -1;
	}
	pw = getpwuid(st.st_uid);
	if (pw)
		snprintf(owner, sizeof(owner), "%s", pw->pw_name);
	else
		snprintf(owner, sizeof(owner), "uid %u", (unsigned)st.st_uid);
	/* safe.directory names a work tree by its top, not its .git */
	top = strlen(path);
	while (top > 1 && path[top - 1] == '/')
		top--;
	if (top > 5 && strncmp(path + top - 5, "/.git", 5) == 0)
		top -= 5;
	rb_error_set(err, RB_ERR_USAGE,
		     "%s: '%s' belongs to %s, not to you, and git refuses a repository another user owns; nothing was run. If you trust it: git config --global --add safe.directory '%.*s'; or use a notes repository of your own with --notes PATH",
		     what, path, owner, (int)top, path);
	return -1;
}

static int open_or_create(struct store *s, const char *path, bool create,
			  struct rb_error *err)
{
	struct stat st;

	if (stat(path, &st) == 0) {
		return open_repo(&s->repo, path,
				 "notes repository: cannot open as a git repository",
				 err);
	}
	if (!create) {
		rb_error_set(err, RB_ERR_USAGE,
			     "notes repository '%s' does not exist; nothing was done",
			     path);
		return -1;
	}
	if (git_repository_init(&s->repo, path, 1) < 0) {
		git_fail(err, RB_ERR_PARTIAL, "cannot create notes repository");
		return -1;
	}
	chmod(path, 0700);
	return 0;
}

static bool has_notes(git_repository *repo)
{
	git_reference *ref = NULL;
	bool yes = git_reference_lookup(&ref, repo, NOTES_REF) == 0;

	git_reference_free(ref);
	return yes;
}

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* No notes repository from here: where it looked, and what to do. */
static void not_found(struct rb_error *err)
{
	char cwd[4096];

	if (!getcwd(cwd, sizeof(cwd)))
		snprintf(cwd, sizeof(cwd), ".");
	rb_error_set(err, RB_ERR_USAGE,
		     "no notes repository found: looked for a git repository around %s (none) and for %s/.runbook-notes (none). apply keeps notes in the git repository that holds the runbook file: run this from inside it, or pass --notes PATH (or set RUNBOOK_NOTES)",
		     cwd, cwd);
}

int store_open(const char *explicit, const char *near, bool create,
	       struct store **out, struct rb_error *err)
{
	struct store *s;
	git_buf found = { 0 };
	char *dir = NULL;
	int ret = -1;

	git_init_once();
	s = xcalloc(1, sizeof(*s));
	if (!explicit)
		explicit = getenv("RUNBOOK_NOTES");
	if (explicit && *explicit) {
		if (open_or_create(s, explicit, create, err) < 0)
			goto out;
	} else {
		if (near) {
			struct stat st;
			const char *slash = strrchr(near, '/');

			if (stat(near, &st) == 0 && S_ISDIR(st.st_mode))
				dir = xstrdup(near);
			else
				dir = slash ? xstrndup(near, (size_t)(slash - near) + 1) :
					      xstrdup(".");
		} else {
			dir = xstrdup(".");
		}
		if (git_repository_discover(&found, dir, 0, NULL) == 0) {
			if (open_repo(&s->repo, found.ptr,
				      "cannot open the git repository around the runbook",
				      err) < 0)
				goto out;
			/*
			 * Without a runbook file, the notes apply wrote from
			 * here: this repository if it has them, else
			 * ./.runbook-notes if that exists.
			 */
			if (!near && !has_notes(s->repo) && is_dir(".runbook-notes")) {
				git_repository_free(s->repo);
				s->repo = NULL;
				if (open_or_create(s, ".runbook-notes", false, err) < 0)
					goto out;
			}
		} else if (!near && !create && !is_dir(".runbook-notes")) {
			not_found(err);
			goto out;
		} else if (open_or_create(s, ".runbook-notes", create, err) < 0) {
			goto out;
		}
	}
	if (finish_open(s, err) < 0)
		goto out;
	*out = s;
	s = NULL;
	ret = 0;
out:
	git_buf_dispose(&found);
	free(dir);
	store_free(s);
	return ret;
}

void store_free(struct store *s)
{
	if (!s)
		return;
	git_repository_free(s->repo);
	free(s->dir);
	free(s->path);
	free(s);
}

const char *store_dir(const struct store *s)
{
	return s->dir;
}

const char *store_path(const struct store *s)
{
	return s->path;
}

const char *store_gitdir(const struct store *s)
{
	return git_repository_path(s->repo);
}

void store_on_commit(struct store *s,
		     int (*fn)(void *ctx, struct rb_error *err), void *ctx)
{
	s->on_commit = fn;
	s->on_commit_ctx = ctx;
}

/* changes/YYYY/MM from an id that starts YYYYMMDD */
static int id_dirs(const char *id, char year[5], char month[3])
{
	if (strlen(id) < 8 || strspn(id, "0123456789") < 8)
		return -1;
	memcpy(year, id, 4);
	year[4] = '\0';
	memcpy(month, id + 4, 2);
	month[2] = '\0';
	return 0;
}

/* Looks up a subtree of tree by name; NULL if absent or tree is NULL. */
static git_tree *subtree(git_repository *repo, const git_tree *tree,
			 const char *name)
{
	const git_tree_entry *e;
	git_tree *t = NULL;

	if (!tree || !(e = git_tree_entry_byname(tree, name)) ||
	    git_tree_entry_type(e) != GIT_OBJECT_TREE)
		return NULL;
	if (git_tree_lookup(&t, repo, git_tree_entry_id(e)) < 0)
		return NULL;
	return t;
}

/* Writes tree with name -> oid (a blob or tree) inserted. */
static int insert(git_repository *repo, const git_tree *base,
		  const char *name, const git_oid *oid, git_filemode_t mode,
		  git_oid *out)
{
	git_treebuilder *tb = NULL;
	int ret = -1;

	if (git_treebuilder_new(&tb, repo, base) < 0 ||
	    git_treebuilder_insert(NULL, tb, name, oid, mode) < 0 ||
	    git_treebuilder_write(out, tb) < 0)
		goto out;
	ret = 0;
out:
	git_treebuilder_free(tb);
	return ret;
}

static int empty_tree(git_repository *repo, git_oid *out)
{
	git_treebuilder *tb = NULL;
	int rc = git_treebuilder_new(&tb, repo, NULL);

	if (rc == 0)
		rc = git_treebuilder_write(out, tb);
	git_treebuilder_free(tb);
	return rc;
}

/* Adds a blob to the tree *id (replacing its id with the new tree's). */
static int add_to(git_repository *repo, git_oid *id, const char *name,
		  const git_oid *blob)
{
	git_tree *t = NULL;
	int ret = -1;

	if (git_tree_lookup(&t, repo, id) == 0 &&
	    insert(repo, t, name, blob, GIT_FILEMODE_BLOB, id) == 0)
		ret = 0;
	git_tree_free(t);
	return ret;
}

/* Splits "Name <email>" (either may be missing). */
static int signature(git_signature **out, const char *who)
{
	const char *lt = strchr(who, '<'), *gt = lt ? strchr(lt, '>') : NULL;
	char *name, *email;
	int ret;

	if (lt && gt) {
		const char *e = lt;

		while (e > who && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		name = xstrndup(who, (size_t)(e - who));
		email = xstrndup(lt + 1, (size_t)(gt - lt - 1));
	} else {
		name = xstrdup(who);
		email = xstrdup("");
	}
	if (!*name) {
		free(name);
		name = xstrdup("unknown");
	}
	/* libgit2 wants an address; an owner may be given without one */
	if (!*email) {
		free(email);
		email = xstrdup("noreply@runbook.invalid");
	}
	ret = git_signature_now(out, name, email);
	free(name);
	free(email);
	return ret;
}

/*
 * The branch's lock file stayed for every retry: a git command that died
 * while moving it left it behind (or one is stuck). libgit2's own
 * message names the file without saying so.
 */
static void stale_lock(const struct store *s, struct rb_error *err)
{
	struct buf path = BUF_INIT;
	struct stat st;

	buf_addf(&path, "%s%s.lock", git_repository_path(s->repo), NOTES_REF);
	if (stat(buf_str(&path), &st) == 0)
		rb_error_set(err, RB_ERR_PARTIAL,
			     "cannot move the runbook-notes branch: its lock file '%s' has been there for %lds and was never released; a git command that died left it: if no git command is running on this repository, remove it (rm '%s') and run 'runbook status' to commit the note",
			     buf_str(&path), (long)(time(NULL) - st.st_mtime),
			     buf_str(&path));
	else
		git_fail(err, RB_ERR_PARTIAL,
			 "cannot move the runbook-notes branch (locked)");
	buf_release(&path);
}

int store_commit_note(struct store *s, const char *id, const char *text,
		      const char *author, const char *committer,
		      const char *message, char oid_hex[41],
		      struct rb_error *err)
{
	return store_commit_change(s, id, text, NULL, author, committer,
				   message, oid_hex, err);
}

int store_commit_record(struct store *s, const char *author,
			const char *committer, const char *message,
			char oid_hex[41], struct rb_error *err)
{
	return store_commit_change(s, NULL, NULL, NULL, author, committer,
				   message, oid_hex, err);
}

int store_commit_change(struct store *s, const char *id, const char *text,
			const struct buf *runbook, const char *author,
			const char *committer, const char *message,
			char oid_hex[41], struct rb_error *err)
{
	git_signature *as = NULL, *cs = NULL;
	char year[5], month[3], file[256], yml[256];
	git_oid blob, yblob;
	int ret = -1;

	if (id && id_dirs(id, year, month) < 0) {
		rb_error_set(err, RB_ERR_PARTIAL, "bad change id '%s'", id);
		return -1;
	}
	snprintf(file, sizeof(file), "%s.md", id ? id : "");
	if (signature(&as, author) < 0 || signature(&cs, committer) < 0) {
		git_fail(err, RB_ERR_PARTIAL, "cannot make commit signatures");
		goto out;
	}
	snprintf(yml, sizeof(yml), "%s.yml", id ? id : "");
	if (!text)
		text = "";
	if (git_blob_create_from_buffer(&blob, s->repo, text, strlen(text)) < 0 ||
	    (runbook && git_blob_create_from_buffer(&yblob, s->repo,
						    runbook->data,
						    runbook->len) < 0)) {
		git_fail(err, RB_ERR_PARTIAL, "cannot write the note");
		goto out;
	}
	for (int attempt = 0;; attempt++) {
		git_reference *ref = NULL, *newref = NULL;
		git_commit *tip = NULL;
		git_tree *root = NULL, *ch = NULL, *yr = NULL, *mo = NULL;
		git_tree *newroot = NULL;
		git_oid tip_id, month_id, year_id, changes_id, root_id, commit;
		const git_commit *parents[1];
		int rc;

		rc = git_reference_lookup(&ref, s->repo, NOTES_REF);
		if (rc == 0) {
			tip_id = *git_reference_target(ref);
			if (git_commit_lookup(&tip, s->repo, &tip_id) < 0 ||
			    git_commit_tree(&root, tip) < 0) {
				git_fail(err, RB_ERR_PARTIAL,
					 "cannot read the notes branch");
				goto step_fail;
			}
		} else if (rc != GIT_ENOTFOUND) {
			git_fail(err, RB_ERR_PARTIAL, "cannot read the notes branch");
			goto step_fail;
		}
		if (!id) {
			/* a record without a file: the tree stays */
			if (root)
				root_id = *git_tree_id(root);
			if ((!root && empty_tree(s->repo, &root_id) < 0) ||
			    git_tree_lookup(&newroot, s->repo, &root_id) < 0) {
				git_fail(err, RB_ERR_PARTIAL,
					 "cannot build the notes tree");
				goto step_fail;
			}
			goto commit;
		}
		ch = subtree(s->repo, root, "changes");
		yr = subtree(s->repo, ch, year);
		mo = subtree(s->repo, yr, month);
		if (insert(s->repo, mo, file, &blob, GIT_FILEMODE_BLOB, &month_id) < 0 ||
		    (runbook && add_to(s->repo, &month_id, yml, &yblob) < 0) ||
		    insert(s->repo, yr, month, &month_id, GIT_FILEMODE_TREE, &year_id) < 0 ||
		    insert(s->repo, ch, year, &year_id, GIT_FILEMODE_TREE, &changes_id) < 0 ||
		    insert(s->repo, root, "changes", &changes_id, GIT_FILEMODE_TREE, &root_id) < 0 ||
		    git_tree_lookup(&newroot, s->repo, &root_id) < 0) {
			git_fail(err, RB_ERR_PARTIAL, "cannot build the notes tree");
			goto step_fail;
		}
commit:
		parents[0] = tip;
		if (git_commit_create(&commit, s->repo, NULL, as, cs, "UTF-8",
				      message, newroot, tip ? 1 : 0,
				      parents) < 0) {
			git_fail(err, RB_ERR_PARTIAL, "cannot commit the note");
			goto step_fail;
		}
		/*
		 * The compare-and-swap: only if the branch is where we read
		 * it, or still absent (the zero id), checked under the ref's
		 * lock; git_reference_create(force 0) checks before locking,
		 * so two first notes could overwrite each other.
		 */
		if (!tip)
			memset(&tip_id, 0, sizeof(tip_id));
		rc = git_reference_create_matching(&newref, s->repo, NOTES_REF,
						   &commit, 1, &tip_id, message);
		if (rc == 0) {
			git_oid_tostr(oid_hex, 41, &commit);
			ret = 0;
		} else if ((rc == GIT_EMODIFIED || rc == GIT_EEXISTS ||
			    rc == GIT_ELOCKED) && attempt < 200) {
			struct timespec ts = { 0, (long)(1 + rand() % 20) * 1000000L };

			nanosleep(&ts, NULL);
			rc = 1;	/* retry */
		} else if (rc == GIT_ELOCKED) {
			stale_lock(s, err);
		} else {
			git_fail(err, RB_ERR_PARTIAL,
				 "cannot move the runbook-notes branch");
		}
		git_reference_free(newref);
		git_reference_free(ref);
		git_commit_free(tip);
		git_tree_free(root);
		git_tree_free(ch);
		git_tree_free(yr);
		git_tree_free(mo);
		git_tree_free(newroot);
		if (rc == 1)
			continue;
		break;
step_fail:
		git_reference_free(ref);
		git_commit_free(tip);
		git_tree_free(root);
		git_tree_free(ch);
		git_tree_free(yr);
		git_tree_free(mo);
		git_tree_free(newroot);
		break;
	}
	if (ret == 0 && s->on_commit && s->on_commit(s->on_commit_ctx, err) < 0)
		ret = -1;
out:
	git_signature_free(as);
	git_signature_free(cs);
	return ret;
}

static int tip_tree(struct store *s, git_tree **out, struct rb_error *err)
{
	git_reference *ref = NULL;
	git_commit *c = NULL;
	int rc = git_reference_lookup(&ref, s->repo, NOTES_REF), ret = -1;

	*out = NULL;
	if (rc == GIT_ENOTFOUND)
		return 0;
	if (rc < 0 || git_commit_lookup(&c, s->repo, git_reference_target(ref)) < 0 ||
	    git_commit_tree(out, c) < 0) {
		git_fail(err, RB_ERR_PARTIAL, "cannot read the notes branch");
		goto out;
	}
	ret = 0;
out:
	git_commit_free(c);
	git_reference_free(ref);
	return ret;
}

int store_read_note(struct store *s, const char *id, struct buf *out,
		    struct rb_error *err)
{
	git_tree *root = NULL;
	git_tree_entry *e = NULL;
	git_blob *b = NULL;
	char year[5], month[3], path[300];
	int ret = -1;

	if (id_dirs(id, year, month) < 0) {
		rb_error_set(err, RB_ERR_INVALID,
			     "no note for change %s in %s: expected a change id such as 20261130T202839Z-name-07e3cca2",
			     id, s->path);
		goto out;
	}
	if (tip_tree(s, &root, err) < 0)
		goto out;
	snprintf(path, sizeof(path), "changes/%s/%s/%s.md", year, month, id);
	if (!root || git_tree_entry_bypath(&e, root, path) < 0 ||
	    git_blob_lookup(&b, s->repo, git_tree_entry_id(e)) < 0) {
		rb_error_set(err, RB_ERR_INVALID,
			     "no note for change %s in %s", id, s->path);
		goto out;
	}
	buf_add(out, git_blob_rawcontent(b), (size_t)git_blob_rawsize(b));
	ret = 0;
out:
	git_blob_free(b);
	git_tree_entry_free(e);
	git_tree_free(root);
	return ret;
}

/*
 * Walks the notes (changes/YYYY/MM/<id>.md) newest first. Ids sort by time, so reverse
 * name order at every level is newest first.
 */
struct walk {
	struct store *s;
	size_t limit, seen;
	bool names_only;
	int (*fn)(void *ctx, const char *id, const char *text, size_t len);
	void *ctx;
};

static int walk_tree(struct walk *w, const git_tree *t, int depth,
		     struct rb_error *err)
{
	size_t n = git_tree_entrycount(t);

	for (size_t i = n; i-- > 0;) {
		const git_tree_entry *e = git_tree_entry_byindex(t, i);
		const char *name = git_tree_entry_name(e);
		int rc;

		if (w->limit && w->seen >= w->limit)
			return 1;
		if (depth < 2) {
			git_tree *sub = NULL;

			if (git_tree_entry_type(e) != GIT_OBJECT_TREE ||
			    git_tree_lookup(&sub, w->s->repo,
					    git_tree_entry_id(e)) < 0)
				continue;
			rc = walk_tree(w, sub, depth + 1, err);
			git_tree_free(sub);
			if (rc)
				return rc;
			continue;
		}
		{
			size_t len = strlen(name);
			char *id;
			git_blob *b = NULL;

			if (len < 4 || strcmp(name + len - 3, ".md") != 0)
				continue;
			id = xstrndup(name, len - 3);
			if (w->names_only) {
				rc = w->fn(w->ctx, id, NULL, 0);
			} else if (git_blob_lookup(&b, w->s->repo,
						   git_tree_entry_id(e)) == 0) {
				rc = w->fn(w->ctx, id, git_blob_rawcontent(b),
					   (size_t)git_blob_rawsize(b));
				git_blob_free(b);
			} else {
				rc = 0;
			}
			free(id);
			w->seen++;
			if (rc)
				return rc;
		}
	}
	return 0;
}

static int walk_all(struct store *s, struct walk *w, struct rb_error *err)
{
	git_tree *root = NULL, *ch = NULL;
	int rc = 0;

	if (tip_tree(s, &root, err) < 0)
		return -1;
	if (root && (ch = subtree(s->repo, root, "changes")))
		rc = walk_tree(w, ch, 0, err);
	git_tree_free(ch);
	git_tree_free(root);
	return rc < 0 ? -1 : 0;
}

int store_each(struct store *s, size_t limit,
	       int (*fn)(void *ctx, const char *id, const char *text,
			 size_t len),
	       void *ctx, struct rb_error *err)
{
	struct walk w = { s, limit, 0, false, fn, ctx };

	return walk_all(s, &w, err);
}

struct prefix_ctx {
	const char *prefix;
	struct strvec matches;
};

static int match_prefix(void *ctx, const char *id, const char *text,
			size_t len)
{
	struct prefix_ctx *p = ctx;

	(void)text;
	(void)len;
	if (change_id_matches(id, p->prefix)) {
		strvec_push(&p->matches, id);
		if (p->matches.n > 20)
			return 1;
	}
	return 0;
}

int store_resolve(struct store *s, const char *prefix, char **id,
		  struct rb_error *err)
{
	struct prefix_ctx p = { prefix, STRVEC_INIT };
	struct walk w = { s, 0, 0, true, match_prefix, &p };
	int ret = -1;

	if (!*prefix) {
		rb_error_set(err, RB_ERR_USAGE, "expected a change id, found nothing");
		return -1;
	}
	if (walk_all(s, &w, err) < 0)
		goto out;
	if (p.matches.n == 1) {
		*id = xstrdup(p.matches.v[0]);
		ret = 0;
	} else if (p.matches.n == 0) {
		rb_error_set(err, RB_ERR_USAGE,
			     "expected a change id, a unique prefix of one or 4+ digits of its hex part, found \"%s\", which matches no change in %s (see runbook log)",
			     prefix, s->path);
	} else {
		struct buf b = BUF_INIT;

		for (size_t i = 0; i < p.matches.n && i < 20; i++)
			buf_addf(&b, "\n  %s", p.matches.v[i]);
		rb_error_set(err, RB_ERR_USAGE,
			     "expected a unique prefix, found \"%s\", which matches %s%zu changes:%s",
			     prefix, p.matches.n > 20 ? "more than " : "",
			     p.matches.n > 20 ? (size_t)20 : p.matches.n,
			     buf_str(&b));
		buf_release(&b);
	}
out:
	strvec_release(&p.matches);
	return ret;
}

char *store_operator(struct store *s)
{
	git_config *cfg = NULL;
	git_buf name = { 0 }, email = { 0 };
	struct buf b = BUF_INIT;
	char host[256] = "localhost";
	const char *user = getenv("USER");

	if (git_repository_config(&cfg, s->repo) == 0) {
		git_config_get_string_buf(&name, cfg, "user.name");
		git_config_get_string_buf(&email, cfg, "user.email");
	}
	gethostname(host, sizeof(host) - 1);
	if (!user) {
		struct passwd *pw = getpwuid(getuid());

		user = pw ? pw->pw_name : "unknown";
	}
	if (name.ptr && *name.ptr && email.ptr && *email.ptr)
		buf_addf(&b, "%s <%s>", name.ptr, email.ptr);
	else if (name.ptr && *name.ptr)
		buf_addf(&b, "%s <%s@%s>", name.ptr, user, host);
	else
		buf_addf(&b, "%s <%s@%s>", user, user, host);
	git_buf_dispose(&name);
	git_buf_dispose(&email);
	git_config_free(cfg);
	return buf_detach(&b);
}
