/* The container's cgroup (v2) in the guest: the limits of linux.resources.
 * The guest has nothing else to share its CPUs and memory with, but the
 * limits still hold inside it, as they would under runc: a fork bomb stops
 * at pids.max, and a memory hog is OOM-killed in its cgroup while the agent,
 * outside it, carries on. */
#include "agent.h"
#include "cgroups.h"
#include "cleanup.h"

#include <fcntl.h>
#include <inttypes.h>
#include <string.h>

static int write_file(const char *cgroup, const char *name, const char *value)
{
	char path[192];
	snprintf(path, sizeof(path), "%s/%s", cgroup, name);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	size_t n = strlen(value);
	if (fd < 0 || write(fd, value, n) != (ssize_t)n)
		return -errno;
	return 0;
}

/* Turned on one by one, and only when a limit needs it: a guest kernel
 * without one controller still runs containers that do not ask for it. */
static int enable_controller(const char *name)
{
	static char done[64];
	char word[16];
	snprintf(word, sizeof(word), " %s ", name);
	if (strstr(done, word))
		return 0;
	char value[16];
	snprintf(value, sizeof(value), "+%s", name);
	int r = write_file("/sys/fs/cgroup", "cgroup.subtree_control", value);
	if (r == 0 && strlen(done) + strlen(word) < sizeof(done))
		strcat(done, word);
	return r;
}

/* runc's conversion of cgroup v1 shares (2..262144) to v2 weight (1..10000). */
static uint64_t shares_to_weight(uint64_t shares)
{
	if (shares < 2)
		shares = 2;
	if (shares > 262144)
		shares = 262144;
	return 1 + ((shares - 2) * 9999) / 262142;
}

int cgroups_apply(const char *cgroup, const Cocoon__Resources *r, char *msg, size_t msg_size)
{
	char v[64];
	int e;
	if (!r)
		return 0;
	struct {
		const char *controller, *file;
		bool set;
		char value[64];
	} w[4] = {{"memory", "memory.max", r->memory_limit > 0, ""},
		  {"pids", "pids.max", r->pids_limit > 0, ""},
		  {"cpu", "cpu.max", r->cpu_quota > 0, ""},
		  {"cpu", "cpu.weight", r->cpu_shares > 0, ""}};
	snprintf(w[0].value, sizeof(w[0].value), "%" PRIu64, r->memory_limit);
	snprintf(w[1].value, sizeof(w[1].value), "%" PRId64, r->pids_limit);
	uint64_t period = r->cpu_period ? r->cpu_period : 100000;
	if (r->cpu_quota > 0)
		snprintf(v, sizeof(v), "%" PRId64 " %" PRIu64, r->cpu_quota, period);
	else
		snprintf(v, sizeof(v), "max %" PRIu64, period);
	snprintf(w[2].value, sizeof(w[2].value), "%s", v);
	snprintf(w[3].value, sizeof(w[3].value), "%" PRIu64, shares_to_weight(r->cpu_shares));
	for (size_t i = 0; i < ARRAY_SIZE(w); i++) {
		if (!w[i].set)
			continue;
		if ((e = enable_controller(w[i].controller)) < 0) {
			snprintf(msg, msg_size, "the guest's %s cgroup controller: %s", w[i].controller, strerror(-e));
			return e;
		}
		if ((e = write_file(cgroup, w[i].file, w[i].value)) < 0) {
			snprintf(msg, msg_size, "%s = %s: %s", w[i].file, w[i].value, strerror(-e));
			return e;
		}
	}
	return 0;
}
