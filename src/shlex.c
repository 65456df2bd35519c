/*
 * The shell reader of the template's injection checks (shlex.h): a
 * small lexer that follows the shell's quoting over a command, a stack
 * of contexts (plain, '...', "...", $(...), and the contexts in which
 * placeholders are refused). At each plain level it also reads words
 * and simple commands, enough to know where bash evaluates a word as
 * arithmetic or as a variable name (let, ((...)), [[ a -lt b ]],
 * declare -i, an array index, read, ...), where a value would run as
 * code however it is quoted.
 *
 * The invariant: a placeholder is accepted only where the top context
 * is plain, $(...), '...' or "...", nothing escaped it, no $ is right
 * before it, the lexer was never unsure of where it is, and no command
 * around it evaluates it.
 */
#include "shlex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
enum ctx {
	C_PLAIN, C_SQ, C_DQ, C_CMDSUB, C_PARAM, C_BQ, C_ARITH, C_ARITHCMD,
	C_BRACKET, C_ANSI, C_COMMENT, C_HEREDOC,
};

#define LEX_DEPTH 32
#define WORD_MAX 24

/* The word being read at a plain level, its quotes removed. */
struct word {
	char text[WORD_MAX];
	size_t len;
	bool started;
	bool dyn;		/* an expansion or a value: text unknown */
	bool quoted;		/* some of it was quoted */
	bool toolong;
	bool name;		/* so far an unquoted variable name */
	bool eq;		/* an unquoted = (outside an index) seen */
	int sub;		/* depth inside the [...] of an array index */
	long ph;		/* first placeholder in it, or -1 */
};

/* What the command at a plain level does with its words. */
enum cmd {
	CMD_NONE, CMD_LET, CMD_EVAL, CMD_DECL, CMD_READ, CMD_PRINTF, CMD_TEST,
	CMD_UNSET, CMD_DBRACK,
};

enum dbrack_op { OP_NONE, OP_ARITH, OP_NAME };

struct level {
	struct word w;
	enum cmd cmd;
	unsigned nwords;	/* words of the command (0: next is its name) */
	bool redir;		/* the next word is a redirection target */
	bool compound;		/* inside name=( ... ) */
	bool decl_eval;		/* declare -i or -n */
	char prev[8];		/* the previous argument, if short and known */
	bool prev_ok;
	enum dbrack_op op;	/* [[: the previous word was such an operator */
	char optext[4];		/* [[: which arithmetic operator */
	long prev_ph;		/* [[: placeholder in the previous word */
};

struct shlex {
	enum ctx st[LEX_DEPTH];
	int paren[LEX_DEPTH];
	struct level lv[LEX_DEPTH];
	int n;
	const char *unsure;	/* why the lexer lost track, or NULL */
	bool esc;		/* the previous character was a backslash */
	bool dollar;		/* the previous character was an unescaped $ */
	bool word_start;
	bool hd_pending;	/* << seen; the body starts at the newline */
	bool hd_strip;		/* <<- strips leading tabs */
	char delim[64];
	struct buf line;	/* current here-document line */
	long bad_ph;		/* a placeholder found unsafe later, or -1 */
	char bad_why[400];
};

/* ---- words and commands at a plain level ---- */

static void word_reset(struct word *w)
{
	memset(w, 0, sizeof(*w));
	w->name = true;
	w->ph = -1;
}

static void cmd_reset(struct level *V)
{
	V->cmd = CMD_NONE;
	V->nwords = 0;
	V->redir = false;
	V->compound = false;
	V->decl_eval = false;
	V->prev_ok = false;
	V->op = OP_NONE;
	V->prev_ph = -1;
}

static void level_init(struct level *V)
{
	word_reset(&V->w);
	cmd_reset(V);
}

static bool is_plain(enum ctx c)
{
	return c == C_PLAIN || c == C_CMDSUB;
}

static bool name_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       (!first && c >= '0' && c <= '9');
}

