/*
 * History and recovery: the changes a notes repository knows, from its
 * notes (committed) and its journals (unfinished, or whose last note
 * was not committed) together. Find, order, resolve a prefix, load a
 * change from whichever record is fuller, and settle journals whose
 * change ended but whose note did not follow.
 *
 * Notes are read only through note_parse(); journals only through
 * journal_read() and record_apply(). Nothing here prints: what a
 * person should hear is handed back as notices.
 */
#ifndef RUNBOOK_HISTORY_H
#define RUNBOOK_HISTORY_H

#include <stdbool.h>
#include <stddef.h>

#include "change.h"

struct rb_error;
struct store;
struct strvec;

/*
 * Loads change id from its journal (preferred: it is the fuller record;
 * a torn last record is cut off, which a warning in notices says) or
 * else its note. A damaged journal is an error (RB_ERR_PARTIAL): never
 * guess. Whichever command reads a torn journal first cuts it, so each
 * caller passes the notices on to the operator.
 */
int history_load(struct store *st, const char *id, struct change_rec **out,
		 bool *from_journal, struct strvec *notices,
		 struct rb_error *err);

/* The target named by the journal of change id (even a damaged one), or NULL. */
char *history_journal_target(struct store *st, const char *id);

/*
 * Commits the notes of changes that ended but whose final note was not
 * committed (the commit failed, or the runner died right after). A
 * change of another target is only touched when that target's lock is
 * free: a runner may be writing it right now. target (if not NULL) is
 * the one whose lock the caller holds: its unfinished change, or a
 * damaged journal that may be its, comes back in *busy_id (caller
 * frees) with its status. Warnings and what was committed are appended
 * to notices (full lines, without "runbook: ").
 */
int history_settle(struct store *st, const char *target, char **busy_id,
		   enum change_status *busy_status, struct strvec *notices,
		   struct rb_error *err);

/*
 * Calls fn for up to limit notes (0: all) in the order their changes
 * started, newest first. fn returns 0 to go on, 1 to stop, -1 on error.
 */
int history_each(struct store *st, size_t limit,
		 int (*fn)(void *ctx, const char *id, const char *text,
			   size_t len),
		 void *ctx, struct rb_error *err);

/*
 * The newest change (of target, if given) among notes and journals;
 * with only_undoable, the newest that still has something to undo.
 * None: -1 with err (RB_ERR_USAGE). Warnings (a torn journal cut) are
 * appended to notices.
 */
int history_last(struct store *st, const char *target, bool only_undoable,
		 char **id, struct strvec *notices, struct rb_error *err);

/*
 * The changes on c's target that started after c and still have
 * something to undo (or are running), appended to later: rolling c back
 * before them would undo what they stand on.
 */
int history_later(struct store *st, const struct change_rec *c,
		  struct strvec *later, struct strvec *notices,
		  struct rb_error *err);

/* A change id from a prefix: notes first, then unfinished journals. */
int history_resolve(struct store *st, const char *prefix, char **id,
		    struct rb_error *err);

#endif
