/*
 * Argument parsing. Options may come anywhere after the command; "--"
 * ends them. Each option says which commands take it, so a misplaced
 * option is a usage error, not silently ignored.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "fleet.h"
#include "runbook.h"
#include "suggest.h"

#define C(x) (1u << (x))
#define ALL (C(CMD_VALIDATE) | C(CMD_PLAN) | C(CMD_APPLY) | C(CMD_REHEARSE) | \
	     C(CMD_ROLLBACK) | C(CMD_STATUS) | C(CMD_LOG) | C(CMD_SHOW) | \
	     C(CMD_SYNC) | C(CMD_UNLOCK))
#define RUNNERS (C(CMD_APPLY) | C(CMD_REHEARSE) | C(CMD_ROLLBACK))
#define NOTES (RUNNERS | C(CMD_STATUS) | C(CMD_LOG) | C(CMD_SHOW) | \
	       C(CMD_SYNC) | C(CMD_UNLOCK))


static const struct cli_cmd_info cmds[] = {
	{ CMD_VALIDATE, "validate", "FILE...",
	  "check files; print every problem; run nothing", 1, (size_t)-1 },
	{ CMD_PLAN, "plan", "FILE",
	  "print what apply would run, per host, rendered", 1, 1 },
	{ CMD_APPLY, "apply", "FILE",
	  "run preflight, steps, verify; roll back on failure", 1, 1 },
	{ CMD_REHEARSE, "rehearse", "FILE",
	  "apply, then roll back, then prove the baseline is back", 1, 1 },
	{ CMD_ROLLBACK, "rollback", "CHANGE|--last",
	  "replay the recorded rollback of a change", 0, 1 },
	{ CMD_STATUS, "status", "",
	  "unfinished changes, held locks", 0, 0 },
	{ CMD_LOG, "log", "",
	  "recorded changes, newest first", 0, 0 },
	{ CMD_SHOW, "show", "CHANGE",
	  "one change note", 1, 1 },
	{ CMD_NEW, "new", "NAME",
	  "write NAME.yml, a commented runbook to start from", 1, 1 },
	{ CMD_COMPLETION, "completion", "bash|zsh|fish",
	  "print the shell completion script (see runbook(1))", 1, 2 },
	{ CMD_SYNC, "sync", "",
	  "push notes not yet on the notes remote", 0, 0 },
	{ CMD_UNLOCK, "unlock", "TARGET",
	  "break a remote lock whose holder is gone (--force --reason R)", 1, 1 },
};

enum opt_id {
	O_HELP, O_TARGET, O_VAR, O_NOTES, O_JSON, O_NO_COLOR, O_QUIET,
	O_VERBOSE, O_FORKS, O_KNOWN_HOSTS, O_ACCEPT_NEW, O_DRY_RUN, O_LAST, O_YES, O_FORCE, O_REASON,
	O_N, O_BY_HAND, O_LIMIT, O_NO_WATCH, O_REMOTE, O_INVENTORY, O_SERIAL,
	O_WAIT,
};

static const struct cli_opt_info opts[] = {
	{ O_HELP, "help", 'h', NULL, ALL | C(CMD_NEW) | C(CMD_COMPLETION),
	  "show help for the command" },
	{ O_TARGET, "target", 't', "NAME",
	  C(CMD_PLAN) | RUNNERS | C(CMD_STATUS),
	  "target to act on (needed when the runbook has several)" },
	{ O_VAR, "var", 'e', "KEY=VALUE",
	  C(CMD_VALIDATE) | C(CMD_PLAN) | C(CMD_APPLY) | C(CMD_REHEARSE),
	  "set a variable; wins over vars and captures (repeatable)" },
	{ O_NOTES, "notes", 0, "PATH", NOTES,
	  "notes repository (also RUNBOOK_NOTES)" },
	{ O_REMOTE, "remote", 0, "NAME", NOTES,
	  "the team's notes remote (also RUNBOOK_REMOTE, git config runbook.remote)" },
	{ O_JSON, "json", 0, NULL, ALL,
	  "machine output: one JSON object per line on stdout" },
	/* taken by every command, so an alias or script can always pass it */
	{ O_NO_COLOR, "no-color", 0, NULL, ALL, "no colors (also NO_COLOR)" },
	/* plan and show print only what was asked for: nothing to quiet */
	{ O_QUIET, "quiet", 'q', NULL,
	  C(CMD_VALIDATE) | RUNNERS | C(CMD_STATUS) | C(CMD_LOG) | C(CMD_NEW),
	  "print only errors" },
	{ O_VERBOSE, "verbose", 'v', NULL, RUNNERS,
	  "also stream each command's (redacted) output" },
	{ O_FORKS, "forks", 0, "N", RUNNERS, "hosts at once (default 20)" },
	{ O_KNOWN_HOSTS, "known-hosts", 0, "FILE", RUNNERS,
	  "known_hosts file (default ~/.ssh/known_hosts)" },
	{ O_ACCEPT_NEW, "accept-new-host-keys", 0, NULL, RUNNERS,
	  "trust unknown host keys (never changed ones)" },
	{ O_DRY_RUN, "dry-run", 0, NULL, C(CMD_ROLLBACK),
	  "print the rollback commands without running them" },
	{ O_LAST, "last", 0, NULL, C(CMD_ROLLBACK),
	  "the most recent change" },
	{ O_YES, "yes", 'y', NULL, RUNNERS,
	  "go on without asking: a target with confirm, a change this machine did not record" },
	{ O_FORCE, "force", 0, NULL, C(CMD_ROLLBACK) | C(CMD_UNLOCK),
	  "roll back although later changes on the target still stand on it; unlock: break the lock (recorded)" },
	{ O_REASON, "reason", 0, "TEXT", C(CMD_ROLLBACK) | C(CMD_UNLOCK),
	  "why you roll back or break a lock; recorded" },
	{ O_N, NULL, 'n', "N", C(CMD_LOG), "show at most N changes" },
	{ O_BY_HAND, "by-hand", 0, "STEP[@HOST]", C(CMD_ROLLBACK),
	  "record that you undid STEP by hand, then go on (repeatable)" },
	{ O_LIMIT, "limit", 'l', "HOSTS",
	  C(CMD_PLAN) | C(CMD_APPLY) | C(CMD_REHEARSE),
	  "only these hosts of the target: names or globs, comma-separated (recorded)" },
	{ O_NO_WATCH, "no-watch", 0, NULL, C(CMD_APPLY) | C(CMD_REHEARSE),
	  "skip the runbook's watch after verify (recorded in the note)" },
	{ O_INVENTORY, "inventory", 0, "FILE",
	  C(CMD_VALIDATE) | C(CMD_PLAN) | C(CMD_APPLY) | C(CMD_REHEARSE),
	  "targets from this inventory (default: the runbook's inventory key, else inventory.yml beside it)" },
	{ O_SERIAL, "serial", 0, "N|P%,...",
	  C(CMD_PLAN) | C(CMD_APPLY) | C(CMD_REHEARSE),
	  "hosts per batch, or a list of waves such as 1,50%; overrides the target's serial" },
	{ O_WAIT, "wait", 0, "DURATION", C(CMD_APPLY) | C(CMD_REHEARSE),
	  "wait up to DURATION for a busy target, showing who holds it" },
};

