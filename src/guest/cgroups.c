/* The container's cgroup (v2) in the guest: the limits of linux.resources.
 * The guest has nothing else to share its CPUs and memory with, but the
 * limits still hold inside it, as they would under runc: a fork bomb stops
 * at pids.max, and a memory hog is OOM-killed in its cgroup while the agent,
 * outside it, carries on. A pod's limits hold the same way, on the pod's
 * cgroup above its containers' (cgroups_pod_make). */
#include "agent.h"
#include "cgroups.h"
#include "cleanup.h"
#include "contract.h"
#include "error.h"
#include "fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cgroup_write(const char *cgroup, const char *name, const char *value)
{
	char path[256];
	if (path_fmt(path, sizeof(path), "%s/%s", cgroup, name) < 0)
		return -ENAMETOOLONG; /* name: a unified file's, from the host */
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	size_t n = strlen(value);
	if (fd < 0 || write(fd, value, n) != (ssize_t)n)
		return -errno;
	return 0;
}

/* Turned on one by one, and only when a limit needs it: a guest kernel
 * without one controller still runs containers that do not ask for it. */
#define CONTROLLER_NAME_MAX 15
static int enable_controller(const char *name)
{
	static char done[64];
	char word[CONTROLLER_NAME_MAX + 3], value[CONTROLLER_NAME_MAX + 2];
	if (strlen(name) > CONTROLLER_NAME_MAX)
		return -EINVAL;
	snprintf(word, sizeof(word), " %s ", name);
	if (strstr(done, word))
		return 0;
	snprintf(value, sizeof(value), "+%s", name);
	int r = cgroup_write(CGROUPS_ROOT, "cgroup.subtree_control", value);
	if (r == 0 && strlen(done) + strlen(word) < sizeof(done))
		strcat(done, word);
	return r;
}

/* The controller for CGROUP's own files: on in the root's subtree_control
 * and, for a cgroup beneath another (a pod's container, under the pod's
 * cgroup), in its parent's too. */
static int enable_controller_for(const char *cgroup, const char *name)
{
	int r = enable_controller(name);
	if (r < 0)
		return r;
	char parent[CGROUPS_PATH_MAX], value[CONTROLLER_NAME_MAX + 2];
	if (path_fmt(parent, sizeof(parent), "%s", cgroup) < 0)
		return -ENAMETOOLONG;
	char *slash = strrchr(parent, '/');
	if (!slash || strncmp(parent, CGROUPS_ROOT "/", sizeof(CGROUPS_ROOT)) != 0 ||
	    (size_t)(slash - parent) <= strlen(CGROUPS_ROOT))
		return 0;
	*slash = 0;
	snprintf(value, sizeof(value), "+%s", name);
	return cgroup_write(parent, "cgroup.subtree_control", value);
}

int cgroups_apply_unified(const char *cgroup, Cocoon__CgroupFile *const *files, size_t n,
			  struct error **err)
{
	for (size_t i = 0; i < n; i++) {
		const char *name = files[i]->name;
		char controller[CONTROLLER_NAME_MAX + 1];
		size_t len = strcspn(name, ".");
		/* The host checked the name; a path is refused here too. */
		if (strchr(name, '/') || len == 0 || len >= sizeof(controller) || !name[len])
			return error_setx(err, EINVAL,
					  "linux.resources.unified: '%.64s' is not a file name",
					  name);
		memcpy(controller, name, len);
		controller[len] = 0;
		int e = enable_controller_for(cgroup, controller);
		if (e < 0)
			return error_setx(err, -e,
					  "linux.resources.unified %s: the guest kernel has no %s "
					  "cgroup controller to enable (%s)",
					  name, controller, strerror(-e));
		if ((e = cgroup_write(cgroup, name, files[i]->value)) < 0) {
			if (e == -ENOENT)
				return error_setx(err, ENOENT,
						  "linux.resources.unified %s: the container's "
						  "cgroup has no such file",
						  name);
			return error_set(err, -e,
					 "linux.resources.unified %s = '%.64s': the kernel refused "
					 "it",
					 name, files[i]->value);
		}
	}
	return 0;
}

