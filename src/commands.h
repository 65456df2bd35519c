/*
 * One function per `runbook COMMAND`. Each returns the exit code
 * (docs/apply.md); a non-zero code comes with err set, for main.c to
 * print, except cmd_validate(), which prints its own problems.
 */
#ifndef RUNBOOK_COMMANDS_H
#define RUNBOOK_COMMANDS_H

#include <stdbool.h>

#include "change.h"

struct cli;
struct rb_error;

/* The last line after a file's problems were printed. */
extern const char cmd_retry_hint[];

int cmd_validate(const struct cli *c);
int cmd_plan(const struct cli *c, struct rb_error *err);
int cmd_apply(const struct cli *c, struct rb_error *err);
int cmd_rollback(const struct cli *c, struct rb_error *err);
int cmd_status(const struct cli *c, struct rb_error *err);
int cmd_log(const struct cli *c, struct rb_error *err);
int cmd_show(const struct cli *c, struct rb_error *err);
int cmd_new(const struct cli *c, struct rb_error *err);
int cmd_completion(const struct cli *c, struct rb_error *err);
int cmd_sync(const struct cli *c, struct rb_error *err);
int cmd_unlock(const struct cli *c, struct rb_error *err);

/* Shared by commands.c and commands_notes.c. */
struct store;
struct team;
/* history_settle(), with what it has to say printed. */
int cmd_settle(struct store *st, const char *target, char **busy,
	       enum change_status *bs, bool quiet, struct rb_error *err);
/* team_open() of the command's --remote, notices said. */
int cmd_team_of(const struct cli *c, struct store *st, bool strict,
		struct team *t, struct rb_error *err);
/* team_close(), notices said. */
void cmd_team_end(struct team *t, struct store *st);

/* validate --json: d's problems (or none, when ok) as one JSON object. */
struct diag;
void cmd_json_diags(struct diag *d, const char *file, bool ok);

#endif
