/* The VM's cost out of the pod's host cgroup (rev16c F1, docs/resources.md
 * "The VM's host cgroup").
 *
 * podman starts conmon, and so cocoon's shim, keeper, QEMU and virtiofsd, in
 * <pod cgroup>/conmon: under `pod create --memory/--cpus`. The pod's VM is
 * sized from those limits plus the guest's own memory (docs/pods.md "Pod
 * sizing"), so in that cgroup the host OOM-kills QEMU, the whole pod, as
 * soon as the pod uses its memory. The VMM is the sandbox's overhead, not
 * its workload (Kata's sandbox_cgroup_only=false overhead cgroup, Kubernetes'
 * PodOverhead); the pod's limits are kept inside the guest, for its members.
 *
 * The rule: before the VM boots, the process that will own it (the keeper,
 * or the shim without one) reads the limits of its own cgroup and of every
 * ancestor (/proc/self/cgroup; cgroup v2 memory.max, cpu.max; v1
 * memory.limit_in_bytes, cpu.cfs_quota_us/cpu.cfs_period_us). When a memory
 * limit is below the VM's memory plus CGOVERHEAD_VMM_MIB (QEMU's and
 * virtiofsd's own), or a CPU quota below the VM's vCPUs, it moves itself into
 * <hierarchy>/cocoon.overhead/<container id> (mode 0700, no limits) in each
 * hierarchy with such a limit (the one v2 hierarchy). QEMU, virtiofsd and the
 * guard are forked after and stay there. Any other placement is left as the
 * engine chose it. When the VM is down the owner moves back to where it was
 * (the hierarchy's root when that is gone) and removes the cgroup; `cocoon
 * delete` removes one left by an owner that was killed. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define CGOVERHEAD_DIR "cocoon.overhead"
#define CGOVERHEAD_VMM_MIB 256 /* MiB over the VM's memory: QEMU's and virtiofsd's own */
#define CGOVERHEAD_MAX 4       /* hierarchies moved in: v1 memory and cpu, or v2 */

struct cgoverhead {
	int n;
	struct {
		char mount[128];   /* the hierarchy's mount point */
		char origin[1024]; /* the cgroup left, relative to it */
	} moved[CGOVERHEAD_MAX];
	char id[80];
};

/* For a VM of memory_mib MiB and vcpus vCPUs of container ID: moves the
 * calling process (see above) when a limit is in the way, under
 * cgroup_root (/sys/fs/cgroup; tests pass another tree) as /proc/self/cgroup
 * names it (proc_cgroup: that file's path, for tests). Returns 1 when moved
 * (o says where from), 0 when no limit is in the way, or a negative errno
 * with err naming the cgroup; then nothing is moved and no cgroup left. */
int cgoverhead_enter(struct cgoverhead *o, const char *cgroup_root, const char *proc_cgroup,
		     const char *id, int memory_mib, int vcpus, struct error **err);

/* The VM is down: back where o's process came from, and its overhead cgroup
 * removed. Best effort (logs nothing; a cgroup left is removed by delete). */
void cgoverhead_leave(struct cgoverhead *o);

/* delete: removes <hierarchy>/cocoon.overhead/<id> under cgroup_root where
 * one is left and empty. Best effort. */
void cgoverhead_remove(const char *cgroup_root, const char *id);
