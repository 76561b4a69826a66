/* The container's side of a checkpoint's safety: what the dump will need,
 * OOM protection while CRIU runs, and the signs of a stalled CRIU run. */
#include "guard.h"
#include "cleanup.h"
#include "procfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>

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
		if (sscanf(line, "RssAnon: %ld kB", &v) == 1 ||
		    sscanf(line, "RssShmem: %ld kB", &v) == 1 ||
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

/* The proc connector (Documentation/driver-api/connector.rst,
 * include/uapi/linux/cn_proc.h): the kernel multicasts an event for every
 * exit in the guest, sent from do_exit() before the task becomes a zombie,
 * so it is queued before CRIU, or the task's parent, can see the death. */
int guard_exit_events_op(int fd, enum proc_cn_mcast_op op)
{
	union {
		struct nlmsghdr nl;
		char buf[NLMSG_SPACE(sizeof(struct cn_msg) + sizeof(enum proc_cn_mcast_op))];
	} m;
	memset(&m, 0, sizeof(m));
	m.nl.nlmsg_len = NLMSG_LENGTH(sizeof(struct cn_msg) + sizeof(op));
	m.nl.nlmsg_type = NLMSG_DONE;
	struct cn_msg *cn = NLMSG_DATA(&m.nl);
	cn->id.idx = CN_IDX_PROC;
	cn->id.val = CN_VAL_PROC;
	cn->len = sizeof(op);
	memcpy(cn->data, &op, sizeof(op));
	return send(fd, &m, m.nl.nlmsg_len, 0) == (ssize_t)m.nl.nlmsg_len ? 0 : -errno;
}

int guard_exit_events_open(void)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC};
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_CONNECTOR);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    guard_exit_events_op(fd, PROC_CN_MCAST_LISTEN) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* pid's entry in the tree, or -1 (also for the root, CRIU, which has none). */
static ssize_t tree_index(const struct guard *g, pid_t pid)
{
	for (size_t i = 0; i < g->n_tree; i++)
		if (g->tree[i] == pid)
			return (ssize_t)i;
	return -1;
}

static bool in_tree(const struct guard *g, pid_t pid)
{
	return g->tree_root > 0 && (pid == g->tree_root || tree_index(g, pid) >= 0);
}

static void tree_forked(struct guard *g, pid_t parent, pid_t child, pid_t child_tgid)
{
	/* Threads (child != its tgid) belong to a process already known. */
	if (child != child_tgid || !in_tree(g, parent))
		return;
	/* A pid of the tree used again (its first task ended): the new task. */
	ssize_t i = tree_index(g, child);
	if (i < 0 && g->n_tree < sizeof(g->tree) / sizeof(g->tree[0]))
		i = (ssize_t)g->n_tree++;
	if (i < 0)
		return;
	g->tree[i] = child;
	g->tree_end[i] = -1;
}

int guard_exit_events_read(int fd, void (*on_event)(void *userdata, const struct proc_event *ev),
			   void *userdata)
{
	union {
		struct nlmsghdr nl;
		char buf[8192];
	} m;
	ssize_t n;
	while (fd >= 0 && (n = recv(fd, &m, sizeof(m), 0)) != 0) {
		if (n < 0) {
			if (errno == EINTR || errno == ENOBUFS)
				continue; /* ENOBUFS: events lost; /proc still tells zombies */
			return errno == EAGAIN ? 0 : -errno;
		}
		for (struct nlmsghdr *nl = &m.nl; NLMSG_OK(nl, (size_t)n); nl = NLMSG_NEXT(nl, n)) {
			struct cn_msg *cn = NLMSG_DATA(nl);
			if (nl->nlmsg_len < NLMSG_LENGTH(sizeof(*cn) + sizeof(struct proc_event)) ||
			    cn->id.idx != CN_IDX_PROC || cn->id.val != CN_VAL_PROC)
				continue;
			/* cn->data is not aligned for the event's 64-bit fields. */
			struct proc_event ev;
			memcpy(&ev, cn->data, sizeof(ev));
			on_event(userdata, &ev);
		}
	}
	return 0;
}

/* Records how a watched task ended, and the forks that grow the tree. */
static void exit_event(void *userdata, const struct proc_event *ev)
{
	struct guard *g = userdata;
	if (ev->what == PROC_EVENT_FORK)
		tree_forked(g, ev->event_data.fork.parent_tgid, ev->event_data.fork.child_pid,
			    ev->event_data.fork.child_tgid);
	if (ev->what != PROC_EVENT_EXIT ||
	    ev->event_data.exit.process_pid != ev->event_data.exit.process_tgid)
		return; /* the thread-group leader's exit is the process's */
	pid_t pid = ev->event_data.exit.process_pid;
	int status = (int)ev->event_data.exit.exit_code;
	for (size_t i = 0; i < g->n; i++)
		if (g->pids[i] == pid && g->end_status[i] < 0)
			g->end_status[i] = status;
	ssize_t t = g->tree_root > 0 ? tree_index(g, pid) : -1;
	if (t >= 0)
		g->tree_end[t] = status;
	if (t >= 0 && WIFSIGNALED(status)) {
		bool sigkill = WTERMSIG(status) == SIGKILL;
		if (sigkill && !g->tree_sigkilled.pid) {
			g->tree_sigkilled.pid = pid;
			g->tree_sigkilled.status = status;
		} else if (!sigkill && !g->tree_crashed.pid) {
			g->tree_crashed.pid = pid;
			g->tree_crashed.status = status;
		}
	}
}

