/*
 * ssh_config lookups against files written into a fresh temp directory
 * that is also $HOME: block order and first-value-wins, patterns and
 * negation, the line syntax, token expansion, Include and Match, and
 * that every malformed file fails with "path:line:" and never crashes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "sshconfig.h"

#include "scratch.h"

struct tdir {
	char dir[SCRATCH_MAX];
};

static int setup(void **state)
{
	struct tdir *t = calloc(1, sizeof(*t));
	char ssh[128];

	if (!t)
		return -1;
	if (scratch_make(t->dir, "test_sshconfig") < 0)
		return -1;
	setenv("HOME", t->dir, 1);
	snprintf(ssh, sizeof(ssh), "%s/.ssh", t->dir);
	if (mkdir(ssh, 0700) < 0)
		return -1;
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tdir *t = *state;

	scratch_remove(t->dir);
	free(t);
	return 0;
}

/* Writes dir/rel (mode 0600) and returns its path, to be freed. */
static char *put_bytes(const struct tdir *t, const char *rel,
		       const void *data, size_t len)
{
	struct buf p = BUF_INIT;
	int fd;

	buf_addf(&p, "%s/%s", t->dir, rel);
	fd = open(buf_str(&p), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, 0600), 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	return buf_detach(&p);
}

static char *put(const struct tdir *t, const char *rel, const char *text)
{
	return put_bytes(t, rel, text, strlen(text));
}

static void sub(const struct tdir *t, const char *rel)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", t->dir, rel);
	assert_int_equal(mkdir(p, 0700), 0);
}

/* Looks host up in path, which must succeed. */
static void ok(const char *path, const char *host, struct ssh_host_config *c)
{
	struct rb_error err = RB_ERROR_INIT;
	int r = sshconfig_lookup(path, host, c, &err);

	if (r != 0)
		print_error("unexpected failure: %s\n", err.msg);
	assert_int_equal(r, 0);
}

/*
 * Looks host up in path, which must fail with a message that starts
 * "where:line: " (where: the file at fault) and holds want.
 */
static void bad_at(const char *path, const char *where, const char *host,
		   unsigned line, const char *want)
{
	struct ssh_host_config c = SSH_HOST_CONFIG_INIT;
	struct rb_error err = RB_ERROR_INIT;
	char at[512];

	snprintf(at, sizeof(at), "%s:%u: ", where, line);
	assert_int_equal(sshconfig_lookup(path, host, &c, &err), -1);
	assert_int_equal(err.cls, RB_ERR_INVALID);
	if (strncmp(err.msg, at, strlen(at)) != 0 || !strstr(err.msg, want))
		print_error("want \"%s...%s...\", got \"%s\"\n", at, want,
			    err.msg);
	assert_memory_equal(err.msg, at, strlen(at));
	assert_non_null(strstr(err.msg, want));
	/* out untouched */
	assert_null(c.hostname);
	assert_int_equal(c.identity_files.n, 0);
}

static void bad(const char *path, const char *host, unsigned line,
		const char *want)
{
	bad_at(path, path, host, line, want);
}

static void no_ids(const struct ssh_host_config *c)
{
	assert_int_equal(c->identity_files.n, 0);
}

static const char *local_user(void)
{
	struct passwd *pw = getpwuid(getuid());

	return pw ? pw->pw_name : getenv("USER");
}

static void test_first_value_wins_across_blocks(void **state)
{
	struct ssh_host_config c = SSH_HOST_CONFIG_INIT;
	char *cfg = put(*state, "config",
			"Host web\n"
			"  HostName web.internal\n"
			"  User deploy\n"
			"\n"
			"Host db web\n"
			"  HostName other.internal\n"
			"  Port 2222\n"
			"  User nobody\n"
			"\n"
			"Host *\n"
			"  Port 22\n"
			"  User fallback\n"
			"  HostName default.example\n");

	ok(cfg, "web", &c);
	assert_string_equal(c.hostname, "web.internal");
	assert_string_equal(c.user, "deploy");
	assert_int_equal(c.port, 2222);
	no_ids(&c);
	sshconfig_release(&c);

	ok(cfg, "db", &c);
	assert_string_equal(c.hostname, "other.internal");
	assert_string_equal(c.user, "nobody");
	assert_int_equal(c.port, 2222);
	sshconfig_release(&c);

	ok(cfg, "mail", &c);
	assert_string_equal(c.hostname, "default.example");
	assert_string_equal(c.user, "fallback");
	assert_int_equal(c.port, 22);
	sshconfig_release(&c);
	assert_null(c.hostname);
	assert_null(c.user);
	assert_int_equal(c.port, 0);
	free(cfg);
}

