/*
 * The YAML tree: positions, and every check yamltree.h promises on top
 * of libyaml (encoding, one document, depth, aliases, merge keys).
 * Duplicate keys are the loader's check: see test_load.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "diag.h"
#include "yamltree.h"

struct parsed {
	struct diag d;
	struct ynode *root;
	int rc;
};

static void parse_n(struct parsed *p, const char *data, size_t len)
{
	diag_init(&p->d, "t.yml");
	p->root = NULL;
	p->rc = ytree_parse(data, len, &p->root, &p->d);
}

static void parse(struct parsed *p, const char *data)
{
	parse_n(p, data, strlen(data));
}

static void release(struct parsed *p)
{
	ytree_free(p->root);
	diag_release(&p->d);
}

/* Prints the diagnostics, for failure messages. */
static const char *diags(const struct parsed *p)
{
	static char out[2048];
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < p->d.n && n < sizeof(out) - 1; i++)
		n += (size_t)snprintf(out + n, sizeof(out) - n, "[%u:%u %s] ",
				      p->d.v[i].pos.line, p->d.v[i].pos.col,
				      p->d.v[i].msg);
	return out;
}

/* Asserts a parse that fails with a diagnostic at line:col containing what. */
static void assert_rejected_at(struct parsed *p, unsigned line, unsigned col,
			       const char *what)
{
	if (p->rc != -1)
		fail_msg("parse returned %d, expected -1; diagnostics: %s",
			 p->rc, diags(p));
	if (p->root)
		fail_msg("*out was set by a failed parse");
	for (size_t i = 0; i < p->d.n; i++)
		if (strstr(p->d.v[i].msg, what) &&
		    (!line || (p->d.v[i].pos.line == line &&
			       p->d.v[i].pos.col == col)))
			return;
	fail_msg("no diagnostic at %u:%u mentioning \"%s\"; got: %s", line,
		 col, what, diags(p));
}

static void assert_ok(struct parsed *p)
{
	if (p->rc != 0 || p->d.n != 0)
		fail_msg("parse returned %d with diagnostics: %s", p->rc,
			 diags(p));
}

static void assert_pos(const struct ynode *n, unsigned line, unsigned col)
{
	assert_non_null(n);
	if (n->pos.line != line || n->pos.col != col)
		fail_msg("node '%s' at %u:%u, expected %u:%u",
			 n->text ? n->text : ynode_type_name(n), n->pos.line,
			 n->pos.col, line, col);
}

static void test_positions(void **state)
{
	struct parsed p;
	const struct ynode *steps, *step, *list, *m;

	(void)state;
	parse(&p,
	      "name: deploy\n"
	      "steps:\n"
	      "  - run: echo hi\n"
	      "    list: [a, 'b', \"c\"]\n"
	      "    m: {k: v}\n"
	      "    blk: |\n"
	      "      text\n"
	      "    w: caf\xc3\xa9 \xc3\xa9t\xc3\xa9\n"
	      "    \xc3\xa9: x\n");
	assert_ok(&p);
	assert_int_equal(p.root->type, YN_MAP);
	assert_pos(p.root, 1, 1);
	assert_pos(p.root->keys[0], 1, 1);
	assert_pos(ynode_get(p.root, "name"), 1, 7);
	assert_string_equal(ynode_get(p.root, "name")->text, "deploy");
	steps = ynode_get(p.root, "steps");
	assert_int_equal(steps->type, YN_SEQ);
	assert_pos(steps, 3, 3);
	step = steps->items[0];
	assert_int_equal(step->type, YN_MAP);
	assert_pos(step, 3, 5);
	assert_pos(step->keys[0], 3, 5);
	assert_pos(ynode_get(step, "run"), 3, 10);
	list = ynode_get(step, "list");
	assert_pos(list, 4, 11);
	assert_int_equal(list->n, 3);
	assert_pos(list->items[0], 4, 12);
	assert_pos(list->items[1], 4, 15);
	assert_int_equal(list->items[1]->style, YS_SINGLE);
	assert_pos(list->items[2], 4, 20);
	assert_int_equal(list->items[2]->style, YS_DOUBLE);
	m = ynode_get(step, "m");
	assert_pos(m, 5, 8);
	assert_pos(m->keys[0], 5, 9);
	assert_pos(ynode_get(m, "k"), 5, 12);
	assert_int_equal(ynode_get(step, "blk")->style, YS_BLOCK);
	assert_string_equal(ynode_get(step, "blk")->text, "text\n");
	/* columns count characters, not bytes */
	assert_pos(ynode_get(step, "w"), 8, 8);
	assert_pos(step->keys[5], 9, 5);
	assert_pos(ynode_get(step, "\xc3\xa9"), 9, 8);
	release(&p);
}

