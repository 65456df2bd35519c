/*
 * {{ name }} templates.
 *
 * In shell mode (run, rollback, skip_if) every substituted value is
 * quoted for the place it lands in: a plain word gets '...' quoting
 * (bare when shell_quote() finds it safe; never bare in [[ ... ]]), a
 * value inside "..." gets backslashes before $ ` " and \, a value
 * inside '...' has each ' written as '\''. The renderer reads the
 * command as the shell will: the text and its {{ 'literal' }} pieces
 * joined, with each value in its place (when rendering, the value
 * itself, so a command word that comes from a value is checked too).
 * Where it cannot be sure what the shell will make of a value
 * (backquotes, ${...}, here documents, comments, $'...', right after
 * $ or \) or where bash evaluates the value's word (((...)), $((...)),
 * $[...], let, [[ a -lt b ]], declare -i, an array index, a variable
 * name given to read, declare, unset, printf -v, test -v, and the
 * code given to eval or trap) the template is rejected, so a value can
 * never become shell syntax. Raw mode (env values, dir) copies values
 * as they are.
 *
 * {{ 'text' }} inserts text as written: the escape for a literal {{.
 * A rendered value is never rendered again. The record form
 * (TPL_SECRET_KEEP) is a template that renders (TPL_SECRET_RESOLVE) to
 * the very command the original did, resolving only the secrets it
 * did: every {{ of the command is written {{ '{{' }} (and a { right
 * before a secret {{ '{' }}), secrets are left as {{ secrets.NAME }}.
 * Rendering a record in record form gives it back unchanged.
 */
#ifndef RUNBOOK_TEMPLATE_H
#define RUNBOOK_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

struct buf;
struct rb_error;

enum tpl_mode { TPL_SHELL, TPL_RAW };

enum tpl_secrets {
	TPL_SECRET_RESOLVE,	/* the value: only for execution */
	TPL_SECRET_MASK,	/* [secret:NAME]: for display */
	TPL_SECRET_KEEP,	/* {{ secrets.NAME }}: for the record */
};

/* One placeholder found by tpl_scan(). */
struct tpl_ref {
	char *name;		/* "version", "change.id", "secrets.db" */
	size_t off;		/* byte offset of "{{" in the template */
};

struct tpl_refs {
	struct tpl_ref *v;
	size_t n;
	size_t cap;
};

void tpl_refs_release(struct tpl_refs *r);

/*
 * Checks the syntax of tpl and lists its placeholders in r (appended).
 * Returns 0, or -1 with a message in problem (what is wrong, what to
 * do instead, and where, as the byte offset of the placeholder in
 * *off) for an unterminated or malformed placeholder, or one in a
 * shell context that cannot be quoted safely. No value is known here:
 * tpl_render() checks again with the values, and may refuse more.
 */
int tpl_scan(const char *tpl, enum tpl_mode mode, struct tpl_refs *r,
	     char *problem, size_t problem_len, size_t *off);

/*
 * A lookup may return tpl_defer to leave "{{ name }}" in the output as
 * it is (plan shows captures that exist only at run time this way).
 */
extern const char tpl_defer[];

/*
 * Looks up a name; returns its value, or NULL when it is unknown. For
 * names "secrets.X" lookup is called only with TPL_SECRET_RESOLVE.
 */
typedef const char *(*tpl_lookup_fn)(void *ctx, const char *name);

/*
 * Appends the rendering of tpl to out. Returns 0, or -1 with err set
 * (class RB_ERR_INVALID; out unchanged) for a template tpl_scan()
 * rejects, one whose values make it unsafe (a value that names the
 * command let, say), or a name lookup does not know.
 */
int tpl_render(const char *tpl, enum tpl_mode mode, enum tpl_secrets sec,
	       tpl_lookup_fn lookup, void *ctx, struct buf *out,
	       struct rb_error *err);

#endif