/* One character of the word at level lvl; quoted: it came from quotes. */
static void word_add(struct shlex *L, int lvl, char c, bool quoted)
{
	struct word *w = &L->lv[lvl].w;

	w->started = true;
	if (c == SHLEX_VALUE) {
		w->dyn = true;
		w->name = false;
		return;
	}
	if (quoted) {
		w->quoted = true;
	} else if (w->sub > 0) {
		if (c == '[')
			w->sub++;
		else if (c == ']')
			w->sub--;
	} else if (c == '[' && !w->eq && !w->dyn && !w->quoted &&
		   (w->len == 0 || w->name)) {
		w->sub = 1;
	} else if (c == '=' && !w->eq) {
		w->eq = true;
	}
	if (w->name && (quoted || !name_char(c, w->len == 0)))
		w->name = false;
	if (w->len + 1 < sizeof(w->text))
		w->text[w->len++] = c;
	else
		w->toolong = true;
}

/* The word at level lvl holds an expansion: its text is unknown. */
static void word_dyn(struct shlex *L, int lvl)
{
	struct word *w = &L->lv[lvl].w;

	w->started = true;
	w->dyn = true;
	w->name = false;
}

/* The level a quoted context's characters belong to (the one below). */
static int outer_plain(const struct shlex *L)
{
	return L->n >= 2 && is_plain(L->st[L->n - 2]) ? L->n - 2 : -1;
}

static bool in_list(const char *t, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(t, *list) == 0)
			return true;
	return false;
}

/* Words after which the next word is still a command name. */
static const char *const lead_words[] = {
	"if", "then", "else", "elif", "do", "while", "until", "!", "{", "}",
	"time", "command", "builtin", NULL,
};

static enum cmd cmd_of(const char *t)
{
	static const char *const decl[] = {
		"declare", "typeset", "local", "readonly", "export", NULL,
	};

	if (strcmp(t, "let") == 0)
		return CMD_LET;
	if (strcmp(t, "eval") == 0 || strcmp(t, "trap") == 0)
		return CMD_EVAL;
	if (in_list(t, decl))
		return CMD_DECL;
	if (strcmp(t, "read") == 0)
		return CMD_READ;
	if (strcmp(t, "printf") == 0)
		return CMD_PRINTF;
	if (strcmp(t, "test") == 0 || strcmp(t, "[") == 0)
		return CMD_TEST;
	if (strcmp(t, "unset") == 0)
		return CMD_UNSET;
	return CMD_NONE;
}

static bool arith_op(const char *t)
{
	static const char *const ops[] = {
		"-eq", "-ne", "-lt", "-le", "-gt", "-ge", NULL,
	};

	return in_list(t, ops);
}

/* Keeps the refusal of the earliest placeholder. */
static void refuse_later(struct shlex *L, long ph, const char *why)
{
	if (L->bad_ph >= 0 && L->bad_ph <= ph)
		return;
	L->bad_ph = ph;
	snprintf(L->bad_why, sizeof(L->bad_why), "%s", why);
}

/*
 * Refusals where bash evaluates a word: "{{ v }}" in them becomes the
 * placeholder's own name (see name_in()).
 */
static const char ARITH_LEAD[] =
	"expected no placeholder where bash evaluates arithmetic, found one ";
static const char ARITH_RUNS[] =
	": a value such as a[$(cmd)] runs cmd there, even quoted; ";
static const char ARITH_CHECK[] =
	"check that it is a number first (n={{ v }}; case $n in ''|*[!0-9]*) exit 1;; esac) and use $n";

/* The advice for [[ x OP y ]]: test(1) compares without evaluating. */
static void arith_test(char *why, size_t n, const char *op)
{
	snprintf(why, n, "%sas an operand of %s in [[ ... ]]%scompare with [ {{ v }} %s 42 ] instead: test does not evaluate it",
		 ARITH_LEAD, op, ARITH_RUNS, op);
}

/* A word of [[ ... ]]: operators make their operands arithmetic. */
static void dbrack_word(struct shlex *L, struct level *V, const char *t)
{
	if (t && !V->w.quoted && strcmp(t, "]]") == 0) {
		cmd_reset(V);
		V->nwords = 1;
		return;
	}
	if (t && V->w.quoted)
		t = NULL;	/* a quoted word is never an operator */
	if (t && arith_op(t)) {
		if (V->prev_ph >= 0) {
			char why[400];

			arith_test(why, sizeof(why), t);
			refuse_later(L, V->prev_ph, why);
		}
		V->op = OP_ARITH;
		strcpy(V->optext, t);
		V->prev_ph = -1;
		return;
	}
	if (t && (strcmp(t, "-v") == 0 || strcmp(t, "-R") == 0)) {
		V->op = OP_NAME;
		V->prev_ph = -1;
		return;
	}
	V->op = OP_NONE;
	V->prev_ph = V->w.ph;
}

