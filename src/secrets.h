/*
 * Secret values: read from the environment or a file when a change
 * runs, given to the redactor at once, and wiped when freed. A secret's
 * source has one text form, "env:NAME" or "file:PATH", which the change
 * record keeps (never the value) so a later rollback reads it again
 * from the same place; secret_source_parse() is its only reader.
 *
 * A file secret must be a regular file (no symlink) that everyone
 * cannot read, at most 64 KiB of text; one trailing newline is the
 * file's, not the secret's.
 */
#ifndef RUNBOOK_SECRETS_H
#define RUNBOOK_SECRETS_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "runbook.h"

struct rb_error;
struct redactor;
struct varset;

struct secret_val {
	char *name;
	char *value;		/* wiped on release */
	size_t len;
};

struct secrets {
	struct secret_val *v;
	size_t n;
	/* the environment variables they came from: removed from commands' env */
	struct strvec unset;
};

#define SECRETS_INIT { NULL, 0, STRVEC_INIT }

/* "env:NAME" or "file:PATH" for s. */
void secret_source_format(const struct secret *s, struct buf *out);
/* The reverse; -1 for anything else. s->from points into src. */
int secret_source_parse(const char *src, struct secret *s);

/*
 * Loads the n secrets of specs and adds each to red. for_rollback: the
 * messages say a rollback needs it. Returns 0, or -1 with err
 * (RB_ERR_INVALID: nothing was run) naming the secret and the fix.
 */
int secrets_load(struct secrets *S, const struct secret *specs, size_t n,
		 bool for_rollback, struct redactor *red, struct rb_error *err);
/*
 * The secrets a change record names (name -> source). placeholders:
 * nothing is read, every value is "" (a dry run only shows them masked).
 */
int secrets_load_recorded(struct secrets *S, const struct varset *recorded,
			  bool placeholders, struct redactor *red,
			  struct rb_error *err);
/* The value of secret name, or NULL. */
const char *secrets_get(const struct secrets *S, const char *name);
void secrets_release(struct secrets *S);

#endif