static void test_lines_before_any_host_apply_to_all(void **state)
{
	struct ssh_host_config c = SSH_HOST_CONFIG_INIT;
	char *cfg = put(*state, "config",
			"User early\n"
			"Host web\n"
			"  User late\n"
			"  Port 2022\n");

	ok(cfg, "web", &c);
	assert_string_equal(c.user, "early");
	assert_int_equal(c.port, 2022);
	sshconfig_release(&c);
	ok(cfg, "db", &c);
	assert_string_equal(c.user, "early");
	assert_int_equal(c.port, 0);
	assert_null(c.hostname);
	sshconfig_release(&c);
	free(cfg);
}

static void test_negation_and_wildcards(void **state)
{
	struct ssh_host_config c = SSH_HOST_CONFIG_INIT;
	char *cfg = put(*state, "config",
			"Host !nothing\n"
			"  HostName never.example\n"
			"Host * !bastion\n"
			"  ProxyJump bastion\n"
			"  User inner\n"
			"Host web??\n"
			"  Port 2200\n"
			"Host *.prod\n"
			"  Port 2300\n"
			"Host *\n"
			"  User outer\n");

	ok(cfg, "bastion", &c);
	assert_string_equal(c.user, "outer");
	assert_null(c.hostname);
	sshconfig_release(&c);

	ok(cfg, "web01", &c);
	assert_string_equal(c.user, "inner");
	assert_int_equal(c.port, 2200);
	assert_null(c.hostname);
	sshconfig_release(&c);

	ok(cfg, "web1", &c);
	assert_int_equal(c.port, 0);
	sshconfig_release(&c);
	ok(cfg, "web123", &c);
	assert_int_equal(c.port, 0);
	sshconfig_release(&c);

	ok(cfg, "a.b.prod", &c);
	assert_int_equal(c.port, 2300);
	sshconfig_release(&c);
	/* Host patterns are case-sensitive, as in ssh */
	ok(cfg, "WEB01", &c);
	assert_int_equal(c.port, 0);
	sshconfig_release(&c);
	free(cfg);
}

static void test_line_syntax(void **state)
{
	struct ssh_host_config c = SSH_HOST_CONFIG_INIT;
	char *cfg = put(*state, "config",
			"# a comment\n"
			"   # an indented comment\n"
			"HOST=quoted\n"
			"\tHOSTNAME = \"my host.example\"\n"
			"\tuser=\"deploy user\"\n"
			"\tpOrT=2022   # trailing comment\n"
			"\tIdentityFile \"/keys/with space\"\r\n"
			"\tidentityfile='/keys/single'\n"
			"\tIdentityFile /keys/a\\\"b\n"
			"\tIdentityFile /keys/x#y\n"
			"\tIdentityFile=  /keys/eq   \t\n"
			"\tSendEnv LANG LC_*\n"
			"\tIdentityFile==/keys/twice\n"
			"Host other\n"
			"  User no\n");

	ok(cfg, "quoted", &c);
	assert_string_equal(c.hostname, "my host.example");
	assert_string_equal(c.user, "deploy user");
	assert_int_equal(c.port, 2022);
	assert_int_equal(c.identity_files.n, 6);
	assert_string_equal(c.identity_files.v[0], "/keys/with space");
	assert_string_equal(c.identity_files.v[1], "/keys/single");
	assert_string_equal(c.identity_files.v[2], "/keys/a\"b");
	assert_string_equal(c.identity_files.v[3], "/keys/x#y");
	assert_string_equal(c.identity_files.v[4], "/keys/eq");
	/* only one '=' separates */
	assert_string_equal(c.identity_files.v[5], "=/keys/twice");
	assert_null(c.identity_files.v[6]);
	sshconfig_release(&c);
	free(cfg);
}

