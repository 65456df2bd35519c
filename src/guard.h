/*
 * Metric guards: the limits a metric's value after verify must keep,
 * absolute (max, min) or against its value before the change
 * (max_increase, max_decrease: a number, or a percentage of before).
 * A breach is said with the numbers: "rose from 120 to 180 (+50%,
 * limit +20%)".
 */
#ifndef RUNBOOK_GUARD_H
#define RUNBOOK_GUARD_H

#include <stdbool.h>

#include "runbook.h"

struct buf;

/* The guard key names, indexed by enum guard_kind. */
extern const char *const guard_key[GUARD_COUNT];

/*
 * Parses a guard's value as written: a decimal number ("150", "-2.5"),
 * or with allow_percent "20%". False when it is neither.
 */
bool guard_parse(const char *text, bool allow_percent, struct guard *g);

/* Whether text is a decimal number, as guards read values. */
bool guard_is_number(const char *text);

/* Whether s carries any guard. */
bool guard_any(const struct step *s);

/*
 * Checks the value after (and before, for the relative guards) of
 * metric s against its guards. Returns 1 when every guard holds, 0 on
 * a breach, -1 when a value is not a number; why says which and with
 * what numbers.
 */
int guard_check(const struct step *s, const char *before, const char *after,
		struct buf *why);

#endif
