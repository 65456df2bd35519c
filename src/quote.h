/*
 * Shell quoting: a value made one plain word for /bin/sh, whatever
 * bytes it holds. Every value runbook puts into a shell command goes
 * through here or through the template renderer, which uses it.
 */
#ifndef RUNBOOK_QUOTE_H
#define RUNBOOK_QUOTE_H

struct buf;

/* Appends s quoted as one plain shell word ('' for the empty string). */
void shell_quote(struct buf *out, const char *s);

#endif
