/*
 * Redaction: no secret value, token or key block may reach anything
 * runbook writes, however the bytes arrive. The stream must give what
 * redact_str() gives for the whole text, wherever it is cut, and must
 * stay bounded on endless input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "redact.h"

struct sink {
	struct buf out;
	size_t pieces;
	size_t max_piece;
};

static void sink_emit(void *ctx, const char *data, size_t len)
{
	struct sink *k = ctx;

	assert_true(len > 0);
	buf_add(&k->out, data, len);
	k->pieces++;
	if (len > k->max_piece)
		k->max_piece = len;
}

/* Deterministic pseudo-random numbers (xorshift64). */
static uint64_t rng_state;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void expect_redacted(const struct redactor *r, const char *in,
			    const char *want)
{
	char *got = redact_str(r, in);

	assert_string_equal(got, want);
	free(got);
}

/* Feeds text in pieces of the given sizes (cycled) and flushes. */
static char *stream_pieces(const struct redactor *r, const char *text,
			   size_t len, const size_t *sizes, size_t nsizes)
{
	struct sink k = { BUF_INIT, 0, 0 };
	struct redact_stream *s = redact_stream_new(r, sink_emit, &k);
	size_t pos = 0, i = 0;

	while (pos < len) {
		size_t n = sizes[i++ % nsizes];

		if (n > len - pos)
			n = len - pos;
		redact_stream_feed(s, text + pos, n);
		pos += n;
	}
	redact_stream_flush(s);
	redact_stream_free(s);
	return buf_detach(&k.out);
}

static char *stream_bytewise(const struct redactor *r, const char *text)
{
	static const size_t one[] = { 1 };

	return stream_pieces(r, text, strlen(text), one, 1);
}

/* Feeds text cut at random points and flushes. */
static char *stream_random(const struct redactor *r, const char *text,
			   size_t len, size_t maxpiece)
{
	struct sink k = { BUF_INIT, 0, 0 };
	struct redact_stream *s = redact_stream_new(r, sink_emit, &k);
	size_t pos = 0;

	while (pos < len) {
		size_t n = 1 + (size_t)(rng() % maxpiece);

		if (n > len - pos)
			n = len - pos;
		redact_stream_feed(s, text + pos, n);
		pos += n;
	}
	redact_stream_flush(s);
	redact_stream_free(s);
	return buf_detach(&k.out);
}

static void test_secret_masked(void **state)
{
	struct redactor *r = redactor_new();

	(void)state;
	redactor_add_secret(r, "PW", "hunter2");
	redactor_add_secret(r, "EMPTY", "");
	expect_redacted(r, "login with hunter2, again hunter2hunter2.",
			"login with [secret:PW], again [secret:PW][secret:PW].");
	expect_redacted(r, "nothing here", "nothing here");
	expect_redacted(r, "", "");
	expect_redacted(r, "hunter", "hunter");
	redactor_free(r);
}

static void test_secret_value_copied(void **state)
{
	struct redactor *r = redactor_new();
	char value[] = "s3cr3t-value";

	(void)state;
	redactor_add_secret(r, "V", value);
	memset(value, 'x', sizeof(value) - 1);
	expect_redacted(r, "a s3cr3t-value b", "a [secret:V] b");
	redactor_free(r);
}

static void test_longest_first(void **state)
{
	struct redactor *r = redactor_new();

	(void)state;
	/* the short one is added first: order of adding must not matter */
	redactor_add_secret(r, "SHORT", "abc");
	redactor_add_secret(r, "LONG", "xxabcxx");
	redactor_add_secret(r, "PREFIX", "xxab");
	expect_redacted(r, "1 xxabcxx 2 abc 3 xxab 4",
			"1 [secret:LONG] 2 [secret:SHORT] 3 [secret:PREFIX] 4");
	redactor_free(r);
}

static void test_overlapping_secrets(void **state)
{
	struct redactor *r = redactor_new();
	char *got;

	(void)state;
	redactor_add_secret(r, "A", "abcd");
	redactor_add_secret(r, "B", "cdef");
	/* neither contains the other: both marked, no byte of either shown */
	expect_redacted(r, "<abcdef>", "<[secret:A][secret:B]>");
	expect_redacted(r, "<cdefabcd>", "<[secret:B][secret:A]>");
	/* a chain of overlaps of one secret */
	redactor_free(r);
	r = redactor_new();
	redactor_add_secret(r, "AB", "abab");
	got = redact_str(r, "xabababx");
	assert_string_equal(got, "x[secret:AB][secret:AB]x");
	free(got);
	redactor_free(r);
}

