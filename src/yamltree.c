/*
 * libyaml events -> struct ynode tree.
 *
 * Invariants: the stack holds the open collections, never more than
 * YTREE_MAX_DEPTH; a node is attached to its parent only when complete,
 * and anchors are registered only then, so an alias can never point at
 * an enclosing node (no cycles). Alias copies are counted against
 * YTREE_MAX_ALIAS_NODES, which bounds "billion laughs" documents.
 * Merge keys (`<<`, YAML 1.1) are applied when their mapping ends: the
 * merged mappings are already complete (aliases are copies), so their
 * pairs move over without copying and cost nothing beyond the aliases
 * that brought them.
 *
 * Memory: every node, text and array of one parse comes from one arena
 * that the root owns; freeing the root releases it in a few calls (a
 * 5,000-step runbook has some 100,000 nodes). Freeing any other node
 * of the tree does nothing.
 */
#include "yamltree.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "buf.h"

struct yarena {
	struct ychunk *head;
};

struct ychunk {
	struct ychunk *next;
	size_t used, size;
	max_align_t data[];
};

#define YCHUNK_MIN (4u << 10)

static void *arena_alloc(struct yarena *a, size_t n)
{
	struct ychunk *c = a->head;
	void *p;

	n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	if (!c || c->size - c->used < n) {
		size_t size = c ? c->size * 2 : YCHUNK_MIN;

		if (size > (1u << 20))
			size = 1u << 20;
		if (size < n)
			size = n;
		c = xmalloc(sizeof(*c) + size);
		c->next = a->head;
		c->used = 0;
		c->size = size;
		a->head = c;
	}
	p = (char *)c->data + c->used;
	c->used += n;
	return p;
}

