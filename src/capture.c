/*
 * One command's output: patterns over raw whole-line blocks, redacted
 * head and tail, a tee for the live stream. See capture.h.
 */
#include "capture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "match.h"
#include "redact.h"
#include "render.h"
#include "runbook.h"

#define EXCERPT 4096u
#define BLOCK_MAX (8u << 20)

static bool step_templated(const struct step *s)
{
	const struct strval *v[] = { &s->expect.out, &s->expect.err,
				     &s->expect.not_out, &s->expect.not_err,
				     &s->pattern };

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (v[i]->s && strstr(v[i]->s, "{{"))
			return true;
	for (size_t k = 0; k < s->n_capture; k++)
		if (strstr(s->capture[k].val, "{{"))
			return true;
	return false;
}

struct pat_src {
	tpl_lookup_fn lookup;	/* NULL: the pattern as written */
	void *ctx;
	struct buf text;
};

/* Compiles src (rendered through ps) into *dst; -1 with err. */
static int compile_one(struct pat_src *ps, const char *src,
		       struct pattern **dst, struct rb_error *err)
{
	char msg[256];
	size_t off;

	if (!src)
		return 0;
	if (ps->lookup) {
		buf_reset(&ps->text);
		if (render_pattern(src, ps->lookup, ps->ctx, &ps->text, err) < 0)
			return -1;
		src = buf_str(&ps->text);
	}
	if (!(*dst = pattern_compile(src, msg, sizeof(msg), &off))) {
		rb_error_set(err, RB_ERR_INVALID,
			     "pattern '%s': %s; nothing was run", src, msg);
		return -1;
	}
	return 0;
}

static int compile_step(const struct step *s, struct pat_src *ps,
			struct step_pats *p, struct rb_error *err)
{
	p->cap = xcalloc(s->n_capture + 1, sizeof(*p->cap));
	if (compile_one(ps, s->expect.out.s, &p->out, err) < 0 ||
	    compile_one(ps, s->expect.err.s, &p->err, err) < 0 ||
	    compile_one(ps, s->expect.not_out.s, &p->not_out, err) < 0 ||
	    compile_one(ps, s->expect.not_err.s, &p->not_err, err) < 0 ||
	    compile_one(ps, s->pattern.s, &p->metric, err) < 0)
		return -1;
	for (size_t k = 0; k < s->n_capture; k++)
		if (compile_one(ps, s->capture[k].val, &p->cap[k], err) < 0)
			return -1;
	return 0;
}

int capture_compile(const struct runbook *rb,
		    struct step_pats *pats[PHASE_COUNT], struct rb_error *err)
{
	struct pat_src ps = { NULL, NULL, BUF_INIT };

	for (int ph = 0; ph < PHASE_COUNT; ph++) {
		pats[ph] = xcalloc(rb->n_phase[ph] + 1, sizeof(struct step_pats));
		for (size_t i = 0; i < rb->n_phase[ph]; i++) {
			const struct step *s = &rb->phases[ph][i];
			struct step_pats *p = &pats[ph][i];

			if (step_templated(s)) {
				/* compiled on each host as it runs */
				p->templated = true;
				p->cap = xcalloc(s->n_capture + 1,
						 sizeof(*p->cap));
				continue;
			}
			if (compile_step(s, &ps, p, err) < 0)
				return -1;
		}
	}
	return 0;
}

int capture_compile_step(const struct step *s, tpl_lookup_fn lookup,
			 void *ctx, struct step_pats *out,
			 struct rb_error *err)
{
	struct pat_src ps = { lookup, ctx, BUF_INIT };
	struct step_pats p = { 0 };
	int ret = compile_step(s, &ps, &p, err);

	buf_release(&ps.text);
	if (ret < 0) {
		capture_release_step(s, &p);
		return -1;
	}
	*out = p;
	return 0;
}

void capture_release_step(const struct step *s, struct step_pats *p)
{
	pattern_free(p->out);
	pattern_free(p->err);
	pattern_free(p->not_out);
	pattern_free(p->not_err);
	pattern_free(p->metric);
	for (size_t k = 0; p->cap && k < s->n_capture; k++)
		pattern_free(p->cap[k]);
	free(p->cap);
	memset(p, 0, sizeof(*p));
}

