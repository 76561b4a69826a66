/* Requests on a container that exists: signal, pause/resume, update, stats,
 * ps, exec and stdin. Each answers at once, or (exec) through the process's
 * sync pipe (container-events.c).
 */
#include "channel.h"
#include "container-ops.h"
#include "execs.h"
#include "agent.h"
#include "cleanup.h"
#include "cgroups.h"
#include "confine.h"
#include "container.h"
#include "container-child.h"
#include "mounts.h"
#include "network.h"
#include "terminal.h"

#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static int read_cgroup_pids(const char *cgroup, uint32_t *pids, size_t max, size_t *n)
{
	char path[192];
	snprintf(path, sizeof(path), "%s/cgroup.procs", cgroup);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	unsigned v;
	*n = 0;
	if (!f)
		return -errno;
	while (*n < max && fscanf(f, "%u", &v) == 1)
		pids[(*n)++] = v;
	return 0;
}

void container_handle_signal(struct agent *a, uint64_t id, const Cocoon__SignalRequest *req)
{
	struct agent_container *c = req ? container_find(a, req->id) : NULL;
	Cocoon__SignalReply reply = COCOON__SIGNAL_REPLY__INIT;

	if (!c) {
		agent_send_error(a, id, ENOENT, "kill: no such container");
		return;
	}
	if (req->signal <= 0 || req->signal >= 65) {
		agent_send_error(a, id, EINVAL, "kill %s: invalid signal %d", c->id, req->signal);
		return;
	}
	if (req->all) {
		uint32_t pids[1024];
		size_t n;
		read_cgroup_pids(c->cgroup, pids, ARRAY_SIZE(pids), &n);
		for (size_t i = 0; i < n; i++)
			kill((pid_t)pids[i], req->signal);
	} else {
		struct agent_proc *p = container_find_proc(c, req->exec_id);
		/* An init that ended while its output still drains (the
		 * container is freed after its last byte): runc's words, which
		 * containerd's shim reads as "process already finished"
		 * (checkKillError, pkg/process/utils.go); anything else it
		 * takes for an unknown error (review10 3). */
		const char *exec_id = req->exec_id ? req->exec_id : "";
		if ((!p || p->phase == PROC_EXITED || p->pid <= 0) && !*exec_id) {
			agent_send_error(a, id, ESRCH, "kill %s: container not running", c->id);
			return;
		}
		if (!p || p->phase == PROC_EXITED || p->pid <= 0) {
			agent_send_error(a, id, ESRCH, "kill %s exec %s: no such process", c->id,
					 exec_id);
			return;
		}
		int k = p->pidfd >= 0 ? (int)syscall(SYS_pidfd_send_signal, p->pidfd, req->signal,
						     NULL, 0)
				      : kill(p->pid, req->signal);
		if (k < 0) {
			agent_send_error(a, id, errno, "kill %s: %s", c->id, strerror(errno));
			return;
		}
	}
	container_send_ok(a, id, COCOON__RESPONSE__BODY_SIGNAL, &reply);
}

/* cgroup v2 freezer: write cgroup.freeze, then wait for cgroup.events to say
 * "frozen 1". The kernel usually gets there at once; the wait is bounded. */
static int cgroup_freeze(const char *cgroup, bool freeze)
{
	char path[192], events[256];
	snprintf(path, sizeof(path), "%s/cgroup.freeze", cgroup);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, freeze ? "1" : "0", 1) != 1)
		return -errno;
	snprintf(path, sizeof(path), "%s/cgroup.events", cgroup);
	for (int i = 0; i < 200; i++) {
		_cleanup_close_ int ev = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = ev >= 0 ? read(ev, events, sizeof(events) - 1) : -1;
		if (n > 0) {
			events[n] = 0;
			if (strstr(events, freeze ? "frozen 1" : "frozen 0"))
				return 0;
		}
		usleep(5000);
	}
	return -ETIMEDOUT;
}

int container_freeze(struct agent_container *c, bool freeze)
{
	return cgroup_freeze(c->cgroup, freeze);
}

void container_handle_pause(struct agent *a, uint64_t id, const Cocoon__PauseRequest *req)
{
	struct agent_container *c = req ? container_find(a, req->id) : NULL;
	Cocoon__PauseReply reply = COCOON__PAUSE_REPLY__INIT;
	const char *what = req && req->resume ? "resume" : "pause";

	if (!c) {
		agent_send_error(a, id, ENOENT, "%s: no such container", what);
		return;
	}
	if (c->procs[0].phase != PROC_RUNNING) {
		agent_send_error(a, id, EINVAL, "%s %s: container is not running", what, c->id);
		return;
	}
	int r = cgroup_freeze(c->cgroup, !req->resume);
	if (r < 0) {
		agent_send_error(a, id, -r, "%s %s: cgroup freezer: %s", what, c->id, strerror(-r));
		return;
	}
	c->paused = !req->resume;
	container_send_ok(a, id, COCOON__RESPONSE__BODY_PAUSE, &reply);
}

