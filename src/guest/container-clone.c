/* The clone of a container's init (container-clone.h). */
#include "container-clone.h"
#include "container-child.h"
#include "cleanup.h"
#include "userns.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h> /* struct clone_args */
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

/* A container never shares the guest's own pid, mount, IPC or UTS
 * namespace, whatever its spec says (Kata's agent does the same with pid):
 * in the guest's pid namespace a container with CAP_KILL could kill CRIU,
 * the copier and every other container of the VM (kill -1 spares only
 * init), and in its mount namespace the rootfs setup would move the
 * container's root over the guest's. A spec that leaves one out gets a
 * new one, and a warning from the host (spec.c). The network namespace is
 * the spec's: the host refuses a spec without one. */
static uint64_t ns_flags(const Cocoon__ContainerSpec *s)
{
	uint64_t f = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC;
	f |= container_has_ns(s, "network") ? CLONE_NEWNET : 0;
	/* runc unshares the cgroup namespace once the init is in its cgroup,
	 * so that the namespace's root is that cgroup (nsexec.c, after the
	 * parent's "cgroup ready" sync). clone3's CLONE_INTO_CGROUP does both
	 * at once: the init is born in its cgroup, and the namespace starts
	 * there. */
	f |= container_has_ns(s, "cgroup") ? CLONE_NEWCGROUP | CLONE_INTO_CGROUP : 0;
	/* In one clone with the others, the user namespace is made first and
	 * owns them (clone(2)), as after runc's unshare(CLONE_NEWUSER) then
	 * unshare of the rest. The time namespace is the agent's
	 * time_for_children, owned by the guest's user namespace: the
	 * container's root cannot change its offsets, as with runc. */
	f |= userns_wanted(s) ? CLONE_NEWUSER : 0;
	return f;
}

/* linux.timeOffsets into the time namespace the agent's next child gets
 * (time_namespaces(7): /proc/PID/timens_offsets, writable until a task
 * enters the namespace). runc writes them the same way, after it unshared
 * the namespace and before the container's init is forked into it. */
static int write_time_offsets(const Cocoon__TimeOffsets *t, struct error **err)
{
	char buf[128];
	if (!t)
		return 0;
	int n = snprintf(buf, sizeof(buf), "monotonic %lld %u\nboottime %lld %u\n",
			 (long long)t->monotonic_secs, t->monotonic_nanosecs,
			 (long long)t->boottime_secs, t->boottime_nanosecs);
	_cleanup_close_ int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, buf, (size_t)n) != n)
		return error_set(
			err, errno,
			"linux.timeOffsets (monotonic %lld s %u ns, boottime %lld s %u ns): "
			"the guest's kernel refused them",
			(long long)t->monotonic_secs, t->monotonic_nanosecs,
			(long long)t->boottime_secs, t->boottime_nanosecs);
	return 0;
}

/* The agent's children from now on are in a new time namespace with S's
 * offsets; *BACK is the namespace to return to. */
static int enter_time_ns_for_children(const Cocoon__ContainerSpec *s, int *back, struct error **err)
{
	*back = open("/proc/self/ns/time_for_children", O_RDONLY | O_CLOEXEC);
	if (*back < 0 || unshare(CLONE_NEWTIME) < 0)
		return error_set(err, errno, "time namespace");
	return write_time_offsets(s->time_offsets, err);
}

pid_t container_clone(const Cocoon__ContainerSpec *s, const char *cgroup, struct error **err)
{
	uint64_t flags = ns_flags(s);
	_cleanup_close_ int cg = -1, time_back = -1, maps_rd = -1, maps_wr = -1;
	pid_t pid = -1;
	/* A user namespace's maps are written by the agent once the child
	 * exists; the child waits for them on this pipe (runc's nsexec waits
	 * for its parent's SYNC_USERMAP_ACK the same way). */
	if (flags & CLONE_NEWUSER) {
		int p[2];
		if (pipe2(p, O_CLOEXEC) < 0)
			return error_set(err, errno, "user namespace: pipe");
		maps_rd = p[0];
		maps_wr = p[1];
	}
	if (flags & CLONE_INTO_CGROUP) {
		cg = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (cg < 0)
			return error_set(err, errno, "cgroup namespace: %s", cgroup);
	}
	int r = container_has_ns(s, "time") ? enter_time_ns_for_children(s, &time_back, err) : 0;
	if (r == 0) {
		struct clone_args args = {.flags = flags,
					  .exit_signal = SIGCHLD,
					  .cgroup = cg >= 0 ? (uint64_t)cg : 0};
		/* Like fork() here: the agent has no threads. */
		pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
		r = pid < 0 ? error_set(err, errno, "clone") : 0;
		if (pid == 0) {
			char go;
			if (maps_wr >= 0)
				close(TAKE_FD(maps_wr));
			/* No byte: the agent failed and kills this child. */
			if (maps_rd >= 0 && read(maps_rd, &go, 1) != 1)
				_exit(126);
			return 0;
		}
		if (pid > 0 && maps_wr >= 0 &&
		    ((r = userns_set_up_child(pid, s, err)) < 0 ||
		     (r = container_rlimits_apply(pid, s->process, err)) < 0 ||
		     write(maps_wr, "", 1) != 1)) {
			if (r == 0)
				r = error_set(err, errno, "user namespace");
			kill(pid, SIGKILL);
		}
	}
	/* The agent's later children (CRIU, execs, other containers) in the
	 * guest's own time namespace again. */
	if (time_back >= 0 && setns(time_back, CLONE_NEWTIME) < 0 && r == 0) {
		r = error_set(err, errno, "time namespace: return to the guest's");
		if (pid > 0)
			kill(pid, SIGKILL);
	}
	return r < 0 ? r : pid;
}
