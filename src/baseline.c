/*
 * Rehearse snapshots and their comparison. A snapshot is compared as
 * text, so what differs is shown as a diff a person can read.
 */
#include "baseline.h"

#include "diff.h"
#include "hash.h"

#include <string.h>

void snap_reset(struct snap *k)
{
	buf_reset(&k->out);
	k->total = 0;
	k->crc = 0;
}

void snap_feed(struct snap *k, const char *data, size_t len)
{
	if (k->out.len < BASELINE_MAX)
		buf_add(&k->out, data, len < BASELINE_MAX - k->out.len ?
				  len : BASELINE_MAX - k->out.len);
	k->total += len;
	k->crc = crc32c(k->crc, data, len);
}

void snap_release(struct snap *k)
{
	buf_release(&k->out);
	strvec_release(&k->caps);
}

/* One preflight command's snapshot as text to compare and diff. */
static void snap_text(const struct snap *k, struct buf *b)
{
	if (!k->taken) {
		buf_adds(b, "[result] not run (skipped)\n");
		return;
	}
	buf_addf(b, "[result] %s, exit %d\n", step_result_name(k->result),
		 k->exit_code);
	for (size_t i = 0; i < k->caps.n; i++)
		buf_addf(b, "[capture] %s\n", k->caps.v[i]);
	buf_adds(b, "[stdout]\n");
	buf_add(b, k->out.data ? k->out.data : "", k->out.len);
	if (k->out.len && k->out.data[k->out.len - 1] != '\n')
		buf_adds(b, "\n[stdout ends without a newline]\n");
	if (k->total > k->out.len)
		buf_addf(b, "[stdout: %llu bytes in all, crc32c %08x; the first %u compared line by line]\n",
			 k->total, (unsigned)k->crc, BASELINE_MAX);
}

bool baseline_compare(const struct snap *before, const struct snap *after,
		      const char *name, const char *host, struct buf *diff)
{
	struct buf a = BUF_INIT, b = BUF_INIT, la = BUF_INIT, lb = BUF_INIT;
	bool same;

	snap_text(before, &a);
	snap_text(after, &b);
	buf_addf(&la, "baseline: preflight '%s' on %s", name, host);
	buf_addf(&lb, "after rollback: preflight '%s' on %s", name, host);
	same = !diff_unified(diff, buf_str(&la), buf_str(&lb), buf_str(&a),
			     a.len, buf_str(&b), b.len, 3);
	buf_release(&a);
	buf_release(&b);
	buf_release(&la);
	buf_release(&lb);
	return same;
}

/* A recorded baseline as text: exit, size and CRC, the first bytes. */
static void rec_text(struct buf *b, int exit_code, const char *out, size_t len,
		     unsigned long long bytes, unsigned crc)
{
	if (exit_code >= 0)
		buf_addf(b, "[exit] %d\n", exit_code);
	else
		buf_adds(b, "[exit] none (did not run to the end)\n");
	buf_addf(b, "[stdout: %llu bytes, crc32c %08x]\n", bytes, crc);
	buf_add(b, out ? out : "", len);
	if (len && out[len - 1] != '\n')
		buf_adds(b, "\n[stdout ends without a newline]\n");
	if (bytes > len)
		buf_addf(b, "[... the rest of the %llu bytes is known by its size and crc only]\n",
			 bytes);
}

bool baseline_compare_recorded(int exit_before, const char *out_before,
			       unsigned long long bytes_before,
			       unsigned crc_before, int exit_after,
			       const struct snap *after, const char *name,
			       const char *host, struct buf *diff)
{
	struct buf a = BUF_INIT, b = BUF_INIT, la = BUF_INIT, lb = BUF_INIT;
	size_t len_b = after->out.len < BASELINE_KEEP ? after->out.len :
							 BASELINE_KEEP;
	bool same = exit_before == exit_after && bytes_before == after->total &&
		    crc_before == after->crc;

	if (same)
		return true;
	rec_text(&a, exit_before, out_before,
		 out_before ? strlen(out_before) : 0, bytes_before, crc_before);
	rec_text(&b, exit_after, after->out.data, len_b, after->total,
		 after->crc);
	buf_addf(&la, "baseline: preflight '%s' on %s (recorded when the change began)",
		 name, host);
	buf_addf(&lb, "after rollback: preflight '%s' on %s", name, host);
	diff_unified(diff, buf_str(&la), buf_str(&lb), buf_str(&a), a.len,
		     buf_str(&b), b.len, 3);
	buf_release(&a);
	buf_release(&b);
	buf_release(&la);
	buf_release(&lb);
	return false;
}