static void test_identity_files_accumulate_and_expand(void **state)
{
	struct tdir *t = *state;
	struct ssh_host_config c = SSH_HOST_CONFIG_INIT;
	char want[1024];
	char *cfg;

	setenv("SSHCFG_TEST_KEYS", "/env/keys", 1);
	cfg = put(t, "config",
		  "Host srv\n"
		  "  HostName %h.example.com\n"
		  "  User alice\n"
		  "  IdentityFile ~/.ssh/id_%h\n"
		  "  IdentityFile %d/keys/%r@%h:%p\n"
		  "Host UP\n"
		  "  HostName %h.EXAMPLE\n"
		  "  IdentityFile /k/%h/%n\n"
		  "Host *\n"
		  "  IdentityFile ~/.ssh/id_%u_%n_%%\n"
		  "  IdentityFile ~/.ssh/id_%h\n"
		  "  Port 2200\n"
		  "  IdentityFile ${SSHCFG_TEST_KEYS}/env\n"
		  "  IdentityFile ~root/x\n");

	ok(cfg, "srv", &c);
	assert_string_equal(c.hostname, "srv.example.com");
	assert_int_equal(c.identity_files.n, 5);
	snprintf(want, sizeof(want), "%s/.ssh/id_srv.example.com", t->dir);
	assert_string_equal(c.identity_files.v[0], want);
	snprintf(want, sizeof(want),
		 "%s/keys/alice@srv.example.com:2200", t->dir);
	assert_string_equal(c.identity_files.v[1], want);
	snprintf(want, sizeof(want), "%s/.ssh/id_%s_srv_%%", t->dir,
		 local_user());
	assert_string_equal(c.identity_files.v[2], want);
	/* the duplicate ~/.ssh/id_%h was dropped */
	assert_string_equal(c.identity_files.v[3], "/env/keys/env");
	assert_string_equal(c.identity_files.v[4], "/root/x");
	sshconfig_release(&c);

	/* %h is the final host name in lower case, as ssh uses it */
	ok(cfg, "UP", &c);
	assert_string_equal(c.hostname, "UP.EXAMPLE");
	assert_string_equal(c.identity_files.v[0], "/k/up.example/UP");
	sshconfig_release(&c);
	free(cfg);
}

static void test_token_errors(void **state)
{
	struct ssh_host_config c = SSH_HOST_CONFIG_INIT;
	char *cfg;

	cfg = put(*state, "config", "Host a\n  HostName 100%%-%h\n");
	ok(cfg, "a", &c);
	assert_string_equal(c.hostname, "100%-a");
	sshconfig_release(&c);
	free(cfg);

	/* HostName takes only %h and %% */
	cfg = put(*state, "config", "Host a\n  HostName %d.example\n");
	bad(cfg, "a", 2, "found \"%d\"");
	free(cfg);
	cfg = put(*state, "config", "HostName trailing%\n");
	bad(cfg, "a", 1, "found the end of the value");
	free(cfg);
	cfg = put(*state, "config", "\n\nIdentityFile ~/.ssh/%C\n");
	bad(cfg, "a", 3, "found \"%C\"");
	free(cfg);
	unsetenv("SSHCFG_TEST_UNSET");
	cfg = put(*state, "config", "IdentityFile ${SSHCFG_TEST_UNSET}/k\n");
	bad(cfg, "a", 1, "SSHCFG_TEST_UNSET");
	free(cfg);

	/* a bad token in a block that does not apply is never expanded */
	cfg = put(*state, "config",
		  "Host other\n  HostName %Z\n  IdentityFile %Z\n");
	ok(cfg, "a", &c);
	assert_null(c.hostname);
	no_ids(&c);
	sshconfig_release(&c);
	free(cfg);
}

