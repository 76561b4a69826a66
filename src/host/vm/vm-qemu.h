/* The QEMU backend's parts that are pure logic (vm-qemu.c), for the unit
 * tests: virtiofsd's command line. The backend itself is vm.h's. */
#pragma once

#include "argv.h"

/* How one virtiofsd serves its share. */
enum share_kind {
	SHARE_PLAIN,	/* the shared directory: cache=none */
	SHARE_READONLY, /* the user's checkpoint images, or the tools tree */
	SHARE_VOLUMES,	/* mount points of other filesystems */
	SHARE_ROOTFS,	/* the container's rootfs (whole-VM mode) */
};

/* virtiofsd's argv into av (empty), serving DIR as KIND on fd 3: the Rust
 * virtiofsd at RUST_BIN (whole-VM mode: it migrates), or with RUST_BIN NULL
 * QEMU 7.2's C one. A read-only share under the C one is made read-only by
 * the caller (a bind mount: it has no read-only mode). Returns 0 with
 * av->args ready for execv, or argv_finish's error (-ENOMEM, -E2BIG). */
int virtiofsd_argv(struct argv *av, const char *rust_bin, const char *dir, enum share_kind kind);
