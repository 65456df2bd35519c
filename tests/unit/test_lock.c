/*
 * Target locks: a second taker is refused with the holder named, and a
 * lock whose holder text names a dead process on this host is taken
 * over with a warning (stale), never for a live or a foreign holder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "lock.h"

#include "scratch.h"

struct fixture {
	char dir[SCRATCH_MAX];
	char host[256];
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	if (scratch_make(f->dir, "test_lock") < 0) {
		free(f);
		return -1;
	}
	if (gethostname(f->host, sizeof(f->host) - 1) < 0 || !f->host[0])
		snprintf(f->host, sizeof(f->host), "localhost");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	scratch_remove(f->dir);
	free(f);
	return 0;
}

/* Leaves holder text in target's lock file, as a holder that died would. */
static void write_holder(const struct fixture *f, const char *target,
			 const char *text)
{
	struct buf p = BUF_INIT;
	FILE *fp;

	buf_addf(&p, "%s/locks", f->dir);
	mkdir(buf_str(&p), 0700);
	buf_addf(&p, "/%s.lock", target);
	fp = fopen(buf_str(&p), "w");
	assert_non_null(fp);
	assert_true(fputs(text, fp) >= 0);
	assert_int_equal(fclose(fp), 0);
	buf_release(&p);
}

/* A pid that no process has now: a child that exited and was reaped. */
static long dead_pid(void)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return (long)pid;
}

static void test_lock_second_taker_is_busy(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = RB_ERROR_INIT;
	struct lock *l = NULL, *l2 = NULL;
	bool stale = true;
	char *info = NULL, *who;
	char pid[32];

	assert_int_equal(lock_take(f->dir, "web", "c-first", &l, &stale, &info,
				   &err), 0);
	assert_non_null(l);
	assert_false(stale);
	assert_null(info);

	/* a new open file description: flock conflicts within one process */
	assert_int_equal(lock_take(f->dir, "web", "c-second", &l2, &stale,
				   &info, &err), -1);
	assert_null(l2);
	assert_int_equal(err.cls, RB_ERR_BUSY);
	snprintf(pid, sizeof(pid), "pid %ld on ", (long)getpid());
	assert_non_null(strstr(err.msg, pid));
	assert_non_null(strstr(err.msg, f->host));
	assert_non_null(strstr(err.msg, "change c-first"));
	assert_null(strstr(err.msg, "c-second"));

	who = lock_holder(f->dir, "web");
	assert_non_null(who);
	assert_non_null(strstr(who, pid));
	free(who);

	/* another target is another lock */
	assert_int_equal(lock_take(f->dir, "db", "c-second", &l2, &stale,
				   &info, &err), 0);
	lock_release(l2);

	lock_release(l);
	assert_null(lock_holder(f->dir, "web"));
	/* released cleanly: no holder text left, so nothing stale */
	stale = true;
	assert_int_equal(lock_take(f->dir, "web", "c-third", &l, &stale, &info,
				   &err), 0);
	assert_false(stale);
	assert_null(info);
	lock_release(l);
}

static void test_lock_dead_holder_is_stale(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = RB_ERROR_INIT;
	struct buf text = BUF_INIT;
	struct lock *l = NULL;
	bool stale = false;
	char *info = NULL, *who;
	char pid[32];
	long dead = dead_pid();

	buf_addf(&text, "pid %ld on %s, user someone, change c-crashed, since 2024-01-02T03:04:05Z\n",
		 dead, f->host);
	write_holder(f, "web", buf_str(&text));
	assert_int_equal(lock_take(f->dir, "web", "c-new", &l, &stale, &info,
				   &err), 0);
	assert_true(stale);
	assert_non_null(info);
	snprintf(pid, sizeof(pid), "pid %ld on ", dead);
	assert_non_null(strstr(info, pid));
	assert_non_null(strstr(info, "change c-crashed"));
	free(info);

	/* the holder text is now this process's */
	who = lock_holder(f->dir, "web");
	assert_non_null(who);
	assert_non_null(strstr(who, "change c-new"));
	free(who);
	lock_release(l);
	buf_release(&text);
}

static void test_lock_other_holders_are_not_stale(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = RB_ERROR_INIT;
	struct buf text = BUF_INIT;
	long dead = dead_pid();
	char *owned[5];

	/* alive (this process), another host, a longer host name, junk */
	buf_addf(&text, "pid %ld on %s, user u, change c, since x\n",
		 (long)getpid(), f->host);
	owned[0] = buf_detach(&text);
	buf_addf(&text, "pid %ld on other-host.invalid, user u, change c, since x\n",
		 dead);
	owned[1] = buf_detach(&text);
	buf_addf(&text, "pid %ld on %sx, user u, change c, since x\n", dead,
		 f->host);
	owned[2] = buf_detach(&text);
	buf_addf(&text, "pid %ld on %s\n", dead, f->host);
	owned[3] = buf_detach(&text);
	buf_addf(&text, "pid -%ld on %s, user u, change c, since x\n", dead,
		 f->host);
	owned[4] = buf_detach(&text);

	for (size_t i = 0; i < 5; i++) {
		struct lock *l = NULL;
		bool stale = true;
		char *info = NULL;

		write_holder(f, "web", owned[i]);
		/* the flock is free: the lock is taken, but not as stale */
		assert_int_equal(lock_take(f->dir, "web", "c-new", &l, &stale,
					   &info, &err), 0);
		assert_false(stale);
		assert_null(info);
		lock_release(l);
		free(owned[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lock_second_taker_is_busy,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_dead_holder_is_stale,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_other_holders_are_not_stale,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
