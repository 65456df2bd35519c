/*
 * Shell quoting. Safe words pass as they are; anything else is put in
 * single quotes, each ' written as '\\''.
 */
#include "quote.h"

#include <stdbool.h>
#include <string.h>

#include "buf.h"

/* Reserved words of sh and bash: one of them bare would be syntax. */
static bool reserved(const char *s)
{
	static const char *const words[] = {
		"if", "then", "else", "elif", "fi", "case", "esac", "for",
		"select", "while", "until", "do", "done", "in", "function",
		"time", "coproc", NULL,
	};

	for (const char *const *w = words; *w; w++)
		if (strcmp(s, *w) == 0)
			return true;
	return false;
}

static bool bare_ok(const char *s)
{
	static const char safe[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		"0123456789_@%+:./-";

	return *s && strspn(s, safe) == strlen(s) && !reserved(s) &&
	       !strstr(s, "..");
}

void shell_quote_always(struct buf *out, const char *s)
{
	buf_addc(out, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			buf_adds(out, "'\\''");
		else
			buf_addc(out, *s);
	}
	buf_addc(out, '\'');
}

void shell_quote(struct buf *out, const char *s)
{
	if (bare_ok(s))
		buf_adds(out, s);
	else
		shell_quote_always(out, s);
}

/* Builtins of dash and bash: `exec NAME` would run another program. */
static bool builtin(const char *s, size_t n)
{
	static const char *const names[] = {
		".", ":", "[", "[[", "]]", "!", "alias", "bg", "bind", "break",
		"builtin", "caller", "cd", "chdir", "command", "compgen",
		"complete", "compopt", "continue", "declare", "dirs", "disown",
		"echo", "enable", "eval", "exec", "exit", "export", "false",
		"fc", "fg", "getopts", "hash", "help", "history", "jobs", "kill",
		"let", "local", "logout", "mapfile", "popd", "printf", "pushd",
		"pwd", "read", "readarray", "readonly", "return", "set", "shift",
		"shopt", "source", "suspend", "test", "times", "trap", "true",
		"type", "typeset", "ulimit", "umask", "unalias", "unset", "wait",
		NULL,
	};
	char w[16];

	if (n >= sizeof(w))
		return false;
	memcpy(w, s, n);
	w[n] = '\0';
	for (const char *const *b = names; *b; b++)
		if (strcmp(w, *b) == 0)
			return true;
	return reserved(w);
}

bool shell_exec_ok(const char *cmd)
{
	static const char name[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		"0123456789_./+-";
	const char *p = cmd + strspn(cmd, " \t"), *s;
	size_t n = strspn(p, name);

	if (!n || *p == '-' || (p[n] && !strchr(" \t\n", p[n])) ||
	    builtin(p, n))
		return false;
	for (s = p + n; *s; s++) {
		if (*s == '\n') {
			if (s[strspn(s, " \t\n")])
				return false;
			break;
		}
		if (strchr(";|()`{}", *s))
			return false;
		if (*s == '&' && (s == cmd || (s[-1] != '>' && s[-1] != '<')))
			return false;
	}
	return true;
}

bool shell_bash_same(const char *cmd)
{
	bool sq = false, dq = false;

	if (!shell_exec_ok(cmd))
		return false;
	for (const char *s = cmd; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x80)
			return false;	/* bash reads it by the locale */
		if (sq) {
			sq = c != '\'';
			continue;
		}
		if (c == '\\') {
			if (!s[1] || (unsigned char)s[1] >= 0x80)
				return false;
			s++;	/* the same escape in both, quoted or not */
		} else if (c == '\'' && !dq) {
			sq = true;
		} else if (c == '"') {
			dq = !dq;
		} else if (c == '$') {
			return false;	/* RANDOM, BASHPID, $'...', $"..." */
		} else if (!dq && strchr("~[]", c)) {
			return false;	/* tilde and bracket expressions */
		} else if (!dq && c == '<' && s[1] == '<') {
			return false;	/* here-documents, bash's <<< */
		} else if (!dq && (c == '<' || c == '>') && s[1] == '&' &&
			   !strchr("0123456789-", s[2] ? s[2] : ' ')) {
			return false;	/* bash's >&FILE */
		}
	}
	return !sq && !dq;
}