/* The first word of a simple command (or one that keeps it coming). */
static void command_word(struct level *V, const char *t)
{
	const struct word *w = &V->w;

	if (w->eq)
		return;		/* an assignment: the command comes next */
	if (t && !w->quoted && in_list(t, lead_words))
		return;
	V->nwords = 1;
	V->prev_ok = false;
	if (t && !w->quoted && strcmp(t, "[[") == 0)
		V->cmd = CMD_DBRACK;
	else
		V->cmd = t ? cmd_of(t) : CMD_NONE;
}

static void argument_word(struct level *V, const char *t)
{
	V->nwords++;
	if (V->cmd == CMD_DECL && t && (t[0] == '-' || t[0] == '+') &&
	    strpbrk(t + 1, "in"))
		V->decl_eval = true;
	V->prev_ok = t && strlen(t) < sizeof(V->prev);
	if (V->prev_ok)
		strcpy(V->prev, t);
}

/* The word at level lvl ends (a blank, an operator, the end). */
static void word_end(struct shlex *L, int lvl)
{
	struct level *V = &L->lv[lvl];
	struct word *w = &V->w;
	const char *t = NULL;

	if (!w->started)
		return;
	w->text[w->len] = '\0';
	if (!w->dyn && !w->toolong)
		t = w->text;
	if (t && !w->quoted && L->st[lvl] == C_CMDSUB &&
	    strcmp(t, "case") == 0)
		L->unsure = "a case statement inside $(...)";
	if (V->redir)
		V->redir = false;
	else if (V->compound)
		;		/* an element of name=( ... ) */
	else if (V->cmd == CMD_DBRACK)
		dbrack_word(L, V, t);
	else if (V->nwords == 0)
		command_word(V, t);
	else
		argument_word(V, t);
	word_reset(w);
}

/* A command ends (; & | newline, a parenthesis): the next one starts. */
static void command_end(struct shlex *L, int lvl)
{
	word_end(L, lvl);
	if (L->lv[lvl].cmd != CMD_DBRACK)
		cmd_reset(&L->lv[lvl]);
}

/* ---- the context stack ---- */

static void lex_init(struct shlex *L)
{
	memset(L, 0, sizeof(*L));
	L->st[0] = C_PLAIN;
	L->n = 1;
	L->word_start = true;
	L->bad_ph = -1;
	level_init(&L->lv[0]);
}

static enum ctx top(const struct shlex *L)
{
	return L->st[L->n - 1];
}

static void push(struct shlex *L, enum ctx c)
{
	if (L->n >= LEX_DEPTH) {
		L->unsure = "quoting nested too deeply";
		return;
	}
	L->st[L->n] = c;
	L->paren[L->n] = 0;
	level_init(&L->lv[L->n]);
	L->n++;
}

static void pop(struct shlex *L)
{
	if (L->n > 1)
		L->n--;
}

static bool is_sep(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == ';' || c == '&' ||
	       c == '|' || c == '(' || c == ')' || c == '<' || c == '>';
}

/* Reads the delimiter after << at s; returns false if unclear. */
static bool heredoc_delim(struct shlex *L, const char *s)
{
	size_t n = 0;

	L->hd_strip = false;
	if (*s == '-') {
		L->hd_strip = true;
		s++;
	}
	while (*s == ' ' || *s == '\t')
		s++;
	for (; *s && !is_sep(*s); s++) {
		if (*s == SHLEX_VALUE || *s == '$' || *s == '`')
			return false;
		if (*s == '\'' || *s == '"' || *s == '\\')
			continue;
		if (n + 1 >= sizeof(L->delim))
			return false;
		L->delim[n++] = *s;
	}
	L->delim[n] = '\0';
	return n > 0;
}

/*
 * Inside '...', $'...', a comment, `...` or ${...}: only the end of the
 * context (or a backslash, where one escapes) matters. Quotes and
 * expansions inside ${...} would need a full parse: the lexer gives up.
 * The characters of '...' belong to the word around it.
 */