/* Records how the watched tasks ended, from the events queued so far. */
static void exits_drain(struct guard *g)
{
	(void)guard_exit_events_read(g->exits_fd, exit_event, g);
}

/* A zombie's wait status: field 52 (exit_code) of /proc/PID/stat; -1 if it
 * is no zombie (or gone). */
int guard_zombie_status(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (n <= 0)
		return -1;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || p[2] != 'Z')
		return -1;
	/* Field 3 is the state; exit_code is field 52, the last. */
	char *last = strrchr(p, ' ');
	return last ? atoi(last + 1) : -1;
}

void guard_protect(struct guard *g, const char *cgroup)
{
	g->exits_fd = guard_exit_events_open();
	snprintf(g->cgroup, sizeof(g->cgroup), "%s", cgroup);
	g->n = read_procs(cgroup, g->pids, GUARD_MAX_TASKS);
	g->init_old_adj = g->n > 0 ? adj_read(g->pids[0]) : 0;
	for (size_t i = 0; i < g->n; i++) {
		g->end_status[i] = -1;
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
	guard_tree_close(g);
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
	while (n_saved < GUARD_MAX_TASKS &&
	       fscanf(f, "%d %d", &saved_pid[n_saved], &saved_adj[n_saved]) == 2)
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
	return proc_status_long(pid, "TracerPid", 0) > 0;
}

static void death_of(struct guard *g, size_t i, struct guard_death *d)
{
	if (g->end_status[i] < 0)
		g->end_status[i] = guard_zombie_status(g->pids[i]);
	d->pid = g->pids[i];
	d->status = g->end_status[i];
}

bool guard_dead_task(struct guard *g, struct guard_death *d)
{
	exits_drain(g);
	/* A task killed while CRIU holds it stays a zombie traced by CRIU
	 * until CRIU reaps it: its /proc entry still names CRIU. */
	for (size_t i = 0; i < g->n; i++)
		if (pidfd_ended(g->pidfds[i]) && traced(g->pids[i])) {
			death_of(g, i, d);
			return true;
		}
	return false;
}

bool guard_killed_task(struct guard *g, struct guard_death *d)
{
	if (guard_dead_task(g, d))
		return true;
	for (size_t i = 0; i < g->n; i++) {
		if (!pidfd_ended(g->pidfds[i]))
			continue;
		death_of(g, i, d);
		if (d->status >= 0 && WIFSIGNALED(d->status))
			return true;
	}
	return false;
}

void guard_tree_open(struct guard *g)
{
	g->n = 0;
	g->tree_root = 0;
	g->n_tree = 0;
	g->tree_crashed.pid = g->tree_sigkilled.pid = 0;
	g->exits_fd = guard_exit_events_open();
}

void guard_tree_root(struct guard *g, pid_t criu)
{
	g->tree_root = criu;
}

bool guard_tree_killed(struct guard *g, bool sigkill_counts, struct guard_death *d)
{
	exits_drain(g);
	if (g->tree_crashed.pid) {
		d->pid = g->tree_crashed.pid;
		d->status = g->tree_crashed.status;
		return true;
	}
	if (sigkill_counts && g->tree_sigkilled.pid) {
		d->pid = g->tree_sigkilled.pid;
		d->status = g->tree_sigkilled.status;
		return true;
	}
	return false;
}

bool guard_tree_lost(struct guard *g, pid_t task, struct guard_death *d)
{
	ssize_t i = task > 0 ? tree_index(g, task) : -1;
	if (i < 0 || g->tree_end[i] < 0 || !WIFSIGNALED(g->tree_end[i]))
		return false;
	d->pid = task;
	d->status = g->tree_end[i];
	return true;
}

void guard_tree_close(struct guard *g)
{
	if (g->exits_fd >= 0) {
		(void)guard_exit_events_op(g->exits_fd, PROC_CN_MCAST_IGNORE); /* closed next */
		close(g->exits_fd);
	}
	g->exits_fd = -1;
}

const char *guard_describe_end(int status, char *buf, size_t size)
{
	if (status < 0)
		snprintf(buf, size, "ended");
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "killed by SIG%s",
			 sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?");
	else
		snprintf(buf, size, "exit status %d", WEXITSTATUS(status));
	return buf;
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
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu",
			 &ut, &st, &cut, &cst) != 4)
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
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode))
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
