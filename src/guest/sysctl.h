/* linux.sysctl inside the guest (docs/lifecycle.md, "Kernel settings of the
 * container"), written as runc writes them: the value to /proc/sys/<key>,
 * dots becoming slashes (libcontainer's writeSystemProperty), by a task in
 * the container's namespaces, before the container's process starts. */
#pragma once

#include "error.h"
#include "proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Whether a key belongs to the network namespace (net.*). */
bool sysctl_is_net(const char *key);

/* Writes the entries of S whose key is of the network namespace (NET) or
 * not (!NET) through the calling task's /proc/sys: the values land in its
 * own namespaces. Returns 0, or a negative errno with *ERR naming the key,
 * its file and the kernel's answer. */
int sysctl_apply(const Cocoon__ContainerSpec *s, bool net, struct error **err);

/* The net.* entries of S in the network namespace NETNS_FD: the agent
 * enters it for the writes and returns (it has no threads). For a
 * container's namespace once the engine's interfaces are in it, so that
 * per-interface keys (net.ipv4.conf.eth0.*) find their interface. */
int sysctl_apply_net_in(int netns_fd, const Cocoon__ContainerSpec *s, struct error **err);

/* At create: the net.* entries of S in the network namespace of the new
 * container's init PID (its own), or POD_NET (>= 0: its pod's, which the
 * init is joining). Called once the engine's interfaces are in place. */
int sysctl_apply_net_of(const Cocoon__ContainerSpec *s, pid_t pid, int pod_net, struct error **err);
