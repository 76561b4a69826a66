#pragma once
#include <stddef.h>
#include "proto.h"

/* In the container's child, in its new mount namespace: mounts the spec's
 * filesystems under rootfs, then pivot_root()s into it. On failure fills
 * msg, naming the mount. */
int mounts_setup_rootfs(const Cocoon__ContainerSpec *s, const char *rootfs, char *msg, size_t msg_size);
