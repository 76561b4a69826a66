/* The engines' stats: the text of each mirrored cgroup file, as the kernel
 * writes it, from the container's figures in the guest (cgroup-mirror.h). */
#include "cgroup-mirror.h"
#include "cleanup.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static uint64_t raw(const Cocoon__StatsReply *st, const char *key, bool *found)
{
	size_t n = st->n_memory_stat < 64 ? st->n_memory_stat : 64;
	for (size_t i = 0; i < n; i++)
		if (st->memory_stat[i] && st->memory_stat[i]->key &&
		    strcmp(st->memory_stat[i]->key, key) == 0) {
			if (found)
				*found = true;
			return st->memory_stat[i]->value;
		}
	return 0;
}

static uint64_t memory_limit(const Cocoon__StatsReply *st)
{
	return st->memory_max ? st->memory_max : st->guest_memory_total;
}

static uint64_t kernel_memory(const Cocoon__StatsReply *st)
{
	bool found = false;
	uint64_t k = raw(st, "kernel", &found);
	if (found)
		return k;
	return raw(st, "kernel_stack", NULL) + raw(st, "pagetables", NULL) +
	       raw(st, "percpu", NULL) + raw(st, "slab", NULL);
}

/* memory.stat in cgroup v1's names, from the guest's v2 ones. */
static int render_v1_memory_stat(const Cocoon__StatsReply *st, char *buf, size_t size)
{
	static const char *const map[][2] = {
		{"cache", "file"},
		{"rss", "anon"},
		{"rss_huge", "anon_thp"},
		{"shmem", "shmem"},
		{"mapped_file", "file_mapped"},
		{"dirty", "file_dirty"},
		{"writeback", "file_writeback"},
		{"pgfault", "pgfault"},
		{"pgmajfault", "pgmajfault"},
		{"inactive_anon", "inactive_anon"},
		{"active_anon", "active_anon"},
		{"inactive_file", "inactive_file"},
		{"active_file", "active_file"},
		{"unevictable", "unevictable"},
	};
	size_t n = 0;
	for (int total = 0; total < 2; total++) {
		for (size_t i = 0; i < ARRAY_SIZE(map) && n < size; i++)
			n += (size_t)snprintf(buf + n, size - n, "%s%s %" PRIu64 "\n",
					      total ? "total_" : "", map[i][0],
					      raw(st, map[i][1], NULL));
		if (!total && n < size)
			n += (size_t)snprintf(buf + n, size - n,
					      "hierarchical_memory_limit %" PRIu64 "\n",
					      memory_limit(st));
	}
	return n < size ? (int)n : -ENOSPC;
}

/* memory.stat as the guest's kernel wrote it, for the keys a v2 reader
 * knows: names are ours, only the numbers are the guest's. */
static int render_v2_memory_stat(const Cocoon__StatsReply *st, char *buf, size_t size)
{
	static const char *const keys[] = {
		"anon",
		"file",
		"kernel",
		"kernel_stack",
		"pagetables",
		"percpu",
		"sock",
		"shmem",
		"file_mapped",
		"file_dirty",
		"file_writeback",
		"anon_thp",
		"inactive_anon",
		"active_anon",
		"inactive_file",
		"active_file",
		"unevictable",
		"slab_reclaimable",
		"slab_unreclaimable",
		"slab",
		"pgfault",
		"pgmajfault",
	};
	size_t n = 0;
	for (size_t i = 0; i < ARRAY_SIZE(keys) && n < size; i++) {
		bool found = false;
		uint64_t v = raw(st, keys[i], &found);
		if (found)
			n += (size_t)snprintf(buf + n, size - n, "%s %" PRIu64 "\n", keys[i], v);
	}
	return n < size ? (int)n : -ENOSPC;
}

static int render_v1_memory(const char *name, const Cocoon__StatsReply *st, char *buf, size_t size)
{
	/* memory.{,memsw.,kmem.,kmem.tcp.}<what>: containerd reads all four
	 * groups and drops the whole memory block if one file is missing. The
	 * guest has no swap: memsw is memory. */
	static const char *const groups[] = {"memory.memsw.", "memory.kmem.tcp.", "memory.kmem.",
					     "memory."};
	for (size_t g = 0; g < ARRAY_SIZE(groups); g++) {
		size_t len = strlen(groups[g]);
		if (strncmp(name, groups[g], len) != 0)
			continue;
		const char *what = name + len;
		uint64_t usage = st->memory_current, peak = st->memory_peak,
			 fail = st->memory_oom_kill;
		if (g == 1) {
			usage = peak = raw(st, "sock", NULL);
			fail = 0;
		} else if (g == 2) {
			usage = peak = kernel_memory(st);
			fail = 0;
		}
		if (peak < usage)
			peak = usage;
		uint64_t v;
		if (strcmp(what, "usage_in_bytes") == 0)
			v = usage;
		else if (strcmp(what, "max_usage_in_bytes") == 0)
			v = peak;
		else if (strcmp(what, "limit_in_bytes") == 0)
			v = memory_limit(st);
		else if (strcmp(what, "failcnt") == 0)
			v = fail;
		else
			return -ENOENT;
		return snprintf(buf, size, "%" PRIu64 "\n", v);
	}
	return -ENOENT;
}

