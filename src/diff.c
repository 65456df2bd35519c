#include "diff.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

struct line {
	const char *p;
	size_t len;		/* without the newline */
	bool nl;		/* ended by a newline */
};

struct lines {
	struct line *v;
	size_t n, cap;
};

static void split(struct lines *L, const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		const char *nl = memchr(s + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - s) : len;

		L->v = xgrow(L->v, &L->cap, L->n + 1, sizeof(*L->v));
		L->v[L->n++] = (struct line){ s + i, end - i, nl != NULL };
		i = end + 1;
	}
}

static bool same(const struct line *x, const struct line *y)
{
	return x->len == y->len && x->nl == y->nl &&
	       memcmp(x->p, y->p, x->len) == 0;
}

/* One line of the edit script: ' ', '-' or '+', and where it is. */
struct op {
	char kind;
	size_t ai, bi;		/* index into a (' ', '-') or b ('+') */
};

struct ops {
	struct op *v;
	size_t n, cap;
};

static void push(struct ops *o, char kind, size_t ai, size_t bi)
{
	o->v = xgrow(o->v, &o->cap, o->n + 1, sizeof(*o->v));
	o->v[o->n++] = (struct op){ kind, ai, bi };
}

/* Aligns a[a0..a1) with b[b0..b1) and appends the edit script. */
static void align(struct ops *o, const struct lines *A, size_t a0, size_t a1,
		  const struct lines *B, size_t b0, size_t b1)
{
	size_t n = a1 - a0, m = b1 - b0;
	uint32_t *t;

	if (n == 0 || m == 0 || (n + 1) > DIFF_CELLS / (m + 1)) {
		for (size_t i = a0; i < a1; i++)
			push(o, '-', i, 0);
		for (size_t j = b0; j < b1; j++)
			push(o, '+', 0, j);
		return;
	}
	/* t[i][j]: LCS length of a[a0+i..a1) and b[b0+j..b1) */
	t = xcalloc((n + 1) * (m + 1), sizeof(*t));
#define T(i, j) t[(size_t)(i) * (m + 1) + (j)]
	for (size_t i = n; i-- > 0;)
		for (size_t j = m; j-- > 0;)
			T(i, j) = same(&A->v[a0 + i], &B->v[b0 + j]) ?
				  T(i + 1, j + 1) + 1 :
				  (T(i + 1, j) >= T(i, j + 1) ? T(i + 1, j) :
								T(i, j + 1));
	{
		size_t i = 0, j = 0;

		while (i < n && j < m) {
			if (same(&A->v[a0 + i], &B->v[b0 + j])) {
				push(o, ' ', a0 + i, b0 + j);
				i++;
				j++;
			} else if (T(i + 1, j) >= T(i, j + 1)) {
				push(o, '-', a0 + i++, 0);
			} else {
				push(o, '+', 0, b0 + j++);
			}
		}
		for (; i < n; i++)
			push(o, '-', a0 + i, 0);
		for (; j < m; j++)
			push(o, '+', 0, b0 + j);
	}
#undef T
	free(t);
}

static void put_line(struct buf *out, char kind, const struct line *l)
{
	buf_addc(out, kind);
	buf_add(out, l->p, l->len);
	buf_addc(out, '\n');
	if (!l->nl)
		buf_adds(out, "\\ No newline at end of file\n");
}

/* diff -u numbers an empty range by the line before it. */
static void range(struct buf *out, size_t start, size_t count)
{
	if (count == 1)
		buf_addf(out, "%zu", start + 1);
	else
		buf_addf(out, "%zu,%zu", count ? start + 1 : start, count);
}

bool diff_unified(struct buf *out, const char *a_label, const char *b_label,
		  const char *a, size_t alen, const char *b, size_t blen,
		  unsigned context)
{
	struct lines A = { 0 }, B = { 0 };
	struct ops o = { 0 };
	size_t pre = 0, suf = 0;
	bool differs = false;

	split(&A, a, alen);
	split(&B, b, blen);
	while (pre < A.n && pre < B.n && same(&A.v[pre], &B.v[pre]))
		pre++;
	while (suf < A.n - pre && suf < B.n - pre &&
	       same(&A.v[A.n - 1 - suf], &B.v[B.n - 1 - suf]))
		suf++;
	for (size_t i = 0; i < pre; i++)
		push(&o, ' ', i, i);
	align(&o, &A, pre, A.n - suf, &B, pre, B.n - suf);
	for (size_t k = 0; k < suf; k++)
		push(&o, ' ', A.n - suf + k, B.n - suf + k);

	for (size_t k = 0; k < o.n && !differs; k++)
		differs = o.v[k].kind != ' ';
	if (!differs)
		goto out;
	buf_addf(out, "--- %s\n+++ %s\n", a_label, b_label);
	for (size_t k = 0, pos = 0, ai = 0, bi = 0; k < o.n;) {
		size_t start, end, last, ac = 0, bc = 0;

		if (o.v[k].kind == ' ') {
			k++;
			continue;
		}
		/* a hunk: changes joined while at most 2*context lines apart */
		last = k;
		for (size_t x = k + 1; x < o.n; x++) {
			if (o.v[x].kind == ' ')
				continue;
			if (x - last - 1 > 2 * (size_t)context)
				break;
			last = x;
		}
		start = k > context ? k - context : 0;
		end = last + 1 + context < o.n ? last + 1 + context : o.n;
		for (; pos < start; pos++) {
			ai += o.v[pos].kind != '+';
			bi += o.v[pos].kind != '-';
		}
		for (size_t x = start; x < end; x++) {
			ac += o.v[x].kind != '+';
			bc += o.v[x].kind != '-';
		}
		buf_adds(out, "@@ -");
		range(out, ai, ac);
		buf_adds(out, " +");
		range(out, bi, bc);
		buf_adds(out, " @@\n");
		for (size_t x = start; x < end; x++) {
			const struct op *p = &o.v[x];

			put_line(out, p->kind,
				 p->kind == '+' ? &B.v[p->bi] : &A.v[p->ai]);
		}
		k = end;
	}
out:
	free(A.v);
	free(B.v);
	free(o.v);
	return differs;
}