static void test_include_relative_and_glob(void **state)
{
	struct tdir *t = *state;
	struct ssh_host_config c = SSH_HOST_CONFIG_INIT;
	char *f[4], *cfg, abs_inc[512];

	sub(t, ".ssh/conf.d");
	f[0] = put(t, ".ssh/conf.d/20-db.conf",
		   "Host db\n  HostName db.inc\nHost *\n  Port 2020\n");
	f[1] = put(t, ".ssh/conf.d/10-web.conf",
		   "Host web\n  HostName web.inc\n  User webuser\n"
		   "Host *\n  Port 1010\nHost db\n");
	f[2] = put(t, ".ssh/conf.d/notes.txt", "Port 9999\n");
	f[3] = put(t, "abs.conf", "Host web\n  IdentityFile /abs\n");
	snprintf(abs_inc, sizeof(abs_inc),
		 "Include conf.d/*.conf missing.conf\n"
		 "IdentityFile /after/include\n"
		 "Include %s/abs.conf\n"
		 "Host *\n"
		 "  User fallback\n", t->dir);
	cfg = put(t, "config", abs_inc);

	ok(cfg, "web", &c);
	assert_string_equal(c.hostname, "web.inc");
	assert_string_equal(c.user, "webuser");
	/* lexical order: 10-web.conf before 20-db.conf */
	assert_int_equal(c.port, 1010);
	/* the included Host db did not leak into the including file */
	assert_int_equal(c.identity_files.n, 2);
	assert_string_equal(c.identity_files.v[0], "/after/include");
	assert_string_equal(c.identity_files.v[1], "/abs");
	sshconfig_release(&c);

	ok(cfg, "db", &c);
	assert_string_equal(c.hostname, "db.inc");
	assert_string_equal(c.user, "fallback");
	assert_int_equal(c.port, 1010);
	assert_int_equal(c.identity_files.n, 1);
	sshconfig_release(&c);
	for (int i = 0; i < 4; i++)
		free(f[i]);
	free(cfg);
}

static void test_include_in_nonmatching_block_is_ignored(void **state)
{
	struct ssh_host_config c = SSH_HOST_CONFIG_INIT;
	char *inc = put(*state, ".ssh/extra.conf",
			"HostName from-include\n"
			"User inc\n"
			"Host *\n"
			"  Port 999\n");
	char *cfg = put(*state, "config",
			"Host other\n"
			"  Include extra.conf\n"
			"Host *\n"
			"  HostName fallback.example\n");

	ok(cfg, "web", &c);
	assert_string_equal(c.hostname, "fallback.example");
	assert_null(c.user);
	assert_int_equal(c.port, 0);
	sshconfig_release(&c);

	ok(cfg, "other", &c);
	assert_string_equal(c.hostname, "from-include");
	assert_string_equal(c.user, "inc");
	assert_int_equal(c.port, 999);
	sshconfig_release(&c);
	free(inc);
	free(cfg);
}

static void test_include_errors(void **state)
{
	char *self = put(*state, ".ssh/self.conf", "Include ~/.ssh/self.conf\n");
	char *cfg = put(*state, "config",
			"Host x\n  Include self.conf\n");
	char *bin, *inner;

	/* an Include loop ends at the depth limit, even in a skipped block */
	bad_at(cfg, self, "y", 1, "at most 16 nested levels");
	free(cfg);

	/* an error in an included file names that file and line */
	inner = put(*state, ".ssh/inner.conf", "\nPort abc\n");
	cfg = put(*state, "config", "Include inner.conf\n");
	bad_at(cfg, inner, "a", 2, "found \"abc\"");

	/* included files must not be writable by others, as ssh demands */
	bin = put(*state, ".ssh/open.conf", "User x\n");
	assert_int_equal(chmod(bin, 0666), 0);
	free(cfg);
	cfg = put(*state, "config", "Include open.conf\n");
	{
		struct ssh_host_config c = SSH_HOST_CONFIG_INIT;
		struct rb_error err = RB_ERROR_INIT;

		assert_int_equal(sshconfig_lookup(cfg, "a", &c, &err), -1);
		assert_int_equal(err.cls, RB_ERR_INVALID);
		assert_non_null(strstr(err.msg, "bad owner or permissions"));
		assert_non_null(strstr(err.msg, "open.conf"));
	}
	free(bin);
	free(inner);
	free(self);
	free(cfg);
}