static void test_secret_with_newline(void **state)
{
	struct redactor *r = redactor_new();
	char *got;

	(void)state;
	redactor_add_secret(r, "ML", "line one\nline two");
	redactor_add_builtins(r);
	expect_redacted(r, "before\nline one\nline two\nafter\n",
			"before\n[secret:ML]\nafter\n");
	got = stream_bytewise(r, "before\nline one\nline two\nafter\n");
	assert_string_equal(got, "before\n[secret:ML]\nafter\n");
	free(got);
	/* only the first line alone is not the secret */
	expect_redacted(r, "line one\nline three\n", "line one\nline three\n");
	redactor_free(r);
}

static void test_patterns(void **state)
{
	struct redactor *r = redactor_new();
	struct rb_error err = RB_ERROR_INIT;

	(void)state;
	assert_int_equal(redactor_add_pattern(r, "session=[0-9a-f]+", &err),
			 0);
	assert_int_equal(redactor_add_pattern(r, "card \\d{4}", &err), 0);
	expect_redacted(r, "ok session=deadbeef1 and card 1234 done\n",
			"ok [redacted] and [redacted] done\n");
	/* overlapping matches of two patterns become one mask */
	assert_int_equal(redactor_add_pattern(r, "beef1 and card", &err), 0);
	expect_redacted(r, "session=deadbeef1 and card 1234!",
			"[redacted]!");
	assert_int_equal(redactor_add_pattern(r, "(unclosed", &err), -1);
	assert_int_equal(err.cls, RB_ERR_INVALID);
	assert_non_null(strstr(err.msg, "(unclosed"));
	redactor_free(r);
}

static void test_builtins_mask_tokens(void **state)
{
	struct redactor *r = redactor_new();

	(void)state;
	redactor_add_builtins(r);
	redactor_add_builtins(r);	/* twice is once */
	expect_redacted(r, "key AKIAIOSFODNN7EXAMPLE used",
			"key [redacted] used");
	expect_redacted(r, "GITHUB_TOKEN ghp_1234567890abcdefghijABCDEFGHIJ123456\n",
			"GITHUB_TOKEN [redacted]\n");
	expect_redacted(r, "gho_abcdefghijABCDEFGHIJ0123456789abcdefXYZ ok",
			"[redacted] ok");
	expect_redacted(r, "slack xoxb-1234567890-abcdefghij end",
			"slack [redacted] end");
	expect_redacted(r, "Authorization: Bearer abcdefghijklmnop\r\n",
			"Authorization: Bearer [redacted]\r\n");
	expect_redacted(r, "curl -H 'authorization: bearer tok' x",
			"curl -H 'authorization: bearer [redacted]' x");
	expect_redacted(r, "sent Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig\n",
			"sent Bearer [redacted]\n");
	expect_redacted(r, "GET /api?user=bob&token=abc123&x=1 HTTP/1.1",
			"GET /api?user=bob&token=[redacted]&x=1 HTTP/1.1");
	expect_redacted(r, "mysql --password=hunter2 -u root",
			"mysql --password=[redacted] -u root");
	expect_redacted(r, "DB_PASSWORD=x9 PASSWD=y CLIENT_SECRET=z",
			"DB_PASSWORD=[redacted] PASSWD=[redacted] CLIENT_SECRET=[redacted]");
	expect_redacted(r, "{\"user\": \"bob\", \"password\": \"p w\"}",
			"{\"user\": \"bob\", \"password\": \"[redacted]\"}");
	expect_redacted(r, "clone https://bob:pa55@git.example.com/x.git",
			"clone https://bob:[redacted]@git.example.com/x.git");
	redactor_free(r);
}

static void test_builtins_leave_text_alone(void **state)
{
	static const char *const plain[] = {
		"see the password reset page\n",
		"tokens: 5\n",
		"token count = 5, secret santa, passwords: none\n",
		"the bearer of this letter\n",
		"Bearer authentication is used\n",
		"AKIA is a prefix; AKIA123 is too short\n",
		"ghp_short and gh_notatoken\n",
		"xoxb- alone\n",
		"https://example.com:8443/path and ssh://git@host:22/repo\n",
		"---------- table ----------\n",
		"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		"-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n",
		"password=\n",
	};
	struct redactor *r = redactor_new();

	(void)state;
	redactor_add_builtins(r);
	for (size_t i = 0; i < sizeof(plain) / sizeof(*plain); i++)
		expect_redacted(r, plain[i], plain[i]);
	redactor_free(r);
}