const char *cli_cmd_name(enum cli_cmd cmd)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (cmds[i].cmd == cmd)
			return cmds[i].name;
	return "runbook";
}

const struct cli_cmd_info *cli_commands(size_t *n)
{
	*n = sizeof(cmds) / sizeof(cmds[0]);
	return cmds;
}

const struct cli_opt_info *cli_options(size_t *n)
{
	*n = sizeof(opts) / sizeof(opts[0]);
	return opts;
}

bool cli_takes(const struct cli_opt_info *o, enum cli_cmd cmd)
{
	return (o->cmds & C(cmd)) != 0;
}

static const struct cli_cmd_info *cmd_info(enum cli_cmd cmd)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (cmds[i].cmd == cmd)
			return &cmds[i];
	return NULL;
}

void cli_usage(FILE *fp)
{
	fputs("usage: runbook COMMAND [options] [args]\n\n"
	      "Rehearsed, recorded and reversible production changes.\n\n"
	      "commands:\n", fp);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		char head[64];

		snprintf(head, sizeof(head), "%s %s", cmds[i].name,
			 cmds[i].args);
		fprintf(fp, "  %-26s %s\n", head, cmds[i].summary);
	}
	fputs("\n  runbook --help | --version | COMMAND --help\n\n"
	      "exit codes: 0 done, 1 failed and rolled back, 2 usage,\n"
	      "  3 partly applied (see runbook status), 4 busy, 5 invalid input,\n"
	      "  6 cannot connect or verify a host, 130 interrupted and rolled back\n",
	      fp);
}

