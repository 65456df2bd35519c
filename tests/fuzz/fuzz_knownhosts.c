/*
 * The known_hosts reader. A real host key is needed to check against:
 * the first input starts `sshd -i` (OpenSSH in inetd mode, on a socket
 * pair, with a host key made for this run) and completes one SSH
 * handshake with it; that session's key is checked against every
 * input, with no further I/O. The input is the known_hosts file, with
 * each "HOSTKEY" replaced by that key's base64 (so seeds can name the
 * right key). Without sshd or ssh-keygen the harness exits 77 (skip).
 *
 * Checks (knownhosts.h): a refusal is always RB_ERR_CONNECT; a key
 * accepted with accept_new is trusted by the next check without it.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libssh2.h>

#include "buf.h"
#include "error.h"
#include "fuzz.h"
#include "knownhosts.h"

#define SSHD "/usr/sbin/sshd"

/*
 * libssh2 1.10 (Debian 12) leaks an HMAC context each time it checks a
 * hashed line whose hash is not 20 bytes (knownhost_check() breaks out
 * without freeing it; libssh2 fixed it upstream, PR #2245): not
 * runbook's, a few bytes per hashed line per connection. The stack is
 * unwound slowly at malloc so the suppression sees through libcrypto.
 */
const char *__asan_default_options(void);
const char *__lsan_default_suppressions(void);

const char *__asan_default_options(void)
{
	return "fast_unwind_on_malloc=0";
}

const char *__lsan_default_suppressions(void)
{
	return "leak:HMAC_CTX_new\n";
}

static LIBSSH2_SESSION *session;
static struct buf hostkey = BUF_INIT;	/* base64, as known_hosts has it */

static __attribute__((noreturn)) void skip(const char *why)
{
	fprintf(stderr, "fuzz_knownhosts: skipped: %s\n", why);
	exit(77);
}

/* sshd -i on one end of a socket pair; returns the other end. */
static int start_sshd(const char *key)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		skip("no socketpair");
	pid = fork();
	if (pid < 0)
		skip("cannot fork");
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(sv[1], 0);
		dup2(sv[1], 1);
		dup2(null, 2);
		execl(SSHD, SSHD, "-i", "-f", "/dev/null", "-h", key,
		      "-o", "UsePAM=no", "-o", "LoginGraceTime=0", (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	return sv[0];
}

static void setup(void)
{
	char *key = fuzz_path("host_ed25519");
	struct buf cmd = BUF_INIT, pub = BUF_INIT;
	char line[512] = "", *sp;
	FILE *f;

	if (access(SSHD, X_OK) < 0)
		skip(SSHD " is not installed");
	buf_addf(&cmd, "ssh-keygen -q -t ed25519 -N '' -C fuzz -f '%s' </dev/null >/dev/null 2>&1",
		 key);
	buf_addf(&pub, "%s.pub", key);
	if (system(buf_str(&cmd)) != 0 || !(f = fopen(buf_str(&pub), "re")))
		skip("ssh-keygen cannot make a host key");
	if (!fgets(line, sizeof(line), f) || !(sp = strchr(line, ' ')))
		skip("ssh-keygen wrote no public key");
	fclose(f);
	buf_add(&hostkey, sp + 1, strcspn(sp + 1, " \n"));
	if (libssh2_init(0) != 0 || !(session = libssh2_session_init()))
		skip("libssh2 does not start");
	if (libssh2_session_handshake(session, start_sshd(key)) != 0)
		skip("no SSH handshake with sshd -i");
	buf_release(&cmd);
	buf_release(&pub);
	free(key);
}

/* The input with each "HOSTKEY" replaced by the host key. */
static void expand(struct buf *out, const uint8_t *data, size_t size)
{
	for (size_t i = 0; i < size; i++) {
		if (size - i >= 7 && memcmp(data + i, "HOSTKEY", 7) == 0) {
			buf_add(out, hostkey.data, hostkey.len);
			i += 6;
		} else {
			buf_addc(out, (char)data[i]);
		}
	}
}

static int check(const char *path, unsigned port, bool accept_new)
{
	struct rb_error err = RB_ERROR_INIT;
	int ret = knownhosts_check(session, "web", "127.0.0.1", port, path,
				   accept_new, &err);

	if (ret < 0 && err.cls != RB_ERR_CONNECT)
		fuzz_fail("a refusal says class %d: %s", err.cls, err.msg);
	return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *path;
	struct buf text = BUF_INIT;

	if (!session) {
		setup();
		path = fuzz_path("known_hosts");
	}
	expand(&text, data, size);
	fuzz_write(path, text.data ? text.data : "", text.len);
	check(path, 22, false);
	if (check(path, 2222, true) == 0 && check(path, 2222, false) < 0)
		fuzz_fail("a key accepted with accept_new is not trusted next");
	buf_release(&text);
	return 0;
}
