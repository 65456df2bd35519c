/*
 * The rehearse baseline: what each preflight command showed before the
 * apply (pass 0) and after the rollback (pass 1), kept redacted and
 * bounded (the first BASELINE_MAX bytes of stdout, plus its size and
 * CRC-32C), and the unified diff of the two.
 */
#ifndef RUNBOOK_BASELINE_H
#define RUNBOOK_BASELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "change.h"

#define BASELINE_MAX (1u << 20)

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

#endif
