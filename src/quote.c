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