static void test_builtin_private_key_block(void **state)
{
	struct redactor *r = redactor_new();

	(void)state;
	redactor_add_builtins(r);
	expect_redacted(r,
			"key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAAAA==\n"
			"-----END RSA PRIVATE KEY-----\ndone\n",
			"key:\n[redacted]\ndone\n");
	expect_redacted(r,
			"-----BEGIN PRIVATE KEY-----\nabc\n-----END CERTIFICATE-----\n"
			"def\n-----END PRIVATE KEY-----",
			"[redacted]");
	expect_redacted(r,
			"a -----BEGIN OPENSSH PRIVATE KEY-----\\nb3Bl\\n"
			"-----END OPENSSH PRIVATE KEY----- z",
			"a [redacted] z");
	expect_redacted(r,
			"-----BEGIN PGP PRIVATE KEY BLOCK-----\nx\n"
			"-----END PGP PRIVATE KEY BLOCK-----\n",
			"[redacted]\n");
	/* truncated: masked to the end of the text */
	expect_redacted(r, "x\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQ\nMore\n",
			"x\n[redacted]");
	redactor_free(r);
}

static void test_secrets_before_patterns(void **state)
{
	struct redactor *r = redactor_new();
	struct rb_error err = RB_ERROR_INIT;

	(void)state;
	redactor_add_builtins(r);
	redactor_add_secret(r, "PW", "hunter2x");
	/* a pattern matching part of a secret cannot show the rest of it */
	assert_int_equal(redactor_add_pattern(r, "hunt", &err), 0);
	expect_redacted(r, "pw hunter2x\n", "pw [secret:PW]\n");
	/* a placeholder is kept where a built-in would mask the value */
	expect_redacted(r, "mysql --password=hunter2x -u root",
			"mysql --password=[secret:PW] -u root");
	expect_redacted(r, "https://u:hunter2x@h/",
			"https://u:[secret:PW]@h/");
	/* but not when more than the placeholder is the value */
	expect_redacted(r, "password=hunter2xyz&a=1",
			"password=[redacted]&a=1");
	redactor_free(r);
}

/* Secret references of the record form that no pattern may touch. */
static const char *const kept_refs[] = {
	"password={{ secrets.tok }}",
	"TOKEN={{ secrets.tok }}",
	"Authorization: Bearer {{ secrets.t }}",
	"mysql --password={{ secrets.db }} -u root",
	"GET /x?user=bob&token={{ secrets.t }}&y=1",
	"{\"password\": \"{{ secrets.pw }}\"}",
	"clone https://bob:{{ secrets.pw }}@git.example.com/x.git",
	/* the spacings the template renderer reads */
	"password={{secrets.tok}}",
	"password={{ \tsecrets.tok\t  }}",
	"DB_PASSWORD={{ secrets.DB_pass2 }} SECRET={{ secrets._x }}",
};

static void test_builtins_keep_secret_refs(void **state)
{
	struct redactor *r = redactor_new();

	(void)state;
	redactor_add_builtins(r);
	for (size_t i = 0; i < sizeof(kept_refs) / sizeof(*kept_refs); i++)
		expect_redacted(r, kept_refs[i], kept_refs[i]);
	/* a real value is masked as ever, next to a reference too */
	expect_redacted(r, "password=hunter2", "password=[redacted]");
	expect_redacted(r, "{{ secrets.a }} token=abc123def",
			"{{ secrets.a }} token=[redacted]");
	expect_redacted(r, "password=hunter2{{ secrets.x }} -v",
			"password=[redacted]{{ secrets.x }} -v");
	expect_redacted(r, "TOKEN={{ secrets.a }} PASSWORD=pw9 Bearer {{ secrets.b }}",
			"TOKEN={{ secrets.a }} PASSWORD=[redacted] Bearer {{ secrets.b }}");
	/* only the exact form is a reference */
	expect_redacted(r, "password={{nope}}", "password=[redacted]");
	expect_redacted(r, "password={{ secrets.9x }}",
			"password=[redacted] secrets.9x }}");
	expect_redacted(r, "password={{ secrets.a.b }}",
			"password=[redacted] secrets.a.b }}");
	redactor_free(r);
}

