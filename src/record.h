/*
 * The recorder: the journal hook of apply and of rollback. Every event
 * becomes a journal record (fsynced before the engine acts), and is
 * applied to the in-memory change record by the same code that replays
 * a journal after a crash, so what is recorded and what recovery sees
 * cannot differ. The note is committed when the change opens (status
 * running) and when it closes; a journal whose change is finished and
 * noted moves to done/.
 */
#ifndef RUNBOOK_RECORD_H
#define RUNBOOK_RECORD_H

#include <stdbool.h>

#include "change.h"
#include "event.h"

struct change_rec;
struct rec_step;
struct store;
struct redactor;
struct rb_error;
struct strvec;

struct recorder;

/* For a new change: c is filled with what is known before it runs. */
struct recorder *recorder_new(struct store *st, struct change_rec *c,
			      const struct redactor *red);
/* For a change read back (rollback, recovery): appends to its journal. */
int recorder_resume(struct store *st, struct change_rec *c,
		    const struct redactor *red, struct recorder **out,
		    struct rb_error *err);
void recorder_free(struct recorder *r);
struct change_rec *recorder_change(struct recorder *r);

/* The recorder as an immediate listener of the engine's events. */
struct listener recorder_listener(struct recorder *r);
/*
 * Keeps the runbook file at path (read now, as it is applied) to commit
 * it beside the note, as changes/YYYY/MM/<id>.yml.
 */
int recorder_keep_file(struct recorder *r, const char *path,
		       struct rb_error *err);
struct runbook;
/*
 * recorder_keep_file() of rb's file, followed by each file it included,
 * as YAML comments headed by its path and SHA-256 (docs/reuse.md).
 */
int recorder_keep_runbook(struct recorder *r, const struct runbook *rb,
			  struct rb_error *err);
/*
 * `runbook rollback` starts on a change: by whom, why (may be NULL) and
 * which later changes --force passed over. The note shows them as
 * rolled_back_by, rolled_back_at, rollback_reason, rollback_forced.
 */
int recorder_rollback_start(struct recorder *r, const char *by,
			    const char *reason, const struct strvec *forced,
			    struct rb_error *err);
/* Records that the operator undid step s by hand (rollback --by-hand). */
int recorder_by_hand(struct recorder *r, const struct rec_step *s,
		     struct rb_error *err);
/*
 * Applies one journal record (payload) to the change record ctx: the
 * one reader of journal records, for the recorder and for recovery.
 */
int record_apply(void *ctx, const char *payload, size_t len);

/*
 * Commits the note for the record's current status and notes that in
 * the journal; retires the journal when the change is finished. Used by
 * rollback and recovery (apply's CLOSE does it itself).
 */
int recorder_commit(struct recorder *r, struct rb_error *err);
/*
 * For a finished change whose journal does not say its note was
 * committed: commits it, unless the note in git already says the same
 * (the runner died right after its commit); then retires the journal.
 */
int recorder_settle(struct recorder *r, struct rb_error *err);
/*
 * Commits the note again as the record stands, without a journal
 * record: for what is added once the change is closed and its journal
 * retired (the outcomes of notify commands, notify.h). recorder is a
 * struct recorder (a notifier's callback).
 */
int recorder_renote(void *recorder, struct rb_error *err);
/* Records a new final status (a "close" record) then commits. */
int recorder_close(struct recorder *r, enum change_status status,
		   struct rb_error *err);

#endif