void cgroups_enable_accounting(void)
{
	static const char *const names[] = {"cpu", "memory", "pids"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		enable_controller(names[i]);
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

int cgroups_apply(const char *cgroup, const Cocoon__Resources *r, unsigned mask, struct error **err)
{
	int e;
	if (!r)
		return 0;
	if (!mask)
		mask = (r->memory_limit > 0 ? CGROUPS_MEMORY : 0) |
		       (r->pids_limit > 0 ? CGROUPS_PIDS : 0) |
		       (r->cpu_quota > 0 ? CGROUPS_CPU_MAX : 0) |
		       (r->cpu_shares > 0 ? CGROUPS_CPU_WEIGHT : 0);
	struct {
		unsigned bit;
		const char *controller, *file;
		char value[64];
	} w[4] = {{CGROUPS_MEMORY, "memory", "memory.max", "max"},
		  {CGROUPS_PIDS, "pids", "pids.max", "max"},
		  {CGROUPS_CPU_MAX, "cpu", "cpu.max", ""},
		  {CGROUPS_CPU_WEIGHT, "cpu", "cpu.weight", "100"}};
	if (r->memory_limit > 0)
		snprintf(w[0].value, sizeof(w[0].value), "%" PRIu64, r->memory_limit);
	if (r->pids_limit > 0)
		snprintf(w[1].value, sizeof(w[1].value), "%" PRId64, r->pids_limit);
	uint64_t period = r->cpu_period ? r->cpu_period : 100000;
	if (r->cpu_quota > 0)
		snprintf(w[2].value, sizeof(w[2].value), "%" PRId64 " %" PRIu64, r->cpu_quota,
			 period);
	else
		snprintf(w[2].value, sizeof(w[2].value), "max %" PRIu64, period);
	if (r->cpu_shares > 0)
		snprintf(w[3].value, sizeof(w[3].value), "%" PRIu64,
			 shares_to_weight(r->cpu_shares));
	for (size_t i = 0; i < ARRAY_SIZE(w); i++) {
		if (!(mask & w[i].bit))
			continue;
		if ((e = enable_controller_for(cgroup, w[i].controller)) < 0)
			return error_set(err, -e, "the guest's %s cgroup controller",
					 w[i].controller);
		if ((e = cgroup_write(cgroup, w[i].file, w[i].value)) < 0)
			return error_set(err, -e, "%s = %s", w[i].file, w[i].value);
	}
	return 0;
}

int cgroups_pod_make(const char *pod, const Cocoon__Resources *r, struct error **err)
{
	static const char *const controllers[] = {"+cpu", "+memory", "+pids"};
	const char *bad = cocoon_pod_limits_check(r->memory_limit, r->pids_limit, r->cpu_quota,
						  r->cpu_period, r->cpu_shares);
	if (bad)
		return error_setx(err, EINVAL, "the pod's limits: %s", bad);
	if (mkdir(pod, 0755) < 0 && errno != EEXIST)
		return error_set(err, errno, "the pod's cgroup %s", pod);
	/* The pod's containers get their own limits and figures beneath it: a
	 * controller the kernel lacks is left out, as for the root
	 * (cgroups_enable_accounting), until a limit needs it. */
	cgroups_enable_accounting();
	for (size_t i = 0; i < ARRAY_SIZE(controllers); i++)
		(void)cgroup_write(pod, "cgroup.subtree_control", controllers[i]);
	int e = cgroups_apply(pod, r, 0, err);
	if (e < 0)
		(void)error_wrap(err, "the pod's cgroup %s", pod);
	return e;
}

int cgroups_container_make(const char *id, const char *joins, const Cocoon__Resources *pod_limits,
			   const char *joined_pod, char cgroup[CGROUPS_PATH_MAX],
			   char pod[CGROUPS_POD_PATH_MAX], struct error **err)
{
	pod[0] = cgroup[0] = 0;
	if (pod_limits && joins)
		return error_setx(
			err, EINVAL,
			"pod limits on a member of pod %s: only its sandbox's create carries them",
			joins);
	/* The IDs are at most COCOON_ID_MAX bytes: the paths fit (the asserts
	 * below); a joined pod's path is a container's pod_cgroup. */
	if (pod_limits) {
		snprintf(pod, CGROUPS_POD_PATH_MAX, CGROUPS_ROOT "/" COCOON_POD_CGROUP_PREFIX "%s",
			 id);
		int r = cgroups_pod_make(pod, pod_limits, err);
		if (r < 0)
			return r;
	} else if (joins && joined_pod) {
		snprintf(pod, CGROUPS_POD_PATH_MAX, "%s", joined_pod);
	}
	cgroups_enable_accounting();
	snprintf(cgroup, CGROUPS_PATH_MAX, "%s/%s", pod[0] ? pod : CGROUPS_ROOT, id);
	if (mkdir(cgroup, 0755) < 0 && errno != EEXIST) {
		int e = error_set(err, errno, "cgroup %s", cgroup);
		cgroup[0] = 0;
		return e;
	}
	return 0;
}

int cgroups_join(const char *cgroup, pid_t pid)
{
	char path[CGROUPS_PATH_MAX + 16], buf[32];
	if (path_fmt(path, sizeof(path), "%s/cgroup.procs", cgroup) < 0)
		return -ENAMETOOLONG;
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	int n = snprintf(buf, sizeof(buf), "%d", pid);
	if (fd < 0 || write(fd, buf, (size_t)n) != n)
		return -errno;
	return 0;
}

int cgroups_read_cpu_max(const char *cgroup, int64_t *quota, uint64_t *period)
{
	char path[CGROUPS_PATH_MAX + 16], buf[64] = "", q[24];
	unsigned long long p;
	if (path_fmt(path, sizeof(path), "%s/cpu.max", cgroup) < 0)
		return -ENAMETOOLONG;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (n <= 0)
		return fd < 0 ? -errno : -EIO;
	buf[n] = 0;
	if (sscanf(buf, "%23s %llu", q, &p) != 2)
		return -EIO;
	*quota = strcmp(q, "max") == 0 ? 0 : strtoll(q, NULL, 10);
	*period = p;
	return 0;
}

/* One number from a cgroup file ("max" and a missing file: 0). */
static uint64_t read_number(const char *cgroup, const char *name)
{
	char path[CGROUPS_PATH_MAX + 32], buf[64] = "";
	if (path_fmt(path, sizeof(path), "%s/%s", cgroup, name) < 0)
		return 0;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (n <= 0)
		return 0;
	buf[n] = 0;
	return strtoull(buf, NULL, 10);
}

/* "key value" lines: calls fn for each. */
static void read_keyed(const char *path, void (*fn)(void *, const char *, uint64_t), void *ud)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char key[64];
	unsigned long long v;
	while (f && fscanf(f, "%63s %llu", key, &v) == 2)
		fn(ud, key, v);
}

struct stats_ctx {
	Cocoon__StatsReply *r;
	Cocoon__StatEntry *entries;
	Cocoon__StatEntry **ptrs;
	char (*keys)[64];
	size_t max;
};

static void on_cpu_stat(void *ud, const char *k, uint64_t v)
{
	Cocoon__StatsReply *r = ud;
	if (strcmp(k, "usage_usec") == 0)
		r->cpu_usage_usec = v;
	else if (strcmp(k, "user_usec") == 0)
		r->cpu_user_usec = v;
	else if (strcmp(k, "system_usec") == 0)
		r->cpu_system_usec = v;
	else if (strcmp(k, "nr_periods") == 0)
		r->cpu_nr_periods = v;
	else if (strcmp(k, "nr_throttled") == 0)
		r->cpu_nr_throttled = v;
	else if (strcmp(k, "throttled_usec") == 0)
		r->cpu_throttled_usec = v;
}

static void on_memory_events(void *ud, const char *k, uint64_t v)
{
	if (strcmp(k, "oom_kill") == 0)
		((Cocoon__StatsReply *)ud)->memory_oom_kill = v;
}

static void on_memory_stat(void *ud, const char *k, uint64_t v)
{
	struct stats_ctx *x = ud;
	size_t i = x->r->n_memory_stat;
	if (i >= x->max)
		return;
	/* The kernel's names are short; one that is not is left out, not cut. */
	if (strlen(k) >= sizeof(x->keys[i]))
		return;
	cocoon__stat_entry__init(&x->entries[i]);
	snprintf(x->keys[i], sizeof(x->keys[i]), "%s", k);
	x->entries[i].key = x->keys[i];
	x->entries[i].value = v;
	x->ptrs[i] = &x->entries[i];
	x->r->n_memory_stat = i + 1;
}

static void on_meminfo(void *ud, const char *k, uint64_t v)
{
	if (strcmp(k, "MemTotal:") == 0)
		((Cocoon__StatsReply *)ud)->guest_memory_total = v << 10;
}

uint64_t cgroups_oom_kills(const char *cgroup)
{
	Cocoon__StatsReply r = COCOON__STATS_REPLY__INIT;
	char path[CGROUPS_PATH_MAX + 16];
	if (path_fmt(path, sizeof(path), "%s/memory.events", cgroup) == 0)
		read_keyed(path, on_memory_events, &r);
	return r.memory_oom_kill;
}

void cgroups_stats(const char *cgroup, Cocoon__StatsReply *r, struct cgroups_stat_buf *buf)
{
	char path[CGROUPS_PATH_MAX + 16];
	if (path_fmt(path, sizeof(path), "%s/cpu.stat", cgroup) == 0)
		read_keyed(path, on_cpu_stat, r);
	r->memory_current = read_number(cgroup, "memory.current");
	r->memory_max = read_number(cgroup, "memory.max");
	r->memory_peak = read_number(cgroup, "memory.peak");
	if (path_fmt(path, sizeof(path), "%s/memory.events", cgroup) == 0)
		read_keyed(path, on_memory_events, r);
	struct stats_ctx x = {.r = r,
			      .entries = buf->entries,
			      .ptrs = buf->ptrs,
			      .keys = buf->keys,
			      .max = ARRAY_SIZE(buf->entries)};
	r->memory_stat = buf->ptrs;
	r->n_memory_stat = 0;
	if (path_fmt(path, sizeof(path), "%s/memory.stat", cgroup) == 0)
		read_keyed(path, on_memory_stat, &x);
	r->pids_current = read_number(cgroup, "pids.current");
	r->pids_max = read_number(cgroup, "pids.max");
	read_keyed("/proc/meminfo", on_meminfo, r);
}