void cli_cmd_help(FILE *fp, enum cli_cmd cmd)
{
	const struct cli_cmd_info *ci = cmd_info(cmd);

	if (!ci) {
		cli_usage(fp);
		return;
	}
	fprintf(fp, "usage: runbook %s [options] %s\n\n%s\n\noptions:\n",
		ci->name, ci->args, ci->summary);
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		const struct cli_opt_info *o = &opts[i];
		char head[64];

		if (!(o->cmds & C(cmd)))
			continue;
		if (o->lng && o->shrt)
			snprintf(head, sizeof(head), "-%c, --%s%s%s", o->shrt,
				 o->lng, o->arg ? " " : "", o->arg ? o->arg : "");
		else if (o->lng)
			snprintf(head, sizeof(head), "    --%s%s%s", o->lng,
				 o->arg ? " " : "", o->arg ? o->arg : "");
		else
			snprintf(head, sizeof(head), "-%c %s", o->shrt,
				 o->arg ? o->arg : "");
		fprintf(fp, "  %-28s %s\n", head, o->help);
	}
}

static const struct cli_opt_info *find_long(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (opts[i].lng && strlen(opts[i].lng) == len &&
		    strncmp(opts[i].lng, name, len) == 0)
			return &opts[i];
	return NULL;
}

static const struct cli_opt_info *find_short(char c)
{
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (opts[i].shrt == c)
			return &opts[i];
	return NULL;
}

