/*
 * Metric guards; see guard.h. Values are read as decimal numbers, the
 * way the metric's pattern captured them (surrounding blanks allowed).
 */
#include "guard.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

const char *const guard_key[GUARD_COUNT] = {
	"max", "min", "max_increase", "max_decrease",
};

/* A decimal number: -?digits[.digits], nothing else but blanks around. */
static bool number(const char *s, size_t len, double *out)
{
	size_t i = 0, digits = 0;
	char tmp[64];

	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (len - i == 0 || len - i >= sizeof(tmp))
		return false;
	memcpy(tmp, s + i, len - i);
	tmp[len - i] = '\0';
	i = tmp[0] == '-';
	for (; tmp[i] >= '0' && tmp[i] <= '9'; i++)
		digits++;
	if (tmp[i] == '.') {
		size_t frac = 0;

		for (i++; tmp[i] >= '0' && tmp[i] <= '9'; i++)
			frac++;
		if (!frac)
			return false;
	}
	if (!digits || tmp[i])
		return false;
	*out = strtod(tmp, NULL);
	return isfinite(*out);
}

bool guard_parse(const char *text, bool allow_percent, struct guard *g)
{
	size_t len = text ? strlen(text) : 0;
	bool pct = len && text[len - 1] == '%';
	double v;

	if (!len || (pct && !allow_percent) ||
	    !number(text, pct ? len - 1 : len, &v) || (allow_percent && v < 0))
		return false;
	g->set = true;
	g->percent = pct;
	g->value = v;
	return true;
}

bool guard_is_number(const char *text)
{
	double v;

	return text && number(text, strlen(text), &v);
}

bool guard_any(const struct step *s)
{
	for (int k = 0; k < GUARD_COUNT; k++)
		if (s->guards[k].set)
			return true;
	return false;
}

/* %g without a trailing exponent for ordinary values. */
static void num(struct buf *b, double v)
{
	buf_addf(b, "%.10g", v);
}

/* The change from before to after: "+50%" or "+60". */
static void change_text(struct buf *b, double before, double after,
			bool percent)
{
	double d = percent ? (after - before) / fabs(before) * 100 : after - before;

	buf_addc(b, d < 0 ? '-' : '+');
	num(b, fabs(d));
	if (percent)
		buf_addc(b, '%');
}

static int relative(const struct step *s, enum guard_kind k, double before,
		    double after, struct buf *why)
{
	const struct guard *g = &s->guards[k];
	bool up = k == GUARD_MAX_INCREASE;
	double d = up ? after - before : before - after;	/* >= 0: moved that way */
	bool bad;

	if (!g->set || d <= 0)
		return 1;
	if (g->percent)
		bad = before == 0 || d / fabs(before) * 100 > g->value;
	else
		bad = d > g->value;
	if (!bad)
		return 1;
	buf_addf(why, "metric %s %s from ", s->name.s, up ? "rose" : "fell");
	num(why, before);
	buf_adds(why, " to ");
	num(why, after);
	buf_adds(why, " (");
	if (g->percent && before == 0)
		buf_adds(why, "from 0, so by more than any percentage");
	else
		change_text(why, before, after, g->percent);
	buf_addf(why, ", limit %c", up ? '+' : '-');
	num(why, g->value);
	buf_addf(why, "%s)", g->percent ? "%" : "");
	return 0;
}

int guard_check(const struct step *s, const char *before, const char *after,
		struct buf *why)
{
	bool rel = s->guards[GUARD_MAX_INCREASE].set ||
		   s->guards[GUARD_MAX_DECREASE].set;
	double a, b = 0;

	if (!after || !number(after, strlen(after), &a)) {
		buf_addf(why, "metric %s: expected a number to check its guards, found \"%s\"",
			 s->name.s, after ? after : "");
		return -1;
	}
	if (rel && (!before || !number(before, strlen(before), &b))) {
		buf_addf(why, "metric %s: expected a number before the change to check max_increase/max_decrease, found \"%s\"",
			 s->name.s, before ? before : "(not measured)");
		return -1;
	}
	if (s->guards[GUARD_MAX].set && a > s->guards[GUARD_MAX].value) {
		buf_addf(why, "metric %s is ", s->name.s);
		num(why, a);
		buf_adds(why, ", above its max ");
		num(why, s->guards[GUARD_MAX].value);
		return 0;
	}
	if (s->guards[GUARD_MIN].set && a < s->guards[GUARD_MIN].value) {
		buf_addf(why, "metric %s is ", s->name.s);
		num(why, a);
		buf_adds(why, ", below its min ");
		num(why, s->guards[GUARD_MIN].value);
		return 0;
	}
	if (relative(s, GUARD_MAX_INCREASE, b, a, why) == 0 ||
	    relative(s, GUARD_MAX_DECREASE, b, a, why) == 0)
		return 0;
	return 1;
}
