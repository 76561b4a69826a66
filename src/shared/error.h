/* The error convention (docs/errors.md):
 *
 * A function that can fail returns a negative errno value and, when it has
 * something to say, fills *err with a message naming the object and cause.
 * Callers add their context with error_wrap() as the error travels up, and
 * the top level prints it once. Callers that do not care pass err = NULL.
 */
#pragma once

#include <stdarg.h>

struct error {
	int code; /* positive errno value */
	char *msg;
};

/* Sets *err to the formatted message; when errnum is non-zero, ": strerror"
 * is appended. Returns -errnum (or -EIO when errnum is 0) for tail calls:
 *     return error_set(err, errno, "open %s", path);
 */
int error_set(struct error **err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like error_set() but without the strerror suffix. */
int error_setx(struct error **err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefixes the message of *err with "context: ". Returns -(*err)->code. */
int error_wrap(struct error **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void error_free(struct error **err);

static inline void error_freep(struct error **err)
{
	error_free(err);
}

#define _cleanup_error_ __attribute__((cleanup(error_freep)))