static int render_v1(const char *name, const Cocoon__StatsReply *st, char *buf, size_t size)
{
	uint64_t user_ns = st->cpu_user_usec * 1000, sys_ns = st->cpu_system_usec * 1000;
	if (strcmp(name, "memory.stat") == 0)
		return render_v1_memory_stat(st, buf, size);
	if (strcmp(name, "memory.oom_control") == 0)
		return snprintf(buf, size,
				"oom_kill_disable 0\nunder_oom 0\noom_kill %" PRIu64 "\n",
				st->memory_oom_kill);
	if (strncmp(name, "memory.", 7) == 0)
		return render_v1_memory(name, st, buf, size);
	if (strcmp(name, "cpu.stat") == 0)
		return snprintf(buf, size,
				"nr_periods %" PRIu64 "\nnr_throttled %" PRIu64
				"\nthrottled_time %" PRIu64 "\n",
				st->cpu_nr_periods, st->cpu_nr_throttled,
				st->cpu_throttled_usec * 1000);
	if (strcmp(name, "cpuacct.usage") == 0)
		return snprintf(buf, size, "%" PRIu64 "\n", st->cpu_usage_usec * 1000);
	if (strcmp(name, "cpuacct.usage_user") == 0)
		return snprintf(buf, size, "%" PRIu64 "\n", user_ns);
	if (strcmp(name, "cpuacct.usage_sys") == 0)
		return snprintf(buf, size, "%" PRIu64 "\n", sys_ns);
	/* The guest keeps no per-CPU figures per cgroup: one entry, the total. */
	if (strcmp(name, "cpuacct.usage_percpu") == 0)
		return snprintf(buf, size, "%" PRIu64 " \n", st->cpu_usage_usec * 1000);
	/* In USER_HZ (100) ticks, as the kernel writes it. */
	if (strcmp(name, "cpuacct.stat") == 0)
		return snprintf(buf, size, "user %" PRIu64 "\nsystem %" PRIu64 "\n",
				st->cpu_user_usec / 10000, st->cpu_system_usec / 10000);
	if (strcmp(name, "pids.current") == 0)
		return snprintf(buf, size, "%" PRIu64 "\n", st->pids_current);
	if (strcmp(name, "pids.max") == 0)
		return st->pids_max ? snprintf(buf, size, "%" PRIu64 "\n", st->pids_max)
				    : snprintf(buf, size, "max\n");
	return -ENOENT;
}

static int render_v2(const char *name, const Cocoon__StatsReply *st, char *buf, size_t size)
{
	if (strcmp(name, "cgroup.controllers") == 0)
		return snprintf(buf, size, "cpu memory pids\n");
	/* containerd's v2 OOM watch stops at "populated 0". */
	if (strcmp(name, "cgroup.events") == 0)
		return snprintf(buf, size, "populated 1\nfrozen 0\n");
	if (strcmp(name, "memory.current") == 0)
		return snprintf(buf, size, "%" PRIu64 "\n", st->memory_current);
	if (strcmp(name, "memory.peak") == 0)
		return snprintf(buf, size, "%" PRIu64 "\n", st->memory_peak);
	if (strcmp(name, "memory.max") == 0)
		return snprintf(buf, size, "%" PRIu64 "\n", memory_limit(st));
	if (strcmp(name, "memory.events") == 0)
		return snprintf(buf, size,
				"low 0\nhigh 0\nmax %" PRIu64 "\noom %" PRIu64 "\noom_kill %" PRIu64
				"\n",
				st->memory_oom_kill, st->memory_oom_kill, st->memory_oom_kill);
	if (strcmp(name, "memory.stat") == 0)
		return render_v2_memory_stat(st, buf, size);
	if (strcmp(name, "memory.swap.current") == 0 || strcmp(name, "memory.swap.max") == 0)
		return snprintf(buf, size, "0\n");
	if (strcmp(name, "cpu.stat") == 0)
		return snprintf(buf, size,
				"usage_usec %" PRIu64 "\nuser_usec %" PRIu64
				"\nsystem_usec %" PRIu64 "\nnr_periods %" PRIu64
				"\nnr_throttled %" PRIu64 "\nthrottled_usec %" PRIu64 "\n",
				st->cpu_usage_usec, st->cpu_user_usec, st->cpu_system_usec,
				st->cpu_nr_periods, st->cpu_nr_throttled, st->cpu_throttled_usec);
	if (strcmp(name, "io.stat") == 0)
		return 0;
	if (strcmp(name, "pids.current") == 0 || strcmp(name, "pids.max") == 0)
		return render_v1(name, st, buf, size);
	return -ENOENT;
}

int cgmirror_render(const char *name, bool v2, const Cocoon__StatsReply *st, char *buf, size_t size)
{
	int n = v2 ? render_v2(name, st, buf, size) : render_v1(name, st, buf, size);
	if (n >= 0 && (size_t)n >= size)
		return -ENOSPC;
	return n;
}