static void step_quoted(struct shlex *L, enum ctx t, char c)
{
	int o = outer_plain(L);

	switch (t) {
	case C_SQ:
		if (c == '\'')
			pop(L);
		else if (o >= 0)
			word_add(L, o, c, true);
		break;
	case C_ANSI:
		if (c == '\\')
			L->esc = true;
		else if (c == '\'')
			pop(L);
		break;
	case C_COMMENT:
		if (c == '\n') {
			pop(L);
			command_end(L, L->n - 1);
			L->word_start = true;
		}
		break;
	case C_BQ:
		if (c == '\\')
			L->esc = true;
		else if (c == '`')
			pop(L);
		break;
	case C_PARAM:
		if (c == '}')
			pop(L);
		else if (c == '\'' || c == '"' || c == '`' || c == '$' ||
			 c == '\\')
			L->unsure = "quotes or expansions inside ${...}";
		break;
	default:
		break;
	}
}

/* A here-document body: collects each line, ends at the delimiter line. */
static void step_heredoc(struct shlex *L, char c)
{
	const char *ln;

	if (c != '\n') {
		buf_addc(&L->line, c);
		return;
	}
	ln = buf_str(&L->line);
	if (L->hd_strip)
		ln += strspn(ln, "\t");
	if (strcmp(ln, L->delim) == 0) {
		pop(L);
		L->word_start = true;
	}
	buf_reset(&L->line);
}

/*
 * Inside $((...)), ((...)) or $[...]: counts parentheses (brackets) to
 * find the end; quotes and command substitutions would need a full
 * parse: the lexer gives up.
 */
static void step_arith(struct shlex *L, const char *s, size_t *i, enum ctx t)
{
	char c = *s, open = t == C_BRACKET ? '[' : '(';
	char close = t == C_BRACKET ? ']' : ')';

	if (c == open) {
		L->paren[L->n - 1]++;
	} else if (c == close) {
		if (L->paren[L->n - 1] > 0) {
			L->paren[L->n - 1]--;
		} else if (t == C_BRACKET) {
			pop(L);
		} else if (s[1] == ')') {
			pop(L);
			(*i)++;
		}
	} else if (c == '\'' || c == '"' || c == '`' || c == '\\' ||
		   (c == '$' && s[1] == '(')) {
		L->unsure = "quotes or command substitution inside ((...)), $((...)) or $[...]";
	}
}

/*
 * An unescaped $ at s, in plain words or (without ansi) inside "...":
 * opens $((, $(, ${, $[ or, with ansi, $'. A lone $ is remembered: a
 * placeholder right after it is refused.
 */
static void step_dollar(struct shlex *L, const char *s, size_t *i, bool ansi)
{
	if (s[1] == '(' && s[2] == '(') {
		push(L, C_ARITH);
		*i += 2;
	} else if (s[1] == '(') {
		push(L, C_CMDSUB);
		(*i)++;
		L->word_start = true;
	} else if (s[1] == '{') {
		push(L, C_PARAM);
		(*i)++;
	} else if (s[1] == '[') {
		push(L, C_BRACKET);
		(*i)++;
	} else if (ansi && s[1] == '\'') {
		push(L, C_ANSI);
		(*i)++;
	} else {
		L->dollar = true;
	}
}

/* Inside "...": backslashes, the closing quote, `...` and $ expansions. */
static void step_dq(struct shlex *L, const char *s, size_t *i)
{
	char c = *s;
	int o = outer_plain(L);

	if (c == '\\') {
		L->esc = true;
	} else if (c == '"') {
		pop(L);
	} else if (c == '`' || c == '$') {
		if (o >= 0)
			word_dyn(L, o);
		if (c == '`')
			push(L, C_BQ);
		else
			step_dollar(L, s, i, false);
	} else if (o >= 0) {
		word_add(L, o, c, true);
	}
}

/* A word of digits right before < or > names a file descriptor. */
static bool fd_word(const struct word *w)
{
	if (!w->started || w->dyn || w->quoted || w->len == 0)
		return false;
	for (size_t k = 0; k < w->len; k++)
		if (w->text[k] < '0' || w->text[k] > '9')
			return false;
	return true;
}