static void test_match(void **state)
{
	struct ssh_host_config c = SSH_HOST_CONFIG_INIT;
	char *cfg = put(*state, "config",
			"Host alias\n"
			"  HostName real.example.com\n"
			"Match host *.EXAMPLE.com\n"
			"  User matched\n"
			"Match originalhost alias\n"
			"  Port 2022\n"
			"Match host alias\n"
			"  IdentityFile /no-host-is-hostname\n"
			"Match !host foo,bar\n"
			"  IdentityFile /negated\n"
			"Match host plain,!real.*\n"
			"  IdentityFile /list-negated\n"
			"Match exec \"true\"\n"
			"  IdentityFile /exec\n"
			"Match canonical all\n"
			"  IdentityFile /canonical\n"
			"Match user matched\n"
			"  IdentityFile /user\n"
			"Match host PLAIN\n"
			"  Port 3000\n"
			"Match all\n"
			"  User ignored\n"
			"  IdentityFile /all\n"
			"Match !all\n"
			"  IdentityFile /not-all\n");

	ok(cfg, "alias", &c);
	assert_string_equal(c.hostname, "real.example.com");
	assert_string_equal(c.user, "matched");
	assert_int_equal(c.port, 2022);
	assert_int_equal(c.identity_files.n, 3);
	assert_string_equal(c.identity_files.v[0], "/negated");
	assert_string_equal(c.identity_files.v[1], "/user");
	assert_string_equal(c.identity_files.v[2], "/all");
	sshconfig_release(&c);

	ok(cfg, "plain", &c);
	assert_null(c.hostname);
	assert_string_equal(c.user, "ignored");
	assert_int_equal(c.port, 3000);
	assert_int_equal(c.identity_files.n, 3);
	assert_string_equal(c.identity_files.v[0], "/negated");
	assert_string_equal(c.identity_files.v[1], "/list-negated");
	assert_string_equal(c.identity_files.v[2], "/all");
	sshconfig_release(&c);
	free(cfg);

	cfg = put(*state, "config", "Host a\nMatch bogus x\n");
	bad(cfg, "a", 2, "found \"bogus\"");
	free(cfg);
	cfg = put(*state, "config", "Match host\n");
	bad(cfg, "a", 1, "found the end of the line");
	free(cfg);
	cfg = put(*state, "config", "Match all host x\n");
	bad(cfg, "a", 1, "'all'");
	free(cfg);
}

static void test_identities_only(void **state)
{
	struct ssh_host_config c = SSH_HOST_CONFIG_INIT;
	char *cfg = put(*state, "config",
			"Host strict\n"
			"  IdentitiesOnly yes\n"
			"Host loose\n"
			"  IdentitiesOnly no\n"
			"Host upper\n"
			"  identitiesonly=TRUE\n"
			"Host *\n"
			"  IdentitiesOnly yes\n"
			"  IdentitiesOnly false\n");

	/* the first value wins, per Host block */
	ok(cfg, "strict", &c);
	assert_true(c.identities_only);
	sshconfig_release(&c);
	ok(cfg, "loose", &c);
	assert_false(c.identities_only);
	sshconfig_release(&c);
	ok(cfg, "upper", &c);
	assert_true(c.identities_only);
	sshconfig_release(&c);
	ok(cfg, "other", &c);
	assert_true(c.identities_only);
	sshconfig_release(&c);
	assert_false(c.identities_only);
	free(cfg);

	/* not set: no */
	cfg = put(*state, "config", "Host x\n  IdentitiesOnly yes\n");
	ok(cfg, "y", &c);
	assert_false(c.identities_only);
	sshconfig_release(&c);
	free(cfg);
}