static void test_scalar_text_and_length(void **state)
{
	struct parsed p;
	const struct ynode *v;

	(void)state;
	parse(&p, "a: \"x\\ty\"\nb: 'it''s'\nc: !!str 12\n");
	assert_ok(&p);
	v = ynode_get(p.root, "a");
	assert_string_equal(v->text, "x\ty");
	assert_int_equal(v->len, 3);
	assert_string_equal(ynode_get(p.root, "b")->text, "it's");
	v = ynode_get(p.root, "c");
	assert_string_equal(v->text, "12");
	assert_true(v->tag_str);
	assert_null(ynode_get(p.root, "missing"));
	assert_null(ynode_get(v, "a"));		/* not a mapping */
	release(&p);
}

static void test_empty_document(void **state)
{
	struct parsed p;

	(void)state;
	parse(&p, "");
	assert_ok(&p);
	assert_null(p.root);
	release(&p);
	parse(&p, "# only a comment\n\n");
	assert_ok(&p);
	assert_null(p.root);
	release(&p);
}

/* A 9-level "billion laughs": 9^9 nodes if expanded. */
static void test_alias_bomb_fails(void **state)
{
	struct buf b = BUF_INIT;
	struct parsed p;

	(void)state;
	buf_adds(&b, "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
	for (char c = 'b'; c <= 'i'; c++)
		buf_addf(&b, "%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n",
			 c, c, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1,
			 c - 1, c - 1);
	parse_n(&p, b.data, b.len);
	/* a..d expand to 7380 copied nodes; the first alias of e goes over */
	assert_rejected_at(&p, 5, 8, "alias");
	release(&p);
	buf_release(&b);
}

/* Many aliases of one small node stay within the budget. */
static void test_aliases_within_budget(void **state)
{
	struct parsed p;
	const struct ynode *b;

	(void)state;
	parse(&p, "a: &x {k: v}\nb: [*x, *x, *x]\n");
	assert_ok(&p);
	b = ynode_get(p.root, "b");
	assert_int_equal(b->n, 3);
	assert_string_equal(ynode_get(b->items[2], "k")->text, "v");
	/* a copy sits where the alias is written */
	assert_pos(b->items[2], 2, 13);
	release(&p);
}

static void test_self_alias_fails(void **state)
{
	struct parsed p;

	(void)state;
	parse(&p, "a: &a [*a]\n");
	assert_rejected_at(&p, 1, 8, "*a");
	release(&p);
	parse(&p, "&a [*a]\n");
	assert_rejected_at(&p, 1, 5, "cycle");
	release(&p);
	parse(&p, "a: &m {b: {c: *m}}\n");
	assert_rejected_at(&p, 1, 15, "cycle");
	release(&p);
}

static void test_undefined_alias_fails(void **state)
{
	struct parsed p;

	(void)state;
	parse(&p, "a: 1\nb: *nope\n");
	assert_rejected_at(&p, 2, 4, "undefined '*nope'");
	release(&p);
	/* an anchor defined later is not defined yet */
	parse(&p, "a: *x\nb: &x 1\n");
	assert_rejected_at(&p, 1, 4, "undefined");
	release(&p);
}

static char *nested(size_t depth)
{
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < depth; i++)
		buf_addc(&b, '[');
	buf_adds(&b, "x");
	for (size_t i = 0; i < depth; i++)
		buf_addc(&b, ']');
	buf_addc(&b, '\n');
	return buf_detach(&b);
}

static void test_depth_limit(void **state)
{
	struct parsed p;
	char *s;

	(void)state;
	s = nested(60);
	parse(&p, s);
	assert_ok(&p);
	release(&p);
	free(s);

	s = nested(YTREE_MAX_DEPTH);
	parse(&p, s);
	assert_ok(&p);
	release(&p);
	free(s);

	s = nested(YTREE_MAX_DEPTH + 1);
	parse(&p, s);
	assert_rejected_at(&p, 1, YTREE_MAX_DEPTH + 1, "nesting");
	release(&p);
	free(s);

	s = nested(100);
	parse(&p, s);
	assert_rejected_at(&p, 1, YTREE_MAX_DEPTH + 1, "nesting");
	release(&p);
	free(s);
}

