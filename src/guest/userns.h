/* A container's user namespace (linux.namespaces type "user" with
 * linux.uidMappings and gidMappings; docs/lifecycle.md, "User namespaces"),
 * made as runc makes it: the namespace is created with the container's
 * others, so that it owns them; the agent, root in the guest, writes its
 * maps before the container's init goes on; the init then becomes the
 * namespace's root (setresuid(0)) for the rest of its set-up. */
#pragma once

#include "error.h"
#include "proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Whether S asks for a user namespace. */
bool userns_wanted(const Cocoon__ContainerSpec *s);

/* The agent's part, for the init PID it cloned into S's user namespace:
 * - writes S's maps to /proc/PID/uid_map and gid_map (user_namespaces(7):
 *   one write each, by a process with CAP_SETUID/CAP_SETGID over the
 *   parent namespace). /proc/PID/setgroups stays "allow", as runc leaves
 *   it when it runs as root: the runtime spec has no field for it, and the
 *   container's root may set its groups (process.user.additionalGids);
 * - writes process.oomScoreAdj to /proc/PID/oom_score_adj: lowering it
 *   takes CAP_SYS_RESOURCE in the guest's user namespace, which the init
 *   no longer has (runc writes it before it makes the user namespace).
 *   Written by root, it is the floor the init may set again.
 * Returns 0, or a negative errno with *ERR naming the field. */
int userns_set_up_child(pid_t pid, const Cocoon__ContainerSpec *s, struct error **err);

/* In the container's init, once the maps are written: root of its user
 * namespace (uid and gid 0 there), as runc's nsexec makes itself before it
 * sets up the mounts, so that what it creates on the rootfs belongs to the
 * container's root. Returns 0 or a negative errno with *ERR. */
int userns_become_root(struct error **err);

/* The guest's ids of the root of S's user namespace: the host ids that
 * linux.uidMappings and gidMappings give container id 0 (the guest's ids
 * are the host's, docs/lifecycle.md). Returns 0, or -ENOENT when a map
 * leaves id 0 out (such a container never ran: its init could not become
 * the namespace's root). */
int userns_root_ids(const Cocoon__ContainerSpec *s, uid_t *uid, gid_t *gid);
