/*
 * {{ }} outside commands: the change's reason and expected, and the
 * patterns of a step (expect, capture, a metric's pattern). Commands
 * are rendered by template.h; these use the same parser in raw mode and
 * add what their places need. Validation (validate.c) refuses what
 * these would fail on, so after it they fail only on a value.
 *
 * In reason and expected a value is copied as it is. The names are
 * vars, --var, target, runbook.name and change.id: the text is one for
 * the whole change, written in the note and the commit message, so
 * host, captures and secrets are refused there.
 *
 * In a pattern a value is matched literally: each ASCII character of
 * it other than a letter or a digit gets a backslash, which PCRE2 reads
 * as that very character, inside [...] and with (?x) too. A placeholder
 * right after a backslash or inside \Q...\E is refused (the value would
 * not be literal there), and so is a secret: a pattern is shown in
 * messages and plans.
 */
#ifndef RUNBOOK_RENDER_H
#define RUNBOOK_RENDER_H

#include "template.h"

struct buf;
struct rb_error;
struct runbook;
struct varset;

/*
 * Renders text (rb's reason or expected) for a change of rb on target:
 * cli_vars (--var) win over rb's vars; then target, runbook.name and
 * change_id (NULL: {{ change.id }} is left as written, as plan shows
 * it). Returns 0 with a new string in *out, or -1 with err set (class
 * RB_ERR_INVALID) for a template validation refuses: a secret, host, a
 * capture or another unknown name, or a malformed placeholder.
 */
int render_change_text(const struct runbook *rb, const char *text,
		       const char *target, const struct varset *cli_vars,
		       const char *change_id, char **out,
		       struct rb_error *err);

/* Appends value escaped for a PCRE2 pattern: it matches only itself. */
void render_literal(struct buf *out, const char *value);

/*
 * Why a value appended to before, a pattern rendered so far, could not
 * be matched literally (right after a backslash, inside \Q...\E), or
 * NULL.
 */
const char *render_pattern_refuse(const char *before);

/*
 * Appends pattern with each {{ name }} replaced by lookup's value,
 * escaped by render_literal(); a lookup that returns tpl_defer leaves
 * {{ name }} as written (plan). Returns 0, or -1 with err set (class
 * RB_ERR_INVALID; out unchanged) for a secret, a placeholder
 * render_pattern_refuse() refuses, a name lookup does not know, or a
 * malformed placeholder.
 */
int render_pattern(const char *pattern, tpl_lookup_fn lookup, void *ctx,
		   struct buf *out, struct rb_error *err);

#endif
