/* The engines' stats of a container: its figures inside the guest, shown
 * where podman and containerd look for them on the host.
 *
 * Neither engine asks the runtime. podman 4.3 (`podman stats`) reads
 * /proc/<pid>/cgroup of the pid `state` reports, takes the longest path, and
 * reads the cgroup files under /sys/fs/cgroup/<controller>/<path>.
 * containerd 1.6's runc shim (`ctr task metrics`) does the same from the
 * pid file's pid, per controller. For cocoon that pid is the shim, and the
 * real cgroup around it would hold QEMU: the VM's cost, not the container's.
 *
 * So the shim joins linux.cgroupsPath on the host (as runc puts the
 * container there), and mounts a small tmpfs over that cgroup's
 * directory in the memory, cpu, cpuacct and pids hierarchies (the unified one
 * on a cgroup v2 host). In it the shim keeps the cgroup files the engines
 * read, in the kernel's format, written every second from the container's
 * cgroup in the guest. QEMU stays where the engine started the runtime
 * (cgmirror_join says why). docs/resources.md has the details.
 *
 * Figures come from the guest, so they are numbers only: no string the guest
 * sends reaches a host file. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "cgroup-oom.h"
#include "error.h"
#include "proto.h"

#define CGMIRROR_PATH_MAX 1024
#define CGMIRROR_MAX_HIERARCHIES 8
#define CGMIRROR_INTERVAL_MS 1000
/* How long one ask for the guest's figures is waited for before the next
 * tick asks again (the shim does not block on it, shim-mirror.h). */
#define CGMIRROR_REPLY_MS 2000

/* linux.cgroupsPath as a cgroupfs path ("/a/b"): a relative path is taken
 * from the hierarchy's root, as runc's cgroupfs driver does, and systemd's
 * "slice:prefix:name" becomes /<slice expanded>/<prefix>-<name>.scope, as
 * runc's systemd driver names it ("a-b.slice" is /a.slice/a-b.slice).
 * Refuses "." and ".." components and paths of CGMIRROR_PATH_MAX or more. */
int cgmirror_path(const char *cgroups_path, char *out, size_t size, struct error **err);

/* The files a mirror keeps on a cgroup v2 (unified) host, NULL-terminated. */
extern const char *const cgmirror_v2_files[];

struct cgmirror_dir {
	int mount_fd; /* the tmpfs over the cgroup (fsmount), -1 if none */
	unsigned controllers;
	bool v2;
};

struct cgmirror {
	struct cgmirror_dir dirs[CGMIRROR_MAX_HIERARCHIES];
	size_t n;
	/* The real cgroups (O_PATH, under the mounts) until cgmirror_join. */
	int leaves[CGMIRROR_MAX_HIERARCHIES];
	size_t n_leaves;
	struct cgoom oom; /* OOM events on v1 (cgroup-oom.h), after cgmirror_oom_setup */
};

/* Creates the cgroup path (from cgmirror_path) in each v1 hierarchy with
 * memory, cpu, cpuacct, pids or blkio, or in the v2 hierarchy when
 * /sys/fs/cgroup is one, and mounts the tmpfs with zero figures over it
 * where there are figures to show. Call it in the host's mount namespace.
 * A path that exists already is refused (EEXIST) and nothing is made. On
 * another failure (no permission, no cgroupfs) nothing is mounted; the
 * cgroups it made are left for cgmirror_remove. */
int cgmirror_setup(struct cgmirror *m, const char *path, struct error **err);

/* The engines' OOM watch on a cgroup v1 host (cgroup-oom.h): the relay's
 * memory.oom_control and cgroup.event_control over the mirror's, for the
 * cgroup `path` cgmirror_setup made. Nothing to do (0) on a v2 host or
 * without a memory hierarchy. On failure the mirror's own files stay. */
int cgmirror_oom_setup(struct cgmirror *m, const char *path, struct error **err);

/* Moves process pid (the shim, the pid the engines know; not its keeper,
 * which holds QEMU) into the cgroups cgmirror_setup made. Call it after
 * QEMU is forked: the VM stays
 * in the cgroup the engine started the runtime in, where it was sized to
 * fit, never under a parent's host limit that could OOM-kill it (a pod's
 * cgroup limit is the pod's containers' limit; the VM needs that plus the
 * guest's own memory). */
int cgmirror_join(struct cgmirror *m, pid_t pid, struct error **err);

/* Rewrites every file of m from st (each atomically: a new file renamed
 * over the old; v2's memory.events and cgroup.events in place, when they
 * change, as the engines watch them with inotify IN_MODIFY). A rise of
 * st's oom_kill count is relayed (cgoom_notify). Returns 1 when an OOM event
 * was made, 0, or a negative errno from the relay (the files are written
 * all the same). */
int cgmirror_update(struct cgmirror *m, const Cocoon__StatsReply *st, struct error **err);

/* The guest's oom_kill count for the container when its init ended (the
 * guest removes the cgroup then): v2's memory.events, and a rise relayed
 * as in cgmirror_update. Returns as cgmirror_update. */
int cgmirror_oom_kill(struct cgmirror *m, uint64_t count, struct error **err);

/* Closes m's descriptors; the mounts stay until cgmirror_remove. */
void cgmirror_close(struct cgmirror *m);

/* delete: unmounts the tmpfs and removes the cgroup (the leaf only, as runc)
 * in every hierarchy, once the processes in it are gone (it waits up to
 * about a second for the last ones). A hierarchy without it is no error. */
int cgmirror_remove(const char *path, struct error **err);

/* The text of one mirrored file for st, as the kernel writes it: v1 names
 * (memory.usage_in_bytes, cpuacct.usage, ...) or v2 ones (memory.current,
 * cpu.stat, ...). Returns its length, or -ENOENT for a name it does not
 * write. For tests. */
int cgmirror_render(const char *name, bool v2, const Cocoon__StatsReply *st, char *buf,
		    size_t size);