/*
 * A < or > in plain words: the operator (<<<, <<, <&, <>, >>, >&, >|)
 * and, after it, a word that is its target. << starts a here-document
 * whose body begins at the next newline (one per line, with a
 * plain-word delimiter, or the lexer gives up).
 */
static void step_redirect(struct shlex *L, const char *s, size_t *i)
{
	struct level *V = &L->lv[L->n - 1];

	if (fd_word(&V->w))
		word_reset(&V->w);
	else
		word_end(L, L->n - 1);
	if (V->cmd != CMD_DBRACK)
		V->redir = true;
	L->word_start = true;
	if (s[0] == '<' && s[1] == '<' && s[2] == '<') {
		*i += 2;
	} else if (s[0] == '<' && s[1] == '<') {
		(*i)++;
		if (L->hd_pending)
			L->unsure = "two here-documents on one line";
		else if (!heredoc_delim(L, s + 2))
			L->unsure = "a here-document delimiter that is not a plain word";
		L->hd_pending = true;
	} else if (s[1] == '&' || s[1] == '>' || s[1] == '|') {
		(*i)++;
	}
}

/* ( in plain words: ((...)), name=( ... ), a subshell or a group. */
static void step_open(struct shlex *L, const char *s, size_t *i, enum ctx t,
		      bool ws)
{
	struct level *V = &L->lv[L->n - 1];
	const struct word *w = &V->w;

	if (ws && s[1] == '(') {
		word_end(L, L->n - 1);
		push(L, C_ARITHCMD);
		(*i)++;
		return;
	}
	if (t == C_CMDSUB)
		L->paren[L->n - 1]++;
	if (w->started && w->eq && w->len && w->text[w->len - 1] == '=') {
		word_end(L, L->n - 1);
		V->compound = true;
	} else {
		command_end(L, L->n - 1);
	}
	L->word_start = true;
}

/* ) in plain words: the end of $(...), of name=( ... ) or of a group. */
static void step_close(struct shlex *L, enum ctx t)
{
	struct level *V = &L->lv[L->n - 1];

	L->word_start = true;
	if (V->compound) {
		word_end(L, L->n - 1);
		V->compound = false;
		if (t == C_CMDSUB)
			L->paren[L->n - 1]--;
		return;
	}
	command_end(L, L->n - 1);
	if (t != C_CMDSUB)
		return;
	if (L->paren[L->n - 1] == 0)
		pop(L);
	else
		L->paren[L->n - 1]--;
}

/* A separator in plain words: blanks end a word, the others a command. */
static void step_sep(struct shlex *L, const char *s, size_t *i)
{
	char c = *s;
	int lvl = L->n - 1;

	L->word_start = true;
	if (c == '&' && s[1] == '>') {
		word_end(L, lvl);
		(*i)++;
		step_redirect(L, s + 1, i);
		return;
	}
	if (c == ' ' || c == '\t' || L->lv[lvl].compound)
		word_end(L, lvl);
	else
		command_end(L, lvl);
	if (c == '\n' && L->hd_pending) {
		L->hd_pending = false;
		push(L, C_HEREDOC);
		buf_reset(&L->line);
	}
}

/*
 * Plain words, at the top (t is C_PLAIN) or inside $(...) (C_CMDSUB):
 * quotes and expansions open contexts, # at the start of a word opens
 * a comment, parentheses are counted to find the end of $(...), and a
 * newline starts a pending here-document. ws: s starts a word.
 */
static void step_plain(struct shlex *L, const char *s, size_t *i, enum ctx t,
		       bool ws)
{
	char c = *s;
	int lvl = L->n - 1;

	switch (c) {
	case '\\':
		L->esc = true;
		break;
	case '\'':
		L->lv[lvl].w.started = true;
		push(L, C_SQ);
		break;
	case '"':
		L->lv[lvl].w.started = true;
		push(L, C_DQ);
		break;
	case '`':
		word_dyn(L, lvl);
		push(L, C_BQ);
		break;
	case '$':
		word_dyn(L, lvl);
		step_dollar(L, s, i, true);
		break;
	case '#':
		if (ws)
			push(L, C_COMMENT);
		else
			word_add(L, lvl, c, false);
		break;
	case '<':
	case '>':
		step_redirect(L, s, i);
		break;
	case '(':
		step_open(L, s, i, t, ws);
		break;
	case ')':
		step_close(L, t);
		break;
	default:
		if (is_sep(c))
			step_sep(L, s, i);
		else
			word_add(L, lvl, c, false);
		break;
	}
}

