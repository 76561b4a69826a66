/* What keeps a checkpoint from harming the container it saves: the memory
 * it will need, OOM protection of the container's tasks while CRIU runs,
 * and the signs that a CRIU run is dead in the water (docs/checkpoint.md). */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <linux/cn_proc.h>

/* Tasks watched and protected; beyond that the progress watchdog still
 * catches a dump that stalls because one of them died. */
#define GUARD_MAX_TASKS 64

struct guard {
	size_t n;
	pid_t pids[GUARD_MAX_TASKS];
	int pidfds[GUARD_MAX_TASKS]; /* -1: none (already a zombie, or no pidfd) */
	int old_adj[GUARD_MAX_TASKS];
	/* How each task ended, as a wait status, once the kernel said so
	 * (proc connector exit event, or the zombie's /proc entry); -1 while
	 * it runs or when not known. */
	int end_status[GUARD_MAX_TASKS];
	int exits_fd; /* proc connector socket: every exit in the guest; -1 if none */
	/* A restore: CRIU's descendants (the tasks it restores, its helpers),
	 * followed through the fork events, and the first of them killed by a
	 * signal. */
	pid_t tree_root;
	size_t n_tree;
	pid_t tree[GUARD_MAX_TASKS * 4];
	int tree_end[GUARD_MAX_TASKS * 4]; /* wait status once it ended, else -1 */
	struct {
		pid_t pid; /* 0: none yet */
		int status;
	} tree_crashed, tree_sigkilled; /* the first by another signal, by SIGKILL */
	int init_old_adj;
	char cgroup[160];
	/* Progress: a signature that changes while work is done. */
	unsigned long long last_sig;
	long long last_change_ms;
	/* MemAvailable at the start and its lowest value since. */
	long avail_start_kib, avail_low_kib;
};

/* The kernel's process events (proc connector, NETLINK_CONNECTOR,
 * CN_IDX_PROC): a non-blocking socket subscribed to every fork, exec and
 * exit in the guest, or -1. An exit event is sent from do_exit(), before
 * the task is a zombie, so it is queued before any parent can reap it.
 * guard_exit_events_op() sends PROC_CN_MCAST_LISTEN or _IGNORE (the
 * kernel counts listeners; send _IGNORE before closing). */
int guard_exit_events_open(void);
int guard_exit_events_op(int fd, enum proc_cn_mcast_op op);
/* Reads the events queued on fd (from guard_exit_events_open) without
 * blocking, and calls on_event with each, copied to an aligned struct (the
 * event's 64-bit fields are not aligned in the netlink buffer). Returns 0
 * once the queue is empty (events lost to ENOBUFS are skipped), or -errno. */
int guard_exit_events_read(int fd, void (*on_event)(void *userdata, const struct proc_event *ev),
			   void *userdata);
/* A zombie's wait status (field 52 of /proc/PID/stat), or -1 when PID is
 * no zombie (still running, reaped, or gone). */
int guard_zombie_status(pid_t pid);

/* MemAvailable from /proc/meminfo, in KiB; -1 if unreadable. */
long guard_mem_available_kib(void);
/* What a dump of the cgroup's tasks writes as page images, in KiB: their
 * anonymous and shared-memory pages (RssAnon + RssShmem + VmSwap), summed
 * per process (a child forked after its parent filled its heap is dumped
 * with its own copy, so the sum is what CRIU writes). */
long guard_container_memory_kib(const char *cgroup);

/* Records the cgroup's tasks, opens a pidfd for each and sets their
 * oom_score_adj to GUARD_PROTECTED_ADJ, remembering the old values.
 * Subscribes to the kernel's exit events (proc connector), so that how a
 * task ended is known even after its parent reaped it. */
void guard_protect(struct guard *g, const char *cgroup);
/* Puts the old oom_score_adj values back and closes the pidfds and the
 * exit-event socket. */
void guard_release(struct guard *g);
/* CRIU saves each task's oom_score_adj in the images, and restores it:
 * the protected value, unless the real ones travel beside the images.
 * Writes "NSPID ADJ" lines (the pid inside the container, which a restore
 * keeps) for the tasks recorded by guard_protect. */
int guard_save_adj(const struct guard *g, const char *path);
/* After a restore: each task of the cgroup gets the value saved for its
 * pid, or the first task's value when it has none. */
void guard_apply_saved_adj(const char *cgroup, const char *path);
/* A task of the container that ended during a CRIU run. */
struct guard_death {
	pid_t pid;  /* in the guest's pid namespace */
	int status; /* wait status (WIFSIGNALED...), -1 when not known */
};
/* While CRIU runs: a task recorded by guard_protect that ended in CRIU's
 * hands (its zombie still has CRIU as its tracer). A short-lived process
 * that ends before CRIU takes hold of the tree, or after CRIU let go, is no
 * news. Returns true and fills D. */
bool guard_dead_task(struct guard *g, struct guard_death *d);
/* After CRIU ended (it may have seen the death before the watch did, and
 * let go of the zombie, which its parent may have reaped since): a task
 * recorded by guard_protect that ended in CRIU's hands, or that was killed
 * by a signal since guard_protect. Returns true and fills D. */
bool guard_killed_task(struct guard *g, struct guard_death *d);
/* A restore: call before CRIU starts (G zeroed, or from an earlier
 * guard_tree_close), then guard_tree_root with CRIU's pid once it runs. */
void guard_tree_open(struct guard *g);
void guard_tree_root(struct guard *g, pid_t criu);
/* The first of CRIU's descendants killed by a signal so far, if any: true
 * and fills D. CRIU itself SIGKILLs what it restored when a restore fails,
 * so a SIGKILL counts only with SIGKILL_COUNTS (the caller knows the OOM
 * killer was at work); other signals (a crash) always count. Also drains
 * the events, so call it from the watch. */
bool guard_tree_killed(struct guard *g, bool sigkill_counts, struct guard_death *d);
/* A restore: whether `task`, one of CRIU's descendants, was killed by a
 * signal (as the exit events drained by guard_tree_killed tell; a pid used
 * again counts from its new task's fork). Returns true and fills D. */
bool guard_tree_lost(struct guard *g, pid_t task, struct guard_death *d);
void guard_tree_close(struct guard *g);
/* "killed by SIGKILL", "exit status 3" or "ended", into BUF. */
const char *guard_describe_end(int status, char *buf, size_t size);

/* Feeds the progress signature; true once it has not changed for stall_ms. */
bool guard_stalled(struct guard *g, unsigned long long sig, long long now_ms, int stall_ms);
/* Samples MemAvailable for the low-water mark. */
void guard_sample_memory(struct guard *g);
/* CPU time a process and its reaped children used, in clock ticks. */
unsigned long long guard_cpu_ticks(pid_t pid);
/* The sizes of the regular files in DIR, summed (not recursive). */
unsigned long long guard_dir_bytes(const char *dir);
/* A cgroup's CPU time (cpu.stat usage_usec). */
unsigned long long guard_cgroup_usec(const char *cgroup);
