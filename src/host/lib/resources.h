/* The VM's size from the container's linux.resources (docs/config.md). */
#pragma once

#include "config.h"
#include "error.h"
#include "proto.h"

#include <json-c/json.h>
#include <stdbool.h>

/* The guest's own share beside the container: kernel, agent, CRIU's
 * working memory. Measured idle at about 60 MiB under the 6.1 guest. */
#define RESOURCES_GUEST_OVERHEAD_MIB 128

/* memory: limit + overhead + (checkpoints enabled: the limit again, since
 * CRIU dumps into guest memory first); no limit: vm.memory_mib. vCPUs:
 * ceil(quota / period), else the cpuset's CPUs, else vm.vcpus. Both at
 * most vm.max_memory_mib and vm.max_vcpus; a limit that cannot fit with
 * the overhead under the maximum is an error naming both. */
int resources_vm_size(const struct cocoon_config *cfg, const Cocoon__Resources *r, int cpuset_cpus,
		      int *memory_mib, int *vcpus, struct error **err);

/* update: a memory limit (bytes; 0, no limit, always fits) must fit in the
 * running VM of vm_memory_mib (sandbox.h) less the guest's overhead. The
 * error names the limit, the VM's size and why it cannot grow. */
int resources_update_fits(int vm_memory_mib, uint64_t memory_limit, struct error **err);

/* The value rules config.json's linux.resources and update --resources
 * share, on the raw JSON (res: the linux.resources object): memory, pids
 * and cpu are objects; memory.limit, pids.limit and cpu.quota are integers,
 * -1 or above (the runtime spec's "no limit"; any other negative would be
 * taken as none without a word); cpu.period at most 1000000 us and
 * cpu.shares at most 262144 (runc's cgroup v2 conversion); a period or a
 * quota below the kernel's 1000 us minimum (kernel/sched/core.c,
 * min_cfs_quota_period) is refused. For update (runc update's reading) a
 * period of 0 means "as it is"; in config.json a given 0 is refused. Errors
 * read "<prefix><path><field>: ...", e.g. prefix "config.json: " and path
 * "linux.resources.", or "--resources: " and "". Returns 0 or -EINVAL /
 * -ERANGE. */
int resources_check_json(json_object *res, const char *prefix, const char *path, bool update,
			 struct error **err);

/* runc update --resources: the OCI linux.resources JSON (what containerd's
 * runc shim and podman write) into an UpdateRequest's flags and r. As runc
 * reads it: 0 or absent leaves a limit as it is, -1 lifts it. What the VM
 * does not apply (swap, cpuset, blockIO, ...) is named, comma-separated, in
 * ignored. The values go through resources_check_json first, as
 * config.json's do at create. Errors name the field. */
int resources_update_from_json(const char *text, Cocoon__UpdateRequest *u, Cocoon__Resources *r,
			       char *ignored, size_t ignored_size, struct error **err);
