/*
 * Rehearse snapshots and their comparison. A snapshot is compared as
 * text, so what differs is shown as a diff a person can read.
 */
#include "baseline.h"

#include "diff.h"
#include "hash.h"

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
