/* The clone of a container's init, into its namespaces (container-clone.c). */
#pragma once

#include "error.h"
#include "proto.h"

#include <stddef.h>
#include <sys/types.h>

/* Clones the agent into a new container init for S: new pid, mount, UTS
 * and IPC namespaces always, network when S has one; with "cgroup" in S's
 * namespaces, born into CGROUP (a directory under /sys/fs/cgroup) inside a
 * new cgroup namespace rooted there; with "time", inside a new time
 * namespace with S's time offsets. Returns the pid in the agent and 0 in
 * the child (as fork does), or -errno with *ERR set; the agent's own
 * namespaces are as before either way. The agent has no threads. */
pid_t container_clone(const Cocoon__ContainerSpec *s, const char *cgroup, struct error **err);