static void test_patterns_keep_secret_refs(void **state)
{
	struct redactor *r = redactor_new();
	struct rb_error err = RB_ERROR_INIT;

	(void)state;
	assert_int_equal(redactor_add_pattern(r, "token=\\S+", &err), 0);
	assert_int_equal(redactor_add_pattern(r, "secrets\\.[a-z]+", &err), 0);
	assert_int_equal(redactor_add_pattern(r, "key: .*", &err), 0);
	expect_redacted(r, "token={{ secrets.a }}", "token={{ secrets.a }}");
	expect_redacted(r, "x {{ secrets.abc }} y", "x {{ secrets.abc }} y");
	/* to a pattern a reference is blanks: the value ends there */
	expect_redacted(r, "token={{secrets.a}}xyz", "token={{secrets.a}}xyz");
	/* what a match covers besides a reference is masked */
	expect_redacted(r, "key: {{ secrets.a }} and x",
			"[redacted]{{ secrets.a }}[redacted]");
	expect_redacted(r, "token=abc", "[redacted]");
	expect_redacted(r, "{{ secrets.a }} token=abc123def",
			"{{ secrets.a }} [redacted]");
	redactor_add_builtins(r);
	for (size_t i = 0; i < sizeof(kept_refs) / sizeof(*kept_refs); i++)
		expect_redacted(r, kept_refs[i], kept_refs[i]);
	redactor_free(r);
}

static void test_secret_refs_redacted_twice(void **state)
{
	struct redactor *r = redactor_new();
	char *once, *twice;

	(void)state;
	redactor_add_builtins(r);
	redactor_add_secret(r, "PW", "hunter2");
	once = redact_str(r, "password=hunter2 token={{ secrets.t }} secret=x");
	assert_string_equal(once,
			    "password=[secret:PW] token={{ secrets.t }} secret=[redacted]");
	twice = redact_str(r, once);
	assert_string_equal(twice, once);
	free(once);
	free(twice);
	redactor_free(r);
}

static void test_stream_keeps_secret_refs(void **state)
{
	static const char text[] =
		"run: mysql --password={{ secrets.db }} -u root\n"
		"env TOKEN={{ secrets.tok }} token=abc123def\n"
		"Authorization: Bearer {{ secrets.t }}\n"
		"pw hunter2 and token={{ secrets.a }}";
	static const char want[] =
		"run: mysql --password={{ secrets.db }} -u root\n"
		"env TOKEN={{ secrets.tok }} token=[redacted]\n"
		"Authorization: Bearer {{ secrets.t }}\n"
		"pw [secret:PW] and token={{ secrets.a }}";
	struct redactor *r = redactor_new();
	size_t len = strlen(text);
	char *whole, *got;

	(void)state;
	redactor_add_builtins(r);
	redactor_add_secret(r, "PW", "hunter2");
	whole = redact_str(r, text);
	assert_string_equal(whole, want);
	got = stream_bytewise(r, text);
	assert_string_equal(got, want);
	free(got);
	/* cut once at every point, in a reference or not */
	for (size_t cut = 1; cut < len; cut++) {
		size_t sizes[2] = { cut, len };

		got = stream_pieces(r, text, len, sizes, 2);
		assert_string_equal(got, want);
		free(got);
	}
	free(whole);
	redactor_free(r);
}

static void test_stream_long_line_keeps_secret_refs(void **state)
{
	struct redactor *r = redactor_new();
	struct rb_error err = RB_ERROR_INIT;
	struct buf text = BUF_INIT;
	char *whole;

	(void)state;
	redactor_add_builtins(r);
	/* would mask the tail of a reference cut in two */
	assert_int_equal(redactor_add_pattern(r, "[a-z]+ \\}\\}", &err), 0);
	/* one line far longer than the stream holds: it is cut */
	while (text.len < 200 * 1024)
		buf_adds(&text, "password={{ secrets.tok }} ");
	whole = redact_str(r, text.data);
	assert_string_equal(whole, text.data);
	rng_state = 12345;
	for (int round = 0; round < 20; round++) {
		char *got = stream_random(r, text.data, text.len,
					  round < 10 ? 7 : 5000);

		assert_string_equal(got, whole);
		free(got);
	}
	free(whole);
	buf_release(&text);
	redactor_free(r);
}

