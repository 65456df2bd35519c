/*
 * The text of a new runbook. It is a template of the format, not of a
 * change: it must stay valid as the format grows, which
 * tests/e2e/new.sh checks with validate and plan.
 */
#include "skeleton.h"

#include <string.h>

#include "buf.h"

bool skeleton_name_ok(const char *name)
{
	if (!*name || strlen(name) > 64)
		return false;
	if (!((*name >= 'a' && *name <= 'z') || (*name >= '0' && *name <= '9')))
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789._-") ==
	       strlen(name);
}

static const char body[] =
	"version: 1\n"
	"# The change's name: [a-z0-9][a-z0-9._-]*; it is part of every change id.\n"
	"name: @NAME@\n"
	"# Who answers for this change, and why it is made: both go into the note.\n"
	"owner: Your Team <team@example.com>\n"
	"reason: Say why this change is made (a ticket or incident helps)\n"
	"# What should be true afterwards; verify below checks it.\n"
	"expected: Say what is true once the change is done\n"
	"\n"
	"# Where it runs. Without targets the one target is `local`, this machine.\n"
	"# Hosts are user@host[:port] or a name from ~/.ssh/config.\n"
	"# targets:\n"
	"#   staging:\n"
	"#     hosts: [local]\n"
	"#   production:\n"
	"#     hosts: [deploy@app1.example.com, deploy@app2.example.com]\n"
	"#     serial: 1              # hosts per batch: a number or \"25%\"\n"
	"\n"
	"# Values for {{ name }} in commands; --var name=value wins over them.\n"
	"# Each is inserted shell-quoted, so a value never becomes shell syntax.\n"
	"vars:\n"
	"  release: \"1.0.0\"\n"
	"\n"
	"# Secrets are read from the environment or a file, never written anywhere.\n"
	"# secrets:\n"
	"#   db_password: { env: DB_PASSWORD }\n"
	"\n"
	"# Read-only checks before anything changes. A failure stops the run with\n"
	"# nothing to undo. Their output is the baseline that `runbook rehearse`\n"
	"# compares after rolling back.\n"
	"preflight:\n"
	"  - name: current release\n"
	"    run: echo \"current=none\"\n"
	"    capture:\n"
	"      previous: '^current=(\\S+)$'   # a variable for later commands\n"
	"\n"
	"# The change itself. Every step says how to undo it (or `rollback: none`\n"
	"# on purpose). When a step fails, the steps done so far are rolled back,\n"
	"# newest first.\n"
	"steps:\n"
	"  - name: install release\n"
	"    run: echo installing {{ release }}\n"
	"    expect: { exit: 0, stdout: '^installing ' }\n"
	"    rollback: echo restoring {{ previous }}\n"
	"    timeout: 5m\n"
	"  - name: announce\n"
	"    run: echo \"{{ runbook.name }} {{ release }} on {{ target }}\"\n"
	"    rollback: none\n"
	"\n"
	"# Read-only checks after the steps. A failure rolls everything back.\n"
	"verify:\n"
	"  - name: release is live\n"
	"    run: echo \"live={{ release }}\"\n"
	"    expect: { stdout: '^live=' }\n"
	"    retries: 3\n"
	"    retry_delay: 2s\n";

void skeleton_write(const char *name, const char *file, const char *schema,
		    struct buf *out)
{
	const char *at = strstr(body, "@NAME@");

	if (schema)
		buf_addf(out, "# yaml-language-server: $schema=%s\n", schema);
	buf_addf(out,
		 "# %s: a runbook made by `runbook new`. Replace the echo commands with\n"
		 "# the real ones, then:\n"
		 "#   runbook validate %s    check the file; runs nothing\n"
		 "#   runbook plan %s        the commands, rendered, per host\n"
		 "#   runbook rehearse %s    apply, roll back, compare the baseline\n"
		 "#   runbook apply %s       apply; on failure everything is undone\n"
		 "# The format is described in runbook(5).\n",
		 name, file, file, file, file);
	buf_add(out, body, (size_t)(at - body));
	buf_adds(out, name);
	buf_adds(out, at + 6);
}