static char *arena_strndup(struct yarena *a, const char *s, size_t len)
{
	char *p = arena_alloc(a, len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

static void arena_free(struct yarena *a)
{
	for (struct ychunk *c = a->head, *next; c; c = next) {
		next = c->next;
		free(c);
	}
	free(a);
}

struct anchor {
	char *name;
	struct ynode *node;
};

struct frame {
	struct ynode *node;
	struct ynode *key;	/* mappings: key waiting for its value */
	bool drop_value;	/* mappings: the pending pair is rejected */
	bool merge_value;	/* mappings: the pending pair is `<<: ...` */
	struct ynode *merge;	/* mappings: the value of `<<`, applied at end */
	char *anchor;		/* registered when the node completes */
};

struct builder {
	struct diag *d;
	const char *data;	/* the source, for block scalar positions */
	size_t len;
	size_t *lines;		/* byte offset of each line start */
	size_t n_lines;
	struct frame stack[YTREE_MAX_DEPTH + 1];
	size_t depth;
	struct anchor *anchors;
	size_t n_anchors, cap_anchors;
	size_t alias_nodes;
	struct ynode *root;
	struct yarena *arena;	/* every node of this parse */
	unsigned base;		/* line base of the file (diag.h) */
	bool failed;		/* fatal: stop building */
};

/* base: the line base of an included file (diag.h), else 0 */
static struct src_pos mark_pos(yaml_mark_t m, unsigned base)
{
	return (struct src_pos){ base + (unsigned)m.line + 1,
				 (unsigned)m.column + 1 };
}

static struct ynode *node_new(struct builder *b, enum ynode_type t,
			      struct src_pos pos)
{
	struct ynode *n = arena_alloc(b->arena, sizeof(*n));

	memset(n, 0, sizeof(*n));
	n->arena = b->arena;
	n->type = t;
	n->pos = pos;
	return n;
}

void ytree_free(struct ynode *n)
{
	if (n && n->owns_arena)
		arena_free(n->arena);
}

/* Doubles an array of the arena (the old one stays until the arena goes). */
static struct ynode **grow(struct yarena *a, struct ynode **old, size_t n,
			   size_t cap)
{
	struct ynode **v = arena_alloc(a, cap * sizeof(*v));

	if (n)
		memcpy(v, old, n * sizeof(*v));
	return v;
}

static void node_push(struct ynode *parent, struct ynode *key,
		      struct ynode *val)
{
	if (parent->n == parent->cap) {
		size_t cap = parent->cap ? parent->cap * 2 : 4;

		parent->items = grow(parent->arena, parent->items, parent->n, cap);
		if (parent->type == YN_MAP)
			parent->keys = grow(parent->arena, parent->keys,
					    parent->n, cap);
		parent->cap = cap;
	}
	if (parent->type == YN_MAP)
		parent->keys[parent->n] = key;
	parent->items[parent->n++] = val;
}

/* Deep copy for an alias, within the budget. NULL when over it. */
static struct ynode *copy_node(struct builder *b, const struct ynode *src,
			       struct src_pos at)
{
	struct ynode *n;

	if (++b->alias_nodes > YTREE_MAX_ALIAS_NODES)
		return NULL;
	n = node_new(b, src->type, at);
	n->style = src->style;
	n->tag_str = src->tag_str;
	if (src->text) {
		n->text = arena_strndup(b->arena, src->text, src->len);
		n->len = src->len;
	}
	for (size_t i = 0; i < src->n; i++) {
		struct ynode *k = NULL, *v;

		if (src->keys && !(k = copy_node(b, src->keys[i], at))) {
			ytree_free(n);
			return NULL;
		}
		if (!(v = copy_node(b, src->items[i], at))) {
			ytree_free(k);
			ytree_free(n);
			return NULL;
		}
		node_push(n, k, v);
	}
	return n;
}

static bool is_merge_key(const struct ynode *k)
{
	return k->type == YN_SCALAR && k->style == YS_PLAIN &&
	       strcmp(k->text, "<<") == 0;
}

/*
 * `<<` takes a mapping or a list of mappings (YAML 1.1 merge). Each
 * item that is not a mapping is reported; the mappings are still
 * merged, so the rest of the file is checked as meant.
 */
static bool merge_value_ok(struct builder *b, const struct ynode *v)
{
	bool ok = true;

	for (size_t i = 0; i < (v->type == YN_SEQ ? v->n : 1); i++) {
		const struct ynode *x = v->type == YN_SEQ ? v->items[i] : v;

		if (x->type == YN_MAP)
			continue;
		diag_at(b->d, &x->pos,
			"<<: expected a mapping to merge (such as *anchor) or a list of them, found a %s",
			ynode_type_name(x));
		ok = false;
	}
	if (v->type == YN_SEQ && v->n == 0) {
		diag_at(b->d, &v->pos,
			"<<: expected a mapping to merge (such as *anchor) or a list of them, found an empty list");
		ok = false;
	}
	return ok || v->type == YN_SEQ;
}

/* Hands a complete node to its parent (or makes it the root). */
static void attach(struct builder *b, struct ynode *n)
{
	struct frame *f;

	if (b->depth == 0) {
		b->root = n;
		return;
	}
	f = &b->stack[b->depth - 1];
	if (f->node->type == YN_SEQ) {
		node_push(f->node, NULL, n);
		return;
	}
	if (!f->key) {
		f->key = n;
		f->drop_value = false;
		f->merge_value = false;
		if (n->type != YN_SCALAR) {
			diag_at(b->d, &n->pos,
				"expected a plain key, found a %s used as a mapping key",
				ynode_type_name(n));
			f->drop_value = true;
		} else if (is_merge_key(n)) {
			if (f->merge) {
				diag_at(b->d, &n->pos,
					"expected one merge key '<<' per mapping, found another; merge a list instead: <<: [*a, *b]");
				f->drop_value = true;
			}
			f->merge_value = true;
		}
		return;
	}
	if (f->drop_value) {
		ytree_free(f->key);
		ytree_free(n);
	} else if (f->merge_value) {
		if (merge_value_ok(b, n))
			f->merge = n;
	} else {
		node_push(f->node, f->key, n);
	}
	f->key = NULL;
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp((*(const struct ynode *const *)a)->text,
		      (*(const struct ynode *const *)b)->text);
}

/*
 * YAML 1.1 merge: a key of a merged mapping is added unless the mapping
 * has it already, whether written out (explicit keys win) or merged
 * from an earlier mapping of the list (earlier wins). Keys are looked
 * up in a sorted copy, so a huge merge stays O(n log n).
 */
static void apply_merge(struct ynode *map, const struct ynode *merge)
{
	const struct ynode *const *srcs = (const struct ynode *const *)&merge;
	size_t n_srcs = 1, cap = map->n, n_seen;
	struct ynode **seen;

	if (merge->type == YN_SEQ) {
		srcs = (const struct ynode *const *)merge->items;
		n_srcs = merge->n;
	}
	for (size_t i = 0; i < n_srcs; i++)
		cap += srcs[i]->type == YN_MAP ? srcs[i]->n : 0;
	seen = xmalloc((cap ? cap : 1) * sizeof(*seen));
	if (map->n)	/* keys is NULL in a mapping of only `<<` */
		memcpy(seen, map->keys, map->n * sizeof(*seen));
	n_seen = map->n;
	qsort(seen, n_seen, sizeof(*seen), cmp_key);
	for (size_t i = 0; i < n_srcs; i++) {
		const struct ynode *src = srcs[i];
		size_t before = n_seen;

		if (src->type != YN_MAP)	/* reported by merge_value_ok() */
			continue;
		for (size_t j = 0; j < src->n; j++) {
			struct ynode *k = src->keys[j];

			if (bsearch(&k, seen, before, sizeof(*seen), cmp_key))
				continue;
			node_push(map, k, src->items[j]);
			seen[n_seen++] = k;
		}
		qsort(seen, n_seen, sizeof(*seen), cmp_key);
	}
	free(seen);
}

static void add_anchor(struct builder *b, char *name, struct ynode *n)
{
	if (!name)
		return;
	b->anchors = xgrow(b->anchors, &b->cap_anchors, b->n_anchors + 1,
			   sizeof(*b->anchors));
	b->anchors[b->n_anchors].name = name;
	b->anchors[b->n_anchors].node = n;
	b->n_anchors++;
}

static const struct ynode *find_anchor(struct builder *b, const char *name)
{
	/* Newest first: a redefined anchor names its latest node. */
	for (size_t i = b->n_anchors; i-- > 0;)
		if (strcmp(b->anchors[i].name, name) == 0)
			return b->anchors[i].node;
	return NULL;
}

static bool anchor_is_open(struct builder *b, const char *name)
{
	for (size_t i = 0; i < b->depth; i++)
		if (b->stack[i].anchor && strcmp(b->stack[i].anchor, name) == 0)
			return true;
	return false;
}

static char *dup_anchor(const yaml_char_t *a)
{
	return a ? xstrdup((const char *)a) : NULL;
}

static bool tag_is_str(const yaml_char_t *tag)
{
	return tag && strcmp((const char *)tag, YAML_STR_TAG) == 0;
}

/* Tags other than the core ones change meaning we do not model. */
static bool tag_ok(const yaml_char_t *tag)
{
	static const char *const ok[] = {
		YAML_STR_TAG, YAML_INT_TAG, YAML_BOOL_TAG, YAML_NULL_TAG,
		YAML_SEQ_TAG, YAML_MAP_TAG, "!",
	};

	if (!tag)
		return true;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (strcmp((const char *)tag, ok[i]) == 0)
			return true;
	return false;
}

/* Where the content of a literal block scalar starts in the source. */
static void block_position(struct builder *b, struct ynode *n, unsigned line0)
{
	/* line0: 0-based line of the '|'; content starts on a later line */
	for (size_t l = (size_t)line0 + 1; l < b->n_lines; l++) {
		const char *s = b->data + b->lines[l];
		size_t end = l + 1 < b->n_lines ? b->lines[l + 1] : b->len;
		size_t sp = 0;

		while (sp < end - b->lines[l] && s[sp] == ' ')
			sp++;
		if (sp < end - b->lines[l] && s[sp] != '\n' && s[sp] != '\r') {
			/* the first content line sets the indentation */
			n->block_line = b->base + line0 + 2;
			n->block_col = (unsigned)sp + 1;
			return;
		}
	}
}

static void on_scalar(struct builder *b, const yaml_event_t *ev)
{
	struct src_pos pos = mark_pos(ev->start_mark, b->base);
	size_t len = ev->data.scalar.length;
	struct ynode *n;

	if (!tag_ok(ev->data.scalar.tag)) {
		diag_at(b->d, &pos, "expected no tag or a core tag, found tag '%s'",
			(const char *)ev->data.scalar.tag);
	}
	if (len > YTREE_MAX_SCALAR) {
		diag_at(b->d, &pos,
			"expected a value of at most 1 MiB, found %zu bytes", len);
		b->failed = true;
		return;
	}
	if (memchr(ev->data.scalar.value, '\0', len)) {
		diag_at(b->d, &pos,
			"expected text, found a NUL character in a string");
	}
	n = node_new(b, YN_SCALAR, pos);
	n->text = arena_strndup(b->arena, (const char *)ev->data.scalar.value, len);
	n->len = len;
	switch (ev->data.scalar.style) {
	case YAML_PLAIN_SCALAR_STYLE:
	case YAML_ANY_SCALAR_STYLE:
		n->style = YS_PLAIN;
		break;
	case YAML_LITERAL_SCALAR_STYLE:
		n->style = YS_BLOCK;
		/* leading empty lines are in the text as \n: still 1:1 */
		block_position(b, n, (unsigned)ev->start_mark.line);
		break;
	case YAML_FOLDED_SCALAR_STYLE:
		n->style = YS_BLOCK;
		break;
	case YAML_SINGLE_QUOTED_SCALAR_STYLE:
		n->style = YS_SINGLE;
		break;
	default:
		n->style = YS_DOUBLE;
		break;
	}
	n->tag_str = tag_is_str(ev->data.scalar.tag);
	add_anchor(b, dup_anchor(ev->data.scalar.anchor), n);
	attach(b, n);
}

static void on_start(struct builder *b, const yaml_event_t *ev,
		     enum ynode_type t)
{
	struct src_pos pos = mark_pos(ev->start_mark, b->base);
	const yaml_char_t *anchor, *tag;
	struct frame *f;

	if (t == YN_SEQ) {
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
	} else {
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
	}
	if (!tag_ok(tag))
		diag_at(b->d, &pos, "expected no tag or a core tag, found tag '%s'",
			(const char *)tag);
	if (b->depth >= YTREE_MAX_DEPTH) {
		diag_at(b->d, &pos,
			"expected nesting at most %d levels deep, found deeper nesting",
			YTREE_MAX_DEPTH);
		b->failed = true;
		return;
	}
	f = &b->stack[b->depth++];
	f->node = node_new(b, t, pos);
	f->key = NULL;
	f->drop_value = false;
	f->merge_value = false;
	f->merge = NULL;
	f->anchor = dup_anchor(anchor);
}

static void on_end(struct builder *b)
{
	struct frame *f = &b->stack[--b->depth];
	struct ynode *n = f->node;

	if (f->key) {	/* cannot happen with a well-formed stream */
		ytree_free(f->key);
		f->key = NULL;
	}
	if (f->merge)
		apply_merge(n, f->merge);
	f->merge = NULL;
	add_anchor(b, f->anchor, n);
	f->anchor = NULL;
	attach(b, n);
}

static void on_alias(struct builder *b, const yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;
	struct src_pos pos = mark_pos(ev->start_mark, b->base);
	const struct ynode *src;
	struct ynode *n;

	if (anchor_is_open(b, name)) {
		diag_at(b->d, &pos,
			"expected an alias to a complete node, found '*%s' inside its own anchor (a cycle)",
			name);
		b->failed = true;
		return;
	}
	if (!(src = find_anchor(b, name))) {
		diag_at(b->d, &pos,
			"expected an alias to a defined anchor, found undefined '*%s'",
			name);
		b->failed = true;
		return;
	}
	if (!(n = copy_node(b, src, pos))) {
		diag_at(b->d, &pos,
			"expected aliases to expand to at most %d nodes, found more (an alias bomb?)",
			YTREE_MAX_ALIAS_NODES);
		b->failed = true;
		return;
	}
	attach(b, n);
}

/* Line and column (in characters) of byte offset off. */
static struct src_pos offset_pos(const char *data, size_t off)
{
	struct src_pos p = { 1, 1 };

	for (size_t i = 0; i < off; i++) {
		unsigned char c = (unsigned char)data[i];

		if (c == '\n') {
			p.line++;
			p.col = 1;
		} else if ((c & 0xc0) != 0x80) {
			p.col++;
		}
	}
	return p;
}

/* Offset of the first byte that is not valid UTF-8 (or NUL), or len. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;

		if (c == 0)
			return i;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return i;
		}
		if (n >= len - i)
			return i;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return i;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return i;
		i += n + 1;
	}
	return len;
}

static int check_encoding(const char *data, size_t len, unsigned base,
			  struct diag *d)
{
	const unsigned char *u = (const unsigned char *)data;
	struct src_pos start = { base + 1, 1 };
	size_t bad;

	if ((len >= 2 && ((u[0] == 0xfe && u[1] == 0xff) ||
			  (u[0] == 0xff && u[1] == 0xfe))) ||
	    (len >= 4 && u[0] == 0 && u[1] == 0 && u[2] == 0xfe &&
	     u[3] == 0xff)) {
		diag_at(d, &start,
			"expected UTF-8 text, found a UTF-16 or UTF-32 byte order mark; convert the file to UTF-8");
		return -1;
	}
	bad = utf8_invalid_at(u, len);
	if (bad < len) {
		struct src_pos p = offset_pos(data, bad);

		p.line += base;

		if (u[bad] == 0)
			diag_at(d, &p, "expected UTF-8 text, found a NUL byte (binary data?)");
		else
			diag_at(d, &p, "expected UTF-8 text, found byte 0x%02x",
				u[bad]);
		return -1;
	}
	return 0;
}

static void parser_problem(const yaml_parser_t *p, unsigned base,
			   struct diag *d)
{
	struct src_pos pos = mark_pos(p->problem_mark, 0);
	const char *problem = p->problem ? p->problem : "unknown problem";

	if (p->error == YAML_MEMORY_ERROR) {
		diag_at(d, &pos, "expected YAML, found a document too large to parse");
		return;
	}
	if (p->context) {
		/* where the unfinished construct began is where to look */
		struct src_pos start = mark_pos(p->context_mark, base);

		diag_at(d, &start, "expected valid YAML, found: %s %s (noticed at %u:%u)",
			problem, p->context, pos.line, pos.col);
	} else {
		pos.line += base;
		diag_at(d, &pos, "expected valid YAML, found: %s", problem);
	}
}