static const char mixed_text[] =
	"starting deploy\n"
	"connecting with hunter2 to db\n"
	"multi secret: line one\nline two ends\n"
	"overlap abcdef and abcd and cdef\n"
	"key AKIAIOSFODNN7EXAMPLE and ghp_1234567890ABCDEFGHIJ0123456789ZYXWVU\n"
	"GET /x?token=zzz&y=1\n"
	"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nhunter2\n"
	"-----END RSA PRIVATE KEY-----\n"
	"-----BEGIN PRIVATE KEY-----\nAAA\n-----END PRIVATE KEY----- then "
	"-----BEGIN PRIVATE KEY-----\nBBB\n-----END PRIVATE KEY-----\n"
	"Authorization: Bearer abc.def.ghi\n"
	"id=12345 and id=678\n"
	"hunter2hunter2 abcdabcd\n"
	"no newline at the end hunter";

static struct redactor *mixed_redactor(void)
{
	struct redactor *r = redactor_new();
	struct rb_error err = RB_ERROR_INIT;

	redactor_add_builtins(r);
	redactor_add_secret(r, "PW", "hunter2");
	redactor_add_secret(r, "ML", "line one\nline two");
	redactor_add_secret(r, "A", "abcd");
	redactor_add_secret(r, "B", "cdef");
	assert_int_equal(redactor_add_pattern(r, "id=[0-9]+", &err), 0);
	return r;
}

static void test_stream_bytewise_equals_whole(void **state)
{
	struct redactor *r = mixed_redactor();
	char *whole = redact_str(r, mixed_text);
	char *streamed = stream_bytewise(r, mixed_text);

	(void)state;
	assert_null(strstr(whole, "hunter2"));
	assert_null(strstr(whole, "MIIE"));
	assert_null(strstr(whole, "AKIA"));
	assert_null(strstr(whole, "ghp_"));
	assert_null(strstr(whole, "BEGIN"));
	assert_null(strstr(whole, "BBB"));
	assert_non_null(strstr(whole, "\n[redacted] then [redacted]\n"));
	assert_string_equal(streamed, whole);
	free(whole);
	free(streamed);
	redactor_free(r);
}

static void test_stream_secret_split_across_feeds(void **state)
{
	struct redactor *r = redactor_new();
	struct sink k = { BUF_INIT, 0, 0 };
	struct redact_stream *s;

	(void)state;
	redactor_add_secret(r, "PW", "hunter2");
	s = redact_stream_new(r, sink_emit, &k);
	redact_stream_feed(s, "password is hun", 15);
	assert_null(strstr(buf_str(&k.out), "hun"));
	redact_stream_feed(s, "ter2 ok", 7);
	redact_stream_flush(s);
	assert_string_equal(buf_str(&k.out), "password is [secret:PW] ok");
	/* the stream goes on after a flush */
	redact_stream_feed(s, "again h", 7);
	redact_stream_feed(s, "unter2\n", 7);
	redact_stream_flush(s);
	assert_string_equal(buf_str(&k.out),
			    "password is [secret:PW] okagain [secret:PW]\n");
	redact_stream_free(s);
	buf_release(&k.out);
	redactor_free(r);
}

static void test_stream_emits_complete_lines(void **state)
{
	struct redactor *r = redactor_new();
	struct sink k = { BUF_INIT, 0, 0 };
	struct redact_stream *s;

	(void)state;
	redactor_add_builtins(r);
	redactor_add_secret(r, "PW", "pw");
	s = redact_stream_new(r, sink_emit, &k);
	redact_stream_feed(s, "one\ntwo\nthr", 11);
	assert_string_equal(buf_str(&k.out), "one\ntwo\n");
	/* an open key block is held until its end */
	redact_stream_feed(s, "ee\n-----BEGIN PRIVATE KEY-----\nabc\n", 35);
	assert_string_equal(buf_str(&k.out), "one\ntwo\nthree\n");
	redact_stream_feed(s, "-----END PRIVATE KEY-----\nfour\np", 32);
	/* "four" is complete and cannot start "pw": it goes out at once,
	 * but the "p" that could start the secret is held */
	assert_string_equal(buf_str(&k.out),
			    "one\ntwo\nthree\n[redacted]\nfour\n");
	redact_stream_flush(s);
	assert_string_equal(buf_str(&k.out),
			    "one\ntwo\nthree\n[redacted]\nfour\np");
	redact_stream_free(s);
	buf_release(&k.out);
	redactor_free(r);
}

