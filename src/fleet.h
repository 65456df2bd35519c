/*
 * Fleets (docs/fleets.md): how a target's hosts are cut into batches
 * (serial as a number, a percentage or a list of waves, or --serial)
 * and how many hosts may fail before the whole change is rolled back
 * (max_fail). Plain functions over the model, shared by plan and the
 * engine, so both cut the same batches.
 */
#ifndef RUNBOOK_FLEET_H
#define RUNBOOK_FLEET_H

#include <stdbool.h>
#include <stddef.h>

struct target;
struct wave;

/*
 * Cuts n hosts into batches by waves (n_waves of them; none: one batch
 * of all): each wave is a number of hosts or a percentage of n rounded
 * up (at least 1); the last wave repeats until every host has a batch.
 * Returns the number of batches; (*ends)[b] is one past the last host
 * of batch b. *ends is the caller's to free.
 */
size_t fleet_cut(size_t n, const struct wave *waves, size_t n_waves,
		 size_t **ends);
/* fleet_cut() with t's serial (its waves, else serial, else all). */
size_t fleet_batches(const struct target *t, size_t **ends);
/*
 * How many of n hosts may fail (failed or unreachable) before every
 * host is rolled back: max_fail, or its percentage of n rounded down.
 */
size_t fleet_budget(const struct target *t, size_t n);
/*
 * Whether a change with failed hosts (failed or unreachable, over every
 * batch so far) is still within budget: a failed host is then rolled
 * back alone and the others go on; past it, every host is rolled back.
 */
bool fleet_within_budget(size_t budget, size_t failed);
/*
 * Parses a serial as --serial gives it: "2", "25%" or "1,25%,100%".
 * Returns 0 with *out (the caller's to free) and *n set, or -1.
 */
int fleet_parse_serial(const char *s, struct wave **out, size_t *n);
/* One wave as written: "3" or "25%". */
void fleet_wave_text(const struct wave *w, char out[16]);

#endif