static void test_server_alive(void **state)
{
	struct ssh_host_config c = SSH_HOST_CONFIG_INIT;
	char *cfg = put(*state, "config",
			"Host fast\n"
			"  ServerAliveInterval 1\n"
			"  ServerAliveCountMax 2\n"
			"Host zero\n"
			"  ServerAliveInterval 0\n"
			"  ServerAliveCountMax 0\n"
			"Host none\n"
			"  ServerAliveInterval none\n"
			"Host units\n"
			"  ServerAliveInterval 1m30s\n"
			"  ServerAliveCountMax +7\n"
			"Host big\n"
			"  ServerAliveInterval 2147483647\n"
			"  ServerAliveCountMax 2147483647\n"
			"Host *\n"
			"  ServerAliveInterval 9\n"
			"  ServerAliveCountMax 4\n");

	ok(cfg, "fast", &c);
	assert_int_equal(c.server_alive_interval, 1);
	assert_int_equal(c.server_alive_count_max, 2);
	sshconfig_release(&c);
	/* 0 is a value (OpenSSH: off), and the first value wins */
	ok(cfg, "zero", &c);
	assert_int_equal(c.server_alive_interval, 0);
	assert_int_equal(c.server_alive_count_max, 0);
	sshconfig_release(&c);
	/* "none" sets nothing: a later block may still set it */
	ok(cfg, "none", &c);
	assert_int_equal(c.server_alive_interval, 9);
	assert_int_equal(c.server_alive_count_max, 4);
	sshconfig_release(&c);
	ok(cfg, "units", &c);
	assert_int_equal(c.server_alive_interval, 90);
	assert_int_equal(c.server_alive_count_max, 7);
	sshconfig_release(&c);
	ok(cfg, "big", &c);
	assert_int_equal(c.server_alive_interval, 2147483647);
	assert_int_equal(c.server_alive_count_max, 2147483647);
	sshconfig_release(&c);
	assert_int_equal(c.server_alive_interval, -1);
	assert_int_equal(c.server_alive_count_max, -1);
	free(cfg);

	/* not set: -1 */
	cfg = put(*state, "config", "Host x\n  ServerAliveInterval 3\n");
	ok(cfg, "y", &c);
	assert_int_equal(c.server_alive_interval, -1);
	assert_int_equal(c.server_alive_count_max, -1);
	sshconfig_release(&c);
	free(cfg);

	/* time units as ssh's convtime(): s m h d w, either case, summed */
	cfg = put(*state, "config", "ServerAliveInterval 1w2D3h4M5s\n");
	ok(cfg, "y", &c);
	assert_int_equal(c.server_alive_interval,
			 604800 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5);
	sshconfig_release(&c);
	free(cfg);
}

static void test_option_values_checked_everywhere(void **state)
{
	static const struct {
		const char *text;
		unsigned line;
		const char *want;
	} v[] = {
		{ "Host other\n  IdentitiesOnly maybe\n", 2,
		  "IdentitiesOnly: expected yes or no, found \"maybe\"" },
		{ "IdentitiesOnly 1\n", 1, "found \"1\"" },
		{ "IdentitiesOnly yes no\n", 1, "found also \"no\"" },
		{ "Host other\n  ServerAliveInterval 5x\n", 2,
		  "ServerAliveInterval: expected" },
		{ "ServerAliveInterval -1\n", 1, "found \"-1\"" },
		{ "ServerAliveInterval 2147483648\n", 1, "found \"2147483648\"" },
		{ "ServerAliveInterval 35791395m\n", 1, "found \"35791395m\"" },
		{ "ServerAliveInterval 2147483647s1\n", 1, "found \"2147483647s1\"" },
		{ "ServerAliveInterval s\n", 1, "found \"s\"" },
		{ "ServerAliveInterval \"\"\n", 1, "found an empty string" },
		{ "Host other\n  ServerAliveCountMax bad\n", 2,
		  "ServerAliveCountMax: expected a number from 0 to 2147483647, found \"bad\"" },
		{ "ServerAliveCountMax -1\n", 1, "found \"-1\"" },
		{ "ServerAliveCountMax 2147483648\n", 1, "found \"2147483648\"" },
		{ "ServerAliveCountMax 0x10\n", 1, "found \"0x10\"" },
		{ "ServerAliveCountMax 3 4\n", 1, "found also \"4\"" },
	};
	char *cfg;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		cfg = put(*state, "config", v[i].text);
		bad(cfg, "a", v[i].line, v[i].want);
		free(cfg);
	}
}

static void test_missing_file_is_empty(void **state)
{
	struct tdir *t = *state;
	struct ssh_host_config c = SSH_HOST_CONFIG_INIT;
	char path[256];

	snprintf(path, sizeof(path), "%s/nonexistent", t->dir);
	c.port = 7;
	ok(path, "web", &c);
	assert_null(c.hostname);
	assert_null(c.user);
	assert_int_equal(c.port, 0);
	no_ids(&c);
	assert_null(c.identity_files.v);
	assert_false(c.identities_only);
	assert_int_equal(c.server_alive_interval, -1);
	assert_int_equal(c.server_alive_count_max, -1);

	/* NULL: $HOME/.ssh/config, not there yet */
	c.port = 7;
	ok(NULL, "web", &c);
	assert_int_equal(c.port, 0);
	assert_null(c.hostname);
}

