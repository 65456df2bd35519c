/* {{ }} in reason, expected and patterns. See render.h. */
#include "render.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "runbook.h"
#include "vars.h"

/* ---- reason and expected ---- */

struct text_ctx {
	const struct runbook *rb;
	const char *target;
	const struct varset *cli;
	const char *change_id;
};

static const char *text_lookup(void *ctx, const char *name)
{
	const struct text_ctx *t = ctx;
	const struct kv *kv;
	const char *v;

	/* built-ins first, as apply sets them last */
	if (strcmp(name, "target") == 0)
		return t->target;
	if (strcmp(name, "runbook.name") == 0)
		return t->rb->name.s;
	if (strcmp(name, "change.id") == 0)
		return t->change_id ? t->change_id : tpl_defer;
	if (t->cli && (v = varset_get(t->cli, name)))
		return v;
	if ((kv = kv_find(t->rb->vars, t->rb->n_vars, name)))
		return kv->val;
	return NULL;
}

int render_change_text(const struct runbook *rb, const char *text,
		       const char *target, const struct varset *cli_vars,
		       const char *change_id, char **out,
		       struct rb_error *err)
{
	struct text_ctx t = { rb, target, cli_vars, change_id };
	struct tpl_refs refs = { 0 };
	struct buf b = BUF_INIT;
	char problem[512];
	size_t off = 0;
	int ret = -1;

	if (tpl_scan(text, TPL_RAW, &refs, problem, sizeof(problem),
		     &off) < 0) {
		rb_error_set(err, RB_ERR_INVALID,
			     "cannot render \"%.80s\": %s (at byte %zu)", text,
			     problem, off);
		goto out;
	}
	for (size_t i = 0; i < refs.n; i++) {
		if (strncmp(refs.v[i].name, "secrets.", 8) == 0) {
			rb_error_set(err, RB_ERR_INVALID,
				     "cannot render \"%.80s\": expected no secret in a text written in the note and the commit message, found {{ %s }}",
				     text, refs.v[i].name);
			goto out;
		}
	}
	if (tpl_render(text, TPL_RAW, TPL_SECRET_MASK, text_lookup, &t, &b,
		       err) < 0)
		goto out;
	*out = buf_detach(&b);
	ret = 0;
out:
	tpl_refs_release(&refs);
	buf_release(&b);
	return ret;
}

/* ---- patterns ---- */

void render_literal(struct buf *out, const char *value)
{
	for (const unsigned char *c = (const unsigned char *)value; *c; c++) {
		/* PCRE2: a backslash before a non-alphanumeric is that character */
		if (*c < 0x80 && !((*c >= 'a' && *c <= 'z') ||
				   (*c >= 'A' && *c <= 'Z') ||
				   (*c >= '0' && *c <= '9')))
			buf_addc(out, '\\');
		buf_addc(out, (char)*c);
	}
}

const char *render_pattern_refuse(const char *before)
{
	bool quoted = false;

	for (size_t i = 0; before[i]; i++) {
		if (before[i] != '\\')
			continue;
		if (!before[i + 1])
			return quoted ?
			       "is inside \\Q...\\E (its escapes would be matched as text); end the quote with \\E before it" :
			       "is right after a backslash (its first character would become an escape); move the backslash";
		if (quoted) {
			if (before[i + 1] == 'E')
				quoted = false;
			i++;
			continue;
		}
		if (before[i + 1] == 'Q')
			quoted = true;
		i++;
	}
	if (quoted)
		return "is inside \\Q...\\E (its escapes would be matched as text); end the quote with \\E before it";
	return NULL;
}

struct pat_ctx {
	tpl_lookup_fn lookup;
	void *ctx;
	const struct buf *out;	/* the pattern rendered so far, from start */
	size_t start;
	struct strvec vals;	/* escaped values, alive until the end */
	const char *why;	/* a refusal, of name */
	char name[256];
};

static const char *pat_lookup(void *ctx, const char *name)
{
	struct pat_ctx *pc = ctx;
	struct buf b = BUF_INIT;
	const char *v;

	snprintf(pc->name, sizeof(pc->name), "%s", name);
	if (strncmp(name, "secrets.", 8) == 0) {
		pc->why = "is a secret; a pattern is shown in messages and plans, so no secret goes in one";
		return NULL;
	}
	if ((pc->why = render_pattern_refuse(buf_str(pc->out) + pc->start)))
		return NULL;
	v = pc->lookup(pc->ctx, name);
	if (!v || v == tpl_defer)
		return v;
	render_literal(&b, v);
	strvec_push_owned(&pc->vals, xstrdup(buf_str(&b)));
	buf_release(&b);
	return pc->vals.v[pc->vals.n - 1];
}

int render_pattern(const char *pattern, tpl_lookup_fn lookup, void *ctx,
		   struct buf *out, struct rb_error *err)
{
	struct pat_ctx pc = { lookup, ctx, out, out->len, STRVEC_INIT, NULL,
			      "" };
	int ret;

	/* RESOLVE: secrets reach pat_lookup, which refuses them */
	ret = tpl_render(pattern, TPL_RAW, TPL_SECRET_RESOLVE, pat_lookup, &pc,
			 out, err);
	if (ret < 0 && pc.why)
		rb_error_set(err, RB_ERR_INVALID,
			     "cannot render the pattern \"%.80s\": {{ %s }} %s",
			     pattern, pc.name, pc.why);
	strvec_release(&pc.vals);
	return ret;
}
