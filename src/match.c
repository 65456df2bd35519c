/*
 * PCRE2 wrapper. One match context with the limits is shared by all
 * patterns (set once, read-only afterwards). JIT is used when
 * available; the match limit still applies to it, and its stack is
 * sized explicitly.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "match.h"

#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"

struct pattern {
	pcre2_code *code;
	char *src;
	unsigned groups;
};

/*
 * The contexts of the thread that compiled the patterns (main). A JIT
 * stack must not be shared by threads matching at once, so the hosts'
 * worker threads get their own copy (match_ctx()), freed when the
 * thread ends.
 */
static pcre2_match_context *mctx;
static pcre2_compile_context *cctx;
static pcre2_jit_stack *jstack;
static bool no_jit;
static pthread_t main_thread;
static pthread_key_t tkey;
static pthread_once_t tkey_once = PTHREAD_ONCE_INIT;

struct tctx {
	pcre2_match_context *m;
	pcre2_jit_stack *j;
};

static void tctx_free(void *p)
{
	struct tctx *t = p;

	pcre2_jit_stack_free(t->j);
	pcre2_match_context_free(t->m);
	free(t);
}

static void tkey_init(void)
{
	if (pthread_key_create(&tkey, tctx_free) != 0)
		abort();
}

static void init_contexts(void)
{
	if (mctx)
		return;
	main_thread = pthread_self();
	mctx = pcre2_match_context_create(NULL);
	cctx = pcre2_compile_context_create(NULL);
	if (!mctx || !cctx) {
		fprintf(stderr, "runbook: out of memory creating PCRE2 contexts\n");
		abort();
	}
	pcre2_set_match_limit(mctx, MATCH_LIMIT);
	pcre2_set_depth_limit(mctx, MATCH_DEPTH_LIMIT);
	pcre2_set_heap_limit(mctx, MATCH_HEAP_LIMIT_KIB);
	pcre2_set_max_pattern_length(cctx, MATCH_MAX_PATTERN);
	pcre2_set_parens_nest_limit(cctx, 64);
	jstack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
	if (jstack)
		pcre2_jit_stack_assign(mctx, NULL, jstack);
	no_jit = getenv("RUNBOOK_PCRE2_NO_JIT") != NULL;
}

static pcre2_match_context *match_ctx(void)
{
	struct tctx *t;

	init_contexts();
	if (pthread_equal(pthread_self(), main_thread))
		return mctx;
	pthread_once(&tkey_once, tkey_init);
	t = pthread_getspecific(tkey);
	if (!t) {
		t = xcalloc(1, sizeof(*t));
		t->m = pcre2_match_context_copy(mctx);
		if (!t->m) {
			fprintf(stderr, "runbook: out of memory creating a PCRE2 context\n");
			abort();
		}
		t->j = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
		pcre2_jit_stack_assign(t->m, NULL, t->j);
		pthread_setspecific(tkey, t);
	}
	return t->m;
}

static pcre2_code *compile(const char *src, char *msg, size_t msglen,
			   size_t *erroff)
{
	pcre2_code *code;
	int errcode;
	PCRE2_SIZE off = 0;

	init_contexts();
	code = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED,
			     PCRE2_UTF | PCRE2_MATCH_INVALID_UTF |
			     PCRE2_MULTILINE, &errcode, &off, cctx);
	if (!code) {
		PCRE2_UCHAR buf[256];

		pcre2_get_error_message(errcode, buf, sizeof(buf));
		snprintf(msg, msglen, "%s", (const char *)buf);
		*erroff = off;
	}
	return code;
}

int pattern_check(const char *src, char *msg, size_t msglen, size_t *erroff,
		  unsigned *groups)
{
	pcre2_code *code = compile(src, msg, msglen, erroff);
	uint32_t n = 0;

	if (!code)
		return -1;
	pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &n);
	*groups = n;
	pcre2_code_free(code);
	return 0;
}

struct pattern *pattern_compile(const char *src, char *msg, size_t msglen,
				size_t *erroff)
{
	struct pattern *p;
	pcre2_code *code = compile(src, msg, msglen, erroff);
	uint32_t groups = 0;

	if (!code)
		return NULL;
	if (!no_jit)
		(void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
	pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &groups);
	p = xcalloc(1, sizeof(*p));
	p->code = code;
	p->src = xstrdup(src);
	p->groups = groups;
	return p;
}

void pattern_free(struct pattern *p)
{
	if (!p)
		return;
	pcre2_code_free(p->code);
	free(p->src);
	free(p);
}

const char *pattern_source(const struct pattern *p)
{
	return p->src;
}

unsigned pattern_groups(const struct pattern *p)
{
	return p->groups;
}

static void match_error(struct rb_error *err, const struct pattern *p,
			int rc)
{
	PCRE2_UCHAR buf[256];
	const char *what = "";

	pcre2_get_error_message(rc, buf, sizeof(buf));
	if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
	    rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT)
		what = " (the pattern backtracks too much: make it more specific, e.g. avoid nested repeats like (a+)+)";
	rb_error_set(err, RB_ERR_FAILED,
		     "pattern '%.200s' could not be matched: %s%s", p->src,
		     (const char *)buf, what);
}

int pattern_match(const struct pattern *p, const char *subject, size_t len,
		  char **group, struct rb_error *err)
{
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(p->code,
								    NULL);
	int rc, ret = -1;

	if (!md) {
		rb_error_set(err, RB_ERR_FAILED, "out of memory matching '%s'",
			     p->src);
		return -1;
	}
	rc = pcre2_match(p->code, (PCRE2_SPTR)subject, len, 0, 0, md,
			 match_ctx());
	if (rc == PCRE2_ERROR_NOMATCH) {
		ret = 0;
	} else if (rc < 0) {
		match_error(err, p, rc);
	} else {
		if (group) {
			PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);

			if (rc >= 2 && ov[2] != PCRE2_UNSET)
				*group = xstrndup(subject + ov[2],
						  ov[3] - ov[2]);
			else
				*group = xstrdup("");
		}
		ret = 1;
	}
	pcre2_match_data_free(md);
	return ret;
}

int pattern_each(const struct pattern *p, const char *subject, size_t len,
		 int (*fn)(void *ctx, size_t start, size_t end), void *ctx,
		 struct rb_error *err)
{
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(p->code,
								    NULL);
	size_t start = 0;
	int ret = -1;

	if (!md) {
		rb_error_set(err, RB_ERR_FAILED, "out of memory matching '%s'",
			     p->src);
		return -1;
	}
	while (start <= len) {
		int rc = pcre2_match(p->code, (PCRE2_SPTR)subject, len, start,
				     0, md, match_ctx());
		PCRE2_SIZE *ov;

		if (rc == PCRE2_ERROR_NOMATCH)
			break;
		if (rc < 0) {
			match_error(err, p, rc);
			goto out;
		}
		ov = pcre2_get_ovector_pointer(md);
		if (ov[1] > ov[0] && fn(ctx, ov[0], ov[1]) < 0)
			goto out;
		start = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
	}
	ret = 0;
out:
	pcre2_match_data_free(md);
	return ret;
}
