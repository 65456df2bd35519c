/*
 * What the fuzz harnesses share. Each fuzz_<name>.c defines
 * LLVMFuzzerTestOneInput(); under clang with -Dfuzz=true libFuzzer
 * drives it, in every other build driver.c runs it on the files and
 * directories given (the corpus and the regression inputs).
 *
 * A harness never prints on success; a failed check calls
 * fuzz_fail(), which aborts so that libFuzzer keeps the input.
 */
#ifndef RUNBOOK_FUZZ_H
#define RUNBOOK_FUZZ_H

#include <stddef.h>
#include <stdint.h>

struct change_rec;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A 0700 directory of this process's own, removed at exit. */
const char *fuzz_tmpdir(void);
/* tmpdir/rel, a new string the caller frees. */
char *fuzz_path(const char *rel);
/* Replaces the file at path with data (its directory must exist). */
void fuzz_write(const char *path, const void *data, size_t len);
/* A NUL-terminated copy of data (it stops at the first NUL in data). */
char *fuzz_str(const uint8_t *data, size_t size);
/*
 * The note of c read back must give the same front matter: what a
 * recovery commits, or another clone wrote, reads back as it was.
 */
void fuzz_note_roundtrip(const struct change_rec *c);
/* Prints what failed and aborts. */
void fuzz_fail(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

#endif
