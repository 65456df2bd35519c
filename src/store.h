/*
 * The notes repository (PRODUCT.md §4): change notes are commits on
 * refs/heads/runbook-notes made with libgit2, one Markdown file per
 * change at changes/YYYY/MM/<change-id>.md. The working tree, the index
 * and HEAD are never touched. The branch moves only by compare-and-swap,
 * retried, so concurrent runbook processes never lose a note. All git
 * work of a process happens on one thread.
 *
 * Resolution: --notes PATH or RUNBOOK_NOTES (created as a bare
 * repository if missing), else the repository holding the runbook file
 * (or the current directory), else a bare repository at ./.runbook-notes.
 */
#ifndef RUNBOOK_STORE_H
#define RUNBOOK_STORE_H

#include <stdbool.h>
#include <stddef.h>

struct buf;
struct rb_error;
struct store;

#define NOTES_REF "refs/heads/runbook-notes"

/*
 * Opens the notes repository. explicit: --notes, or NULL (then
 * RUNBOOK_NOTES, then the repository around near, a file or directory,
 * then ./.runbook-notes). create: make ./.runbook-notes when nothing
 * else is found (apply), or fail (log, show...).
 */
int store_open(const char *explicit, const char *near, bool create,
	       struct store **out, struct rb_error *err);
void store_free(struct store *s);
/* <gitdir>/runbook: where journals and locks live. */
const char *store_dir(const struct store *s);
/* The repository's path, for messages. */
const char *store_path(const struct store *s);
/* Its git directory (for the notes remote, remote.h). */
const char *store_gitdir(const struct store *s);

/*
 * After each note commit (store_commit_note/_change), once the branch
 * has moved, fn(ctx, err) runs: the notes remote pushes it. If fn
 * returns -1, the commit call returns -1 with fn's err, though the
 * note is committed here. fn NULL: none.
 */
void store_on_commit(struct store *s,
		     int (*fn)(void *ctx, struct rb_error *err), void *ctx);

/*
 * Commits text as the note of change id. author: "Name <email>" (the
 * owner; a name alone is fine); committer: the operator. Returns 0 with
 * the commit id in oid_hex, or -1 with err.
 */
int store_commit_note(struct store *s, const char *id, const char *text,
		      const char *author, const char *committer,
		      const char *message, char oid_hex[41],
		      struct rb_error *err);

/*
 * The same, with the runbook file as applied (runbook, unless NULL)
 * committed beside the note as changes/YYYY/MM/<id>.yml in the same
 * commit.
 */
int store_commit_change(struct store *s, const char *id, const char *text,
			const struct buf *runbook, const char *author,
			const char *committer, const char *message,
			char oid_hex[41], struct rb_error *err);

/*
 * A commit on runbook-notes that changes no file: the record of an
 * event that is no change (runbook unlock). Same CAS as a note.
 */
int store_commit_record(struct store *s, const char *author,
			const char *committer, const char *message,
			char oid_hex[41], struct rb_error *err);

/* Reads the note of id into out; -1 with err (RB_ERR_INVALID) if absent. */
int store_read_note(struct store *s, const char *id, struct buf *out,
		    struct rb_error *err);

/*
 * Finds the one change whose id starts with prefix. An unknown or
 * ambiguous prefix is an error (usage class) that lists the matches.
 */
int store_resolve(struct store *s, const char *prefix, char **id,
		  struct rb_error *err);

/*
 * Calls fn for up to limit notes, newest first (0: all). fn returns 0
 * to go on, 1 to stop, -1 on error.
 */
int store_each(struct store *s, size_t limit,
	       int (*fn)(void *ctx, const char *id, const char *text,
			 size_t len),
	       void *ctx, struct rb_error *err);

/* The operator: git config user.name and user.email, else user@host. */
char *store_operator(struct store *s);

#endif