static int parse_uint(const char *s, unsigned min, unsigned max,
		      unsigned *out)
{
	char *end;
	unsigned long v;

	if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 9)
		return -1;
	v = strtoul(s, &end, 10);
	if (v < min || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int apply_opt(struct cli *c, const struct cli_opt_info *o,
		     const char *val, const char *spelled,
		     struct rb_error *err)
{
	if (!(o->cmds & C(c->cmd))) {
		rb_error_set(err, RB_ERR_USAGE,
			     "%s: expected an option of 'runbook %s' (see runbook %s --help), found %s",
			     cli_cmd_name(c->cmd), cli_cmd_name(c->cmd),
			     cli_cmd_name(c->cmd), spelled);
		return -1;
	}
	switch (o->id) {
	case O_HELP:
		c->help = true;
		break;
	case O_TARGET:
		c->target = val;
		break;
	case O_VAR:
		if (varset_parse_assignment(&c->vars, val) < 0) {
			rb_error_set(err, RB_ERR_USAGE,
				     "--var: expected KEY=VALUE with KEY of letters, digits and _, found \"%s\"",
				     val);
			return -1;
		}
		c->var_names = xrealloc(c->var_names, (c->n_var_names + 1) *
					sizeof(char *));
		c->var_names[c->n_var_names++] =
			xstrndup(val, (size_t)(strchr(val, '=') - val));
		break;
	case O_NOTES:
		c->notes = val;
		break;
	case O_REMOTE:
		c->remote = val;
		break;
	case O_JSON:
		c->json = true;
		break;
	case O_NO_COLOR:
		c->no_color = true;
		break;
	case O_QUIET:
		c->quiet = true;
		break;
	case O_VERBOSE:
		c->verbose = true;
		break;
	case O_FORKS:
		if (parse_uint(val, 1, 1000, &c->forks) < 0) {
			rb_error_set(err, RB_ERR_USAGE,
				     "--forks: expected a number from 1 to 1000, found \"%s\"",
				     val);
			return -1;
		}
		break;
	case O_KNOWN_HOSTS:
		c->known_hosts = val;
		break;
	case O_ACCEPT_NEW:
		c->accept_new = true;
		break;
	case O_DRY_RUN:
		c->dry_run = true;
		break;
	case O_NO_WATCH:
		c->no_watch = true;
		break;
	case O_LAST:
		c->last = true;
		break;
	case O_YES:
		c->yes = true;
		break;
	case O_FORCE:
		c->force = true;
		break;
	case O_REASON:
		c->reason = val;
		break;
	case O_LIMIT:
		if (!*val) {
			rb_error_set(err, RB_ERR_USAGE,
				     "--limit: expected host names or globs such as web1,db*, found nothing");
			return -1;
		}
		c->limit = val;
		break;
	case O_INVENTORY:
		c->inventory = val;
		break;
	case O_SERIAL:
		free(c->serial);
		c->serial = NULL;
		if (fleet_parse_serial(val, &c->serial, &c->n_serial) < 0) {
			rb_error_set(err, RB_ERR_USAGE,
				     "--serial: expected hosts per batch (1 or more), a percentage such as 25%%, or a list such as 1,50%%, found \"%s\"",
				     val);
			return -1;
		}
		break;
	case O_WAIT:
		if (parse_duration(val, &c->wait_ms) < 0) {
			rb_error_set(err, RB_ERR_USAGE,
				     "--wait: expected a duration such as 30s or 5m (at most 24h), found \"%s\"",
				     val);
			return -1;
		}
		break;
	case O_BY_HAND:
		c->by_hand = xgrow(c->by_hand, &c->cap_by_hand,
				   c->n_by_hand + 1, sizeof(*c->by_hand));
		c->by_hand[c->n_by_hand++] = val;
		break;
	case O_N:
		if (parse_uint(val, 1, 1000000, &c->log_n) < 0) {
			rb_error_set(err, RB_ERR_USAGE,
				     "-n: expected a number from 1 to 1000000, found \"%s\"",
				     val);
			return -1;
		}
		break;
	}
	return 0;
}

/* "aply": the usage error, naming the closest command if one is near. */
static void unknown_command(const char *word, const char *prefix,
			    struct rb_error *err)
{
	const char *names[sizeof(cmds) / sizeof(cmds[0])];
	struct buf list = BUF_INIT;
	const char *near;

	for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++) {
		names[k] = cmds[k].name;
		buf_addf(&list, "%s%s", k ? ", " : "", cmds[k].name);
	}
	near = suggest_closest(word, names, sizeof(cmds) / sizeof(cmds[0]));
	if (near)
		rb_error_set(err, RB_ERR_USAGE,
			     "%sexpected a command (%s), found \"%s\"; did you mean '%s'?",
			     prefix, buf_str(&list), word, near);
	else
		rb_error_set(err, RB_ERR_USAGE,
			     "%sexpected a command (%s), found \"%s\" (see runbook --help)",
			     prefix, buf_str(&list), word);
	buf_release(&list);
}

/* "rollback" or "apply, rehearse and rollback": who takes option o. */
static const char *takers(const struct cli_opt_info *o)
{
	static char list[256];
	size_t n = 0, k = 0, len = 0;

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		n += (o->cmds & C(cmds[i].cmd)) != 0;
	list[0] = '\0';
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (!(o->cmds & C(cmds[i].cmd)))
			continue;
		k++;
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s",
					k == 1 ? "" : k == n ? " and " : ", ",
					cmds[i].name);
		if (len >= sizeof(list))
			break;
	}
	return list;
}

/*
 * "--dryrun": the usage error, naming the closest option the command
 * takes, else the closest of any command (whose error then says which).
 */
static void unknown_option(enum cli_cmd cmd, const char *spelled,
			   struct rb_error *err)
{
	const char *mine[sizeof(opts) / sizeof(opts[0])];
	const char *all[sizeof(opts) / sizeof(opts[0])];
	const char *name = spelled, *near;
	const struct cli_cmd_info *ci = cmd_info(cmd);
	size_t eq;

