/*
 * runbook: command table -> cmd_*(); errors -> exit codes. This is the
 * only file that prints errors or exits; everything below returns them.
 */
#include <errno.h>
#include <libssh2.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "apply.h"
#include "buf.h"
#include "cli.h"
#include "config.h"
#include "diag.h"
#include "error.h"
#include "json.h"
#include "load.h"
#include "plan.h"
#include "runbook.h"
#include "validate.h"

static const char retry_hint[] = "nothing was run; fix the file and run again";

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

static void json_diags(struct diag *d, const char *file, bool ok)
{
	struct buf b = BUF_INIT;

	buf_adds(&b, "{");
	json_kv(&b, "event", "validate", 1);
	json_kv(&b, "file", file, 0);
	buf_addf(&b, ",\"ok\":%s,\"problems\":[", ok ? "true" : "false");
	for (size_t i = 0; i < d->n; i++) {
		buf_addf(&b, "%s{\"line\":%u,\"column\":%u,\"message\":",
			 i ? "," : "", d->v[i].pos.line ? d->v[i].pos.line : 1,
			 d->v[i].pos.col ? d->v[i].pos.col : 1);
		json_str(&b, d->v[i].msg);
		buf_addc(&b, '}');
	}
	buf_adds(&b, "]}\n");
	fputs(buf_str(&b), stdout);
	buf_release(&b);
}

/*
 * Loads and validates one file. Returns the model, or NULL after
 * printing its problems (or filling err when it cannot be read).
 */
static struct runbook *load_checked(const struct cli *c, const char *file,
				    struct rb_error *err)
{
	struct runbook *rb = NULL;
	struct diag d;

	diag_init(&d, file);
	runbook_load(file, &rb, &d, err);
	if (rb)
		runbook_validate(rb, c->var_names, c->n_var_names, &d);
	if (diag_count(&d)) {
		runbook_free(rb);
		rb = NULL;
		if (c->json && c->cmd == CMD_VALIDATE) {
			diag_print(&d, stderr);
			json_diags(&d, file, false);
		} else {
			diag_print(&d, stderr);
		}
		if (err->cls == RB_OK)
			rb_error_set(err, RB_ERR_INVALID, "%s", retry_hint);
	}
	diag_release(&d);
	return rb;
}

static int cmd_validate(const struct cli *c)
{
	bool diagnosed = false;
	int code = 0;

	for (size_t i = 0; i < c->n_args; i++) {
		struct rb_error err = RB_ERROR_INIT;
		struct runbook *rb = load_checked(c, c->args[i], &err);

		if (!rb) {
			if (strcmp(err.msg, retry_hint) != 0) {
				/* unreadable: no diagnostics were printed */
				fprintf(stderr, "runbook: %s\n", err.msg);
				if (c->json) {
					struct diag d;
					struct src_pos start = { 1, 1 };

					diag_init(&d, c->args[i]);
					diag_at(&d, &start, "%s", err.msg);
					json_diags(&d, c->args[i], false);
					diag_release(&d);
				}
			}
			else
				diagnosed = true;
			code = RB_ERR_INVALID;
			continue;
		}
		if (c->json) {
			struct diag none;

			diag_init(&none, c->args[i]);
			json_diags(&none, c->args[i], true);
		} else if (!c->quiet) {
			printf("%s: ok (%zu preflight, %zu steps, %zu verify, %zu metrics, %zu target%s)\n",
			       c->args[i], rb->n_phase[PHASE_PREFLIGHT],
			       rb->n_phase[PHASE_STEPS],
			       rb->n_phase[PHASE_VERIFY],
			       rb->n_phase[PHASE_METRICS], rb->n_targets,
			       rb->n_targets == 1 ? "" : "s");
		}
		runbook_free(rb);
	}
	if (diagnosed)
		fprintf(stderr, "%s\n", retry_hint);
	return code;
}

static const struct target *pick_target(const struct runbook *rb,
					const char *name,
					struct rb_error *err)
{
	const struct target *t;
	struct buf list = BUF_INIT;

	if (!name && rb->n_targets == 1)
		return &rb->targets[0];
	if (name && (t = runbook_target(rb, name)))
		return t;
	for (size_t i = 0; i < rb->n_targets; i++)
		buf_addf(&list, "%s%s", i ? ", " : "", rb->targets[i].name);
	if (name)
		rb_error_set(err, RB_ERR_USAGE,
			     "--target: expected one of %s, found \"%s\"; nothing was run",
			     buf_str(&list), name);
	else
		rb_error_set(err, RB_ERR_USAGE,
			     "expected --target, one of %s (this runbook has several); nothing was run",
			     buf_str(&list));
	buf_release(&list);
	return NULL;
}

static int cmd_plan(const struct cli *c, struct rb_error *err)
{
	struct runbook *rb = load_checked(c, c->args[0], err);
	const struct target *t;
	int ret = -1;

	if (!rb)
		return -1;
	if ((t = pick_target(rb, c->target, err)) &&
	    plan_write(rb, t, &c->vars, c->json, stdout, err) == 0)
		ret = 0;
	runbook_free(rb);
	return ret;
}

static int cmd_apply(const struct cli *c, struct rb_error *err)
{
	struct runbook *rb = load_checked(c, c->args[0], err);
	struct apply_opts o;
	int code;

	if (!rb)
		return err->cls;
	memset(&o, 0, sizeof(o));
	if (!(o.target = pick_target(rb, c->target, err))) {
		runbook_free(rb);
		return err->cls;
	}
	o.cli_vars = &c->vars;
	o.json = c->json;
	o.quiet = c->quiet;
	o.verbose = c->verbose;
	o.color = !c->no_color && isatty(2);
	o.forks = c->forks;
	code = apply_run(rb, &o, err);
	runbook_free(rb);
	return code;
}

int main(int argc, char **argv)
{
	struct cli c;
	struct rb_error err = RB_ERROR_INIT;
	int code = 0;

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
		code = cmd_apply(&c, &err);
		break;
	default:
		rb_error_set(&err, RB_ERR_USAGE,
			     "'runbook %s' is not available in this version yet; nothing was run",
			     cli_cmd_name(c.cmd));
		code = RB_ERR_USAGE;
		break;
	}
	if (code && err.msg[0]) {
		if (strcmp(err.msg, retry_hint) == 0)
			fprintf(stderr, "%s\n", retry_hint);
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