/*
 * Every command's stderr stream is flushed at its end, most often
 * without having been fed: with nothing held, flushing (and feeding
 * nothing) must emit nothing and never do pointer arithmetic on the
 * stream's still unallocated buffers (clang's UBSan, build-clang in
 * .ci/run, stops at "applying zero offset to null pointer").
 */
static void test_stream_flush_unfed(void **state)
{
	struct redactor *with = mixed_redactor();
	struct redactor *without = redactor_new();
	struct redactor *rs[] = { with, without };

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct sink k = { BUF_INIT, 0, 0 };
		struct redact_stream *s = redact_stream_new(rs[i], sink_emit,
							    &k);

		redact_stream_flush(s);
		redact_stream_feed(s, "", 0);
		redact_stream_flush(s);
		assert_int_equal(k.pieces, 0);
		/* and it still works afterwards */
		redact_stream_feed(s, "ok\n", 3);
		redact_stream_flush(s);
		redact_stream_flush(s);
		assert_string_equal(buf_str(&k.out), "ok\n");
		redact_stream_free(s);
		buf_release(&k.out);
	}
	redactor_free(with);
	redactor_free(without);
}

static void test_stream_random_splits(void **state)
{
	struct redactor *r = mixed_redactor();
	struct buf text = BUF_INIT;
	char *whole;

	(void)state;
	rng_state = 0x9e3779b97f4a7c15u;
	for (int i = 0; i < 40; i++)
		buf_adds(&text, mixed_text);
	whole = redact_str(r, text.data);
	for (int round = 0; round < 200; round++) {
		size_t maxpiece = round < 100 ? 8 : 300;
		char *got = stream_random(r, text.data, text.len, maxpiece);

		assert_string_equal(got, whole);
		free(got);
	}
	free(whole);
	buf_release(&text);
	redactor_free(r);
}

static void test_stream_overlap_chain(void **state)
{
	struct redactor *r = redactor_new();
	struct buf text = BUF_INIT;
	char *whole;

	(void)state;
	redactor_add_secret(r, "AB", "abab");
	redactor_add_secret(r, "BAB", "bab");
	redactor_add_secret(r, "L", "ababababababababx");
	rng_state = 77;
	for (int i = 0; i < 2000; i++)
		buf_adds(&text, rng() % 40 ? "ab" : (rng() % 2 ? "x\n" : "b"));
	whole = redact_str(r, text.data);
	for (int round = 0; round < 50; round++) {
		char *got = stream_random(r, text.data, text.len, 1 + round);

		assert_string_equal(got, whole);
		assert_null(strstr(got, "bab"));
		free(got);
	}
	free(whole);
	buf_release(&text);
	redactor_free(r);
}

static void test_pattern_error_fails_closed(void **state)
{
	struct redactor *r = redactor_new();
	struct rb_error err = RB_ERROR_INIT;
	struct buf text = BUF_INIT;
	char *got;

	(void)state;
	assert_int_equal(redactor_add_pattern(r, "(a+)+$", &err), 0);
	buf_adds(&text, "leak ");
	for (int i = 0; i < 40; i++)
		buf_addc(&text, 'a');
	buf_adds(&text, "b\n");
	got = redact_str(r, text.data);
	assert_string_equal(got, "[redacted: pattern error]");
	free(got);
	got = stream_bytewise(r, text.data);
	assert_null(strstr(got, "leak"));
	assert_null(strstr(got, "aaa"));
	assert_non_null(strstr(got, "[redacted: pattern error]"));
	free(got);
	buf_release(&text);
	redactor_free(r);
}

static void test_stream_endless_line_is_bounded(void **state)
{
	struct redactor *r = redactor_new();
	struct sink k = { BUF_INIT, 0, 0 };
	struct redact_stream *s;
	size_t total = 1024 * 1024, fed = 0, bound;
	char piece[4096];

	(void)state;
	redactor_add_builtins(r);
	redactor_add_secret(r, "PW", "0123456789-secret-value");
	bound = 64 * 1024 + 2 * strlen("0123456789-secret-value");
	s = redact_stream_new(r, sink_emit, &k);
	for (size_t i = 0; i < sizeof(piece); i++)
		piece[i] = (char)('a' + i % 26);
	while (fed < total) {
		redact_stream_feed(s, piece, sizeof(piece));
		fed += sizeof(piece);
		/* nothing to mask: output is input, so this is what is held */
		assert_true(fed - k.out.len <= bound);
	}
	assert_true(k.pieces > 10);
	assert_true(k.max_piece <= 128 * 1024);
	redact_stream_flush(s);
	assert_int_equal(k.out.len, total);
	redact_stream_free(s);
	buf_release(&k.out);
	redactor_free(r);
}

