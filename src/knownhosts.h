/*
 * Host key checks against an OpenSSH known_hosts file, for the SSH
 * executor (exec_ssh.c). Connecting there calls knownhosts_check()
 * right after the handshake, before authentication: a host whose key
 * is not trusted never sees our keys and never runs a command.
 *
 * The file is read line by line, so one line libssh2 cannot parse (a
 * key type it does not know, garbage) hides nothing after it. Hashed
 * host names (|1|salt|hash, from ssh-keygen -H) match like plain ones.
 * @cert-authority lines (and any other marker but @revoked) are
 * skipped: runbook trusts no host certificates. A key in an @revoked
 * line is refused wherever it is offered, whatever else the file says.
 * A missing file knows no host.
 *
 * The host is looked up under the name OpenSSH uses: the address on
 * port 22, [address]:port on any other port (libssh2 also accepts the
 * plain address there). What is found:
 *   - the key: accepted;
 *   - a revoked key: refused;
 *   - another key of the same type (a changed key): refused, loudly,
 *     with the ssh-keygen -R line that removes the old key; accept_new
 *     never accepts it;
 *   - only keys of other types: refused like a changed key, with the
 *     ssh-keyscan line to add this one; accept_new never accepts it;
 *   - nothing (an unknown host): refused with the key type and its
 *     SHA256 fingerprint in OpenSSH's form (as ssh-keygen -lf prints
 *     it) and the ssh-keyscan line to trust it; with accept_new the
 *     key is appended instead, as one plain (unhashed) line
 *     "name type base64", and accepted.
 * An append creates the file's directory (0700) and the file (0600)
 * if they are missing, starts a new line if the file's last one lacks
 * its newline, writes the line in one write() and fsyncs it.
 *
 * Thread safety: any number of threads may check at once (one session
 * each). Reading, checking and appending are one step under a mutex
 * of this module, so a thread never reads a half-appended line, and
 * two threads that meet the same new host with accept_new append its
 * key once. Other processes are not locked out: their appends (one
 * write with O_APPEND) never interleave with ours.
 */
#ifndef RUNBOOK_KNOWNHOSTS_H
#define RUNBOOK_KNOWNHOSTS_H

#include <stdbool.h>

#include <libssh2.h>

struct rb_error;

/*
 * Checks the host key that session s received in its handshake (no
 * I/O on the session). name is the host as the runbook writes it, for
 * messages (NULL: address); address and port are what was connected
 * to, and name the host in known_hosts. known_hosts_path is the file
 * (NULL: ~/.ssh/known_hosts); accept_new appends an unknown host's key
 * (never a changed one).
 *
 * Returns 0 when the key is trusted (found, or appended with
 * accept_new). Returns -1 with err set, always class RB_ERR_CONNECT:
 * when the key is refused (unknown, changed, of another type, revoked,
 * or of a type runbook does not know: the message says which, gives
 * the key's type and SHA256 fingerprint when the type is known and
 * says that nothing was run on the host), or when it cannot be
 * checked (the file cannot be read, the append failed, or libssh2
 * failed: the message says why, with errno's text for the file).
 */
int knownhosts_check(LIBSSH2_SESSION *s, const char *name,
		     const char *address, unsigned port,
		     const char *known_hosts_path, bool accept_new,
		     struct rb_error *err);

/*
 * The same check for a key received elsewhere (libgit2's SSH transport
 * for the notes remote): key and len as the server sent it, type a
 * LIBSSH2_HOSTKEY_TYPE_*, address and port what was connected to.
 */
int knownhosts_check_key(const char *key, size_t len, int type,
			 const char *address, unsigned port,
			 const char *known_hosts_path, bool accept_new,
			 struct rb_error *err);

#endif
