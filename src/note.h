/*
 * Change notes: a change record as Markdown with YAML front matter
 * (PRODUCT.md §4), and back. The front matter is the machine part: all
 * the contract's keys, plus what replaying a rollback needs (each
 * step's rollback, dir, env and timeout in record form, and where each
 * secret comes from, never its value). The body is for people.
 *
 * Every string in a note is redacted before it gets here; notes are
 * written with JSON-style double-quoted scalars, which YAML reads as
 * they are.
 */
#ifndef RUNBOOK_NOTE_H
#define RUNBOOK_NOTE_H

#include <stddef.h>

struct buf;
struct change_rec;
struct rb_error;

/* Appends the note of c to out. */
void note_render(const struct change_rec *c, struct buf *out);
/*
 * Only the front matter (between the --- lines, included): every field
 * note_parse() reads back, so it also serves as a whole-record snapshot.
 */
void note_front_matter(const struct change_rec *c, struct buf *out);
/*
 * Parses a note's front matter into a new record; -1 with err if it
 * cannot. Notes come from other clones, so every field must have its
 * type, and the change id, target and runbook names their rules (ids
 * dated in the future are refused); id, when not NULL, is the change
 * the note is filed under, which its `change` field must name.
 */
int note_parse(const char *text, size_t len, const char *id,
	       struct change_rec **out, struct rb_error *err);
/* The one command that undoes change id. */
void note_undo_command(const char *id, struct buf *out);

#endif
