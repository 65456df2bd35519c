/*
 * A YAML document as a tree of positioned nodes, built from libyaml's
 * event stream with the checks libyaml leaves to its users: input must
 * be UTF-8 (a UTF-8 BOM is allowed), one document only, nesting at most
 * YTREE_MAX_DEPTH deep, mapping keys scalar, and aliases expanded by
 * copy within a fixed node budget. Aliases can only name nodes that are
 * complete, so no cycle can be built. Merge keys (`<<: *a`,
 * `<<: [*a, *b]`) follow YAML 1.1: keys written in the mapping win, then
 * earlier merged mappings over later ones; the `<<` pair itself is not
 * in the tree. Duplicate keys are load.c's to report.
 *
 * The tree owns all its nodes and strings (one arena); ytree_free() of
 * the root releases it, of any other node does nothing.
 */
#ifndef RUNBOOK_YAMLTREE_H
#define RUNBOOK_YAMLTREE_H

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"

#define YTREE_MAX_DEPTH 64
#define YTREE_MAX_ALIAS_NODES 10000
#define YTREE_MAX_FILE (16u << 20)
#define YTREE_MAX_SCALAR (1u << 20)

enum ynode_type { YN_SCALAR, YN_SEQ, YN_MAP };

enum yscalar_style { YS_PLAIN, YS_SINGLE, YS_DOUBLE, YS_BLOCK };

struct ynode {
	enum ynode_type type;
	struct src_pos pos;
	/* scalars */
	char *text;		/* NUL-terminated; never contains NUL */
	size_t len;
	enum yscalar_style style;
	bool tag_str;		/* explicit !!str */
	/* literal block scalars (|): where text[0] sits in the source */
	unsigned block_line, block_col;
	/* sequences: items; mappings: keys[i] -> items[i] */
	struct ynode **items;
	struct ynode **keys;
	size_t n;
	size_t cap;
	/* memory: the parse's arena, released with the root (see yamltree.c) */
	struct yarena *arena;
	bool owns_arena;
};

/*
 * Parses data (len bytes, from the file named in d) into *out. Returns
 * 0 on success (*out may be NULL for a document with no content), or -1
 * after adding at least one diagnostic to d; then *out is untouched.
 */
int ytree_parse(const char *data, size_t len, struct ynode **out,
		struct diag *d);
/* The same for a file included by another: base is its line base (diag.h). */
int ytree_parse_at(const char *data, size_t len, unsigned base,
		   struct ynode **out, struct diag *d);
void ytree_free(struct ynode *n);

/* The value of key in a mapping, or NULL. */
struct ynode *ynode_get(const struct ynode *map, const char *key);
const char *ynode_type_name(const struct ynode *n);
/* A plain scalar that YAML reads as null: ~, null, Null, NULL or nothing. */
bool ynode_is_null(const struct ynode *n);

/*
 * What a message says was found at n: a quoted excerpt of a scalar (cut
 * at 60 characters), "null", or "a mapping"/"an empty list", appended
 * to b.
 */
struct buf;
void ynode_found(struct buf *b, const struct ynode *n);
/* The problem "PATH: expected EXPECTED, found ..." at n. */
void ynode_bad(struct diag *d, const struct ynode *n, const char *path,
	       const char *expected);
/*
 * The problem of a quoted scalar where the plain word was wanted:
 * "PATH: expected EXPECTED, found the quoted text '...'; remove the
 * quotes" at n (the quote character is n's own).
 */
void ynode_bad_quoted(struct diag *d, const struct ynode *n,
		      const char *path, const char *expected);

#endif
