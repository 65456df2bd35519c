/*
 * The journal reader and the record applier, as recovery runs them
 * (history.c): journal_read() with repair, each record applied by
 * record_apply() to a change record, whose note must then read back
 * the same (recovery commits it).
 *
 * An input that starts with "RBJ1" is the journal file as it is. Any
 * other is a list of payloads, one per line, each framed here with its
 * right length and CRC (so the fuzzer reaches record_apply() without
 * having to find CRCs); without a final newline the last record is
 * torn: written without its own newline.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "change.h"
#include "error.h"
#include "fuzz.h"
#include "hash.h"
#include "journal.h"
#include "record.h"

static void put32(struct buf *b, uint32_t v)
{
	unsigned char p[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff,
			       v >> 24 };

	buf_add(b, p, 4);
}

static void frame(struct buf *out, const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;

	while (p < end) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

		buf_add(out, "RBJ1", 4);
		put32(out, (uint32_t)len);
		put32(out, crc32c(0, p, len));
		buf_add(out, p, len);
		if (!nl)
			break;
		buf_addc(out, '\n');
		p = nl + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *file;
	struct rb_error err = RB_ERROR_INIT;
	struct change_rec *c = change_new();
	struct buf text = BUF_INIT;
	bool torn;

	if (!file) {
		char *dir = fuzz_path("journal");

		mkdir(dir, 0700);
		free(dir);
		file = fuzz_path("journal/fuzz.log");
	}
	if (size >= 4 && memcmp(data, "RBJ1", 4) == 0)
		buf_add(&text, data, size);
	else
		frame(&text, data, size);
	fuzz_write(file, text.data ? text.data : "", text.len);
	if (journal_read(fuzz_tmpdir(), "fuzz", true, record_apply, c, &torn,
			 &err) == 0) {
		change_pending_total(c);
		fuzz_note_roundtrip(c);
	}
	change_free(c);
	buf_release(&text);
	return 0;
}
