/*
 * SHA-256 against the NIST vectors and against sha256sum(1) on files
 * whose lengths sit on every padding and read-chunk boundary; CRC-32C
 * against the published check values and a bit-at-a-time reference.
 * Incremental use must always equal one-shot, however the input is cut.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hash.h"

static void hex_of(const unsigned char d[32], char out[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* Deterministic filler so failures reproduce. */
static void fill(unsigned char *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (unsigned char)(seed >> 16);
	}
}

static void test_sha256_nist_vectors(void **state)
{
	static const struct {
		const char *in, *hex;
	} v[] = {
		{ "",
		  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
		{ "abc",
		  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
		{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
		{ "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
		  "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
		  "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1" },
	};
	char hex[65];

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		memset(hex, 'X', sizeof(hex));
		sha256_hex(v[i].in, strlen(v[i].in), hex);
		assert_string_equal(hex, v[i].hex);
	}
}

static void test_sha256_million_a(void **state)
{
	static const char want[] =
		"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
	char *a = malloc(1000000);
	char block[1000], hex[65];
	unsigned char d[32];
	struct sha256 s;

	(void)state;
	assert_non_null(a);
	memset(a, 'a', 1000000);
	sha256_hex(a, 1000000, hex);
	assert_string_equal(hex, want);
	free(a);

	/* the same, fed 1000 bytes at a time */
	memset(block, 'a', sizeof(block));
	sha256_init(&s);
	for (int i = 0; i < 1000; i++)
		sha256_update(&s, block, sizeof(block));
	sha256_final(&s, d);
	hex_of(d, hex);
	assert_string_equal(hex, want);
}

static void test_sha256_pieces_equal_one_shot(void **state)
{
	static const size_t sizes[] = { 1, 63, 64, 65, 0, 2, 55, 56, 57,
					127, 128, 129, 3, 7, 1000 };
	unsigned char data[4096], d[32];
	char want[65], got[65];

	(void)state;
	fill(data, sizeof(data), 1);
	/* every length across the padding boundaries of two blocks */
	for (size_t len = 0; len <= 200; len++) {
		struct sha256 s;

		sha256_hex(data, len, want);
		/* byte by byte */
		sha256_init(&s);
		for (size_t i = 0; i < len; i++)
			sha256_update(&s, data + i, 1);
		sha256_final(&s, d);
		hex_of(d, got);
		assert_string_equal(got, want);
		/* every split into two pieces */
		for (size_t cut = 0; cut <= len; cut++) {
			sha256_init(&s);
			sha256_update(&s, data, cut);
			sha256_update(&s, data + cut, len - cut);
			sha256_final(&s, d);
			hex_of(d, got);
			assert_string_equal(got, want);
		}
	}
	/* odd-sized pieces, starting at each offset of the size list */
	sha256_hex(data, sizeof(data), want);
	for (size_t start = 0; start < sizeof(sizes) / sizeof(sizes[0]);
	     start++) {
		struct sha256 s;
		size_t off = 0, k = start;

		sha256_init(&s);
		while (off < sizeof(data)) {
			size_t n = sizes[k++ % (sizeof(sizes) / sizeof(sizes[0]))];

			if (n > sizeof(data) - off)
				n = sizeof(data) - off;
			sha256_update(&s, data + off, n);
			off += n;
		}
		sha256_final(&s, d);
		hex_of(d, got);
		assert_string_equal(got, want);
	}
}

/* sha256sum(1) of path, by popen. */
static void sha256sum(const char *path, char out[65])
{
	char cmd[256], line[256];
	FILE *f;

	snprintf(cmd, sizeof(cmd), "/usr/bin/sha256sum < '%s'", path);
	f = popen(cmd, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	assert_int_equal(pclose(f), 0);
	assert_true(strlen(line) >= 64);
	memcpy(out, line, 64);
	out[64] = '\0';
}

static void test_sha256_file_matches_sha256sum(void **state)
{
	/* padding boundaries, and the 64 KiB read chunk */
	static const size_t lens[] = { 0, 1, 3, 55, 56, 57, 63, 64, 65, 119,
				       120, 128, 65535, 65536, 65537, 131072,
				       200003 };
	static unsigned char data[200003];
	char path[] = "/tmp/rbhashXXXXXX";
	char want[65], got[65], mem[65];

	(void)state;
	fill(data, sizeof(data), 7);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		int fd;

		strcpy(path, "/tmp/rbhashXXXXXX");
		fd = mkstemp(path);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, data, lens[i]), (ssize_t)lens[i]);
		assert_int_equal(close(fd), 0);

		memset(got, 'X', sizeof(got));
		assert_int_equal(sha256_file_hex(path, got), 0);
		sha256sum(path, want);
		sha256_hex(data, lens[i], mem);
		if (strcmp(got, want) != 0)
			fail_msg("length %zu: got %s, sha256sum says %s",
				 lens[i], got, want);
		assert_string_equal(mem, want);
		unlink(path);
	}
}

