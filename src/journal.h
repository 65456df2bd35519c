/*
 * The journal: one append-only file per change, the record that
 * survives kill -9 and a lost note commit. Each record is
 *
 *   "RBJ1" | u32 length (LE) | u32 CRC-32C of the payload (LE) |
 *   payload (a JSON object) | "\n"
 *
 * and is on disk (fsync) before journal_append() returns, which is
 * before the action it announces. Files are 0600 in a 0700 directory,
 * created with O_EXCL and O_NOFOLLOW; the directory is fsynced after a
 * file is created or moved. An fsync failure is final: the journal
 * refuses every later append (the record may be gone, so no new work
 * may start).
 *
 * Journals of unfinished changes live in <gitdir>/runbook/journal/;
 * when a change is finished and its note committed, its journal moves
 * to journal/done/.
 */
#ifndef RUNBOOK_JOURNAL_H
#define RUNBOOK_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>

struct rb_error;
struct journal;

#define JOURNAL_MAX_RECORD (4u << 20)

/* Creates the journal of change id under dir (<gitdir>/runbook). */
int journal_create(const char *dir, const char *id, struct journal **out,
		   struct rb_error *err);
/* Opens an existing journal of change id to append to (rollback, recovery). */
int journal_open(const char *dir, const char *id, struct journal **out,
		 struct rb_error *err);
int journal_append(struct journal *j, const char *payload, size_t len,
		   struct rb_error *err);
/*
 * The same; without sync the record is written but not yet flushed: a
 * kill -9 cannot lose it (it is in the page cache), a power loss can,
 * until the next synced record flushes it with everything before it.
 * For records that announce no action (an end, a pid): the record of
 * the next action is synced before that action runs.
 */
int journal_append_ex(struct journal *j, const char *payload, size_t len,
		      bool sync, struct rb_error *err);
void journal_close(struct journal *j);
/* Moves the journal of id to done/ (the change is finished and noted). */
int journal_retire(const char *dir, const char *id, struct rb_error *err);
/*
 * Moves a journal that could not be written to done/<id>.broken, where
 * no reader looks: the change's note, committed from memory, is its
 * record. Used only when the note was committed.
 */
int journal_set_aside(const char *dir, const char *id, struct rb_error *err);

/*
 * Reads every record of the journal of id (in journal/ or done/),
 * calling fn with each payload. A torn last record (a crash while it
 * was written) is dropped and, when repair is set, cut off the file;
 * *torn tells. The journal of a live change is never cut: its last
 * record is being written, and *torn stays false. A bad record before the last is corruption: -1 with err
 * naming the file and offset (class RB_ERR_PARTIAL).
 */
int journal_read(const char *dir, const char *id, bool repair,
		 int (*fn)(void *ctx, const char *payload, size_t len),
		 void *ctx, bool *torn, struct rb_error *err);

/*
 * Whether the change's journal is open in a live runbook process: its
 * writer holds a flock() on it from journal_create()/journal_open()
 * until journal_close(), which the kernel drops however the process
 * dies. The lock file of the target is only a hint; this is the truth.
 * A second journal_open() of a live change fails with RB_ERR_BUSY.
 */
bool journal_live(const char *dir, const char *id);
/* Ids of the unfinished changes (journals not in done/), sorted. */
int journal_list(const char *dir, char ***ids, size_t *n,
		 struct rb_error *err);

/* Test-only failure injection: RUNBOOK_FAILPOINT=journal-fsync:N fails the Nth fsync. */

#endif