int ytree_parse(const char *data, size_t len, struct ynode **out,
		struct diag *d)
{
	return ytree_parse_at(data, len, 0, out, d);
}

int ytree_parse_at(const char *data, size_t len, unsigned base,
		   struct ynode **out, struct diag *d)
{
	struct builder b;
	yaml_parser_t parser;
	yaml_event_t ev;
	int docs = 0, ret = -1;
	bool done = false;

	if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0) {
		data += 3;
		len -= 3;
	}
	if (check_encoding(data, len, base, d) < 0)
		return -1;

	memset(&b, 0, sizeof(b));
	b.base = base;
	b.arena = xcalloc(1, sizeof(*b.arena));
	b.d = d;
	b.data = data;
	b.len = len;
	{
		size_t cap = 0;

		b.lines = xgrow(NULL, &cap, 1, sizeof(size_t));
		b.lines[b.n_lines++] = 0;
		for (const char *nl = memchr(data, '\n', len); nl;
		     nl = memchr(nl + 1, '\n', len - (size_t)(nl + 1 - data))) {
			b.lines = xgrow(b.lines, &cap, b.n_lines + 1,
					sizeof(size_t));
			b.lines[b.n_lines++] = (size_t)(nl + 1 - data);
		}
	}
	if (!yaml_parser_initialize(&parser)) {
		diag_at(d, NULL, "cannot initialize the YAML parser");
		free(b.lines);
		arena_free(b.arena);
		return -1;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
	yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);

	while (!done && !b.failed) {
		if (!yaml_parser_parse(&parser, &ev)) {
			parser_problem(&parser, base, d);
			b.failed = true;
			break;
		}
		switch (ev.type) {
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1) {
				struct src_pos pos = mark_pos(ev.start_mark, base);

				diag_at(d, &pos,
					"expected one YAML document, found a second one");
				b.failed = true;
			}
			break;
		case YAML_SCALAR_EVENT:
			on_scalar(&b, &ev);
			break;
		case YAML_SEQUENCE_START_EVENT:
			on_start(&b, &ev, YN_SEQ);
			break;
		case YAML_MAPPING_START_EVENT:
			on_start(&b, &ev, YN_MAP);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			on_end(&b);
			break;
		case YAML_ALIAS_EVENT:
			on_alias(&b, &ev);
			break;
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}

	if (!b.failed) {
		*out = b.root;
		if (b.root) {
			b.root->owns_arena = true;	/* the tree holds it now */
			b.arena = NULL;
		}
		b.root = NULL;
		ret = 0;
	}
	while (b.depth > 0) {
		struct frame *f = &b.stack[--b.depth];

		free(f->anchor);
	}
	if (b.arena)
		arena_free(b.arena);
	for (size_t i = 0; i < b.n_anchors; i++)
		free(b.anchors[i].name);
	free(b.anchors);
	free(b.lines);
	yaml_parser_delete(&parser);
	return ret;
}

