/*
 * Scratch directories for unit tests: one per test, made under $TMPDIR
 * when that is short enough for the name to fit, else under /tmp, and
 * removed with everything in it (symlinks are removed, not followed).
 */
#ifndef RUNBOOK_TEST_SCRATCH_H
#define RUNBOOK_TEST_SCRATCH_H

#define SCRATCH_MAX 64

/* Makes DIR/NAME.XXXXXX into dir (SCRATCH_MAX bytes). 0, or -1. */
int scratch_make(char *dir, const char *name);

/* Removes dir and everything below it. 0, or -1 if something stayed. */
int scratch_remove(const char *dir);

#endif
