/*
 * The baseline: what each preflight command showed when the change
 * began (pass 0) and after a rollback (pass 1: rehearse, apply's own
 * rollback, or `runbook rollback` against the recorded one), kept
 * redacted and bounded (the first BASELINE_MAX bytes of stdout, plus
 * its size and CRC-32C), and the unified diff of the two.
 */
#ifndef RUNBOOK_BASELINE_H
#define RUNBOOK_BASELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "change.h"

#define BASELINE_MAX (1u << 20)
/* What the record keeps of a baseline's stdout (journal, note). */
#define BASELINE_KEEP (64u << 10)

/* What one preflight command showed. */
struct snap {
	bool taken;
	enum step_result result;
	int exit_code;
	struct buf out;		/* redacted stdout, the first BASELINE_MAX bytes */
	unsigned long long total;	/* redacted bytes in all */
	uint32_t crc;		/* of all of them */
	struct strvec caps;	/* "name = value", redacted */
};

/* A new attempt starts the record again. */
void snap_reset(struct snap *k);
/* Redacted stdout as it arrives. */
void snap_feed(struct snap *k, const char *data, size_t len);
void snap_release(struct snap *k);

/*
 * Appends to diff a unified diff of before against after for the
 * preflight command name on host; returns true when they are the same.
 */
bool baseline_compare(const struct snap *before, const struct snap *after,
		      const char *name, const char *host, struct buf *diff);

/*
 * The same after `runbook rollback`, against a baseline read back from
 * the record (exit code, the first BASELINE_KEEP bytes of stdout, the
 * size and CRC-32C of all of it): the same when exit, size and CRC
 * agree; the diff shows the recorded text against the new one.
 */
bool baseline_compare_recorded(int exit_before, const char *out_before,
			       unsigned long long bytes_before,
			       unsigned crc_before, int exit_after,
			       const struct snap *after, const char *name,
			       const char *host, struct buf *diff);

#endif
