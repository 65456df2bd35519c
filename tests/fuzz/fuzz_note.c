/*
 * The note front-matter parser: notes arrive from other clones of the
 * notes repository (git fetch), so they are untrusted input to status,
 * log, show and rollback. Parses the input as a note; a note that
 * parses is rendered again and must read back the same.
 */
#include "change.h"
#include "error.h"
#include "fuzz.h"
#include "note.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rb_error err = RB_ERROR_INIT;
	struct change_rec *c = NULL;

	if (note_parse((const char *)data, size, NULL, &c, &err) == 0) {
		change_pending_total(c);
		fuzz_note_roundtrip(c);
	}
	change_free(c);
	return 0;
}
