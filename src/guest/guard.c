/* The container's side of a checkpoint's safety: what the dump will need,
 * OOM protection while CRIU runs, and the signs of a stalled CRIU run. */
#include "guard.h"
#include "cleanup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* -999, not -1000: at -1000 a task is never chosen, and once CRIU and the
 * copier (+1000) are gone an OOM with nothing else to kill panics the whole
 * guest ("System is deadlocked on memory"). At -999 the container is still
 * the last choice, after every other process of the guest. */
#define GUARD_PROTECTED_ADJ -999

long guard_mem_available_kib(void)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/meminfo", "re");
	char line[128];
	long v;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %ld kB", &v) == 1)
			return v;
	return -1;
}

static size_t read_procs(const char *cgroup, pid_t *pids, size_t max)
{
	char path[192];
	snprintf(path, sizeof(path), "%s/cgroup.procs", cgroup);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	size_t n = 0;
	int v;
	while (f && n < max && fscanf(f, "%d", &v) == 1)
		if (v > 0)
			pids[n++] = v;
	return n;
}

static long task_memory_kib(pid_t pid)
{
	char path[64], line[128];
	long total = 0, v;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %ld kB", &v) == 1 || sscanf(line, "RssShmem: %ld kB", &v) == 1 ||
		    sscanf(line, "VmSwap: %ld kB", &v) == 1)
			total += v;
	return total;
}

long guard_container_memory_kib(const char *cgroup)
{
	pid_t pids[1024];
	size_t n = read_procs(cgroup, pids, sizeof(pids) / sizeof(pids[0]));
	long total = 0;
	for (size_t i = 0; i < n; i++)
		total += task_memory_kib(pids[i]);
	return total;
}

static int adj_read(pid_t pid)
{
	char path[64];
	int v = 0;
	snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f || fscanf(f, "%d", &v) != 1)
		return 0;
	return v;
}

static void adj_write(pid_t pid, int v)
{
	char path[64], buf[16];
	snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", pid);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	int n = snprintf(buf, sizeof(buf), "%d", v);
	if (fd >= 0 && write(fd, buf, (size_t)n) != n)
		return; /* the task ended meanwhile: nothing to protect */
}

static bool pidfd_ended(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return fd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

void guard_protect(struct guard *g, const char *cgroup)
{
	snprintf(g->cgroup, sizeof(g->cgroup), "%s", cgroup);
	g->n = read_procs(cgroup, g->pids, GUARD_MAX_TASKS);
	g->init_old_adj = g->n > 0 ? adj_read(g->pids[0]) : 0;
	for (size_t i = 0; i < g->n; i++) {
		g->pidfds[i] = (int)syscall(SYS_pidfd_open, g->pids[i], 0);
		/* A zombie the container has not reaped yet is no news. */
		if (pidfd_ended(g->pidfds[i])) {
			close(g->pidfds[i]);
			g->pidfds[i] = -1;
		}
		g->old_adj[i] = adj_read(g->pids[i]);
		adj_write(g->pids[i], GUARD_PROTECTED_ADJ);
	}
}

void guard_release(struct guard *g)
{
	pid_t now[1024];
	size_t n = read_procs(g->cgroup, now, sizeof(now) / sizeof(now[0]));
	for (size_t i = 0; i < g->n; i++) {
		if (g->pidfds[i] < 0 || !pidfd_ended(g->pidfds[i]))
			adj_write(g->pids[i], g->old_adj[i]);
		if (g->pidfds[i] >= 0)
			close(g->pidfds[i]);
		g->pidfds[i] = -1;
	}
	/* Processes forked meanwhile inherited the protection. */
	for (size_t i = 0; i < n; i++) {
		bool known = false;
		for (size_t j = 0; j < g->n && !known; j++)
			known = g->pids[j] == now[i];
		if (!known && adj_read(now[i]) == GUARD_PROTECTED_ADJ)
			adj_write(now[i], g->init_old_adj);
	}
	g->n = 0;
}

/* The task's pid in its own (innermost) pid namespace, or -1. */
static pid_t ns_pid(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "NSpid:", 6) != 0)
			continue;
		char *last = strrchr(line, '\t');
		return last ? (pid_t)atoi(last + 1) : -1;
	}
	return -1;
}