static void test_stream_open_key_block_is_bounded(void **state)
{
	struct redactor *r = redactor_new();
	struct sink k = { BUF_INIT, 0, 0 };
	struct redact_stream *s;
	static const char begin[] = "-----BEGIN RSA PRIVATE KEY-----\n";
	static const char body[] = "MIIEowIBAAKCAQEAsecretkeymaterial0123456789\n";
	size_t fed;

	(void)state;
	redactor_add_builtins(r);
	s = redact_stream_new(r, sink_emit, &k);
	redact_stream_feed(s, "head\n", 5);
	assert_string_equal(buf_str(&k.out), "head\n");
	redact_stream_feed(s, begin, strlen(begin));
	fed = strlen(begin);
	while (k.out.len == 5) {
		redact_stream_feed(s, body, strlen(body));
		fed += strlen(body);
		assert_true(fed <= 64 * 1024 + strlen(body));
	}
	/* held until 64 KiB without an END, then emitted as [redacted] */
	assert_string_equal(buf_str(&k.out), "head\n[redacted]");
	redact_stream_flush(s);
	redact_stream_free(s);
	buf_release(&k.out);
	redactor_free(r);
}

static void test_stream_never_emits_secrets(void **state)
{
	static const char *const secrets[] = {
		"Zq9!pW3x", "Zq9!pW3xLONGER", "k\ny7", "%%", "0xDEADBEEFcafe",
	};
	static const char alphabet[] = "abcZq9!pW3xk\ny7%0xDEADBEEFcafe \n";
	struct redactor *r = redactor_new();
	struct buf text = BUF_INIT;
	char *got;

	(void)state;
	redactor_add_builtins(r);
	for (size_t i = 0; i < sizeof(secrets) / sizeof(*secrets); i++) {
		char name[8];

		snprintf(name, sizeof(name), "S%zu", i);
		redactor_add_secret(r, name, secrets[i]);
	}
	rng_state = 12345;
	for (int i = 0; i < 20000; i++) {
		if (rng() % 16 == 0)
			buf_adds(&text, secrets[rng() % 5]);
		else
			buf_addc(&text,
				 alphabet[rng() % (sizeof(alphabet) - 1)]);
	}
	for (int round = 0; round < 20; round++) {
		got = stream_random(r, text.data, text.len, 1 + round * 50);
		for (size_t i = 0; i < sizeof(secrets) / sizeof(*secrets); i++)
			assert_null(strstr(got, secrets[i]));
		free(got);
	}
	buf_release(&text);
	redactor_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secret_masked),
		cmocka_unit_test(test_secret_value_copied),
		cmocka_unit_test(test_longest_first),
		cmocka_unit_test(test_overlapping_secrets),
		cmocka_unit_test(test_secret_with_newline),
		cmocka_unit_test(test_patterns),
		cmocka_unit_test(test_builtins_mask_tokens),
		cmocka_unit_test(test_builtins_leave_text_alone),
		cmocka_unit_test(test_builtin_private_key_block),
		cmocka_unit_test(test_secrets_before_patterns),
		cmocka_unit_test(test_builtins_keep_secret_refs),
		cmocka_unit_test(test_patterns_keep_secret_refs),
		cmocka_unit_test(test_secret_refs_redacted_twice),
		cmocka_unit_test(test_stream_keeps_secret_refs),
		cmocka_unit_test(test_stream_long_line_keeps_secret_refs),
		cmocka_unit_test(test_stream_bytewise_equals_whole),
		cmocka_unit_test(test_stream_secret_split_across_feeds),
		cmocka_unit_test(test_stream_emits_complete_lines),
		cmocka_unit_test(test_stream_flush_unfed),
		cmocka_unit_test(test_stream_random_splits),
		cmocka_unit_test(test_stream_overlap_chain),
		cmocka_unit_test(test_pattern_error_fails_closed),
		cmocka_unit_test(test_stream_endless_line_is_bounded),
		cmocka_unit_test(test_stream_open_key_block_is_bounded),
		cmocka_unit_test(test_stream_never_emits_secrets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
