/*
 * Splicing included step lists into the lists of a runbook.
 *
 * Invariant: the chain holds the real paths of the files being expanded,
 * outermost first, never more than INCLUDE_MAX_DEPTH + 1; a file whose
 * real path is in it is a cycle and is not opened again. Each inclusion
 * is parsed with its own line base (diag_add_file()), so positions in
 * the model say which file they are in without another field.
 */
#include "include.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "yamltree.h"

struct include_set {
	struct diag *d;
	const char *file;		/* the runbook, as named */
	char *chain[INCLUDE_MAX_DEPTH + 1];	/* real paths */
	const char *names[INCLUDE_MAX_DEPTH + 1];	/* as opened */
	size_t depth;
	struct ynode **trees;		/* parsed files (ytree_free) */
	size_t n_trees, cap_trees;
	struct ynode **lists;		/* built lists (heap, items too) */
	size_t n_lists, cap_lists;
	struct strvec files;		/* names, each once */
};

struct include_set *include_new(const char *file, struct diag *d)
{
	struct include_set *s = xcalloc(1, sizeof(*s));

	s->d = d;
	s->file = file;
	s->names[0] = file;
	s->chain[0] = realpath(file, NULL);	/* NULL: not on disk */
	s->depth = 1;
	return s;
}

void include_free(struct include_set *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->depth; i++)
		free(s->chain[i]);
	for (size_t i = 0; i < s->n_trees; i++)
		ytree_free(s->trees[i]);
	free(s->trees);
	for (size_t i = 0; i < s->n_lists; i++) {
		free(s->lists[i]->items);
		free(s->lists[i]);
	}
	free(s->lists);
	strvec_release(&s->files);
	free(s);
}

void include_take_files(struct include_set *s, char ***out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!s || s->files.n == 0)
		return;
	*out = s->files.v;
	*n = s->files.n;
	memset(&s->files, 0, sizeof(s->files));
}

static bool has(const struct strvec *v, const char *s)
{
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->v[i], s) == 0)
			return true;
	return false;
}

static bool is_include(const struct ynode *n)
{
	return n->type == YN_MAP && ynode_get(n, "include");
}

/* The path of written, relative to the directory of from. */
static char *resolve(const char *from, const char *written)
{
	const char *slash = strrchr(from, '/');
	struct buf b = BUF_INIT;

	if (written[0] != '/' && slash)
		buf_add(&b, from, (size_t)(slash - from) + 1);
	buf_adds(&b, written);
	return buf_detach(&b);
}

/* Reads a regular file of at most YTREE_MAX_FILE bytes; -1 with errno. */
static int read_file(const char *path, struct buf *out)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (unsigned long long)st.st_size > YTREE_MAX_FILE) {
		int e = errno;

		if (S_ISDIR(st.st_mode))
			e = EISDIR;
		else if (S_ISREG(st.st_mode))
			e = EFBIG;
		else if (e == 0)
			e = EINVAL;
		close(fd);
		errno = e;
		return -1;
	}
	for (;;) {
		ssize_t r;

		buf_grow(out, 65536);
		r = read(fd, out->data + out->len, 65536);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int e = errno;

			close(fd);
			errno = e;
			return r < 0 ? -1 : 0;
		}
		out->len += (size_t)r;
		out->data[out->len] = '\0';
		if (out->len > YTREE_MAX_FILE) {
			close(fd);
			errno = EFBIG;
			return -1;
		}
	}
}

static void chain_text(const struct include_set *s, const char *last,
		       struct buf *b)
{
	for (size_t i = 0; i < s->depth; i++)
		buf_addf(b, "%s -> ", s->names[i]);
	buf_adds(b, last);
}

static void splice_into(struct include_set *s, const struct ynode *list,
			const char *what, struct ynode *out);

