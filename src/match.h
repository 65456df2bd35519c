/*
 * Patterns of expect, capture, metrics and redact, with PCRE2.
 *
 * Every pattern is compiled once, as UTF with PCRE2_MATCH_INVALID_UTF
 * (command output is untrusted bytes: invalid sequences simply never
 * match) and MULTILINE (^ and $ match at line ends). Every match runs
 * with match, depth and heap limits, so a pathological pattern fails in
 * bounded time. Matching fails closed: any error other than "no match"
 * is an error, never "did not match".
 */
#ifndef RUNBOOK_MATCH_H
#define RUNBOOK_MATCH_H

#include <stdbool.h>
#include <stddef.h>

struct rb_error;

#define MATCH_LIMIT 1000000u
#define MATCH_DEPTH_LIMIT 10000u
#define MATCH_HEAP_LIMIT_KIB 65536u
#define MATCH_MAX_PATTERN 4096u

struct pattern;

/*
 * Compiles src. On failure returns NULL, with the PCRE2 message in msg
 * and the byte offset in src where it stopped in *erroff.
 */
struct pattern *pattern_compile(const char *src, char *msg, size_t msglen,
				size_t *erroff);
void pattern_free(struct pattern *p);
/*
 * Checks that src compiles, as pattern_compile() would, without the
 * cost of JIT; *groups gets the number of capture groups. 0 or -1.
 */
int pattern_check(const char *src, char *msg, size_t msglen, size_t *erroff,
		  unsigned *groups);
const char *pattern_source(const struct pattern *p);
/* Number of capture groups. */
unsigned pattern_groups(const struct pattern *p);

/*
 * Matches p against subject[0..len). Returns 1 on a match (with group 1,
 * if any and wanted, copied to *group as a new string), 0 on no match,
 * -1 with err set when the match could not be decided (a limit was hit,
 * or another PCRE2 error).
 */
int pattern_match(const struct pattern *p, const char *subject, size_t len,
		  char **group, struct rb_error *err);

/*
 * Calls fn for each match of p in subject, from start offset; used by
 * the redactor. Returns 0, or -1 with err set.
 */
int pattern_each(const struct pattern *p, const char *subject, size_t len,
		 int (*fn)(void *ctx, size_t start, size_t end), void *ctx,
		 struct rb_error *err);

#endif
