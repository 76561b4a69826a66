#include "contract.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static bool id_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.';
}

enum cocoon_id_problem cocoon_id_check(const char *id, char *bad)
{
	size_t n = id ? strnlen(id, COCOON_ID_MAX + 1) : 0;

	if (n == 0)
		return COCOON_ID_EMPTY;
	if (n > COCOON_ID_MAX)
		return COCOON_ID_TOO_LONG;
	if (!id_char(id[0]) || id[0] == '_' || id[0] == '-' || id[0] == '.')
		return COCOON_ID_BAD_START;
	for (size_t i = 0; i < n; i++)
		if (!id_char(id[i])) {
			if (bad)
				*bad = id[i];
			return COCOON_ID_BAD_CHAR;
		}
	return strstr(id, "..") ? COCOON_ID_DOTDOT : COCOON_ID_OK;
}

void cocoon_images_tag(char out[static COCOON_TAG_IMAGES_SIZE], int i)
{
	snprintf(out, COCOON_TAG_IMAGES_SIZE, COCOON_TAG_IMAGES "%d", i);
}

int cocoon_restore_file(char *out, size_t size, const char *id, const char *name)
{
	int n = snprintf(out, size, COCOON_RESTORE_PREFIX "%s.%s", id, name);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}
