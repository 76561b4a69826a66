/* config.json's kernel settings the guest applies to the container
 * (docs/lifecycle.md, "Kernel settings of the container"), for spec.c's
 * parse_linux. */
#pragma once

#include "error.h"
#include "proto.h"

#include <json-c/json.h>

struct oci_bundle;

/* Bounds on linux.sysctl: entries, and the bytes of a key and of a value. */
#define SPEC_SYSCTL_MAX 64
#define SPEC_SYSCTL_KEY_MAX 128
#define SPEC_SYSCTL_VALUE_MAX 1024

/* linux.sysctl of LIN into s->sysctl, with runc's rule
 * (libcontainer/configs/validate): a sysctl of the ipc namespace
 * (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*), of the network
 * namespace (net.*) or kernel.domainname; kernel.hostname is refused (the
 * spec's hostname sets it), and so is any sysctl of the kernel as a whole.
 * Returns 0 or a negative errno naming the key. */
int spec_parse_sysctl(json_object *lin, Cocoon__ContainerSpec *s, struct error **err);

/* At most this many linux.resources.devices rules. */
#define SPEC_DEVICE_RULES_MAX 256

/* linux.resources.devices of RES (may be NULL) into s->device_rules, with
 * runc's default rules appended when there are any (runc's
 * specconv.CreateCgroupConfig appends AllowedDevices: /dev/null, zero,
 * full, random, urandom, tty, ptmx, the pts, tun, and mknod of any).
 * type "a", "b" or "c" (absent: "a"), major and minor absent or 0..2^32-1
 * (absent: any), access of "rwm" (absent: "rwm"), allow required.
 * Returns 0 or a negative errno naming the rule and the field. */
int spec_parse_device_rules(json_object *res, Cocoon__ContainerSpec *s, struct error **err);

/* linux.timeOffsets of LIN into s->time_offsets: "monotonic" and
 * "boottime", each {secs (int64), nanosecs (0..999999999)}, as the
 * runtime spec has them; only with a "time" namespace in s (runc refuses
 * them without one). Returns 0 or a negative errno naming the field. */
int spec_parse_time_offsets(json_object *lin, Cocoon__ContainerSpec *s, struct error **err);

/* At most this many linux.resources.unified entries. */
#define SPEC_UNIFIED_MAX 64

/* linux.resources.unified of RES (may be NULL) into s->unified: each key a
 * file of the container's cgroup v2 ("memory.high"), no "/" (runc refuses
 * a path too), not a cgroup.* file (those are the cgroup's own: its
 * processes, freezer, subtree, which the agent runs), each value a string
 * of at most SPEC_SYSCTL_VALUE_MAX bytes. Returns 0 or a negative errno
 * naming the key. */
int spec_parse_unified(json_object *res, Cocoon__ContainerSpec *s, struct error **err);

/* linux.resources.hugepageLimits of RES (may be NULL), as runc writes
 * them on cgroup v2: hugetlb.<pageSize>.max files of the container's
 * cgroup, put in s->unified before the entries spec_parse_unified adds
 * (call it first), so that unified wins as with runc. pageSize is one of
 * the guest's (x86-64): "2MB" or "1GB"; limit is bytes. At most 2. */
int spec_parse_hugepage_limits(json_object *res, Cocoon__ContainerSpec *s, struct error **err);

/* Frees what spec_parse_sysctl, spec_parse_device_rules,
 * spec_parse_time_offsets and spec_parse_unified put in s. */
void spec_free_kernel(Cocoon__ContainerSpec *s);