void container_handle_update(struct agent *a, uint64_t id, const Cocoon__UpdateRequest *req)
{
	struct agent_container *c = req ? container_find(a, req->id) : NULL;
	Cocoon__UpdateReply reply = COCOON__UPDATE_REPLY__INIT;
	_cleanup_error_ struct error *e_apply = NULL;

	if (!c) {
		agent_send_error(a, id, ENOENT, "update: no such container");
		return;
	}
	if (c->procs[0].phase == PROC_EXITED) {
		agent_send_error(a, id, EINVAL, "update %s: container is stopped", c->id);
		return;
	}
	Cocoon__Resources none = COCOON__RESOURCES__INIT, merged;
	const Cocoon__Resources *r = req->resources ? req->resources : &none;
	if (req->set_cpu_max && (req->keep_cpu_quota || req->keep_cpu_period)) {
		/* runc update: the half of cpu.max not given keeps its value. */
		int64_t quota = 0;
		uint64_t period = 0;
		int e = cgroups_read_cpu_max(c->cgroup, &quota, &period);
		if (e < 0 && e != -ENOENT) {
			agent_send_error(a, id, -e, "update %s: read cpu.max: %s", c->id,
					 strerror(-e));
			return;
		}
		merged = *r;
		if (req->keep_cpu_quota)
			merged.cpu_quota = quota;
		if (req->keep_cpu_period)
			merged.cpu_period = period;
		r = &merged;
	}
	unsigned mask = (req->set_memory ? CGROUPS_MEMORY : 0) |
			(req->set_pids ? CGROUPS_PIDS : 0) |
			(req->set_cpu_max ? CGROUPS_CPU_MAX : 0) |
			(req->set_cpu_weight ? CGROUPS_CPU_WEIGHT : 0);
	if (mask && cgroups_apply(c->cgroup, r, mask, &e_apply) < 0) {
		agent_send_error(a, id, EINVAL, "update %s: %s", c->id, error_msg(e_apply));
		return;
	}
	/* What a restore of this container in this VM would set again. */
	if (req->set_memory)
		c->limits.memory_limit = r->memory_limit;
	if (req->set_pids)
		c->limits.pids_limit = r->pids_limit;
	if (req->set_cpu_max) {
		c->limits.cpu_quota = r->cpu_quota;
		c->limits.cpu_period = r->cpu_period;
	}
	if (req->set_cpu_weight)
		c->limits.cpu_shares = r->cpu_shares;
	c->has_limits = c->has_limits || mask;
	container_send_ok(a, id, COCOON__RESPONSE__BODY_UPDATE, &reply);
}

void container_handle_stats(struct agent *a, uint64_t id, const Cocoon__StatsRequest *req)
{
	struct agent_container *c = req ? container_find(a, req->id) : NULL;
	Cocoon__StatsReply reply = COCOON__STATS_REPLY__INIT;
	static struct cgroups_stat_buf buf;

	if (!c) {
		agent_send_error(a, id, ENOENT, "stats: no such container");
		return;
	}
	cgroups_stats(c->cgroup, &reply, &buf);
	container_send_ok(a, id, COCOON__RESPONSE__BODY_STATS, &reply);
}

void container_handle_ps(struct agent *a, uint64_t id, const Cocoon__PsRequest *req)
{
	struct agent_container *c = req ? container_find(a, req->id) : NULL;
	Cocoon__PsReply reply = COCOON__PS_REPLY__INIT;
	uint32_t pids[1024];
	size_t n = 0;

	if (!c) {
		agent_send_error(a, id, ENOENT, "ps: no such container");
		return;
	}
	read_cgroup_pids(c->cgroup, pids, ARRAY_SIZE(pids), &n);
	reply.pids = pids;
	reply.n_pids = n;
	container_send_ok(a, id, COCOON__RESPONSE__BODY_PS, &reply);
}

/* A child of the agent in the container's pid namespace: the agent
 * switches its pid_for_children namespace around the fork, then switches
 * back. That child forks the exec'd process and exits (execs.h). */
static pid_t fork_into_pidns(pid_t target)
{
	_cleanup_close_ int mine = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int theirs = container_open_ns(target, "pid");
	if (mine < 0 || theirs < 0 || setns(theirs, CLONE_NEWPID) < 0)
		return -1;
	pid_t pid = fork();
	if (pid != 0 && setns(mine, CLONE_NEWPID) < 0)
		agent_log(NULL, "cannot return to the agent's pid namespace: %s", strerror(errno));
	return pid;
}

