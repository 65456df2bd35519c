/*
 * The shell reader behind the template's injection checks, for
 * template.c alone: it reads a command as /bin/sh (or bash) will, one
 * character at a time, and says whether a placeholder may go where it
 * has got to, and if it may, how the value must be quoted there.
 *
 * The walker in template.c feeds it the command as the shell will read
 * it: the template's text and {{ 'literal' }} pieces, and each value in
 * its place (the quoted value when rendering, one SHLEX_VALUE byte when
 * no value is known). Before each placeholder it asks shlex_refuse();
 * if the place is fine it calls shlex_mark(), so that a word found
 * unsafe only later (the word after it makes it an operand of -lt in
 * [[ ... ]], say) is reported against that placeholder: shlex_bad().
 *
 * The reader never fails and never allocates past shlex_new(), bar
 * the here-document line it keeps; where it is unsure of the shell's
 * reading it remembers why, and refuses every placeholder after that.
 */
#ifndef RUNBOOK_SHLEX_H
#define RUNBOOK_SHLEX_H

#include <stdbool.h>
#include <stddef.h>

/* A value not known yet, in the command: no shell character, one word byte. */
#define SHLEX_VALUE '\x01'

struct shlex;

/* Where an accepted placeholder lands, for quoting its value. */
enum shlex_place {
	SHLEX_WORD,		/* a plain word (also inside $(...)) */
	SHLEX_WORD_QUOTED,	/* a word of [[ ... ]]: never bare */
	SHLEX_SQ,		/* inside '...' */
	SHLEX_DQ,		/* inside "..." */
};

/* A reader at the start of a command; shlex_free() releases it. */
struct shlex *shlex_new(void);

/*
 * Frees L, wiping what it kept of the command first (a value's bytes
 * may be a secret's). shlex_free(NULL) does nothing.
 */
void shlex_free(struct shlex *L);

/*
 * Reads sh[*i] (and any characters it must look ahead at) and advances
 * *i past them. sh must be NUL-terminated.
 */
void shlex_step(struct shlex *L, const char *sh, size_t *i);

/*
 * The end of the command: its last words end, which may find a marked
 * placeholder unsafe (shlex_bad()).
 */
void shlex_finish(struct shlex *L);

/*
 * True if a placeholder cannot go where L has got to, with the reason
 * in why (at most n bytes; advice about a placeholder writes it as
 * "{{ v }}"); false if it can.
 */
bool shlex_refuse(const struct shlex *L, char *why, size_t n);

/* Placeholder number ph (counted by the caller) starts here. */
void shlex_mark(struct shlex *L, long ph);

/* Where the placeholder shlex_refuse() just accepted lands. */
enum shlex_place shlex_place(const struct shlex *L);

/*
 * The earliest marked placeholder found unsafe after it was marked,
 * with the reason in *why (owned by L); -1 if there is none.
 */
long shlex_bad(const struct shlex *L, const char **why);

#endif
