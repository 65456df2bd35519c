/*
 * The OpenSSH client configuration (~/.ssh/config), read the way ssh(1)
 * of OpenSSH 9.2 reads it, so that an alias in a runbook reaches the same
 * host, port, user and keys as `ssh alias` would.
 *
 * What is honoured (ssh_config(5)):
 *
 *  - The keywords HostName, User, Port, IdentityFile, IdentitiesOnly,
 *    ServerAliveInterval and ServerAliveCountMax (HostKeyAlias only for
 *    %k). For each the first value obtained wins; IdentityFile
 *    accumulates (in order, duplicates dropped, at most 100).
 *  - IdentitiesOnly takes yes, no, true or false (any case).
 *    ServerAliveInterval takes a time as ssh's convtime() (seconds, or
 *    numbers with s, m, h, d, w suffixes, summed; at most 2^31-1 s) or
 *    "none", which sets nothing (a later block may still set it, as in
 *    ssh); ServerAliveCountMax a number from 0 to 2^31-1. Their values
 *    are checked in every block, as ssh does.
 *  - Lines before the first Host or Match apply to every host. "Host"
 *    takes whitespace-separated patterns with * and ?, matched
 *    case-sensitively against the alias as written; a matching !pattern
 *    excludes the block whatever else matches.
 *  - "Match all" and "Match" with host, originalhost, user and localuser
 *    (comma-separated pattern lists, each criterion may be negated with
 *    !, all criteria must hold). host is matched against the HostName
 *    obtained so far (tokens expanded) or else the alias; originalhost
 *    against the alias; both ignore case. user is matched against the
 *    User obtained so far or else the local user name.
 *  - Include with several paths and glob(3) patterns, processed in
 *    lexical order; a relative path is relative to ~/.ssh; nesting is
 *    limited to 16 levels and 256 files in all. An Include inside a
 *    block that does not match is read (its errors count) but applies
 *    nothing; a Host or Match inside an included file does not change
 *    the state of the including file.
 *  - Keywords ignore case; "Key Value", "Key=Value" and "Key = Value";
 *    values in double or single quotes, backslash escapes of quotes,
 *    backslash and space; a # at the start of a word ends the line.
 *  - Tokens: HostName takes %h (the alias) and %%. IdentityFile takes ~
 *    and ~user, ${NAME} from the environment, and %%, %d (home), %h (the
 *    final host name in lower case, as ssh uses it), %i (uid), %k
 *    (HostKeyAlias or the alias), %L and %l (local host name short and
 *    full), %n (the alias), %p (the final port, 22 if unset), %r (the
 *    final user, or the local one) and %u (local user). Any other token,
 *    %C included, or an unset variable is an error.
 *  - The config file (only when path is NULL, as ssh checks only its
 *    default one and not -F) and every included file must be owned by
 *    the user or root, not writable by others, and writable by its group
 *    only if that is the owner's private group (Debian's ssh; the check
 *    that no other user has it as primary group is left out).
 *
 * What is not: there is a single pass, with no CanonicalizeHostname and
 * no final pass, so a Match block with canonical, final or exec (negated
 * or not) never matches; no command is ever run. /etc/ssh/ssh_config is
 * not read. Other keywords are parsed and ignored, unknown ones too
 * (ssh would reject those). ~ and %d mean $HOME if it is set and not
 * empty, else the home of the passwd entry (ssh always uses the latter).
 *
 * Errors stop at the first one (ssh reports them all, then refuses to
 * run): a keyword without a value, an unterminated quote, a NUL byte, a
 * value ssh rejects (Port abc, Port 70000, IdentitiesOnly 1,
 * ServerAliveInterval 5x, ServerAliveCountMax -1), a bad Match, a bad token, a
 * file over 1 MiB, too deep or too many includes, or a file that cannot
 * be read. Only the values that end up in the result are expanded, so a
 * bad token in a block that does not apply is not an error (as in ssh).
 */
#ifndef RUNBOOK_SSHCONFIG_H
#define RUNBOOK_SSHCONFIG_H

#include <stdbool.h>

#include "buf.h"

struct rb_error;

#define SSHCONFIG_MAX_SIZE (1u << 20)	/* bytes, per file */
#define SSHCONFIG_MAX_DEPTH 16		/* nested Include levels */
#define SSHCONFIG_MAX_FILES 256		/* files read in one lookup */

/* The result of a lookup; it owns every string in it. */
struct ssh_host_config {
	char *hostname;		/* HostName, tokens expanded; NULL: not set */
	char *user;		/* User; NULL: not set */
	unsigned port;		/* Port; 0: not set */
	struct strvec identity_files;	/* IdentityFile, in order, ~ and tokens expanded */
	bool identities_only;	/* IdentitiesOnly yes; not set: no */
	int server_alive_interval;	/* ServerAliveInterval, seconds (0 too); -1: not set */
	int server_alive_count_max;	/* ServerAliveCountMax (0 too); -1: not set */
};

#define SSH_HOST_CONFIG_INIT { NULL, NULL, 0, STRVEC_INIT, false, -1, -1 }

/*
 * Looks host (the alias as written in the runbook) up in the OpenSSH
 * client config at path (NULL: $HOME/.ssh/config). A missing file is not
 * an error and yields an empty result; so does a directory (ssh reads it
 * as empty).
 *
 * Returns 0 with *out filled (whatever it held is overwritten, not
 * released; release it with sshconfig_release()), or -1 with err set
 * (class RB_ERR_INVALID, a message starting "path:line: " that says what
 * was expected and what was found, or naming the file that could not be
 * read) and *out untouched. Never prints; reads no file other than the
 * config and its includes.
 */
int sshconfig_lookup(const char *path, const char *host,
		     struct ssh_host_config *out, struct rb_error *err);

/* Frees what c owns and leaves it empty (SSH_HOST_CONFIG_INIT). */
void sshconfig_release(struct ssh_host_config *c);

#endif