/* A character a backslash escaped: part of the word, as it is. */
static void step_escaped(struct shlex *L, enum ctx t, char c)
{
	int o = outer_plain(L);

	if (is_plain(t) && c != '\n') {
		word_add(L, L->n - 1, c, true);
	} else if (t == C_DQ && o >= 0 && c != '\n') {
		if (!strchr("$`\"\\", c))
			word_add(L, o, '\\', true);
		word_add(L, o, c, true);
	}
}

/*
 * Consumes tpl[*i] (and any characters it must look ahead at) and
 * advances *i past them: a character a backslash escaped is kept in its
 * word, any other is handed to the step of the top context.
 */
void shlex_step(struct shlex *L, const char *tpl, size_t *i)
{
	const char *s = tpl + *i;
	bool ws = L->word_start;
	enum ctx t = top(L);

	(*i)++;
	L->dollar = false;
	L->word_start = false;
	if (L->esc) {
		L->esc = false;
		step_escaped(L, t, *s);
		return;
	}
	switch (t) {
	case C_SQ:
	case C_ANSI:
	case C_COMMENT:
	case C_BQ:
	case C_PARAM:
		step_quoted(L, t, *s);
		break;
	case C_HEREDOC:
		step_heredoc(L, *s);
		break;
	case C_ARITH:
	case C_ARITHCMD:
	case C_BRACKET:
		step_arith(L, s, i, t);
		break;
	case C_DQ:
		step_dq(L, s, i);
		break;
	case C_PLAIN:
	case C_CMDSUB:
		step_plain(L, s, i, t, ws);
		break;
	}
}

/* The end of the command: its last words end. */
void shlex_finish(struct shlex *L)
{
	for (int k = L->n - 1; k >= 0; k--)
		if (is_plain(L->st[k]))
			word_end(L, k);
}

/* ---- is a placeholder safe here? ---- */

#define EXPECT_QUOTABLE "expected placeholders only in plain words or inside quotes, found "

/* Why the quoting context refuses a placeholder, or NULL if it can go. */
static const char *ctx_refuse(const struct shlex *L)
{
	if (L->unsure)
		return L->unsure;
	if (L->esc)
		return "a backslash right before a placeholder";
	if (L->dollar)
		return "a $ right before a placeholder";
	switch (top(L)) {
	case C_PLAIN:
	case C_CMDSUB:
		return L->hd_pending ? "a placeholder in a here-document line" :
				       NULL;
	case C_SQ:
	case C_DQ:
		return NULL;
	case C_BQ:
		return "a placeholder inside backquotes (use $(...))";
	case C_PARAM:
		return "a placeholder inside ${...}";
	case C_ARITH:
	case C_ARITHCMD:
	case C_BRACKET:
		return NULL;	/* see shlex_refuse() */
	case C_ANSI:
		return "a placeholder inside $'...'";
	case C_COMMENT:
		return "a placeholder in a shell comment";
	case C_HEREDOC:
		return "a placeholder in a here-document (pass it with env instead)";
	}
	return "an unknown shell context";
}

static const char NAME_LEAD[] =
	"expected no placeholder where bash reads a variable name, found one ";
static const char NAME_TAIL[] =
	": a value such as a[$(cmd)] runs cmd there; write the name itself and pass the value as data";
static const char EVAL_LEAD[] =
	"expected no placeholder in text the shell runs again, found one ";
static const char EVAL_TAIL[] =
	": the value would run as shell code; pass it in env and write \"$NAME\" in that code";

