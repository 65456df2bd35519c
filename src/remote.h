/*
 * The team's notes remote (docs/team.md): the runbook-notes branch and
 * the target locks shared through a git remote, with libgit2.
 *
 * Which remote: --remote NAME, else $RUNBOOK_REMOTE, else git config
 * runbook.remote of the notes repository. NAME is a remote of that
 * repository (remote.NAME.url) or a URL or path itself: a local path,
 * file://, or ssh:// and scp-like user@host:path.
 *
 * Refs, in the notes repository:
 *   refs/heads/runbook-notes          the notes, ours; may be ahead of
 *   refs/runbook/remote/notes         the remote's notes as last seen
 *   refs/runbook/remote/locks/<t>     the remote's locks as last seen
 * and on the remote refs/heads/runbook-notes and refs/runbook/locks/<t>.
 * Notes committed here and not yet on the remote are the commits of
 * runbook-notes not reachable from refs/runbook/remote/notes: that is
 * the queue `runbook sync` pushes. Nothing else records it.
 *
 * Every update of a remote ref is a fast-forward checked against the
 * value we last read, atomically on the remote side: never a forced
 * push. A push that lost a race fetches, rebuilds our unpushed commits
 * on the new tip (each note is its own file, so the rebuild copies the
 * files each commit changed; no merge of contents) and pushes again.
 *
 * A lock is a chain of commits on refs/runbook/locks/<t>, each naming
 * its state in its message: "held" (operator, machine, pid, change,
 * since), "released" or "broken" (by whom, why, whose lock). Taking it
 * is pushing a "held" commit on top of a tip that is not "held".
 *
 * Errors: an unreachable remote, failed authentication or a refused
 * host key is RB_ERR_CONNECT, naming the remote and libgit2's error; a
 * lock held by someone else is RB_ERR_BUSY naming the holder. All git
 * work happens on the calling thread. Nothing here prints.
 */
#ifndef RUNBOOK_REMOTE_H
#define RUNBOOK_REMOTE_H

#include <stdbool.h>

struct rb_error;
struct strvec;
struct remote;

struct remote_opts {
	const char *known_hosts;	/* NULL: ~/.ssh/known_hosts */
	bool accept_new;		/* trust unknown (never changed) host keys */
};

/*
 * Opens the notes remote of the repository at gitdir. name: --remote,
 * or NULL (then RUNBOOK_REMOTE, then runbook.remote). Returns 0 with
 * *out NULL when no remote is configured (a team of one), 0 with the
 * remote, or -1 with err (usage class) when the name cannot be used.
 * Nothing is fetched yet.
 */
int remote_open(const char *gitdir, const char *name,
		const struct remote_opts *o, struct remote **out,
		struct rb_error *err);
void remote_free(struct remote *r);
/* "NAME (URL)" or the URL, for messages. */
const char *remote_label(const struct remote *r);

/*
 * Fetches the remote's notes and locks, then brings runbook-notes up
 * to date: fast-forwards it, or rebuilds the notes not yet pushed on
 * the remote's tip. -1 with err (RB_ERR_CONNECT) when the remote
 * cannot be reached; the local notes are untouched then.
 */
int remote_fetch(struct remote *r, struct rb_error *err);

/*
 * Pushes the notes not yet on the remote (nothing to push: 0). A lost
 * race fetches, rebuilds and tries again. -1 with err: the notes stay
 * queued (committed here), and a later push or `runbook sync` sends
 * them.
 */
int remote_push(struct remote *r, struct rb_error *err);

/*
 * The notes committed here and not on the remote as last seen, one
 * line each ("<commit> <subject>"), oldest first.
 */
int remote_pending(struct remote *r, struct strvec *out,
		   struct rb_error *err);

/*
 * Takes the remote lock of target for change, as operator (from this
 * machine and process). Busy: -1 with err (RB_ERR_BUSY) naming the
 * holder (operator, machine, pid, change, since). Call after
 * remote_fetch(). The lock is this struct's until remote_unlock().
 */
int remote_lock(struct remote *r, const char *target, const char *change,
		const char *operator_, struct rb_error *err);
/*
 * Releases the lock remote_lock() took (none: 0). If it was broken
 * meanwhile, 0 too, and the lock is left as the breaker left it.
 */
int remote_unlock(struct remote *r, struct rb_error *err);

/*
 * Releases the locks this repository took and could not release (the
 * remote was down when their change ended), if the remote still shows
 * them as we left them; released gets their targets. After
 * remote_fetch().
 */
int remote_release_left(struct remote *r, struct strvec *released,
			struct rb_error *err);

/*
 * Breaks the lock of target, whoever holds it: a "broken" commit by
 * operator with reason. *was: the holder it named (the caller frees
 * it). Not held: -1 with err (usage class).
 */
int remote_break(struct remote *r, const char *target, const char *operator_,
		 const char *reason, char **was, struct rb_error *err);

/*
 * The held locks as last fetched, one line each:
 * "<target>\t<holder>", holder as remote_lock() names it.
 */
int remote_locks(struct remote *r, struct strvec *out, struct rb_error *err);

/* True when name can be a lock's ref component (a target name). */
bool remote_target_ok(const char *target);

#endif
