#pragma once
#include <stddef.h>
#include "proto.h"

/* In the container's child, in its new mount namespace: mounts the spec's
 * filesystems under rootfs, then pivot_root()s into it. On failure fills
 * msg, naming the mount. */
/* The spec's tmpfs mounted at destination, or NULL. */
const Cocoon__Mount *mounts_tmpfs_at(const Cocoon__ContainerSpec *s, const char *destination);
/* Mounts m afresh under base (at base + m->destination), for a restore. */
int mounts_prepare_tmpfs(const Cocoon__Mount *m, const char *base, char *msg, size_t msg_size);
/* A fresh /dev for a restore, at BASE/dev: the spec's tmpfs, its device
 * nodes and links, and the mount points of the spec's mounts under /dev. */
int mounts_prepare_dev(const Cocoon__ContainerSpec *s, const char *base, char *msg, size_t msg_size);
int mounts_setup_rootfs(const Cocoon__ContainerSpec *s, const char *rootfs, char *msg, size_t msg_size);
