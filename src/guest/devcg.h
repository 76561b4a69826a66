/* linux.resources.devices in the guest's cgroup v2 (docs/lifecycle.md,
 * "Kernel settings of the container"). cgroup v2 has no devices.allow
 * file: the kernel asks a BPF_PROG_TYPE_CGROUP_DEVICE program attached to
 * the cgroup about every mknod, and every open of a device node, by a task
 * in it (Documentation/admin-guide/cgroup-v2.rst, "Device controller"). */
#pragma once

#include "error.h"
#include "proto.h"

#include <stddef.h>
#include <stdint.h>

/* At most this many instructions in a device program (the host bounds the
 * rules: SPEC_DEVICE_RULES_MAX plus runc's defaults, 8 each at most). */
#define DEVCG_MAX_INSNS 4096

/* Builds the device program for RULES into INSNS (room for MAX), as
 * cgroup v1 read the same rules in order: a rule of type "a" resets
 * everything to allow-all or deny-all (devcgroup_update_access), any other
 * rule is an exception, and the last rule matching a request decides it
 * (crun's src/libcrun/ebpf.c, and runc's devicefilter that follows it).
 * A request matches a rule when its type and numbers do and the rule's
 * access covers every access asked for. Returns the number of
 * instructions, 0 when the rules leave every device allowed (no program
 * needed), or -E2BIG. */
int devcg_build(Cocoon__DeviceRule *const *rules, size_t n, void *insns, size_t max);

/* Loads the program for RULES and attaches it to CGROUP (a directory under
 * /sys/fs/cgroup), replacing one attached before. No rules: nothing is
 * done. Returns 0, or a negative errno with *ERR (the verifier's complaint
 * when there is one). */
int devcg_apply(const char *cgroup, Cocoon__DeviceRule *const *rules, size_t n, struct error **err);
