#include "error.h"
/* The definitions below are in parentheses: error.h's analyzer macros must
 * not expand them. */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int error_vset(struct error **err, int errnum, bool with_strerror, const char *fmt,
		      va_list ap)
{
	int code = errnum > 0 ? errnum : (errnum < 0 ? -errnum : EIO);
	char *msg = NULL;

	if (!err)
		return -code;
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	if (msg && with_strerror && errnum != 0) {
		char *full = NULL;
		if (asprintf(&full, "%s: %s", msg, strerror(code)) >= 0) {
			free(msg);
			msg = full;
		}
	}
	error_free(err);
	*err = calloc(1, sizeof(**err));
	if (*err) {
		(*err)->code = code;
		(*err)->msg = msg ? msg : strdup("out of memory");
	} else {
		free(msg);
	}
	return -code;
}

int(error_set)(struct error **err, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = error_vset(err, errnum, true, fmt, ap);
	va_end(ap);
	return r;
}

int(error_setx)(struct error **err, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = error_vset(err, errnum, false, fmt, ap);
	va_end(ap);
	return r;
}

int(error_wrap)(struct error **err, const char *fmt, ...)
{
	char *prefix = NULL, *full = NULL;
	va_list ap;

	if (!err || !*err)
		return -EIO;
	va_start(ap, fmt);
	if (vasprintf(&prefix, fmt, ap) < 0)
		prefix = NULL;
	va_end(ap);
	if (prefix && asprintf(&full, "%s: %s", prefix, (*err)->msg) >= 0) {
		free((*err)->msg);
		(*err)->msg = full;
	}
	free(prefix);
	return -(*err)->code;
}

void error_free(struct error **err)
{
	if (!err || !*err)
		return;
	free((*err)->msg);
	free(*err);
	*err = NULL;
}
