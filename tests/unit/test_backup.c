/*
 * Backups (backup.h): which paths are accepted, the step's directory
 * name, reading the manifest back, and the shell texts run by a real
 * /bin/sh on hostile path names (nothing of a name becomes syntax), with
 * the restore text a template that renders to itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backup.h"
#include "buf.h"
#include "error.h"
#include "template.h"

static void test_path_ok(void **state)
{
	static const char *const good[] = {
		"/etc/app.conf", "/srv/with space/x", "/a/.hidden", "/a/b..c",
		"/a/b/", "/'q'/$(x)", "/x;rm -rf /",
	};
	static const char *const bad[] = {
		"", "etc/app.conf", "/", "//", "/a/../b", "/a/./b", "/..",
		"/a/.", "/a\nb", "/a ", "/a\t", "~/x",
	};
	const char *why;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		assert_true(backup_path_ok(good[i], &why));
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		why = NULL;
		assert_false(backup_path_ok(bad[i], &why));
		assert_non_null(why);
	}
}

static void test_step_dir(void **state)
{
	struct step s = { 0 };
	struct buf b = BUF_INIT;

	(void)state;
	s.index = 0;
	s.name.s = (char *)"Edit the config!";
	backup_step_dir(&s, &b);
	assert_string_equal(buf_str(&b), "01-edit-the-config");
	buf_reset(&b);
	s.index = 11;
	s.name.s = (char *)"../../etc {{ x }}";
	backup_step_dir(&s, &b);
	assert_string_equal(buf_str(&b), "12-..-..-etc-x");
	buf_reset(&b);
	s.name.s = (char *)"été";
	backup_step_dir(&s, &b);
	assert_string_equal(buf_str(&b), "12-t");
	buf_reset(&b);
	s.name.s = (char *)"***";
	backup_step_dir(&s, &b);
	assert_string_equal(buf_str(&b), "12-step");
	buf_release(&b);
}

#define SUM "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_parse(void **state)
{
	struct backup_manifest m;
	const char *why;

	(void)state;
	assert_int_equal(backup_parse("dir /b/x/01-s\nsum " SUM "\n"
				      "1 dir 300 " SUM " /etc/app\n"
				      "2 missing 0 - /etc/new file\n"
				      "3 file 12 " SUM " /etc/a b\n", &m, &why), 0);
	assert_string_equal(m.dir, "/b/x/01-s");
	assert_string_equal(m.sum, SUM);
	assert_int_equal(m.n_paths, 3);
	assert_int_equal(m.n_missing, 1);
	assert_int_equal(m.bytes, 312);
	backup_manifest_release(&m);

	assert_int_equal(backup_parse("", &m, &why), -1);
	assert_int_equal(backup_parse("dir /b\nsum abc\n1 file 1 " SUM " /a\n",
				      &m, &why), -1);
	assert_int_equal(backup_parse("dir /b\nsum " SUM "\n", &m, &why), -1);
	assert_int_equal(backup_parse("dir /b\nsum " SUM "\n2 file 1 " SUM " /a\n",
				      &m, &why), -1);	/* numbered from 1 */
	assert_int_equal(backup_parse("dir /b\nsum " SUM "\n1 file 1 nothex /a\n",
				      &m, &why), -1);
	assert_int_equal(backup_parse("dir /b\nsum " SUM "\n1 file 1 " SUM " a\n",
				      &m, &why), -1);	/* not absolute */
	assert_int_equal(backup_parse("dir /b/{{ x }}\nsum " SUM "\n1 file 1 " SUM " /a\n",
				      &m, &why), -1);
	assert_int_equal(backup_parse("dir /b\nsum " SUM "\n1 file 1 " SUM " /a",
				      &m, &why), -1);	/* cut short */
}

