/* JSON string escaping with UTF-8 repair. */
#include "json.h"

#include <stdbool.h>
#include <string.h>

#include "buf.h"

/* Length of the valid UTF-8 sequence at s (its code point in *out), or 0. */
static size_t utf8_len(const unsigned char *s, size_t left, unsigned *out)
{
	size_t n;
	unsigned cp;

	*out = s[0];
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n > left)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*out = cp;
	return n;
}

/*
 * Valid characters that YAML does not take as they are (C1 controls,
 * NEL and the line and paragraph separators, which it folds, the BOM
 * and the non-characters U+FFFE/U+FFFF): written as \uXXXX, so the
 * journal and the notes, read back with libyaml, give the same text.
 */
static bool yaml_unsafe(unsigned cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
	       cp == 0xfeff || cp == 0xfffe || cp == 0xffff;
}

void json_str_n(struct buf *b, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	buf_addc(b, '"');
	while (i < len) {
		unsigned char c = u[i];
		unsigned cp;
		size_t n;

		switch (c) {
		case '"':
			buf_adds(b, "\\\"");
			i++;
			continue;
		case '\\':
			buf_adds(b, "\\\\");
			i++;
			continue;
		case '\n':
			buf_adds(b, "\\n");
			i++;
			continue;
		case '\r':
			buf_adds(b, "\\r");
			i++;
			continue;
		case '\t':
			buf_adds(b, "\\t");
			i++;
			continue;
		default:
			break;
		}
		if (c < 0x20 || c == 0x7f) {
			buf_addf(b, "\\u%04x", c);
			i++;
			continue;
		}
		n = utf8_len(u + i, len - i, &cp);
		if (n == 0) {
			buf_adds(b, "\\ufffd");
			i++;
			continue;
		}
		if (yaml_unsafe(cp)) {
			buf_addf(b, "\\u%04x", cp);
			i += n;
			continue;
		}
		buf_add(b, s + i, n);
		i += n;
	}
	buf_addc(b, '"');
}

void json_str(struct buf *b, const char *s)
{
	json_str_n(b, s, strlen(s));
}

void json_kv(struct buf *b, const char *key, const char *value, int first)
{
	if (!first)
		buf_addc(b, ',');
	json_str(b, key);
	buf_addc(b, ':');
	json_str(b, value);
}