void capture_free_pats(const struct runbook *rb,
		       struct step_pats *pats[PHASE_COUNT])
{
	for (int ph = 0; ph < PHASE_COUNT; ph++) {
		if (!pats[ph])
			continue;
		for (size_t i = 0; i < rb->n_phase[ph]; i++)
			capture_release_step(&rb->phases[ph][i], &pats[ph][i]);
		free(pats[ph]);
		pats[ph] = NULL;
	}
}

static void emit(struct capture *c, int i, const char *data, size_t len)
{
	struct stream_cap *sc = &c->st[i];

	if (sc->head.len < EXCERPT) {
		size_t n = EXCERPT - sc->head.len;

		buf_add(&sc->head, data, len < n ? len : n);
	}
	buf_add(&sc->tail, data, len);
	sc->emitted += len;
	if (sc->tail.len > 2 * EXCERPT) {
		memmove(sc->tail.data, sc->tail.data + sc->tail.len - EXCERPT,
			EXCERPT);
		sc->tail.len = EXCERPT;
		sc->tail.data[EXCERPT] = '\0';
	}
	if (c->tee)
		c->tee(c->tee_ctx, i == 0 ? EXEC_STDOUT : EXEC_STDERR, data,
		       len);
}

static void emit_out(void *ctx, const char *data, size_t len)
{
	emit(ctx, 0, data, len);
}

static void emit_err(void *ctx, const char *data, size_t len)
{
	emit(ctx, 1, data, len);
}

/* Matches one block of whole lines of stream i against what is still open. */
static void match_block(struct capture *c, int i, const char *data, size_t len)
{
	const struct step_pats *p = c->p;
	struct pattern *pos = i == 0 ? p->out : p->err;
	struct pattern *neg = i == 0 ? p->not_out : p->not_err;
	bool *pos_ok = i == 0 ? &c->out_ok : &c->err_ok;
	bool *neg_hit = i == 0 ? &c->not_out_hit : &c->not_err_hit;
	int r;

	if (c->pattern_failed)
		return;
#define TRY(expr) do { r = (expr); if (r < 0) { c->pattern_failed = true; return; } } while (0)
	if (pos && !*pos_ok) {
		TRY(pattern_match(pos, data, len, NULL, &c->perr));
		*pos_ok = r == 1;
	}
	if (neg && !*neg_hit) {
		TRY(pattern_match(neg, data, len, NULL, &c->perr));
		*neg_hit = r == 1;
	}
	if (i != 0)
		return;
	for (size_t k = 0; k < c->n_cap; k++) {
		if (c->cap_vals[k])
			continue;
		TRY(pattern_match(p->cap[k], data, len, &c->cap_vals[k],
				  &c->perr));
	}
	if (p->metric && !c->metric_val)
		TRY(pattern_match(p->metric, data, len, &c->metric_val,
				  &c->perr));
#undef TRY
}

void capture_output(void *ctx, enum exec_stream s, const char *data,
		    size_t len)
{
	struct capture *c = ctx;
	int i = s == EXEC_STDOUT ? 0 : 1;
	struct stream_cap *sc = &c->st[i];

	sc->total += len;
	redact_stream_feed(sc->rs, data, len);
	if (!c->p)
		return;
	buf_add(&sc->block, data, len);
	if (sc->block.len > BLOCK_MAX) {
		char *nl = memrchr(sc->block.data, '\n', sc->block.len);
		size_t cut = nl ? (size_t)(nl - sc->block.data) + 1 : BLOCK_MAX;

		match_block(c, i, sc->block.data, cut);
		memmove(sc->block.data, sc->block.data + cut,
			sc->block.len - cut);
		sc->block.len -= cut;
		sc->block.data[sc->block.len] = '\0';
	}
}