static void test_utf16_bom_rejected(void **state)
{
	static const char le[] = "\xff\xfe" "a\0:\0 \0b\0\n\0";
	static const char be[] = "\xfe\xff" "\0a\0:\0 \0b\0\n";
	static const char le32[] = "\xff\xfe\0\0" "a\0\0\0\n\0\0\0";
	static const char be32[] = "\0\0\xfe\xff" "\0\0\0a\0\0\0\n";
	struct parsed p;

	(void)state;
	parse_n(&p, le, sizeof(le) - 1);
	assert_rejected_at(&p, 1, 1, "UTF-16");
	release(&p);
	parse_n(&p, be, sizeof(be) - 1);
	assert_rejected_at(&p, 1, 1, "UTF-16");
	release(&p);
	parse_n(&p, le32, sizeof(le32) - 1);
	assert_rejected_at(&p, 1, 1, "UTF-8");
	release(&p);
	parse_n(&p, be32, sizeof(be32) - 1);
	assert_rejected_at(&p, 1, 1, "UTF-8");
	release(&p);
}

static void test_invalid_utf8_located(void **state)
{
	struct parsed p;

	(void)state;
	parse(&p, "a: b\nc: d\xff" "e\n");
	assert_rejected_at(&p, 2, 5, "0xff");
	release(&p);
	/* columns before the bad byte count characters */
	parse(&p, "x: 1\ny: 2\nzz: \xc3\xa9\xc3\xa9\xe2\x82\xac\xc3\n");
	assert_rejected_at(&p, 3, 8, "0xc3");
	release(&p);
	/* Latin-1 e-acute */
	parse(&p, "name: caf\xe9\n");
	assert_rejected_at(&p, 1, 10, "0xe9");
	release(&p);
	/* overlong encoding of '/' */
	parse(&p, "a: \xc0\xaf\n");
	assert_rejected_at(&p, 1, 4, "0xc0");
	release(&p);
	/* overlong three-byte form */
	parse(&p, "a: \xe0\x80\xaf\n");
	assert_rejected_at(&p, 1, 4, "0xe0");
	release(&p);
	/* a UTF-16 surrogate */
	parse(&p, "a: \xed\xa0\x80\n");
	assert_rejected_at(&p, 1, 4, "0xed");
	release(&p);
	/* above U+10FFFF */
	parse(&p, "a: \xf4\x90\x80\x80\n");
	assert_rejected_at(&p, 1, 4, "0xf4");
	release(&p);
	/* cut short at the end of the data */
	parse(&p, "a: \xe2\x82");
	assert_rejected_at(&p, 1, 4, "0xe2");
	release(&p);
	/* a lone continuation byte */
	parse(&p, "a: x\x80\n");
	assert_rejected_at(&p, 1, 5, "0x80");
	release(&p);
}

static void test_valid_utf8_accepted(void **state)
{
	struct parsed p;

	(void)state;
	parse(&p, "a: \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\n");
	assert_ok(&p);
	assert_string_equal(ynode_get(p.root, "a")->text,
			    "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf");
	release(&p);
}

static void test_utf8_bom_accepted(void **state)
{
	struct parsed p;

	(void)state;
	parse(&p, "\xef\xbb\xbf" "a: 1\nb: 2\n");
	assert_ok(&p);
	/* the BOM takes no column */
	assert_pos(p.root->keys[0], 1, 1);
	assert_pos(ynode_get(p.root, "a"), 1, 4);
	assert_pos(ynode_get(p.root, "b"), 2, 4);
	release(&p);
	/* positions of problems after a BOM are not shifted either */
	parse(&p, "\xef\xbb\xbf" "a: \xff\n");
	assert_rejected_at(&p, 1, 4, "0xff");
	release(&p);
}

static void test_nul_byte_rejected(void **state)
{
	static const char in_value[] = "a: b\0c\n";
	static const char at_start[] = "\0a: b\n";
	static const char line2[] = "a: 1\nb: \0\n";
	struct parsed p;

	(void)state;
	parse_n(&p, in_value, sizeof(in_value) - 1);
	assert_rejected_at(&p, 1, 5, "NUL");
	release(&p);
	parse_n(&p, at_start, sizeof(at_start) - 1);
	assert_rejected_at(&p, 1, 1, "NUL");
	release(&p);
	parse_n(&p, line2, sizeof(line2) - 1);
	assert_rejected_at(&p, 2, 4, "NUL");
	release(&p);
}

/* "\0" escaped in a double-quoted string: valid YAML, never valid text. */
static void test_escaped_nul_rejected(void **state)
{
	struct parsed p;

	(void)state;
	parse(&p, "a: \"x\\0y\"\n");
	assert_true(p.d.n >= 1);
	assert_non_null(strstr(p.d.v[0].msg, "NUL"));
	assert_int_equal(p.d.v[0].pos.line, 1);
	assert_int_equal(p.d.v[0].pos.col, 4);
	release(&p);
}

