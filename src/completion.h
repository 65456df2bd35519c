/*
 * Shell completion scripts, generated from the command and option
 * tables of cli.c, so Tab offers exactly what parsing accepts and
 * --help lists. The scripts complete commands, each command's options,
 * runbook files, the targets of the runbook on the line (through
 * `runbook completion targets FILE`) and change ids (through
 * `runbook log --json`).
 */
#ifndef RUNBOOK_COMPLETION_H
#define RUNBOOK_COMPLETION_H

struct buf;

/* Whether shell is one completion_script() knows: bash, zsh or fish. */
int completion_known(const char *shell);

/* Appends the completion script for shell (bash, zsh or fish) to out. */
void completion_script(const char *shell, struct buf *out);

#endif
