/*
 * The redactor's stream, as a command's output reaches it: the input
 * after its first byte is fed in pieces whose sizes follow from that
 * byte, then flushed. The redactor knows overlapping secrets, one with
 * a newline, user patterns and the built-in ones.
 *
 * Check (redact.c): however the input is cut, the stream emits what
 * redact_append() makes of the whole, as long as no line and no key
 * block is over the stream's 64 KiB hold. With bits 7 and 6 of the
 * first byte set the input is repeated past that size (the forced
 * cuts) and fed in larger pieces, and then only memory safety is
 * checked.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "fuzz.h"
#include "redact.h"

#define HOLD (64u * 1024)

static void emit(void *ctx, const char *data, size_t len)
{
	buf_add(ctx, data, len);
}

static struct redactor *redactor(void)
{
	static struct redactor *r;
	static const char *const pats[] = {
		"tok-[0-9]+", "(?<=key: )\\w+", "(?m)^pw .*$",
	};
	struct rb_error err = RB_ERROR_INIT;

	if (r)
		return r;
	r = redactor_new();
	redactor_add_secret(r, "db", "hunter2");
	redactor_add_secret(r, "long", "hunter2hunter2-x");
	redactor_add_secret(r, "nl", "line1\nline2");
	redactor_add_secret(r, "brace", "s3{{ cr");
	redactor_add_secret(r, "q", "Q");
	for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++)
		if (redactor_add_pattern(r, pats[i], &err) < 0)
			fuzz_fail("%s", err.msg);
	redactor_add_builtins(r);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf in = BUF_INIT, streamed = BUF_INIT, whole = BUF_INIT;
	struct redact_stream *st;
	unsigned seed;
	size_t off = 0, scale = 1;

	if (size < 1)
		return 0;
	seed = data[0];
	buf_add(&in, data + 1, size - 1);
	/* past the hold in few feeds: a slow input fuzzes little */
	if ((seed & 0xc0) == 0xc0) {
		while (in.len && in.len <= HOLD + 4096)
			buf_add(&in, data + 1, size - 1);
		scale = 64;
	}
	st = redact_stream_new(redactor(), emit, &streamed);
	while (off < in.len) {
		size_t n;

		seed = seed * 1103515245u + 12345u;
		n = (seed >> 16) % 4 == 0 ? (seed >> 8) % 4096 + 1 :
					    ((seed >> 16) % 64 + 1) * scale;
		if (n > in.len - off)
			n = in.len - off;
		redact_stream_feed(st, in.data + off, n);
		off += n;
	}
	redact_stream_flush(st);
	redact_stream_free(st);
	redact_append(redactor(), &whole, in.data ? in.data : "", in.len);
	if (in.len <= HOLD && (streamed.len != whole.len ||
			       memcmp(buf_str(&streamed), buf_str(&whole),
				      whole.len) != 0))
		fuzz_fail("the stream emitted\n%s\nredact_append() made\n%s",
			  buf_str(&streamed), buf_str(&whole));
	buf_release(&in);
	buf_release(&streamed);
	buf_release(&whole);
	return 0;
}