/* Appends the steps of the file that item includes to out. */
static void expand(struct include_set *s, const struct ynode *item,
		   const char *what, struct ynode *out)
{
	const struct ynode *v = ynode_get(item, "include");
	struct buf data = BUF_INIT, q = BUF_INIT;
	struct ynode *root = NULL;
	char *path = NULL, *real = NULL;
	unsigned base;

	for (size_t i = 0; i < item->n; i++)
		if (strcmp(item->keys[i]->text, "include") != 0)
			diag_at(s->d, &item->keys[i]->pos,
				"%s: expected an include item to hold only the key include, found also \"%s\"; write the step in the included file",
				what, item->keys[i]->text);
	if (v->type != YN_SCALAR || ynode_is_null(v) || v->len == 0) {
		diag_at(s->d, &v->pos,
			"%s.include: expected the path of a file of steps, found %s",
			what, v->type != YN_SCALAR ? (v->type == YN_SEQ ?
			"a list" : "a mapping") : ynode_is_null(v) ? "null" :
			"an empty string");
		return;
	}
	path = resolve(s->names[s->depth - 1], v->text);
	diag_quote(&q, path, strlen(path), 200);
	if (read_file(path, &data) < 0) {
		diag_at(s->d, &v->pos,
			"%s.include: expected a readable file of steps, found \"%s\": %s (paths are relative to the including file)",
			what, buf_str(&q), strerror(errno));
		goto out;
	}
	real = realpath(path, NULL);
	for (size_t i = 0; real && i < s->depth; i++) {
		struct buf c = BUF_INIT;

		if (!s->chain[i] || strcmp(s->chain[i], real) != 0)
			continue;
		chain_text(s, path, &c);
		diag_at(s->d, &v->pos,
			"%s.include: expected a file not already being included, found a cycle: %s",
			what, buf_str(&c));
		buf_release(&c);
		goto out;
	}
	if (s->depth > INCLUDE_MAX_DEPTH) {
		diag_at(s->d, &v->pos,
			"%s.include: expected includes nested at most %d deep, found deeper: \"%s\"",
			what, INCLUDE_MAX_DEPTH, buf_str(&q));
		goto out;
	}
	if (!(base = diag_add_file(s->d, path, &v->pos))) {
		diag_at(s->d, &v->pos,
			"%s.include: expected at most %d included files in all, found more",
			what, DIAG_MAX_FILES);
		goto out;
	}
	if (!has(&s->files, path))
		strvec_push(&s->files, path);
	if (ytree_parse_at(data.data ? data.data : "", data.len, base, &root,
			   s->d) < 0)
		goto out;
	if (!root) {
		diag_at(s->d, &v->pos,
			"%s.include: expected a list of steps in \"%s\", found an empty file",
			what, buf_str(&q));
		goto out;
	}
	s->trees = xgrow(s->trees, &s->cap_trees, s->n_trees + 1,
			 sizeof(*s->trees));
	s->trees[s->n_trees++] = root;
	if (root->type != YN_SEQ) {
		diag_at(s->d, &root->pos,
			"(top level): expected a list of steps (this file is included as one), found a %s",
			ynode_type_name(root));
		goto out;
	}
	s->chain[s->depth] = real;
	s->names[s->depth] = path;
	s->depth++;
	real = NULL;
	splice_into(s, root, what, out);
	s->depth--;
	free(s->chain[s->depth]);
	s->chain[s->depth] = NULL;
out:
	free(real);
	free(path);
	buf_release(&q);
	buf_release(&data);
}

static void push(struct ynode *out, struct ynode *item)
{
	out->items = xgrow(out->items, &out->cap, out->n + 1,
			   sizeof(*out->items));
	out->items[out->n++] = item;
}

static void splice_into(struct include_set *s, const struct ynode *list,
			const char *what, struct ynode *out)
{
	for (size_t i = 0; i < list->n; i++) {
		if (is_include(list->items[i]))
			expand(s, list->items[i], what, out);
		else
			push(out, list->items[i]);
	}
}

const struct ynode *include_splice(struct include_set *s,
				   const struct ynode *list, const char *what)
{
	struct ynode *out;
	bool any = false;

	if (list->type != YN_SEQ)
		return list;
	for (size_t i = 0; i < list->n && !any; i++)
		any = is_include(list->items[i]);
	if (!any)
		return list;
	out = xcalloc(1, sizeof(*out));
	out->type = YN_SEQ;
	out->pos = list->pos;
	s->lists = xgrow(s->lists, &s->cap_lists, s->n_lists + 1,
			 sizeof(*s->lists));
	s->lists[s->n_lists++] = out;
	splice_into(s, list, what, out);
	return out;
}
