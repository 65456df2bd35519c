/* Filling struct rb_error; messages are truncated, never overflowed. */
#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void rb_error_set(struct rb_error *err, enum rb_err_class cls,
		  const char *fmt, ...)
{
	va_list ap;

	err->cls = cls;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

void rb_error_errno(struct rb_error *err, enum rb_err_class cls,
		    const char *fmt, ...)
{
	int e = errno;
	size_t n;
	va_list ap;

	err->cls = cls;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	n = strlen(err->msg);
	snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(e));
}

void rb_error_clear(struct rb_error *err)
{
	err->cls = RB_OK;
	err->msg[0] = '\0';
}
