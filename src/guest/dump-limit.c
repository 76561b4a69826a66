/* The memory a dump's CRIU may take (dump-limit.h). */
#include "dump-limit.h"
#include "cgroups.h"
#include "channel.h"
#include "cleanup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DUMP_LIMIT_ROOT "/sys/fs/cgroup"
#define DUMP_LIMIT_PREFIX ".dump-"

/* The cgroups of earlier dumps whose leftovers were not reaped in time. */
static void sweep(void)
{
	_cleanup_closedir_ DIR *d = opendir(DUMP_LIMIT_ROOT);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (strncmp(de->d_name, DUMP_LIMIT_PREFIX, strlen(DUMP_LIMIT_PREFIX)) == 0)
			(void)unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR); /* busy: later */
}

int dump_limit_open(struct dump_limit *l, const char *ckid, long avail_kib)
{
	l->path[0] = 0;
	l->max_kib = 0;
	if (avail_kib < 0)
		return -ENODATA;
	sweep();
	cgroups_enable_accounting(); /* the memory controller, if not yet */
	char path[sizeof(l->path)];
	int n = snprintf(path, sizeof(path), DUMP_LIMIT_ROOT "/" DUMP_LIMIT_PREFIX "%s", ckid);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	long max = avail_kib - DUMP_LIMIT_RESERVE_KIB;
	if (max < DUMP_LIMIT_MIN_KIB)
		max = DUMP_LIMIT_MIN_KIB;
	char value[32];
	snprintf(value, sizeof(value), "%ld", max * 1024);
	int r = cgroup_write(path, "memory.max", value);
	if (r < 0) {
		rmdir(path);
		return r;
	}
	snprintf(l->path, sizeof(l->path), "%s", path);
	l->max_kib = max;
	return 0;
}

uint64_t dump_limit_oom_kills(const struct dump_limit *l)
{
	return l->path[0] ? cgroups_oom_kills(l->path) : 0;
}

void dump_limit_close(struct dump_limit *l)
{
	if (!l->path[0])
		return;
	/* cgroup.kill (Linux 5.14) SIGKILLs every task in it; the agent, as
	 * PID 1, reaps the ones CRIU left behind. */
	int r = cgroup_write(l->path, "cgroup.kill", "1");
	if (r < 0)
		agent_log(NULL, "%s/cgroup.kill: %s", l->path, strerror(-r));
	(void)rmdir(l->path); /* busy until they are reaped: swept next time */
	l->path[0] = 0;
}