/*
 * An included file that is missing, a directory or empty adds nothing
 * and is no error, nor is such a file as the config itself. For the
 * first two no text buffer was ever allocated: clang's UBSan
 * (build-clang in .ci/run) stopped at the NULL + 0 of the line loop.
 */
static void test_include_missing_dir_or_empty(void **state)
{
	struct tdir *t = *state;
	const char *rel[] = { "missing.conf", "incdir", "empty.conf" };
	char *empty = put(t, "empty.conf", "");

	sub(t, "incdir");
	for (size_t i = 0; i < 3; i++) {
		struct ssh_host_config c = SSH_HOST_CONFIG_INIT;
		struct buf text = BUF_INIT;
		char *cfg, inc[256];

		snprintf(inc, sizeof(inc), "%s/%s", t->dir, rel[i]);
		buf_addf(&text, "Include %s\nHost a\n  HostName a.example\n"
			 "Include %s\n  Port 2222\n", inc, inc);
		cfg = put(t, "config", buf_str(&text));
		buf_release(&text);
		ok(cfg, "a", &c);
		assert_string_equal(c.hostname, "a.example");
		assert_int_equal(c.port, 2222);
		sshconfig_release(&c);
		free(cfg);

		ok(inc, "a", &c);
		assert_null(c.hostname);
		assert_int_equal(c.port, 0);
		no_ids(&c);
		sshconfig_release(&c);
	}
	free(empty);
}

static void test_default_path_is_home_ssh_config(void **state)
{
	struct ssh_host_config c = SSH_HOST_CONFIG_INIT;
	struct rb_error err = RB_ERROR_INIT;
	char *cfg = put(*state, ".ssh/config", "Host web\n  Port 2345\n");

	ok(NULL, "web", &c);
	assert_int_equal(c.port, 2345);
	sshconfig_release(&c);

	/* ssh refuses a config that others may write; so do we */
	assert_int_equal(chmod(cfg, 0602), 0);
	assert_int_equal(sshconfig_lookup(NULL, "web", &c, &err), -1);
	assert_int_equal(err.cls, RB_ERR_INVALID);
	assert_non_null(strstr(err.msg, "bad owner or permissions"));
	assert_int_equal(c.port, 0);
	free(cfg);
}

static void test_malformed_lines(void **state)
{
	static const struct {
		const char *text;
		unsigned line;
		const char *want;
	} v[] = {
		{ "Host a\n  HostName\n", 2, "expected a value after HostName" },
		{ "Host a\n  HostName   # nothing\n", 2, "only a comment" },
		{ "HostName =\n", 1, "expected a value after HostName" },
		{ "Ciphers\n", 1, "expected a value after Ciphers" },
		{ "Port abc\n", 1, "found \"abc\"" },
		{ "\n\nPort 70000\n", 3, "found \"70000\"" },
		{ "Port 0\n", 1, "found \"0\"" },
		{ "Port 99999999999999999999999\n", 1, "from 1 to 65535" },
		/* checked even where the block does not apply */
		{ "Host other\n  Port -1\n", 2, "found \"-1\"" },
		{ "User a b\n", 1, "found also \"b\"" },
		{ "User \"\"\n", 1, "found an empty string" },
		{ "HostName \"unterminated\n", 1, "closing quote" },
		{ "Host \"\"\n", 1, "Host: expected a pattern" },
		{ "Include \"\"\n", 1, "Include: expected a path" },
		{ "Match\n", 1, "expected a value after Match" },
		{ "User a\nPort 22\0x\n", 2, "NUL byte" },
	};
	char *cfg;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		/* the NUL case needs its length; the others end at their NUL */
		size_t len = strlen(v[i].text);

		if (strstr(v[i].want, "NUL"))
			len += 3;
		cfg = put_bytes(*state, "config", v[i].text, len);
		bad(cfg, "a", v[i].line, v[i].want);
		free(cfg);
	}
}

