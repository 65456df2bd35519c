/*
 * Shell quoting: a value made one plain word for /bin/sh, whatever
 * bytes it holds. Every value runbook puts into a shell command goes
 * through here or through the template renderer, which uses it.
 */
#ifndef RUNBOOK_QUOTE_H
#define RUNBOOK_QUOTE_H

#include <stdbool.h>

struct buf;

/*
 * Appends s quoted as one plain shell word ('' for the empty string).
 * A word of [A-Za-z0-9_@%+:./-] goes bare, unless the shell could
 * still read it as syntax: a reserved word (if, case, ...), or a ..
 * that brace expansion reads as a sequence next to braces ({1..9}).
 */
void shell_quote(struct buf *out, const char *s);

/* The same, always in single quotes: never an operator or a keyword. */
void shell_quote_always(struct buf *out, const char *s);

/*
 * True if cmd is one simple command that runs a program found by path
 * or in PATH (not a builtin, keyword or assignment), so that `exec cmd`
 * does what cmd does minus the shell's fork: no ; & | ( ) ` { } or
 * line break (bar a trailing one), and & only in >& or <&. Errs on
 * the side of false: a false costs a fork, a wrong true a wrong run.
 */
bool shell_exec_ok(const char *cmd);

/*
 * True if cmd is shell_exec_ok() and `bash --posix` reads it exactly
 * as dash does, so that a bash on the host may exec it (docs/ssh.md):
 * ASCII only, no $ outside single quotes (bash's own variables, $'..'),
 * no unquoted ~ [ ], no << or <<<, no >& or <& but to a descriptor.
 * Errs on the side of false: a false runs cmd under /bin/sh.
 */
bool shell_bash_same(const char *cmd);

#endif
