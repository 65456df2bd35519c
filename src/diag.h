/*
 * Diagnostics about a runbook file: every problem is collected with its
 * position, then printed together, sorted by position, as
 * "file:line:col: message". The list owns its messages.
 */
#ifndef RUNBOOK_DIAG_H
#define RUNBOOK_DIAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/*
 * Positions count from 1; line 0 means "the file as a whole".
 *
 * One diag covers a runbook and the files it includes (include.c): a
 * line carries its file in its high bits. Lines of the runbook itself
 * are below 1 << DIAG_FILE_SHIFT; lines of the kth file added with
 * diag_add_file() are offset by k << DIAG_FILE_SHIFT. So a position
 * stays two numbers, positions of one file keep their order, and
 * diag_print() names the right file. Use diag_ref() to name another
 * position in a message, never its line number.
 */
struct src_pos {
	unsigned line;
	unsigned col;
};

#define DIAG_FILE_SHIFT 25	/* 32 Mi lines per file: 16 MiB files fit */
#define DIAG_MAX_FILES 64	/* included files per runbook */

struct diag_entry {
	struct src_pos pos;
	size_t seq;
	char *msg;
};

struct diag_file {
	char *name;		/* as opened: the including file's directory
				   joined with the path written */
	struct src_pos from;	/* the `include:` that brought it in */
};

struct diag {
	const char *file;	/* borrowed; as the user named it */
	struct diag_entry *v;
	size_t n;
	size_t cap;
	struct diag_file *files;	/* files[k - 1] is file k */
	size_t n_files;
	char **refs;		/* diag_ref() texts, freed with the diag */
	size_t n_refs;
};

void diag_init(struct diag *d, const char *file);
void diag_release(struct diag *d);

struct buf;
/*
 * Appends s (len bytes) for a message: control characters escaped (a
 * message stays one line), cut after max characters on a UTF-8
 * boundary with "..." appended.
 */
void diag_quote(struct buf *b, const char *s, size_t len, size_t max);
void diag_at(struct diag *d, const struct src_pos *pos, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
size_t diag_count(const struct diag *d);
/*
 * Adds an included file named name (copied), brought in by the include
 * at *from. Returns the line base of its positions (k << DIAG_FILE_SHIFT),
 * or 0 when DIAG_MAX_FILES are there already (nothing added).
 */
unsigned diag_add_file(struct diag *d, const char *name,
		       const struct src_pos *from);
/* The name of the file of pos (d->file for the runbook), and its line there. */
const char *diag_file_of(const struct diag *d, struct src_pos pos,
			 unsigned *line);
/*
 * "line 12" when of is in the same file as at, else "steps/app.yml:12";
 * owned by d.
 */
const char *diag_ref(struct diag *d, struct src_pos of, struct src_pos at);
/*
 * Sorts by position and prints one line per problem, "file:line:col:
 * message"; a problem in an included file ends with the chain of
 * includes that brought it in: " (included at main.yml:12:5)".
 */
void diag_print(struct diag *d, FILE *fp);

/*
 * Appends to b the `validate --json` object of file's problems, one
 * line: {"event":"validate","file":...,"ok":...,"problems":[...]}; a
 * problem inside an included file carries its own "file".
 */
struct buf;
void diag_json(const struct diag *d, const char *file, bool ok,
	       struct buf *b);

#endif