static void test_port_service_name(void **state)
{
	struct ssh_host_config c = SSH_HOST_CONFIG_INIT;
	char *cfg = put(*state, "config", "Port ssh\n");

	ok(cfg, "a", &c);
	assert_int_equal(c.port, 22);
	sshconfig_release(&c);
	free(cfg);
}

static void test_long_lines_and_size_limit(void **state)
{
	struct ssh_host_config c = SSH_HOST_CONFIG_INIT;
	struct rb_error err = RB_ERROR_INIT;
	size_t n = 900 * 1024;
	char *text = malloc(SSHCONFIG_MAX_SIZE + 2), *cfg;

	assert_non_null(text);
	/* one line of 900 KiB, no fixed-size line buffer */
	memcpy(text, "IdentityFile /", 14);
	memset(text + 14, 'k', n - 14);
	text[n] = '\n';
	cfg = put_bytes(*state, "config", text, n + 1);
	ok(cfg, "a", &c);
	assert_int_equal(c.identity_files.n, 1);
	assert_int_equal(strlen(c.identity_files.v[0]), n - 13);
	sshconfig_release(&c);
	free(cfg);

	/* exactly the limit is fine, one byte more is not */
	memset(text, '#', SSHCONFIG_MAX_SIZE + 1);
	cfg = put_bytes(*state, "config", text, SSHCONFIG_MAX_SIZE);
	ok(cfg, "a", &c);
	sshconfig_release(&c);
	free(cfg);
	cfg = put_bytes(*state, "config", text, SSHCONFIG_MAX_SIZE + 1);
	assert_int_equal(sshconfig_lookup(cfg, "a", &c, &err), -1);
	assert_int_equal(err.cls, RB_ERR_INVALID);
	assert_non_null(strstr(err.msg, "too large"));
	assert_non_null(strstr(err.msg, cfg));
	free(cfg);
	free(text);
}

/* Deterministic filler so failures reproduce. */
static void fill(unsigned char *p, size_t n, uint32_t seed, bool nul)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (unsigned char)(seed >> 16);
		if (!nul && p[i] == 0)
			p[i] = '\n';
	}
}

static void test_binary_junk_never_crashes(void **state)
{
	unsigned char junk[16384];

	for (uint32_t seed = 1; seed <= 64; seed++) {
		struct ssh_host_config c = SSH_HOST_CONFIG_INIT;
		struct rb_error err = RB_ERROR_INIT;
		bool nul = seed % 2;
		char *cfg;
		int r;

		fill(junk, sizeof(junk), seed, nul);
		/* some junk that starts like real lines */
		if (seed % 4 == 0)
			memcpy(junk, "Host *\nIdentityFile ", 20);
		cfg = put_bytes(*state, "config", junk, sizeof(junk));
		r = sshconfig_lookup(cfg, "a", &c, &err);
		if (nul) {
			/* a NUL byte is never text */
			assert_int_equal(r, -1);
		}
		if (r < 0) {
			assert_int_equal(err.cls, RB_ERR_INVALID);
			assert_memory_equal(err.msg, cfg, strlen(cfg));
			/* messages show no raw control bytes */
			for (const char *m = err.msg; *m; m++)
				assert_true((unsigned char)*m >= 0x20);
		} else {
			assert_int_equal(r, 0);
			sshconfig_release(&c);
		}
		free(cfg);
	}
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_first_value_wins_across_blocks),
		T(test_lines_before_any_host_apply_to_all),
		T(test_negation_and_wildcards),
		T(test_line_syntax),
		T(test_identity_files_accumulate_and_expand),
		T(test_token_errors),
		T(test_include_relative_and_glob),
		T(test_include_in_nonmatching_block_is_ignored),
		T(test_include_errors),
		T(test_match),
		T(test_identities_only),
		T(test_server_alive),
		T(test_option_values_checked_everywhere),
		T(test_include_missing_dir_or_empty),
		T(test_missing_file_is_empty),
		T(test_default_path_is_home_ssh_config),
		T(test_malformed_lines),
		T(test_port_service_name),
		T(test_long_lines_and_size_limit),
		T(test_binary_junk_never_crashes),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
