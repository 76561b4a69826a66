/* The VM's size from the container's linux.resources (docs/config.md). */
#pragma once

#include "config.h"
#include "error.h"
#include "proto.h"

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
