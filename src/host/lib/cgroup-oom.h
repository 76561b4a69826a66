/* OOM kills in the guest, seen by the engines the way they see runc's.
 *
 * Neither engine asks the runtime whether a container was OOM-killed: they
 * watch the container's memory cgroup on the host, found from the pid file's
 * pid (cocoon's shim, which sits in linux.cgroupsPath: cgroup-mirror.h).
 *   - cgroup v1: conmon (podman 4.3, src/cgroup.c) and containerd 1.6's runc
 *     shim (runtime/v2/runc oom epoller) open memory.oom_control, make an
 *     eventfd and write "<eventfd> <oom_control fd>" into
 *     cgroup.event_control. The kernel signals the eventfd on an OOM in that
 *     memory cgroup (and when the cgroup is removed). conmon then creates
 *     a file "oom" (in its working directory, conmon 2.1.6), which podman
 *     reads from <bundle>/oom into .State.OOMKilled; containerd publishes
 *     /tasks/oom (TaskOOM). docs/resources.md has what podman 4.3.1 makes
 *     of it.
 *   - cgroup v2: both watch memory.events with inotify (IN_MODIFY) and
 *     compare its oom_kill count. The mirror rewrites that file in place
 *     when the guest's count changes (cgroup-mirror.c), so nothing here.
 *
 * A v1 eventfd registration only works on the kernel's own files (a tmpfs
 * file takes the write and never signals), and the kernel checks that both
 * files belong to the same memory cgroup. So the shim keeps a small real
 * memory cgroup of its own, the relay, at <memory hierarchy>/cocoon-oom<path>,
 * and bind-mounts the relay's memory.oom_control and cgroup.event_control
 * over the mirror's. When the guest reports a new OOM kill in the
 * container's cgroup, the shim starts a helper in the relay (limit
 * CGOOM_RELAY_LIMIT) that touches memory until the host kernel OOM-kills it:
 * a real OOM event on the files the engines watch, with the kernel's own
 * oom_kill count in memory.oom_control. The host's kernel log shows a
 * "Memory cgroup out of memory" line naming the helper (cocoon-oom).
 *
 * The relay lies outside the engine's cgroup on purpose: removing a cgroup
 * signals its eventfds too, and an engine tells that from an OOM only by the
 * watched cgroup being gone (conmon: cgroup.event_control missing;
 * containerd: the cgroup's state is Deleted). So delete removes the mirrored
 * cgroup first and the relay after it (cgoom_remove).
 *
 * A guest that makes its count climb costs the host one helper (at most
 * CGOOM_RELAY_LIMIT of memory, for milliseconds) per mirror tick: the count
 * is only read once a tick (CGMIRROR_INTERVAL_MS) and at the container's
 * exit. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define CGOOM_RELAY_DIR "/cocoon-oom"
#define CGOOM_RELAY_LIMIT (4u << 20) /* bytes */
#define CGOOM_RELAY_TIMEOUT_MS 5000

struct cgoom {
	bool active;
	int relay_fd;	  /* O_PATH of the relay cgroup */
	uint64_t relayed; /* the guest's oom_kill count last relayed */
};

/* Makes (or reuses) the relay for the cgroup `path` under the v1 memory
 * hierarchy mounted at `hierarchy`, sets its limit, and bind-mounts its
 * memory.oom_control and cgroup.event_control into the mirror's tmpfs
 * (`mirror_fd`, a mount fd of the tmpfs over <hierarchy><path>, already
 * attached). Call it in the host's mount namespace. On failure nothing is
 * mounted and o stays inactive; the relay directory is left for
 * cgoom_remove. */
int cgoom_setup(struct cgoom *o, const char *hierarchy, const char *path, int mirror_fd,
		struct error **err);

/* The guest's oom_kill count for the container is now `count`: if it rose
 * since the last call, one OOM event in the relay (a helper OOM-killed by
 * the host kernel; waits for it, at most CGOOM_RELAY_TIMEOUT_MS). Returns 1
 * when an event was made, 0 when the count did not rise or o is inactive,
 * or a negative errno (the helper could not join or was not OOM-killed). */
int cgoom_notify(struct cgoom *o, uint64_t count, struct error **err);

void cgoom_close(struct cgoom *o);

/* delete: removes the relay of `path` under `hierarchy`, once the mirrored
 * cgroup is gone (see above). A missing relay is no error. */
int cgoom_remove(const char *hierarchy, const char *path, struct error **err);
