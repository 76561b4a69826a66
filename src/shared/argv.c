/* Argument vectors with checked bounds (argv.h). */
#include "argv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void argv_init(struct argv *a, size_t max)
{
	*a = (struct argv){.max = max ? max : ARGV_MAX_DEFAULT};
}

/* Takes S (heap, or NULL when it could not be made) into the vector,
 * keeping the slot after it for the terminating NULL. */
static void take(struct argv *a, char *s)
{
	if (!a->error && !s)
		a->error = -ENOMEM;
	if (!a->error && a->n >= a->max)
		a->error = -E2BIG;
	if (!a->error && a->n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		if (cap > a->max + 1)
			cap = a->max + 1;
		char **grown = realloc(a->args, cap * sizeof(char *));
		if (grown) {
			a->args = grown;
			a->cap = cap;
		} else {
			a->error = -ENOMEM;
		}
	}
	if (a->error) {
		free(s);
		return;
	}
	a->args[a->n++] = s;
	a->args[a->n] = NULL;
}

void argv_add(struct argv *a, const char *s)
{
	if (!s && !a->error)
		a->error = -EINVAL;
	take(a, a->error ? NULL : strdup(s));
}

void argv_addf(struct argv *a, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;

	if (a->error)
		return;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	take(a, s);
}

void argv_add_pair(struct argv *a, const char *option, const char *value)
{
	argv_add(a, option);
	argv_add(a, value);
}

int argv_finish(struct argv *a)
{
	if (!a->error && !a->args) {
		/* An empty vector still needs its NULL. */
		a->args = calloc(1, sizeof(char *));
		a->cap = 1;
		if (!a->args)
			a->error = -ENOMEM;
	}
	return a->error;
}

void argv_free(struct argv *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->args[i]);
	free(a->args);
	argv_init(a, a->max);
}
