#pragma once
#include <stdbool.h>
#include <stddef.h>
#include "error.h"
#include "proto.h"

struct argv;

/* The device nodes of a tmpfs /dev (runc's default devices). */
#define MOUNTS_DEV_NODES 6
extern const char *const mounts_dev_nodes[MOUNTS_DEV_NODES];

/* In a user namespace those nodes are binds of the guest's (mknod is
 * refused there): each is an external mount for CRIU, keyed and restored
 * by its path, /dev/<name>, as runc names a user namespace's device binds
 * at checkpoint and restore. Adds "--external mnt[/dev/N]:/dev/N" to AV
 * for each; the same arguments serve the dump and the restore. */
void mounts_dev_binds_external(struct argv *av);

/* CRIU's external key for a cgroup mount that is a read-only bind of the
 * container's own cgroup (mounts.c, bind_cgroup: a user namespace without a
 * cgroup namespace of its own). Its root is a directory of the guest's
 * cgroup2 mount, which is not in the container's mount namespace, so CRIU
 * 3.17 cannot dump it as a bind ("doesn't have a proper root mount"): named
 * as external by destination at dump, and given the restored container's
 * cgroup as its source at restore, as runc names its cgroup binds. */
#define MOUNTS_CGROUP_KEY "cocoon-cgroup"
/* Adds those --external arguments for S's cgroup mounts: with CGROUP NULL
 * the dump's (mnt[DESTINATION]:cocoon-cgroup), else the restore's
 * (mnt[cocoon-cgroup]:CGROUP, once). Only when BOUND (the caller's
 * userns_wanted && no cgroup namespace). */
void mounts_cgroup_binds_external(struct argv *av, const Cocoon__ContainerSpec *s, bool bound,
				  const char *cgroup);

/* The spec's tmpfs mounted at destination, or NULL. */
const Cocoon__Mount *mounts_tmpfs_at(const Cocoon__ContainerSpec *s, const char *destination);
/* A fresh copy of the spec's tmpfs on destination, for a restore, mounted at
 * base + destination: for /dev with its device nodes and links, and with the
 * mount points of the spec's mounts below it. */
int mounts_prepare_fresh(const Cocoon__ContainerSpec *s, const char *destination, const char *base,
			 struct error **err);
/* In the container's child, in its new mount namespace: mounts the spec's
 * filesystems under rootfs, then pivot_root()s into it. cgroup is the
 * container's cgroup in the guest (bound where it may not mount its own).
 * Returns 0, or a negative errno with *ERR naming the mount. */
int mounts_setup_rootfs(const Cocoon__ContainerSpec *s, const char *rootfs, const char *cgroup,
			struct error **err);
/* Before CRIU restores into rootfs: the mount point of every mount of the
 * spec, as runc makes them (a restore into a fresh rootfs, e.g. podman's
 * --import on another host, lacks those of the engine's file binds). The
 * bind mounts are mounted for a moment in a child's own mount namespace, so
 * that mount points nested inside them are made too; those under a tmpfs
 * are left to CRIU, which restores the tmpfs whole. */
int mounts_prepare_restore(const Cocoon__ContainerSpec *s, const char *rootfs, struct error **err);