/* Runs text with /bin/sh; returns its exit status, stdout in out. */
static int sh(const char *text, struct buf *out)
{
	char cmd[] = "/tmp/runbook-test-backup-XXXXXX";
	char line[4096];
	FILE *f;
	int fd = mkstemp(cmd), st;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	snprintf(line, sizeof(line), "/bin/sh %s 2>/dev/null", cmd);
	f = popen(line, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		buf_adds(out, line);
	st = pclose(f);
	unlink(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *lookup_none(void *ctx, const char *name)
{
	(void)ctx;
	(void)name;
	return NULL;
}

static void test_scripts_with_hostile_names(void **state)
{
	char root[] = "/tmp/runbook-test-backup-XXXXXX";
	struct buf p[3] = { BUF_INIT, BUF_INIT, BUF_INIT }, bk = BUF_INIT;
	struct buf out = BUF_INIT, rs = BUF_INIT, again = BUF_INIT, cmd = BUF_INIT;
	struct rb_error err = RB_ERROR_INIT;
	struct backup_manifest m;
	struct step s = { 0 };
	struct stat st;
	char *paths[3];
	const char *why;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(root));
	buf_addf(&p[0], "%s/it's $(touch runbook-backup-pwned) `x` ; a", root);
	buf_addf(&p[1], "%s/not there \"{{ x }}\"", root);
	buf_addf(&p[2], "%s/-n", root);
	for (int i = 0; i < 3; i++)
		paths[i] = p[i].data;
	f = fopen(paths[0], "w");
	assert_non_null(f);
	fputs("secret\n", f);
	fclose(f);
	chmod(paths[0], 0640);
	f = fopen(paths[2], "w");
	assert_non_null(f);
	fclose(f);
	buf_addf(&bk, "%s/bk", root);
	s.name.s = (char *)"hostile";
	backup_script(&cmd, buf_str(&bk), "20261205T000000Z-t-0123abcd", &s,
		      paths, 3);
	assert_int_equal(sh(buf_str(&cmd), &out), 0);
	assert_int_equal(backup_parse(buf_str(&out), &m, &why), 0);
	assert_int_equal(m.n_paths, 3);
	assert_int_equal(m.n_missing, 1);
	assert_non_null(strstr(buf_str(&out), paths[0]));
	assert_int_not_equal(stat("runbook-backup-pwned", &st), 0);	/* never ran */
	/* the backup is private */
	assert_int_equal(stat(m.dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);

	/* the restore text renders to itself, and puts the file back */
	backup_restore_script(&rs, m.dir, m.sum);
	assert_null(strstr(buf_str(&rs), "{{"));
	assert_int_equal(tpl_render(buf_str(&rs), TPL_SHELL, TPL_SECRET_KEEP,
				    lookup_none, NULL, &again, &err), 0);
	assert_string_equal(buf_str(&again), buf_str(&rs));
	unlink(paths[0]);
	f = fopen(paths[1], "w");	/* did not exist: removed */
	assert_non_null(f);
	fclose(f);
	buf_reset(&out);
	assert_int_equal(sh(buf_str(&rs), &out), 0);
	assert_int_equal(stat(paths[0], &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(st.st_size, 7);
	assert_int_not_equal(stat(paths[1], &st), 0);

	/* a changed manifest is refused with exit 3 */
	buf_reset(&cmd);
	buf_addf(&cmd, "echo >> '%s/manifest'", m.dir);
	buf_reset(&out);
	assert_int_equal(sh(buf_str(&cmd), &out), 0);
	buf_reset(&out);
	assert_int_equal(sh(buf_str(&rs), &out), BACKUP_REFUSED);

	buf_reset(&cmd);
	buf_addf(&cmd, "rm -rf '%s'", root);
	buf_reset(&out);
	sh(buf_str(&cmd), &out);
	backup_manifest_release(&m);
	for (int i = 0; i < 3; i++)
		buf_release(&p[i]);
	buf_release(&bk);
	buf_release(&out);
	buf_release(&rs);
	buf_release(&again);
	buf_release(&cmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_ok),
		cmocka_unit_test(test_step_dir),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_scripts_with_hostile_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