void capture_init(struct capture *c, const struct redactor *red,
		  const struct step *s, const struct step_pats *p,
		  capture_tee_fn *tee, void *tee_ctx)
{
	memset(c, 0, sizeof(*c));
	c->s = s;
	c->p = p;
	c->tee = tee;
	c->tee_ctx = tee_ctx;
	c->n_cap = p && s ? s->n_capture : 0;
	c->cap_vals = xcalloc(c->n_cap + 1, sizeof(char *));
	if (p && p->templated) {
		/* fail closed: never match a {{ }} as text */
		c->pattern_failed = true;
		rb_error_set(&c->perr, RB_ERR_INVALID,
			     "expected the patterns of %s rendered for this host (capture_compile_step()), found them with {{ }} as written; nothing was matched",
			     s ? s->path : "this step");
	}
	c->st[0].rs = redact_stream_new(red, emit_out, c);
	c->st[1].rs = redact_stream_new(red, emit_err, c);
}

void capture_finish(struct capture *c)
{
	for (int i = 0; i < 2; i++) {
		redact_stream_flush(c->st[i].rs);
		if (c->p && c->st[i].block.len)
			match_block(c, i, c->st[i].block.data,
				    c->st[i].block.len);
		buf_release(&c->st[i].block);
	}
}

void capture_release(struct capture *c)
{
	for (int i = 0; i < 2; i++) {
		redact_stream_free(c->st[i].rs);
		buf_release(&c->st[i].block);
		buf_release(&c->st[i].head);
		buf_release(&c->st[i].tail);
	}
	for (size_t k = 0; c->cap_vals && k < c->n_cap; k++)
		free(c->cap_vals[k]);
	free(c->cap_vals);
	free(c->metric_val);
	memset(c, 0, sizeof(*c));
}

char *capture_text(const struct capture *c)
{
	struct buf b = BUF_INIT;

	/* up to 1 KiB from the start and 1 KiB from the end of each */
	for (int i = 0; i < 2; i++) {
		const struct stream_cap *sc = &c->st[i];
		size_t head = sc->head.len < 1024 ? sc->head.len : 1024;

		if (!sc->emitted)
			continue;
		if (i == 1)
			buf_adds(&b, "--- stderr ---\n");
		if (sc->emitted <= 2048 && sc->emitted == sc->tail.len) {
			buf_add(&b, sc->tail.data, sc->tail.len);
		} else {
			size_t t = sc->tail.len < 1024 ? sc->tail.len : 1024;
			const char *tp = sc->tail.data + sc->tail.len - t;

			/* do not split a UTF-8 sequence */
			while (t && ((unsigned char)*tp & 0xc0) == 0x80) {
				tp++;
				t--;
			}
			while (head && head < sc->head.len &&
			       ((unsigned char)sc->head.data[head] & 0xc0) == 0x80)
				head--;
			buf_add(&b, sc->head.data, head);
			buf_addf(&b, "\n[... %llu bytes in all ...]\n",
				 sc->emitted);
			buf_add(&b, tp, t);
		}
		if (b.len && b.data[b.len - 1] != '\n')
			buf_addc(&b, '\n');
	}
	return buf_detach(&b);
}

/* The last lines of a stream, for messages: at most 3 lines / 300 bytes. */
static void excerpt(struct buf *out, const struct stream_cap *sc)
{
	const char *t = buf_str(&sc->tail);
	size_t len = sc->tail.len, start;
	int lines = 0;

	while (len && (t[len - 1] == '\n' || t[len - 1] == '\r'))
		len--;
	if (!len) {
		buf_adds(out, "(nothing)");
		return;
	}
	start = len;
	while (start > 0 && len - start < 300) {
		if (t[start - 1] == '\n' && ++lines == 3)
			break;
		start--;
	}
	/* do not start inside a UTF-8 sequence */
	while (start < len && ((unsigned char)t[start] & 0xc0) == 0x80)
		start++;
	if (start > 0 || sc->emitted > sc->tail.len)
		buf_adds(out, "...");
	for (size_t i = start; i < len;) {
		const char *nl = memchr(t + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - t) : len;

		buf_add_visible(out, t + i, end - i, false);
		if (nl)
			buf_adds(out, " | ");
		i = end + 1;
	}
}

static bool exit_expected(const struct step *s, int code)
{
	if (!s)
		return code == 0;
	for (size_t i = 0; i < s->expect.n_exit; i++)
		if (s->expect.exit_codes[i] == code)
			return true;
	return false;
}

