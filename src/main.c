/*
 * runbook: parse the command line, dispatch to the command, print the
 * one error and exit with its code. The commands are in commands.c;
 * nothing here knows what a change is.
 */
#include <errno.h>
#include <git2.h>
#include <libssh2.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "cli.h"
#include "commands.h"
#include "config.h"
#include "error.h"

static void print_version(void)
{
	int maj, min, rev;
	char pcre[64] = "";

	git_libgit2_version(&maj, &min, &rev);
	pcre2_config(PCRE2_CONFIG_VERSION, pcre);
	printf("runbook %s\nlibyaml %s, libgit2 %d.%d.%d, libssh2 %s, PCRE2 %s\n",
	       RUNBOOK_VERSION, yaml_get_version_string(), maj, min, rev,
	       libssh2_version(0), pcre);
}

int main(int argc, char **argv)
{
	struct cli c;
	struct rb_error err = RB_ERROR_INIT;
	int code = 0;

	/*
	 * A write past the file-size limit (ulimit -f) fails with EFBIG,
	 * which every writer handles (the journal's stops new work and
	 * rolls back), instead of killing runbook between two records.
	 * Commands start with every signal at its default (exec_local.c).
	 */
	signal(SIGXFSZ, SIG_IGN);
	if (cli_parse(&c, argc, argv, &err) < 0) {
		fprintf(stderr, "runbook: %s\n", err.msg);
		cli_release(&c);
		return RB_ERR_USAGE;
	}
	if (c.version) {
		print_version();
		goto out;
	}
	if (c.help) {
		if (c.cmd == CMD_NONE)
			cli_usage(stdout);
		else
			cli_cmd_help(stdout, c.cmd);
		goto out;
	}
	switch (c.cmd) {
	case CMD_VALIDATE:
		code = cmd_validate(&c);
		goto out;
	case CMD_PLAN:
		if (cmd_plan(&c, &err) < 0)
			code = err.cls ? (int)err.cls : 1;
		break;
	case CMD_APPLY:
	case CMD_REHEARSE:
		code = cmd_apply(&c, &err);
		break;
	case CMD_ROLLBACK:
		code = cmd_rollback(&c, &err);
		break;
	case CMD_STATUS:
		code = cmd_status(&c, &err);
		break;
	case CMD_LOG:
		code = cmd_log(&c, &err);
		break;
	case CMD_SHOW:
		code = cmd_show(&c, &err);
		break;
	case CMD_NEW:
		code = cmd_new(&c, &err);
		break;
	case CMD_COMPLETION:
		code = cmd_completion(&c, &err);
		break;
	case CMD_SYNC:
		code = cmd_sync(&c, &err);
		break;
	case CMD_UNLOCK:
		code = cmd_unlock(&c, &err);
		break;
	default:
		rb_error_set(&err, RB_ERR_USAGE,
			     "'runbook %s' is not available in this version yet; nothing was run",
			     cli_cmd_name(c.cmd));
		code = RB_ERR_USAGE;
		break;
	}
	if (code && err.msg[0]) {
		if (strcmp(err.msg, cmd_retry_hint) == 0)
			fprintf(stderr, "%s\n", cmd_retry_hint);
		else
			fprintf(stderr, "runbook: %s\n", err.msg);
	}
out:
	fflush(stdout);
	if (ferror(stdout)) {
		/* apply's code says what happened to the target: keep it */
		fprintf(stderr, "runbook: could not write all output to stdout: %s\n",
			strerror(errno));
		if (c.cmd != CMD_APPLY && !code)
			code = 1;
	}
	cli_release(&c);
	return code;
}