static void test_sha256_file_errors(void **state)
{
	char dir[] = "/tmp/rbhashdXXXXXX";
	char path[64], out[65];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/missing", dir);
	memset(out, 'X', sizeof(out));
	errno = 0;
	assert_int_equal(sha256_file_hex(path, out), -1);
	assert_int_equal(errno, ENOENT);
	/* out is left alone on failure */
	for (size_t i = 0; i < sizeof(out); i++)
		assert_int_equal(out[i], 'X');

	/* opening a directory works; reading it does not */
	errno = 0;
	assert_int_equal(sha256_file_hex(dir, out), -1);
	assert_int_equal(errno, EISDIR);
	assert_int_equal(out[0], 'X');
	rmdir(dir);
}

/* Bit at a time, straight from the definition. */
static uint32_t crc32c_ref(uint32_t crc, const unsigned char *p, size_t n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
	}
	return ~crc;
}

static void test_crc32c_check_values(void **state)
{
	unsigned char b[32];

	(void)state;
	assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
	/* RFC 3720 B.4 */
	memset(b, 0, sizeof(b));
	assert_int_equal(crc32c(0, b, sizeof(b)), 0x8A9136AAu);
	memset(b, 0xff, sizeof(b));
	assert_int_equal(crc32c(0, b, sizeof(b)), 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		b[i] = (unsigned char)i;
	assert_int_equal(crc32c(0, b, sizeof(b)), 0x46DD794Eu);
	for (int i = 0; i < 32; i++)
		b[i] = (unsigned char)(31 - i);
	assert_int_equal(crc32c(0, b, sizeof(b)), 0x113FDB5Cu);
}

static void test_crc32c_empty(void **state)
{
	(void)state;
	assert_int_equal(crc32c(0, "", 0), 0);
	assert_int_equal(crc32c(0, NULL, 0), 0);
	/* nothing to add leaves a running value as it was */
	assert_int_equal(crc32c(0xE3069283u, "", 0), 0xE3069283u);
}

static void test_crc32c_incremental_equals_one_shot(void **state)
{
	unsigned char data[300];

	(void)state;
	fill(data, sizeof(data), 3);
	for (size_t len = 0; len <= 100; len++) {
		uint32_t want = crc32c_ref(0, data, len);

		assert_int_equal(crc32c(0, data, len), want);
		for (size_t cut = 0; cut <= len; cut++) {
			uint32_t c = crc32c(0, data, cut);

			assert_int_equal(crc32c(c, data + cut, len - cut), want);
		}
	}
	/* "1234" then "56789" */
	assert_int_equal(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
}

static void test_crc32c_any_alignment(void **state)
{
	unsigned char data[4099];

	(void)state;
	fill(data, sizeof(data), 5);
	for (size_t off = 0; off < 8; off++)
		for (size_t len = sizeof(data) - 8 - 16; len <= sizeof(data) - 8;
		     len++)
			assert_int_equal(crc32c(0, data + off, len),
					 crc32c_ref(0, data + off, len));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256_nist_vectors),
		cmocka_unit_test(test_sha256_million_a),
		cmocka_unit_test(test_sha256_pieces_equal_one_shot),
		cmocka_unit_test(test_sha256_file_matches_sha256sum),
		cmocka_unit_test(test_sha256_file_errors),
		cmocka_unit_test(test_crc32c_check_values),
		cmocka_unit_test(test_crc32c_empty),
		cmocka_unit_test(test_crc32c_incremental_equals_one_shot),
		cmocka_unit_test(test_crc32c_any_alignment),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