int guard_save_adj(const struct guard *g, const char *path)
{
	_cleanup_fclose_ FILE *f = fopen(path, "we");
	if (!f)
		return -errno;
	for (size_t i = 0; i < g->n; i++)
		fprintf(f, "%d %d\n", ns_pid(g->pids[i]), g->old_adj[i]);
	return 0;
}

void guard_apply_saved_adj(const char *cgroup, const char *path)
{
	pid_t saved_pid[GUARD_MAX_TASKS], now[1024];
	int saved_adj[GUARD_MAX_TASKS];
	size_t n_saved = 0;
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f)
		return; /* images from before: nothing was protected */
	while (n_saved < GUARD_MAX_TASKS && fscanf(f, "%d %d", &saved_pid[n_saved], &saved_adj[n_saved]) == 2)
		if (saved_adj[n_saved] >= -1000 && saved_adj[n_saved] <= 1000)
			n_saved++;
	size_t n = read_procs(cgroup, now, sizeof(now) / sizeof(now[0]));
	for (size_t i = 0; i < n && n_saved > 0; i++) {
		pid_t inner = ns_pid(now[i]);
		int adj = saved_adj[0];
		for (size_t j = 0; j < n_saved; j++)
			if (saved_pid[j] == inner)
				adj = saved_adj[j];
		adj_write(now[i], adj);
	}
}

static bool traced(pid_t pid)
{
	char path[64], line[128];
	int tracer;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "TracerPid: %d", &tracer) == 1)
			return tracer > 0;
	return false;
}

pid_t guard_dead_task(const struct guard *g)
{
	/* A task killed while CRIU holds it stays a zombie traced by CRIU
	 * until CRIU reaps it: its /proc entry still names CRIU. */
	for (size_t i = 0; i < g->n; i++)
		if (pidfd_ended(g->pidfds[i]) && traced(g->pids[i]))
			return g->pids[i];
	return 0;
}

bool guard_stalled(struct guard *g, unsigned long long sig, long long now_ms, int stall_ms)
{
	if (g->last_change_ms == 0 || sig != g->last_sig) {
		g->last_sig = sig;
		g->last_change_ms = now_ms;
		return false;
	}
	return now_ms - g->last_change_ms >= stall_ms;
}

void guard_sample_memory(struct guard *g)
{
	long v = guard_mem_available_kib();
	if (v < 0)
		return;
	if (g->avail_start_kib == 0)
		g->avail_start_kib = g->avail_low_kib = v;
	if (v < g->avail_low_kib)
		g->avail_low_kib = v;
}

unsigned long long guard_cpu_ticks(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (n <= 0)
		return 0;
	buf[n] = 0;
	/* Fields after the command name, which may hold spaces and ')'. */
	char *p = strrchr(buf, ')');
	unsigned long long ut, st, cut, cst;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", &ut, &st, &cut,
			 &cst) != 4)
		return 0;
	return ut + st + cut + cst;
}

unsigned long long guard_dir_bytes(const char *dir)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct dirent *de;
	struct stat st;
	unsigned long long total = 0;
	while (d && (de = readdir(d)))
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
			total += (unsigned long long)st.st_size;
	return total;
}

unsigned long long guard_cgroup_usec(const char *cgroup)
{
	char path[192], key[64];
	unsigned long long v;
	snprintf(path, sizeof(path), "%s/cpu.stat", cgroup);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	while (f && fscanf(f, "%63s %llu", key, &v) == 2)
		if (strcmp(key, "usage_usec") == 0)
			return v;
	return 0;
}