	while (*name == '-')
		name++;
	eq = strcspn(name, "=");
	for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
		all[k] = opts[k].lng;
		mine[k] = opts[k].cmds & C(cmd) ? opts[k].lng : NULL;
	}
	{
		char word[130];

		snprintf(word, sizeof(word), "%.*s",
			 (int)(eq < 128 ? eq : 128), name);
		near = spelled[1] == '-' ? suggest_closest(word, mine,
				sizeof(opts) / sizeof(opts[0])) : NULL;
		if (!near && spelled[1] == '-')
			near = suggest_closest(word, all,
					       sizeof(opts) / sizeof(opts[0]));
	}
	if (near && !suggest_closest(near, mine,
				     sizeof(opts) / sizeof(opts[0]))) {
		const struct cli_opt_info *o = find_long(near, strlen(near));

		rb_error_set(err, RB_ERR_USAGE,
			     "expected an option of 'runbook %s' (see runbook %s --help), found unknown %s; did you mean --%s (an option of %s)?",
			     ci->name, ci->name, spelled, near, takers(o));
	} else if (near) {
		rb_error_set(err, RB_ERR_USAGE,
			     "expected an option of 'runbook %s' (see runbook %s --help), found unknown %s; did you mean --%s?",
			     ci->name, ci->name, spelled, near);
	}
	else
		rb_error_set(err, RB_ERR_USAGE,
			     "expected an option of 'runbook %s' (see runbook %s --help), found unknown %s",
			     ci->name, ci->name, spelled);
}

int cli_parse(struct cli *c, int argc, char **argv, struct rb_error *err)
{
	bool opts_done = false;
	int i = 1;

	memset(c, 0, sizeof(*c));
	c->forks = 20;
	c->log_n = 20;
	c->args = xcalloc((size_t)argc + 1, sizeof(char *));
	if (argc < 2) {
		rb_error_set(err, RB_ERR_USAGE,
			     "expected a command such as validate, plan or apply, found none (see runbook --help)");
		return -1;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		c->help = true;
		if (argc > 2) {
			for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++)
				if (strcmp(argv[2], cmds[k].name) == 0)
					c->cmd = cmds[k].cmd;
			if (c->cmd == CMD_NONE) {
				unknown_command(argv[2], "help: ", err);
				return -1;
			}
		}
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		c->version = true;
		return 0;
	}
	for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++)
		if (strcmp(argv[1], cmds[k].name) == 0)
			c->cmd = cmds[k].cmd;
	if (c->cmd == CMD_NONE) {
		unknown_command(argv[1], "", err);
		return -1;
	}
	for (i = 2; i < argc; i++) {
		const char *a = argv[i];
		const struct cli_opt_info *o;
		const char *val = NULL;

		if (opts_done || a[0] != '-' || a[1] == '\0') {
			c->args[c->n_args++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			opts_done = true;
			continue;
		}
		if (a[1] == '-') {
			const char *eq = strchr(a + 2, '=');
			size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);

			o = find_long(a + 2, len);
			if (o && eq)
				val = eq + 1;
		} else {
			o = find_short(a[1]);
			if (o && a[2])
				val = a + 2;
		}
		if (!o) {
			unknown_option(c->cmd, a, err);
			return -1;
		}
		if (o->arg && !val) {
			if (i + 1 >= argc) {
				rb_error_set(err, RB_ERR_USAGE,
					     "%s: expected %s after it, found nothing",
					     a, o->arg);
				return -1;
			}
			val = argv[++i];
		} else if (!o->arg && val) {
			rb_error_set(err, RB_ERR_USAGE,
				     "%s: expected no value, found \"%s\"", a, val);
			return -1;
		}
		if (apply_opt(c, o, val, a, err) < 0)
			return -1;
	}
	if (c->help)
		return 0;
	{
		const struct cli_cmd_info *ci = cmd_info(c->cmd);
		size_t min = ci->min_args;

		if (c->cmd == CMD_ROLLBACK && !c->last)
			min = 1;
		if (c->cmd == CMD_ROLLBACK && c->last && c->n_args) {
			rb_error_set(err, RB_ERR_USAGE,
				     "rollback: expected a change id or --last, found both");
			return -1;
		}
		if (c->n_args < min || c->n_args > ci->max_args) {
			rb_error_set(err, RB_ERR_USAGE,
				     "%s: expected arguments %s, found %zu argument%s (see runbook %s --help)",
				     ci->name, *ci->args ? ci->args : "none",
				     c->n_args, c->n_args == 1 ? "" : "s",
				     ci->name);
			return -1;
		}
	}
	if (getenv("NO_COLOR") && *getenv("NO_COLOR"))
		c->no_color = true;
	return 0;
}

void cli_release(struct cli *c)
{
	for (size_t i = 0; i < c->n_var_names; i++)
		free(c->var_names[i]);
	free(c->var_names);
	free(c->args);
	free(c->by_hand);
	free(c->serial);
	varset_release(&c->vars);
}
