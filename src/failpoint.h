/*
 * Failpoints for the crash tests: RUNBOOK_FAILPOINT=NAME:N makes the
 * Nth time the program passes point NAME special (what happens there
 * is the caller's: fail an fsync, or die with SIGKILL as kill -9
 * would). Several may be given, separated by commas. Unset, a
 * failpoint costs one getenv per pass. Documented in docs/testing.md.
 */
#ifndef RUNBOOK_FAILPOINT_H
#define RUNBOOK_FAILPOINT_H

#include <stdbool.h>

/* True on the Nth pass of point name. */
bool failpoint(const char *name);
/* Dies by SIGKILL on the Nth pass of point name. */
void failpoint_kill(const char *name);

#endif
