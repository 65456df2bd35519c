/*
 * runbook's own state directories under <gitdir>/runbook (journal/,
 * journal/done/, locks/): journals and locks are trusted by status and
 * rollback, so they are written and read only in real directories that
 * this user owns and nobody else can write. A symbolic link, another
 * owner or a group- or world-writable mode is refused, never followed.
 */
#ifndef RUNBOOK_STATEDIR_H
#define RUNBOOK_STATEDIR_H

#include <stdbool.h>

struct rb_error;

/*
 * Checks path (creating it, 0700, when create is set and it is
 * missing). 0: fine; 1: missing (create not set); -1 with err (class
 * RB_ERR_USAGE, saying what is wrong and what to do).
 */
int state_dir(const char *path, bool create, struct rb_error *err);

#endif
