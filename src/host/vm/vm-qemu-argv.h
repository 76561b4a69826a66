/* QEMU's command line (vm-qemu-argv.c), for the QEMU backend (vm-qemu.c). */
#pragma once

#include "argv.h"
#include "vm.h"

#include <stdbool.h>
#include <stddef.h>

#define QEMU_MAX_ARGS 128

/* QEMU's command line for S into B (argv_init'ed, at most QEMU_MAX_ARGS):
 * S is checked first (paths without commas, known filesystems). Returns 0,
 * or a negative errno with *ERR set. */
int qemu_build_argv(struct argv *b, const struct vm_spec *s, struct error **err);

/* The socket or log ("sock", "log": WHAT) of the virtiofsd serving TAG,
 * beside the agent's channel socket CHANNEL_PATH, into OUT (SIZE bytes;
 * "" when out of memory). */
void qemu_virtiofs_path(char *out, size_t size, const char *channel_path, const char *tag,
			const char *what);
/* The shared directory, volumes and image directories are on virtiofs:
 * with shared_fs "virtiofs" and in whole-VM mode. */
bool qemu_shares_on_virtiofs(const struct vm_spec *s);
/* The rootfs is on virtiofs: with rootfs_fs "virtiofs" and in whole-VM
 * mode. */
bool qemu_rootfs_on_virtiofs(const struct vm_spec *s);
/* Any virtiofs device: the guest's memory must then be shared (vhost-user). */
bool qemu_any_virtiofs(const struct vm_spec *s);
