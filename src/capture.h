/*
 * One command's output, read once as it arrives: raw blocks of whole
 * lines (at most 8 MiB) go to the step's patterns (expect, capture,
 * metric), a redacted copy feeds the head and tail kept for messages
 * and the note, and the redacted bytes are passed on to a tee (the
 * live --verbose stream, the rehearse baseline). Memory is bounded
 * whatever the output size.
 *
 * Then capture_judge() says how the command ended against what the
 * step expects, with "expected ..., found ..." and an excerpt.
 *
 * A capture serves one command on one thread; it knows nothing of the
 * engine. The caller owns the step, the patterns and the redactor, and
 * keeps them alive until capture_release().
 */
#ifndef RUNBOOK_CAPTURE_H
#define RUNBOOK_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "change.h"
#include "error.h"
#include "exec.h"
#include "template.h"

struct pattern;
struct redactor;
struct redact_stream;
struct runbook;
struct step;

/* A step's patterns, compiled once per run. */
struct step_pats {
	struct pattern *out, *err, *not_out, *not_err, *metric;
	struct pattern **cap;
	bool templated;		/* left empty: a pattern has {{ }} */
};

/*
 * Compiles every pattern of rb into pats[phase][index]; -1 with err
 * (invalid). A step with {{ }} in a pattern (expect, capture, metric)
 * is left empty with templated set: its values are known on its host
 * only when it runs, so capture_compile_step() compiles it then. A
 * capture given a templated entry fails its command closed ("not
 * rendered"), never matching the braces as text.
 */
int capture_compile(const struct runbook *rb,
		    struct step_pats *pats[PHASE_COUNT], struct rb_error *err);
void capture_free_pats(const struct runbook *rb,
		       struct step_pats *pats[PHASE_COUNT]);

/*
 * Compiles the patterns of s for one host, right before s runs there:
 * each {{ name }} is lookup's value matched literally (render.h), with
 * the host's variables (engine_lookup: vars, captures so far, --var,
 * built-ins). Returns 0 with out filled (release it with
 * capture_release_step()), or -1 with err set (RB_ERR_INVALID) when a
 * value is unknown or the pattern does not compile with it: s must not
 * run. Validation has refused secrets and unknown names before.
 */
int capture_compile_step(const struct step *s, tpl_lookup_fn lookup,
			 void *ctx, struct step_pats *out,
			 struct rb_error *err);
void capture_release_step(const struct step *s, struct step_pats *p);

/* Redacted output as it arrives, for whoever watches. */
typedef void capture_tee_fn(void *ctx, enum exec_stream s, const char *data,
			    size_t len);

struct stream_cap {
	struct buf block;	/* raw, whole lines, for patterns */
	struct buf head;	/* redacted, first CAPTURE_EXCERPT bytes */
	struct buf tail;	/* redacted, last bytes (<= 2 * CAPTURE_EXCERPT) */
	unsigned long long total;	/* raw bytes read */
	unsigned long long emitted;	/* redacted bytes seen by the tail */
	struct redact_stream *rs;
};

struct capture {
	const struct step *s;
	const struct step_pats *p;	/* NULL: only the exit status counts */
	struct stream_cap st[2];
	capture_tee_fn *tee;
	void *tee_ctx;
	bool out_ok, err_ok, not_out_hit, not_err_hit;
	size_t n_cap;		/* captures of the step (0 without patterns) */
	char **cap_vals;	/* group 1 of each capture, once matched */
	char *metric_val;
	bool pattern_failed;
	struct rb_error perr;
};

/*
 * s and p: the step and its patterns, or p NULL when exit 0 alone is
 * success (skip_if), or both NULL (a rollback). tee may be NULL.
 */
void capture_init(struct capture *c, const struct redactor *red,
		  const struct step *s, const struct step_pats *p,
		  capture_tee_fn *tee, void *tee_ctx);
/* The exec_sink output function; ctx is the capture. */
void capture_output(void *ctx, enum exec_stream s, const char *data,
		    size_t len);
/* The command ended: flush what is held back and match the rest. */
void capture_finish(struct capture *c);
/*
 * How the command that ended as r did against the step: RES_OK,
 * RES_FAILED or RES_TIMEOUT, with why (unredacted; the caller redacts)
 * saying what was expected and what was found.
 */
enum step_result capture_judge(struct capture *c, const struct exec_result *r,
			       unsigned timeout_ms, struct buf *why);
/* Head and tail of both streams for the note (redacted); caller frees. */
char *capture_text(const struct capture *c);
void capture_release(struct capture *c);

#endif
