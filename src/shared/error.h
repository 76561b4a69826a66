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

/* The message of ERR for a reply or a log line; "out of memory" when there
 * is none (error_set could not allocate it). Owned by ERR. */
static inline const char *error_msg(const struct error *err)
{
	return err && err->msg ? err->msg : "out of memory";
}

#ifdef __clang_analyzer__
/* The static analyzer (make analyze) reads one file at a time, so it cannot
 * see that these always return a negative value; without this it follows
 * "error, yet 0 returned" paths that do not exist. Not in real builds. */
#define error_analyzer_negative(call)                                                              \
	({                                                                                         \
		int error_analyzer_r = (call);                                                     \
		__builtin_assume(error_analyzer_r < 0);                                            \
		error_analyzer_r;                                                                  \
	})
#define error_set(...) error_analyzer_negative(error_set(__VA_ARGS__))
#define error_setx(...) error_analyzer_negative(error_setx(__VA_ARGS__))
#define error_wrap(...) error_analyzer_negative(error_wrap(__VA_ARGS__))
#endif

static inline void error_freep(struct error **err)
{
	error_free(err);
}

#define _cleanup_error_ __attribute__((cleanup(error_freep)))