void container_handle_exec(struct agent *a, uint64_t id, const Cocoon__ExecRequest *req)
{
	struct agent_container *c = req ? container_find(a, req->id) : NULL;
	struct container_stdio io = {
		.child = {-1, -1, -1}, .agent_in = -1, .agent_out = -1, .agent_err = -1};
	struct agent_proc *p = NULL;
	int sync[2];

	if (!c || !req->process || req->process->n_args == 0 || !cocoon_id_valid(req->exec_id)) {
		agent_send_error(a, id, c ? EINVAL : ENOENT, "exec: %s",
				 c ? "invalid request" : "no such container");
		return;
	}
	if (c->procs[0].phase != PROC_RUNNING || c->paused) {
		agent_send_error(a, id, EINVAL, "exec %s: container is not running", c->id);
		return;
	}
	if (container_find_proc(c, req->exec_id)) {
		agent_send_error(a, id, EEXIST, "exec %s: exec id %s is in use", c->id,
				 req->exec_id);
		return;
	}
	for (int i = 1; i < AGENT_MAX_PROCS && !p; i++)
		if (!c->procs[i].used)
			p = &c->procs[i];
	if (!p) {
		agent_send_error(a, id, EAGAIN, "exec %s: at most %d processes", c->id,
				 AGENT_MAX_PROCS - 1);
		return;
	}
	/* Subscribed before the fork: no exit can come before it. */
	int r = execs_events_subscribe();
	if (r < 0) {
		agent_send_error(a, id, -r, "exec %s: the kernel's process events: %s", c->id,
				 strerror(-r));
		return;
	}
	if (container_stdio_open(&io, req->process) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sync) < 0) {
		agent_send_error(a, id, errno, "exec %s: pipes: %s", c->id, strerror(errno));
		return;
	}
	pid_t pid = fork_into_pidns(c->procs[0].pid);
	if (pid < 0) {
		agent_send_error(a, id, errno, "exec %s: %s", c->id, strerror(errno));
		return;
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		(void)sigprocmask(SIG_SETMASK, &none, NULL); /* cannot fail: a valid set */
		close(sync[0]);
		pid_t e = fork();
		if (e < 0)
			container_child_fail(sync[1], "fork: %s", strerror(errno));
		if (e > 0)
			_exit(0); /* the process is the container's init's now */
		/* Into the cgroup after the fork, before anything runs: a fork
		 * inside a cgroup at pids.max fails, a move into it does not
		 * (cgroup-v2.rst, "PID": organisational operations are not
		 * blocked), so exec works at the limit, as with runc. */
		if (cgroups_join(c->cgroup, getpid()) < 0)
			container_child_fail(sync[1], "join the container's cgroup: %s",
					     strerror(errno));
		container_child_exec(c->procs[0].pid, req->process, c->spec, sync[1], io.child[0],
				     io.child[1], io.child[2], req->process->terminal);
	}
	close(sync[1]);
	container_stdio_close_child(&io);
	/* The helper is reaped like any child, unknown to the table; the
	 * process's pid arrives with its pidfd. */
	container_proc_register(p, 0, PROC_STARTING, &io, sync[0], req->process->terminal, id);
	p->sync_socket = true;
	snprintf(p->exec_id, sizeof(p->exec_id), "%s", req->exec_id);
}

/* The size is set on the master (terminal.h). */
void container_handle_resize(struct agent *a, const Cocoon__ResizeRequest *req)
{
	struct agent_container *c = req ? container_find(a, req->id) : NULL;
	struct agent_proc *p = c ? container_find_proc(c, req->exec_id) : NULL;

	/* The master is stdin_fd and out_fd[0] (a dup); either may be closed
	 * already as the process ends. */
	int master = !p || !p->terminal ? -1 : p->out_fd[0] >= 0 ? p->out_fd[0] : p->stdin_fd;
	if (master < 0) {
		agent_log(a, "resize: %s%s%s has no terminal; ignored", c ? c->id : "no container",
			  c && *req->exec_id ? " exec " : "", c ? req->exec_id : "");
		return;
	}
	int r = terminal_set_size(master, req->size);
	if (r < 0)
		agent_log(a, "resize %s: %s", c->id, strerror(-r));
}

void container_handle_stdin(struct agent *a, const Cocoon__StdinData *req)
{
	struct agent_container *c = req ? container_find(a, req->id) : NULL;
	struct agent_proc *p = c ? container_find_proc(c, req->exec_id) : NULL;

	if (!p || p->stdin_fd < 0)
		return;
	if (req->data.len > 0) {
		/* The host sends at most a pipe's worth at a time; anything the
		 * pipe cannot take now is dropped and logged. */
		ssize_t n = write(p->stdin_fd, req->data.data, req->data.len);
		if (n < (ssize_t)req->data.len)
			agent_log(a, "stdin of %s: dropped %zd bytes", c->id,
				  (ssize_t)req->data.len - (n > 0 ? n : 0));
	}
	if (req->eof && !p->terminal)
		container_close_fd(&p->stdin_fd);
}