static void exit_list(struct buf *b, const struct step *s)
{
	if (!s) {
		buf_adds(b, "0");
		return;
	}
	for (size_t i = 0; i < s->expect.n_exit; i++)
		buf_addf(b, "%s%d", i ? (i + 1 == s->expect.n_exit ? " or " : ", ") : "",
			 s->expect.exit_codes[i]);
}

/* The patterns of the step against what the command printed. */
static enum step_result judge_patterns(struct capture *c, struct buf *why)
{
	const struct step_pats *p = c->p;
	const struct step *s = c->s;

#define PAT_FAIL(pat, stream, fmt) do { \
		buf_addf(why, fmt, pattern_source(pat)); \
		excerpt(why, &c->st[stream]); return RES_FAILED; } while (0)
	if (p->out && !c->out_ok)
		PAT_FAIL(p->out, 0, "expected stdout to match '%s', found no match; stdout: ");
	if (p->err && !c->err_ok)
		PAT_FAIL(p->err, 1, "expected stderr to match '%s', found no match; stderr: ");
	if (p->not_out && c->not_out_hit)
		PAT_FAIL(p->not_out, 0, "expected stdout not to match '%s', found a match; stdout: ");
	if (p->not_err && c->not_err_hit)
		PAT_FAIL(p->not_err, 1, "expected stderr not to match '%s', found a match; stderr: ");
#undef PAT_FAIL
	for (size_t k = 0; k < c->n_cap; k++) {
		if (!c->cap_vals[k]) {
			buf_addf(why, "expected stdout to match capture %s '%s', found no match; stdout: ",
				 s->capture[k].key, pattern_source(p->cap[k]));
			excerpt(why, &c->st[0]);
			return RES_FAILED;
		}
	}
	if (p->metric && !c->metric_val) {
		buf_addf(why, "expected stdout to match '%s', found no match; stdout: ",
			 pattern_source(p->metric));
		excerpt(why, &c->st[0]);
		return RES_FAILED;
	}
	return RES_OK;
}

enum step_result capture_judge(struct capture *c, const struct exec_result *r,
			       unsigned timeout_ms, struct buf *why)
{
	const struct step *s = c->s;
	char tmo[32];

	format_duration(timeout_ms, tmo);
	switch (r->end) {
	case EXEC_TIMED_OUT:
		if (r->why[0])
			buf_addf(why, "expected it to finish within %s, found it still running; %s",
				 tmo, r->why);
		else
			buf_addf(why, "expected it to finish within %s, found it still running; stopped it (its process group got SIGTERM, then SIGKILL)",
				 tmo);
		return RES_TIMEOUT;
	case EXEC_CANCELLED:
		buf_addf(why, "interrupted by a signal; %s",
			 r->why[0] ? r->why : "stopped it");
		return RES_FAILED;
	case EXEC_LOST:
		buf_addf(why, "expected the command to finish, found: %s", r->why);
		return RES_FAILED;
	case EXEC_SIGNALED:
		buf_addf(why, "expected exit ");
		exit_list(why, s);
		buf_addf(why, ", found killed by signal %d (%s)", r->signal,
			 strsignal(r->signal));
		return RES_FAILED;
	case EXEC_EXITED:
		break;
	}
	if (!c->p) {
		if (r->exit_code == 0)
			return RES_OK;
		buf_addf(why, "expected exit 0, found exit %d; stderr: ",
			 r->exit_code);
		excerpt(why, &c->st[1]);
		return RES_FAILED;
	}
	if (c->pattern_failed) {
		buf_adds(why, c->perr.msg);
		return RES_FAILED;
	}
	if (!exit_expected(s, r->exit_code)) {
		buf_adds(why, "expected exit ");
		exit_list(why, s);
		buf_addf(why, ", found exit %d", r->exit_code);
		if (r->exit_code > 128 && r->exit_code < 128 + 65)
			buf_addf(why, " (a shell's code for a command killed by signal %d, %s)",
				 r->exit_code - 128, strsignal(r->exit_code - 128));
		buf_adds(why, "; stderr: ");
		excerpt(why, &c->st[1]);
		if (c->st[1].tail.len == 0) {
			buf_adds(why, "; stdout: ");
			excerpt(why, &c->st[0]);
		}
		return RES_FAILED;
	}
	return judge_patterns(c, why);
}
