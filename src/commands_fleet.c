/*
 * The command layer's part of fleets (docs/fleets.md): the inventory
 * joined to the runbook before validation, its problems printed; the
 * question a target with `confirm: true` asks; `--wait` for a busy
 * target. Prints, like the rest of the command layer, on stderr.
 */
#include "commands_fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "diag.h"
#include "error.h"
#include "inventory.h"
#include "runbook.h"
#include "sys.h"

/* Prints d as `validate --json` does (docs/format.md). */
static void json_diags(const struct diag *d, const char *file, bool ok)
{
	struct buf b = BUF_INIT;

	diag_json(d, file, ok, &b);
	fputs(buf_str(&b), stdout);
	buf_release(&b);
}

int cmd_inventory(const struct cli *c, struct runbook *rb, struct diag *d,
		  struct rb_error *err)
{
	struct inventory *inv = NULL;
	char *path = NULL;
	struct diag di;
	int ret = 0;

	if (inventory_path(rb, c->inventory, &path, d) < 0)
		return -1;
	if (!path)
		return 0;
	diag_init(&di, path);
	if (inventory_load(path, &inv, &di, err) < 0)
		ret = -1;
	if (diag_count(&di))
		diag_print(&di, stderr);
	if (inv)
		inventory_merge(rb, inv, d);
	inventory_free(inv);
	diag_release(&di);
	free(path);
	return ret;
}

int cmd_validate_inventory(const struct cli *c, const char *file)
{
	struct rb_error err = RB_ERROR_INIT;
	struct inventory *inv = NULL;
	size_t hosts = 0;
	struct diag d;
	int code = 0;

	diag_init(&d, file);
	if (inventory_load(file, &inv, &d, &err) < 0) {
		code = RB_ERR_INVALID;
		if (!diag_count(&d)) {
			struct src_pos start = { 1, 1 };

			fprintf(stderr, "runbook: %s\n", err.msg);
			diag_at(&d, &start, "%s", err.msg);
		} else {
			diag_print(&d, stderr);
		}
		if (c->json)
			json_diags(&d, file, false);
	} else if (c->json) {
		json_diags(&d, file, true);
	} else if (!c->quiet) {
		for (size_t i = 0; i < inv->n_targets; i++)
			hosts += inv->targets[i].n_hosts;
		printf("%s: ok (inventory: %zu target%s, %zu host%s)\n", file,
		       inv->n_targets, inv->n_targets == 1 ? "" : "s", hosts,
		       hosts == 1 ? "" : "s");
	}
	inventory_free(inv);
	diag_release(&d);
	return code;
}

int cmd_confirm(const struct cli *c, const char *target,
		const struct strvec *hosts, const char *reason,
		const char *what, struct rb_error *err)
{
	char answer[128] = "";
	size_t len;

	if (c->yes) {
		if (!c->quiet)
			fprintf(stderr, "runbook: target %s asks for confirmation; --yes given\n",
				target);
		return 0;
	}
	fprintf(stderr, "runbook: %s on target %s asks for confirmation (confirm: true)\n  hosts: ",
		what, target);
	for (size_t h = 0; h < hosts->n; h++)
		fprintf(stderr, "%s%s", h ? ", " : "", hosts->v[h]);
	fprintf(stderr, "\n  reason: %s\n", reason ? reason : "");
	if (!isatty(0) || !isatty(2)) {
		rb_error_set(err, RB_ERR_USAGE,
			     "target %s has confirm: true and there is no terminal to ask on; nothing was run; add --yes to go on without asking",
			     target);
		return -1;
	}
	fprintf(stderr, "runbook: type the target's name (%s) to go on: ", target);
	fflush(stderr);
	if (!fgets(answer, sizeof(answer), stdin))
		answer[0] = '\0';
	len = strlen(answer);
	while (len && (answer[len - 1] == '\n' || answer[len - 1] == '\r'))
		answer[--len] = '\0';
	if (strcmp(answer, target) == 0)
		return 0;
	rb_error_set(err, RB_ERR_USAGE,
		     "not confirmed: expected the target's name \"%s\", found \"%.64s\"; nothing was run; safe to run again",
		     target, answer);
	return -1;
}

int cmd_confirm_target(const struct cli *c, const struct target *t,
		       const char *reason, struct rb_error *err)
{
	struct strvec hosts = STRVEC_INIT;
	int ret;

	if (!t->confirm)
		return 0;
	for (size_t h = 0; h < t->n_hosts; h++)
		strvec_push(&hosts, t->hosts[h].spec);
	ret = cmd_confirm(c, t->name, &hosts, reason,
			  c->cmd == CMD_REHEARSE ? "rehearse" : "apply", err);
	strvec_release(&hosts);
	return ret;
}

bool cmd_wait_busy(const struct cli *c, unsigned long long *deadline,
		   const struct rb_error *err, char **shown)
{
	unsigned long long now = sys_now_ms();

	if (!c->wait_ms || err->cls != RB_ERR_BUSY ||
	    strstr(err->msg, "unfinished change"))	/* it will not end by itself */
		return false;
	if (!*deadline)
		*deadline = now + c->wait_ms;
	if (now >= *deadline)
		return false;
	if (!*shown || strcmp(*shown, err->msg) != 0) {
		char left[32];

		format_duration((unsigned)(*deadline - now), left);
		fprintf(stderr, "runbook: waiting up to %s: %s\n", left, err->msg);
		free(*shown);
		*shown = xstrdup(err->msg);
	}
	usleep(now + 500 < *deadline ? 500000 : (useconds_t)((*deadline - now) * 1000));
	return true;
}