struct ynode *ynode_get(const struct ynode *map, const char *key)
{
	if (!map || map->type != YN_MAP)
		return NULL;
	for (size_t i = 0; i < map->n; i++)
		if (strcmp(map->keys[i]->text, key) == 0)
			return map->items[i];
	return NULL;
}

const char *ynode_type_name(const struct ynode *n)
{
	if (!n)
		return "nothing";
	switch (n->type) {
	case YN_SEQ:
		return "list";
	case YN_MAP:
		return "mapping";
	default:
		return ynode_is_null(n) ? "null" : "string";
	}
}

bool ynode_is_null(const struct ynode *n)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };

	if (n->type != YN_SCALAR || n->style != YS_PLAIN || n->tag_str)
		return false;
	for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
		if (strcmp(n->text, nulls[i]) == 0)
			return true;
	return false;
}

void ynode_found(struct buf *b, const struct ynode *n)
{
	if (n->type != YN_SCALAR) {
		buf_addf(b, "%s %s", n->n ? "a" : "an empty",
			 ynode_type_name(n));
		return;
	}
	if (ynode_is_null(n)) {
		buf_adds(b, "null");
		return;
	}
	buf_addc(b, '"');
	diag_quote(b, n->text, n->len, 60);
	buf_addc(b, '"');
}

void ynode_bad(struct diag *d, const struct ynode *n, const char *path,
	       const char *expected)
{
	struct buf f = BUF_INIT;

	ynode_found(&f, n);
	diag_at(d, &n->pos, "%s: expected %s, found %s", path, expected,
		buf_str(&f));
	buf_release(&f);
}

void ynode_bad_quoted(struct diag *d, const struct ynode *n,
		      const char *path, const char *expected)
{
	struct buf q = BUF_INIT;
	char c = n->style == YS_SINGLE ? '\'' : '"';

	diag_quote(&q, n->text, n->len, 60);
	diag_at(d, &n->pos,
		"%s: expected %s, found the quoted text %c%s%c; remove the quotes",
		path, expected, c, buf_str(&q), c);
	buf_release(&q);
}
