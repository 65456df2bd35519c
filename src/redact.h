/*
 * The one redactor every writer uses: output, progress, errors, JSON
 * events, notes and the journal. It replaces each secret value with
 * [secret:NAME] (longest value first, so a secret that contains another
 * is masked whole), each match of a `redact` pattern and of the
 * built-in patterns (PEM private key blocks, common token forms) with
 * [redacted]. A secret reference as the record form writes it,
 * {{ secrets.NAME }}, is left whole by every pattern: what a match
 * covers of it is not masked, the rest of the match is.
 *
 * A redactor is built once before anything runs and is read-only
 * afterwards. It owns copies of the secret values and wipes them with
 * explicit_bzero() when freed.
 */
#ifndef RUNBOOK_REDACT_H
#define RUNBOOK_REDACT_H

#include <stddef.h>

struct buf;
struct rb_error;
struct redactor;

struct redactor *redactor_new(void);
void redactor_free(struct redactor *r);
/* value is copied; an empty value is ignored. */
void redactor_add_secret(struct redactor *r, const char *name,
			 const char *value);
/* Compiles and adds a pattern. Returns 0, or -1 with err set. */
int redactor_add_pattern(struct redactor *r, const char *pattern,
			 struct rb_error *err);
/* Adds the built-in patterns. */
void redactor_add_builtins(struct redactor *r);

/* Appends the redacted form of s[0..len) to out. */
void redact_append(const struct redactor *r, struct buf *out, const char *s,
		   size_t len);
/* Returns a new string: redacted s. */
char *redact_str(const struct redactor *r, const char *s);

/*
 * A stream of bytes arriving in pieces (a command's output): text is
 * handed on only when no secret can still be straddling its end, so a
 * secret split across two reads is masked all the same. emit receives
 * redacted text.
 */
struct redact_stream;

typedef void (*redact_emit_fn)(void *ctx, const char *data, size_t len);

struct redact_stream *redact_stream_new(const struct redactor *r,
					redact_emit_fn emit, void *ctx);
void redact_stream_feed(struct redact_stream *s, const char *data,
			size_t len);
/* Emits whatever is held back; the stream can be fed again afterwards. */
void redact_stream_flush(struct redact_stream *s);
void redact_stream_free(struct redact_stream *s);

#endif
