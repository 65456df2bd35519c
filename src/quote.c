/*
 * Shell quoting. Safe words pass as they are; anything else is put in
 * single quotes, each ' written as '\\''.
 */
#include "quote.h"

#include <string.h>

#include "buf.h"

void shell_quote(struct buf *out, const char *s)
{
	static const char safe[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		"0123456789_@%+:,./-";

	if (*s && strspn(s, safe) == strlen(s)) {
		buf_adds(out, s);
		return;
	}
	buf_addc(out, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			buf_adds(out, "'\\''");
		else
			buf_addc(out, *s);
	}
	buf_addc(out, '\'');
}
