/* The child side of a container's processes (container-child.c). */
#pragma once

#include "error.h"
#include "proto.h"

#include <stdbool.h>
#include <sys/types.h>

bool container_has_ns(const Cocoon__ContainerSpec *s, const char *type);

void __attribute__((noreturn))
container_child_init(const Cocoon__ContainerSpec *s, const char *rootfs, const char *cgroup,
		     const int join_fds[3], int sync_fd, int start_fd, int in, int out, int err,
		     bool terminal);

int container_open_ns(pid_t pid, const char *ns);

/* P's rlimits on process PID (0: the caller), with prlimit(2): a hard
 * limit above the current one takes CAP_SYS_RESOURCE in the guest's user
 * namespace, so for a container in a user namespace of its own the agent
 * sets its init's (runc's parent sets its init's the same way). Returns 0
 * or a negative errno with *ERR naming the limit. */
int container_rlimits_apply(pid_t pid, const Cocoon__ProcessSpec *p, struct error **err);

/* An exec's process P in the namespaces of INIT. S is the container's spec
 * (NULL: none known): its seccomp filter, and its process's oomScoreAdj
 * for a P without one. */
void __attribute__((noreturn))
container_child_exec(pid_t init, const Cocoon__ProcessSpec *p, const Cocoon__ContainerSpec *s,
		     int sync_fd, int in, int out, int err, bool terminal);

/* Reports a setup error to the agent on SYNC_FD and exits with 126. Only
 * in a child between fork and exec. */
void __attribute__((noreturn, format(printf, 2, 3)))
container_child_fail(int sync_fd, const char *fmt, ...);
