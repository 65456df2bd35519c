/*
 * Errors travel up as a struct rb_error: a class that picks the exit
 * code (PRODUCT.md §5) and one message. Code below main.c never prints
 * or exits; it fills the error and returns -1. The message says what
 * failed, what was expected and whether running again is safe.
 */
#ifndef RUNBOOK_ERROR_H
#define RUNBOOK_ERROR_H

enum rb_err_class {
	RB_OK = 0,
	RB_ERR_FAILED = 1,	/* apply failed, everything rolled back */
	RB_ERR_USAGE = 2,	/* bad arguments */
	RB_ERR_PARTIAL = 3,	/* partly applied; see runbook status */
	RB_ERR_BUSY = 4,	/* target locked or unfinished change */
	RB_ERR_INVALID = 5,	/* invalid runbook or input; nothing ran */
	RB_ERR_CONNECT = 6,	/* connect, auth or host key; nothing changed */
	RB_ERR_SOME_FAILED = 7,	/* applied but on hosts that failed within max_fail */
	RB_ERR_INTERRUPTED = 130,
};

struct rb_error {
	enum rb_err_class cls;
	char msg[2048];
};

#define RB_ERROR_INIT { RB_OK, "" }

void rb_error_set(struct rb_error *err, enum rb_err_class cls,
		  const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Like rb_error_set(), then appends ": " and strerror(errno). */
void rb_error_errno(struct rb_error *err, enum rb_err_class cls,
		    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void rb_error_clear(struct rb_error *err);

#endif