static void test_two_documents_rejected(void **state)
{
	struct parsed p;

	(void)state;
	parse(&p, "a: 1\n---\nb: 2\n");
	assert_rejected_at(&p, 2, 1, "second");
	release(&p);
	parse(&p, "---\na: 1\n...\n---\nb: 2\n");
	assert_rejected_at(&p, 4, 1, "one YAML document");
	release(&p);
	/* a second, empty document is a second document too */
	parse(&p, "a: 1\n---\n");
	assert_rejected_at(&p, 2, 1, "second");
	release(&p);
	/* one document with explicit markers is fine */
	parse(&p, "---\na: 1\n...\n");
	assert_ok(&p);
	release(&p);
}

static void test_merge_key(void **state)
{
	struct parsed p;
	const struct ynode *m;

	(void)state;
	parse(&p, "base: &b {x: 1}\nm:\n  <<: *b\n  y: 2\n");
	assert_ok(&p);
	m = ynode_get(p.root, "m");
	assert_string_equal(ynode_get(m, "x")->text, "1");
	assert_string_equal(ynode_get(m, "y")->text, "2");
	assert_null(ynode_get(m, "<<"));
	assert_int_equal(m->n, 2);
	release(&p);
	/* a quoted "<<" is an ordinary key */
	parse(&p, "'<<': 1\n");
	assert_ok(&p);
	assert_string_equal(ynode_get(p.root, "<<")->text, "1");
	release(&p);
}

/* YAML 1.1: explicit keys win (even after <<), then earlier maps. */
static void test_merge_key_precedence(void **state)
{
	struct parsed p;
	const struct ynode *m;

	(void)state;
	parse(&p, "a: &a {k: a, only_a: 1}\nb: &b {k: b, j: b, only_b: 2}\n"
		  "m:\n  j: mine\n  <<: [*a, *b]\n  z: last\n");
	assert_ok(&p);
	m = ynode_get(p.root, "m");
	assert_string_equal(ynode_get(m, "k")->text, "a");
	assert_string_equal(ynode_get(m, "j")->text, "mine");
	assert_string_equal(ynode_get(m, "only_a")->text, "1");
	assert_string_equal(ynode_get(m, "only_b")->text, "2");
	assert_string_equal(ynode_get(m, "z")->text, "last");
	assert_int_equal(m->n, 5);
	release(&p);
	/* a merged map that merged itself is complete when merged again */
	parse(&p, "a: &a {k: 1}\nb: &b {<<: *a, l: 2}\nc: {<<: *b}\n");
	assert_ok(&p);
	m = ynode_get(p.root, "c");
	assert_string_equal(ynode_get(m, "k")->text, "1");
	assert_string_equal(ynode_get(m, "l")->text, "2");
	release(&p);
}

/* A diagnostic at line:col, whatever the return (the loader counts them). */
static void assert_diag_at(struct parsed *p, unsigned line, unsigned col,
			   const char *what)
{
	for (size_t i = 0; i < p->d.n; i++)
		if (strstr(p->d.v[i].msg, what) &&
		    p->d.v[i].pos.line == line && p->d.v[i].pos.col == col)
			return;
	fail_msg("no diagnostic at %u:%u mentioning \"%s\"; got: %s", line,
		 col, what, diags(p));
}

static void test_merge_key_bad_values(void **state)
{
	struct parsed p;

	(void)state;
	parse(&p, "s: &s text\nm:\n  <<: *s\n");
	assert_diag_at(&p, 3, 7, "expected a mapping to merge");
	release(&p);
	parse(&p, "a: &a {k: 1}\nm:\n  <<: [*a, plain]\n");
	assert_diag_at(&p, 3, 12, "found a string");
	release(&p);
	parse(&p, "m:\n  <<: []\n");
	assert_diag_at(&p, 2, 7, "found an empty list");
	release(&p);
	parse(&p, "a: &a {k: 1}\nm:\n  <<: *a\n  <<: *a\n");
	assert_diag_at(&p, 4, 3, "one merge key");
	release(&p);
	/* an alias inside its own anchor is still a cycle */
	parse(&p, "a: &a {<<: *a}\n");
	assert_rejected_at(&p, 1, 12, "cycle");
	release(&p);
}

static void test_complex_key_rejected(void **state)
{
	struct parsed p;

	(void)state;
	parse(&p, "? [a, b]\n: c\nd: e\n");
	assert_true(p.d.n >= 1);
	assert_non_null(strstr(p.d.v[0].msg, "key"));
	assert_int_equal(p.d.v[0].pos.line, 1);
	release(&p);
}

