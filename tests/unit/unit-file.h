/* A file for a unit test: made in a new directory under /tmp. */
#pragma once

#include <stdio.h>
#include <stdlib.h>

/* Makes directory dir (a mkdtemp template, rewritten in place) and in it
 * the file name holding text; its path goes to path[size]. A failure fails
 * the test (cmocka's fail_msg, so include this after cmocka.h). */
static inline void unit_file(char *dir, const char *name, const char *text, char *path, size_t size)
{
	if (!mkdtemp(dir))
		fail_msg("mkdtemp %s", dir);
	if ((size_t)snprintf(path, size, "%s/%s", dir, name) >= size)
		fail_msg("%s/%s: too long", dir, name);
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		fail_msg("write %s", path);
}
