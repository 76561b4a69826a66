#include "resources.h"
#include "cleanup.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdint.h>
#include <string.h>

int resources_vm_size(const struct cocoon_config *cfg, const Cocoon__Resources *r, int cpuset_cpus,
		      int *memory_mib, int *vcpus, struct error **err)
{
	int64_t mem = cfg->memory_mib, cpus = cfg->vcpus;

	if (r && r->memory_limit) {
		int64_t limit = (int64_t)((r->memory_limit + (1 << 20) - 1) >> 20);
		if (limit + RESOURCES_GUEST_OVERHEAD_MIB > cfg->max_memory_mib)
			return error_setx(
				err, E2BIG,
				"linux.resources.memory.limit (%lld MiB) and the guest's %d MiB do not fit in vm.max_memory_mib = %lld",
				(long long)limit, RESOURCES_GUEST_OVERHEAD_MIB,
				(long long)cfg->max_memory_mib);
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

int resources_update_fits(int vm_memory_mib, uint64_t memory_limit, struct error **err)
{
	int64_t limit = (int64_t)((memory_limit + (1 << 20) - 1) >> 20);
	int64_t room = (int64_t)vm_memory_mib - RESOURCES_GUEST_OVERHEAD_MIB;
	if (vm_memory_mib <= 0 || memory_limit == 0 || limit <= room)
		return 0;
	return error_setx(
		err, E2BIG,
		"memory limit %lld MiB exceeds what the VM can give: its %d MiB less the guest's %d MiB is %lld MiB; a VM's memory is fixed when it boots (no memory hotplug or balloon yet), so a larger limit needs a new container",
		(long long)limit, vm_memory_mib, RESOURCES_GUEST_OVERHEAD_MIB, (long long)room);
}

static void json_putp(json_object **o)
{
	if (*o)
		json_object_put(*o);
}

static json_object *field(json_object *o, const char *key)
{
	json_object *v = NULL;
	return o && json_object_is_type(o, json_type_object) &&
			       json_object_object_get_ex(o, key, &v)
		       ? v
		       : NULL;
}

/* An integer member or its absence; anything else is an error. */
static int get_int64(json_object *o, const char *key, const char *name, bool *present, int64_t *out,
		     struct error **err)
{
	json_object *v = field(o, key);
	*present = false;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return error_setx(err, EINVAL, "--resources: %s: expected an integer", name);
	*out = json_object_get_int64(v);
	*present = true;
	return 0;
}

/* An integer member in [min, max], or its absence. */
static int check_int(json_object *o, const char *key, const char *prefix, const char *path,
		     const char *group, int64_t min, int64_t max, const char *range,
		     struct error **err)
{
	json_object *v = field(o, key);
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return error_setx(err, EINVAL, "%s%s%s.%s: expected an integer", prefix, path,
				  group, key);
	int64_t n = json_object_get_int64(v);
	if (n < min || n > max)
		return error_setx(err, ERANGE, "%s%s%s.%s: %lld %s", prefix, path, group, key,
				  (long long)n, range);
	return 0;
}

int resources_check_json(json_object *res, const char *prefix, const char *path, bool update,
			 struct error **err)
{
	static const char *const groups[] = {"memory", "pids", "cpu"};
	int r;
	if (!res || !json_object_is_type(res, json_type_object))
		return *path ? error_setx(err, EINVAL, "%s%.*s: expected an object", prefix,
					  (int)strlen(path) - 1, path)
			     : error_setx(err, EINVAL, "%snot a JSON object (OCI linux.resources)",
					  prefix);
	for (size_t i = 0; i < ARRAY_SIZE(groups); i++) {
		json_object *g = NULL;
		if (json_object_object_get_ex(res, groups[i], &g) && g &&
		    !json_object_is_type(g, json_type_object))
			return error_setx(err, EINVAL, "%s%s%s: expected an object", prefix, path,
					  groups[i]);
	}
	json_object *mem = field(res, "memory"), *pids = field(res, "pids"),
		    *cpu = field(res, "cpu");
	const char *neg = "is negative (-1 means no limit)";
	if ((r = check_int(mem, "limit", prefix, path, "memory", -1, INT64_MAX, neg, err)) < 0 ||
	    (r = check_int(pids, "limit", prefix, path, "pids", -1, INT64_MAX, neg, err)) < 0 ||
	    (r = check_int(cpu, "quota", prefix, path, "cpu", -1, INT64_MAX, neg, err)) < 0 ||
	    (r = check_int(cpu, "period", prefix, path, "cpu", 0, 1000000,
			   "is out of range (0 .. 1000000 us)", err)) < 0 ||
	    (r = check_int(cpu, "shares", prefix, path, "cpu", 0, 262144,
			   "is out of range (0 .. 262144)", err)) < 0)
		return r;
	json_object *period = field(cpu, "period"), *quota = field(cpu, "quota");
	int64_t p = period ? json_object_get_int64(period) : 0;
	int64_t q = quota ? json_object_get_int64(quota) : 0;
	if (period && p < 1000 && !(update && p == 0))
		return error_setx(err, ERANGE,
				  "%s%scpu.period: %lld us is below the kernel's 1000 us", prefix,
				  path, (long long)p);
	if (q > 0 && q < 1000)
		return error_setx(err, ERANGE,
				  "%s%scpu.quota: %lld us is below the kernel's 1000 us", prefix,
				  path, (long long)q);
	return 0;
}

static bool meaningful(json_object *v)
{
	if (!v)
		return false;
	if (json_object_is_type(v, json_type_object))
		return json_object_object_length(v) > 0;
	if (json_object_is_type(v, json_type_array))
		return json_object_array_length(v) > 0;
	if (json_object_is_type(v, json_type_int))
		return json_object_get_int64(v) != 0;
	if (json_object_is_type(v, json_type_string))
		return *json_object_get_string(v) != 0;
	return json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

static void note(char *ignored, size_t size, const char *name)
{
	size_t len = strlen(ignored);
	snprintf(ignored + len, size - len, "%s%s", len ? ", " : "", name);
}

int resources_update_from_json(const char *text, Cocoon__UpdateRequest *u, Cocoon__Resources *r,
			       char *ignored, size_t ignored_size, struct error **err)
{
	_cleanup_(json_putp) json_object *root = json_tokener_parse(text);
	int e;
	ignored[0] = 0;
	if ((e = resources_check_json(root, "--resources: ", "", true, err)) < 0)
		return e;
	json_object *mem = field(root, "memory"), *pids = field(root, "pids"),
		    *cpu = field(root, "cpu");
	bool has;
	int64_t v;
	/* runc update's reading: 0 or absent leaves a limit as it is, -1
	 * (any negative) lifts it. */
	if ((e = get_int64(mem, "limit", "memory.limit", &has, &v, err)) < 0)
		return e;
	if (has && v != 0) {
		u->set_memory = true;
		r->memory_limit = v > 0 ? (uint64_t)v : 0;
	}
	if ((e = get_int64(pids, "limit", "pids.limit", &has, &v, err)) < 0)
		return e;
	if (has && v != 0) {
		u->set_pids = true;
		r->pids_limit = v > 0 ? v : 0;
	}
	int64_t quota = 0, period = 0;
	bool has_quota, has_period;
	if ((e = get_int64(cpu, "quota", "cpu.quota", &has_quota, &quota, err)) < 0 ||
	    (e = get_int64(cpu, "period", "cpu.period", &has_period, &period, err)) < 0)
		return e;
	if (quota != 0 || period != 0) {
		u->set_cpu_max = true;
		r->cpu_quota = quota > 0 ? quota : 0;
		r->cpu_period = (uint64_t)period;
		/* 0 or absent: that half stays as it is (runc update). */
		u->keep_cpu_quota = quota == 0;
		u->keep_cpu_period = period == 0;
	}
	if ((e = get_int64(cpu, "shares", "cpu.shares", &has, &v, err)) < 0)
		return e;
	if (has && v != 0) {
		u->set_cpu_weight = true;
		r->cpu_shares = (uint64_t)v;
	}
	static const char *const mem_other[] = {"reservation", "swap", "kernel", "kernelTCP",
						"swappiness"};
	for (size_t i = 0; i < ARRAY_SIZE(mem_other); i++)
		if (meaningful(field(mem, mem_other[i])))
			note(ignored, ignored_size, mem_other[i]);
	static const char *const cpu_other[] = {"cpus", "mems", "realtimeRuntime",
						"realtimePeriod"};
	for (size_t i = 0; i < ARRAY_SIZE(cpu_other); i++)
		if (meaningful(field(cpu, cpu_other[i])))
			note(ignored, ignored_size, cpu_other[i]);
	static const char *const other[] = {"blockIO", "hugepageLimits", "network",
					    "rdma",    "unified",	 "devices"};
	for (size_t i = 0; i < ARRAY_SIZE(other); i++)
		if (meaningful(field(root, other[i])))
			note(ignored, ignored_size, other[i]);
	return 0;
}
