/*
 * The engine's immediate listener (the recorder's place): called before
 * and after every action, in order, with the record forms of commands.
 * The listener writes a marker file at each step-begin and the step's
 * command checks it exists, so the test proves the record comes before
 * the action.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apply.h"
#include "event.h"
#include "buf.h"
#include "diag.h"
#include "error.h"
#include "load.h"
#include "runbook.h"
#include "validate.h"
#include "vars.h"

struct trace {
	struct buf log;
	char dir[64];
	int fail_at;		/* make the hook fail at this event (0: never) */
	int n;
};

static int hook(void *ctx, const struct event *ev, struct rb_error *err)
{
	struct trace *t = ctx;
	const char *names[EV__COUNT] = { NULL };

	names[EV_OPEN] = "open";
	names[EV_STEP_BEGIN] = "step-begin";
	names[EV_STEP_END] = "step-end";
	names[EV_ROLLBACK_BEGIN] = "rollback-begin";
	names[EV_ROLLBACK_END] = "rollback-end";
	names[EV_CLOSE] = "close";
	/* every command reports its process group; not part of this log */
	if (ev->type == EV_PID) {
		assert_true(ev->pid > 1);
		assert_true(ev->start_time > 0);
		return 0;
	}
	if (!names[ev->type])
		return 0;	/* for people: batches, phases, stages */
	t->n++;
	buf_addf(&t->log, "%s", names[ev->type]);
	if (ev->name)
		buf_addf(&t->log, " %s", ev->name);
	if (ev->type == EV_STEP_END || ev->type == EV_ROLLBACK_END)
		buf_addf(&t->log, " %s", step_result_name(ev->result));
	if (ev->type == EV_CLOSE)
		buf_addf(&t->log, " %s", change_status_name(ev->status));
	/* commands reach the record with secrets as placeholders, never values */
	if (ev->command && strstr(ev->command, "{{ secrets.pw }}"))
		buf_adds(&t->log, " +placeholder");
	if ((ev->command && strstr(ev->command, "hunter2")) ||
	    (ev->rollback && strstr(ev->rollback, "hunter2")))
		buf_adds(&t->log, " LEAK");
	buf_addc(&t->log, '\n');
	if (ev->type == EV_STEP_BEGIN) {
		char path[128];
		FILE *fp;

		snprintf(path, sizeof(path), "%s/begun-%s", t->dir, ev->name);
		fp = fopen(path, "w");
		assert_non_null(fp);
		fclose(fp);
	}
	if (t->fail_at && t->n == t->fail_at) {
		rb_error_set(err, RB_ERR_PARTIAL, "disk full (test)");
		return -1;
	}
	return 0;
}

static int run(const char *yaml, struct trace *t, struct rb_error *err)
{
	struct runbook *rb = NULL;
	struct diag d;
	struct varset vars = VARSET_INIT;
	struct apply_opts o;
	struct listener l = { hook, t, false, 0 };
	int code;

	diag_init(&d, "test.yml");
	assert_int_equal(runbook_load_mem("test.yml", yaml, strlen(yaml), &rb,
					  &d), 0);
	assert_int_equal(runbook_validate(rb, NULL, 0, &d), 0);
	memset(&o, 0, sizeof(o));
	o.target = &rb->targets[0];
	o.cli_vars = &vars;
	o.listeners = &l;
	o.n_listeners = 1;
	code = apply_run(rb, &o, err);
	runbook_free(rb);
	diag_release(&d);
	return code;
}

static const char head[] =
	"version: 1\nname: t\nowner: o\nreason: r\nexpected: e\n"
	"secrets: { pw: { env: TEST_APPLY_PW } }\n";

static void test_hook_order_on_failure(void **state)
{
	struct trace t = { BUF_INIT, "", 0, 0 };
	struct rb_error err = RB_ERROR_INIT;
	struct buf y = BUF_INIT;

	(void)state;
	assert_non_null(mkdtemp(strcpy(t.dir, "/tmp/rbapplyXXXXXX")));
	setenv("TEST_APPLY_PW", "hunter2", 1);
	buf_addf(&y, "%ssteps:\n"
		 "  - name: a\n    run: test -f %s/begun-a\n    rollback: \"true\"\n"
		 "  - name: b\n    run: test -f %s/begun-b && echo {{ secrets.pw }} >/dev/null\n    rollback: \"true\"\n"
		 "  - name: c\n    run: \"false\"\n    rollback: none\n",
		 head, t.dir, t.dir);
	assert_int_equal(run(buf_str(&y), &t, &err), RB_ERR_FAILED);
	assert_string_equal(buf_str(&t.log),
		"open\n"
		"step-begin a\nstep-end a ok\n"
		"step-begin b +placeholder\nstep-end b ok +placeholder\n"
		"step-begin c\nstep-end c failed\n"
		"rollback-end c rolled-back\n"	/* rollback: none, recorded too */
		"rollback-begin b\nrollback-end b rolled-back\n"
		"rollback-begin a\nrollback-end a rolled-back\n"
		"close rolled-back\n");
	assert_non_null(strstr(err.msg, "step 'c'"));
	buf_release(&t.log);
	buf_release(&y);
}

/* A hook that cannot record stops new work, like any failure. */
static void test_hook_failure_stops_work(void **state)
{
	struct trace t = { BUF_INIT, "", 4, 0 };	/* fails at step-begin b */
	struct rb_error err = RB_ERROR_INIT;
	struct buf y = BUF_INIT;
	char path[128];

	(void)state;
	assert_non_null(mkdtemp(strcpy(t.dir, "/tmp/rbapplyXXXXXX")));
	setenv("TEST_APPLY_PW", "hunter2", 1);
	buf_addf(&y, "%ssteps:\n"
		 "  - name: a\n    run: \"true\"\n    rollback: \"true\"\n"
		 "  - name: b\n    run: touch %s/ran-b\n    rollback: \"true\"\n",
		 head, t.dir);
	assert_int_equal(run(buf_str(&y), &t, &err), RB_ERR_FAILED);
	snprintf(path, sizeof(path), "%s/ran-b", t.dir);
	assert_int_not_equal(access(path, F_OK), 0);
	assert_non_null(strstr(err.msg, "cannot record"));
	assert_non_null(strstr(buf_str(&t.log), "rollback-end a rolled-back"));
	buf_release(&t.log);
	buf_release(&y);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hook_order_on_failure),
		cmocka_unit_test(test_hook_failure_stops_work),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
