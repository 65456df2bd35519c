/*
 * Command line: one table of commands and one of options drive both
 * parsing and --help. Parsing fills struct cli and never exits; errors
 * come back as RB_ERR_USAGE.
 */
#ifndef RUNBOOK_CLI_H
#define RUNBOOK_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "vars.h"

struct rb_error;
struct wave;

enum cli_cmd {
	CMD_NONE, CMD_VALIDATE, CMD_PLAN, CMD_APPLY, CMD_REHEARSE,
	CMD_ROLLBACK, CMD_STATUS, CMD_LOG, CMD_SHOW, CMD_NEW, CMD_COMPLETION,
	CMD_SYNC, CMD_UNLOCK,
};

/*
 * The tables behind parsing, --help, the man page's synopsis and the
 * completion scripts. args and arg are the placeholders --help shows;
 * completion.c reads them as the kind of word to complete (FILE, NAME
 * of a target, CHANGE, PATH, ...).
 */
struct cli_cmd_info {
	enum cli_cmd cmd;
	const char *name;
	const char *args;
	const char *summary;
	size_t min_args, max_args;
};

struct cli_opt_info {
	int id;
	const char *lng;	/* NULL: short only */
	char shrt;		/* 0: long only */
	const char *arg;	/* NULL: a flag */
	unsigned cmds;		/* bit (1u << cmd) for each command taking it */
	const char *help;
};

/* The tables; *n gets the number of entries. */
const struct cli_cmd_info *cli_commands(size_t *n);
const struct cli_opt_info *cli_options(size_t *n);
/* Whether command cmd takes option o. */
bool cli_takes(const struct cli_opt_info *o, enum cli_cmd cmd);

struct cli {
	enum cli_cmd cmd;
	bool help;
	bool version;
	char **args;		/* positional arguments (borrowed from argv) */
	size_t n_args;
	const char *target;
	struct varset vars;	/* --var */
	char **var_names;	/* names given with --var, for validation */
	size_t n_var_names;
	const char *notes;
	const char *remote;	/* --remote: the team's notes remote */
	const char *known_hosts;
	bool json, no_color, quiet, verbose, accept_new, dry_run, last,
	     yes, force, no_watch;
	const char *reason;	/* rollback --reason */
	const char *limit;	/* --limit HOSTS */
	const char *inventory;	/* --inventory FILE */
	struct wave *serial;	/* --serial (owned) */
	size_t n_serial;
	unsigned wait_ms;	/* --wait DURATION; 0: do not wait */
	unsigned forks;
	unsigned log_n;
	const char **by_hand;	/* rollback --by-hand STEP[@HOST] (borrowed) */
	size_t n_by_hand, cap_by_hand;
};

/* Parses argv; on error returns -1 with err set (class RB_ERR_USAGE). */
int cli_parse(struct cli *c, int argc, char **argv, struct rb_error *err);
void cli_release(struct cli *c);
const char *cli_cmd_name(enum cli_cmd cmd);
void cli_usage(FILE *fp);
void cli_cmd_help(FILE *fp, enum cli_cmd cmd);

#endif