static void test_unknown_tag_rejected(void **state)
{
	struct parsed p;

	(void)state;
	parse(&p, "a: !!binary aGVsbG8=\nb: !custom x\nc: !!str ok\n");
	assert_int_equal(p.d.n, 2);
	assert_non_null(strstr(p.d.v[0].msg, "binary"));
	assert_int_equal(p.d.v[0].pos.line, 1);
	assert_non_null(strstr(p.d.v[1].msg, "!custom"));
	assert_int_equal(p.d.v[1].pos.line, 2);
	release(&p);
}

static void test_huge_scalar_rejected(void **state)
{
	size_t n = YTREE_MAX_SCALAR + 1;
	char *s = malloc(n + 8);
	struct parsed p;

	(void)state;
	assert_non_null(s);
	memcpy(s, "a: ", 3);
	memset(s + 3, 'x', n);
	memcpy(s + 3 + n, "\n", 2);
	parse(&p, s);
	assert_rejected_at(&p, 1, 4, "1 MiB");
	release(&p);
	free(s);
}

static void test_syntax_error_located(void **state)
{
	struct parsed p;

	(void)state;
	parse(&p, "a: [1, 2\nb: 3\n");
	assert_rejected_at(&p, 0, 0, "expected valid YAML");
	assert_true(p.d.v[0].pos.line >= 1);
	release(&p);
	/* a tab used as indentation: the message says where it was noticed */
	parse(&p, "a: 1\n\tb: 2\n");
	assert_rejected_at(&p, 0, 0, "tab");
	assert_true((p.d.v[0].pos.line == 2 && p.d.v[0].pos.col == 1) ||
		    strstr(p.d.v[0].msg, "2:1"));
	release(&p);
}

static void test_is_null(void **state)
{
	static const struct {
		const char *key;
		bool null;
	} want[] = {
		{ "tilde", true }, { "word", true }, { "Word", true },
		{ "WORD", true }, { "empty", true }, { "single", false },
		{ "double", false }, { "tagged", false }, { "nil", false },
		{ "none", false }, { "nUll", false }, { "zero", false },
		{ "emptyq", false }, { "block", false },
	};
	struct parsed p;

	(void)state;
	parse(&p,
	      "tilde: ~\nword: null\nWord: Null\nWORD: NULL\nempty:\n"
	      "single: 'null'\ndouble: \"~\"\ntagged: !!str null\n"
	      "nil: nil\nnone: none\nnUll: nUll\nzero: 0\nemptyq: ''\n"
	      "block: |\n  null\nlist: []\nmap: {}\n");
	assert_ok(&p);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct ynode *n = ynode_get(p.root, want[i].key);

		assert_non_null(n);
		if (ynode_is_null(n) != want[i].null)
			fail_msg("ynode_is_null(%s: '%s') is %d", want[i].key,
				 n->text, !want[i].null);
	}
	assert_false(ynode_is_null(ynode_get(p.root, "list")));
	assert_false(ynode_is_null(ynode_get(p.root, "map")));
	assert_string_equal(ynode_type_name(ynode_get(p.root, "word")), "null");
	assert_string_equal(ynode_type_name(ynode_get(p.root, "list")), "list");
	assert_string_equal(ynode_type_name(ynode_get(p.root, "map")), "mapping");
	assert_string_equal(ynode_type_name(ynode_get(p.root, "zero")), "string");
	assert_string_equal(ynode_type_name(NULL), "nothing");
	release(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_positions),
		cmocka_unit_test(test_scalar_text_and_length),
		cmocka_unit_test(test_empty_document),
		cmocka_unit_test(test_alias_bomb_fails),
		cmocka_unit_test(test_aliases_within_budget),
		cmocka_unit_test(test_self_alias_fails),
		cmocka_unit_test(test_undefined_alias_fails),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_utf16_bom_rejected),
		cmocka_unit_test(test_invalid_utf8_located),
		cmocka_unit_test(test_valid_utf8_accepted),
		cmocka_unit_test(test_utf8_bom_accepted),
		cmocka_unit_test(test_nul_byte_rejected),
		cmocka_unit_test(test_escaped_nul_rejected),
		cmocka_unit_test(test_two_documents_rejected),
		cmocka_unit_test(test_merge_key),
		cmocka_unit_test(test_merge_key_precedence),
		cmocka_unit_test(test_merge_key_bad_values),
		cmocka_unit_test(test_complex_key_rejected),
		cmocka_unit_test(test_unknown_tag_rejected),
		cmocka_unit_test(test_huge_scalar_rejected),
		cmocka_unit_test(test_syntax_error_located),
		cmocka_unit_test(test_is_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