/* For the command at level V: why a placeholder cannot go in its word. */
static bool cmd_refuse(const struct level *V, char *why, size_t n)
{
	const struct word *w = &V->w;
	const char *p = V->prev_ok ? V->prev : "";

	if (w->sub > 0) {
		snprintf(why, n, "%sin an array index [...]%s%s", ARITH_LEAD,
			 ARITH_RUNS, ARITH_CHECK);
		return true;
	}
	if (V->redir)
		return false;
	if (V->cmd == CMD_DBRACK) {
		if (V->op == OP_ARITH)
			arith_test(why, n, V->optext);
		else if (V->op == OP_NAME)
			snprintf(why, n, "%safter -v or -R in [[ ... ]]%s",
				 NAME_LEAD, NAME_TAIL);
		return V->op != OP_NONE;
	}
	if (V->nwords == 0)
		return false;
	switch (V->cmd) {
	case CMD_LET:
		snprintf(why, n, "%sin the arguments of let%s%s", ARITH_LEAD,
			 ARITH_RUNS, ARITH_CHECK);
		return true;
	case CMD_EVAL:
		snprintf(why, n, "%sin the arguments of eval or trap%s",
			 EVAL_LEAD, EVAL_TAIL);
		return true;
	case CMD_DECL:
		if (V->decl_eval) {
			snprintf(why, n, "%safter declare -i or -n%s%s",
				 ARITH_LEAD, ARITH_RUNS, ARITH_CHECK);
			return true;
		}
		if (V->compound || w->eq)
			return false;
		snprintf(why, n, "%sin a name given to declare, local, export...%s",
			 NAME_LEAD, NAME_TAIL);
		return true;
	case CMD_READ:
		if (p[0] == '-' && p[1] && strchr("dinNptu", p[strlen(p) - 1]))
			return false;
		snprintf(why, n, "%sin the arguments of read%s", NAME_LEAD,
			 NAME_TAIL);
		return true;
	case CMD_PRINTF:
	case CMD_TEST:
		if (strcmp(p, "-v") != 0 &&
		    !(V->cmd == CMD_TEST && strcmp(p, "-R") == 0))
			return false;
		snprintf(why, n, "%safter %s %s%s", NAME_LEAD,
			 V->cmd == CMD_TEST ? "test" : "printf", p, NAME_TAIL);
		return true;
	case CMD_UNSET:
		snprintf(why, n, "%sin the arguments of unset%s", NAME_LEAD,
			 NAME_TAIL);
		return true;
	default:
		return false;
	}
}

/*
 * Why a placeholder cannot go where the lexer is; false if it can. The
 * quoting context first, then each command around it, innermost first.
 */
bool shlex_refuse(const struct shlex *L, char *why, size_t n)
{
	const char *q = ctx_refuse(L);
	enum ctx t = top(L);

	if (q) {
		snprintf(why, n, EXPECT_QUOTABLE "%s", q);
		return true;
	}
	if (t == C_ARITH || t == C_ARITHCMD || t == C_BRACKET) {
		snprintf(why, n, "%sinside %s%s%s", ARITH_LEAD,
			 t == C_ARITH ? "$((...))" :
			 t == C_ARITHCMD ? "((...))" : "$[...]",
			 ARITH_RUNS, ARITH_CHECK);
		return true;
	}
	for (int k = L->n - 1; k >= 0; k--)
		if (is_plain(L->st[k]) && cmd_refuse(&L->lv[k], why, n))
			return true;
	return false;
}

/* A placeholder (number ph) starts here: its words contain it. */
void shlex_mark(struct shlex *L, long ph)
{
	for (int k = 0; k < L->n; k++) {
		struct word *w = &L->lv[k].w;

		if (!is_plain(L->st[k]))
			continue;
		w->started = true;
		if (w->ph < 0)
			w->ph = ph;
	}
}


/* ---- for the walker ---- */

struct shlex *shlex_new(void)
{
	struct shlex *L = xmalloc(sizeof(*L));

	lex_init(L);
	return L;
}

void shlex_free(struct shlex *L)
{
	if (!L)
		return;
	if (L->line.data)
		explicit_bzero(L->line.data, L->line.len);
	buf_release(&L->line);
	explicit_bzero(L->lv, sizeof(L->lv));
	free(L);
}

enum shlex_place shlex_place(const struct shlex *L)
{
	enum ctx t = top(L);

	if (t == C_SQ)
		return SHLEX_SQ;
	if (t == C_DQ)
		return SHLEX_DQ;
	if (is_plain(t) && L->lv[L->n - 1].cmd == CMD_DBRACK)
		return SHLEX_WORD_QUOTED;
	return SHLEX_WORD;
}

long shlex_bad(const struct shlex *L, const char **why)
{
	*why = L->bad_why;
	return L->bad_ph;
}
