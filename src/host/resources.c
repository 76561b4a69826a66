#include "resources.h"

#include <errno.h>

int resources_vm_size(const struct cocoon_config *cfg, const Cocoon__Resources *r, int cpuset_cpus,
		      int *memory_mib, int *vcpus, struct error **err)
{
	int64_t mem = cfg->memory_mib, cpus = cfg->vcpus;

	if (r && r->memory_limit) {
		int64_t limit = (int64_t)((r->memory_limit + (1 << 20) - 1) >> 20);
		if (limit + RESOURCES_GUEST_OVERHEAD_MIB > cfg->max_memory_mib)
			return error_setx(err, E2BIG,
					  "linux.resources.memory.limit (%lld MiB) and the guest's %d MiB do not fit "
					  "in vm.max_memory_mib = %lld",
					  (long long)limit, RESOURCES_GUEST_OVERHEAD_MIB, (long long)cfg->max_memory_mib);
		mem = limit + RESOURCES_GUEST_OVERHEAD_MIB + (cfg->enable_checkpoint ? limit : 0);
		if (mem < 128)
			mem = 128;
	}
	if (r && r->cpu_quota > 0 && r->cpu_period > 0)
		cpus = (r->cpu_quota + (int64_t)r->cpu_period - 1) / (int64_t)r->cpu_period;
	else if (cpuset_cpus > 0)
		cpus = cpuset_cpus;
	*memory_mib = (int)(mem > cfg->max_memory_mib ? cfg->max_memory_mib : mem);
	*vcpus = (int)(cpus > cfg->max_vcpus ? cfg->max_vcpus : cpus < 1 ? 1 : cpus);
	return 0;
}
