/* An argument vector built for exec (CRIU's, QEMU's, virtiofsd's), with
 * its bounds checked once (argv.c).
 *
 * Each argument is a copy the vector owns. A failed allocation, or more than
 * `max` arguments, marks the vector failed; later adds then do nothing, so
 * a caller adds everything and checks once, at argv_finish(). Nothing is
 * ever written past the end, whatever the input (a spec with many mounts,
 * many inherited fds). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* The default bound: far above what cocoon passes (QEMU: ~60, CRIU: ~25
 * plus two per bind mount, at most COCOON_MAX_BINDS of them). */
#define ARGV_MAX_DEFAULT 512

struct argv {
	char **args; /* NULL-terminated once argv_finish() returned 0 */
	size_t n;    /* arguments added */
	size_t cap;  /* slots allocated, the terminating NULL's included */
	size_t max;  /* most arguments allowed */
	int error;   /* 0, or the first failure: -ENOMEM or -E2BIG */
};

/* An empty vector of ARGV_MAX_DEFAULT arguments at most, for
 * `_cleanup_(argv_free) struct argv av = ARGV_EMPTY;`. */
#define ARGV_EMPTY                                                                                 \
	{                                                                                          \
		.max = ARGV_MAX_DEFAULT                                                            \
	}

/* An empty vector of at most MAX arguments (0: ARGV_MAX_DEFAULT). */
void argv_init(struct argv *a, size_t max);
/* Appends a copy of S (NULL counts as a failure: -EINVAL). */
void argv_add(struct argv *a, const char *s);
/* Appends the printf-formatted string. */
void argv_addf(struct argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends OPTION, then VALUE: "--external", "mnt[/dev]:cocoon-dev". */
void argv_add_pair(struct argv *a, const char *option, const char *value);
/* 0 with a->args NULL-terminated and ready for execv(), or the first
 * failure (-ENOMEM, -E2BIG past max, -EINVAL for a NULL argument). */
int argv_finish(struct argv *a);
/* Frees the arguments and the vector; the vector is empty again. */
void argv_free(struct argv *a);
