/* Readers of /proc/PID files; see procfs.h. */
#include "procfs.h"
#include "cleanup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

long proc_status_long(pid_t pid, const char *key, long fallback)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, klen) != 0 || line[klen] != ':')
			continue;
		char *end;
		long v = strtol(line + klen + 1, &end, 10);
		return end == line + klen + 1 ? fallback : v;
	}
	return fallback;
}
