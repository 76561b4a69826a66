/* config.json's linux.resources and linux.cgroupsPath (spec-resources.h). */
#include "spec-resources.h"
#include "spec-bundle.h"
#include "spec-json.h"
#include "cleanup.h"
#include "cgroup-mirror.h"
#include "resources.h"

#include <stdlib.h>
#include <string.h>

/* The CPUs a cpuset string names ("0-3,6"), or -1 when it is malformed. */
int spec_cpuset_count(const char *cpus)
{
	int n = 0;
	const char *p = cpus;
	while (*p) {
		char *end;
		long a = strtol(p, &end, 10), z = a;
		if (end == p || a < 0)
			return -1;
		if (*end == '-') {
			p = end + 1;
			z = strtol(p, &end, 10);
			if (end == p || z < a)
				return -1;
		}
		if (z - a >= 4096)
			return -1;
		n += (int)(z - a + 1);
		if (*end == ',')
			end++;
		else if (*end)
			return -1;
		p = end;
	}
	return n;
}

/* linux.resources: memory, pids and CPU become the container's cgroup
 * limits in the guest and size the VM (resources.c); the rest is named. */
int spec_parse_resources(json_object *res, struct oci_bundle *b, struct error **err)
{
	int r = spec_json_want_type(res, json_type_object, "linux.resources", err);
	if (r < 0 || !res)
		return r;
	/* The rules update --resources shares. */
	if ((r = resources_check_json(res, "config.json: ", "linux.resources.", false, err)) < 0)
		return r;
	Cocoon__Resources *rs = calloc(1, sizeof(*rs));
	if (!rs)
		return error_set(err, ENOMEM, "config.json");
	cocoon__resources__init(rs);
	b->spec->resources = rs;
	json_object *mem = spec_json_member(res, "memory"), *pids = spec_json_member(res, "pids"),
		    *cpu = spec_json_member(res, "cpu");
	int64_t v = 0;
	if ((r = spec_json_want_type(mem, json_type_object, "linux.resources.memory", err)) < 0 ||
	    (r = spec_json_want_type(pids, json_type_object, "linux.resources.pids", err)) < 0 ||
	    (r = spec_json_want_type(cpu, json_type_object, "linux.resources.cpu", err)) < 0)
		return r;
	/* -1 is "no limit" (the runtime spec); any other negative value
	 * would have been taken as none without a word. */
	if ((r = spec_json_int_unlimited(mem, "limit", "linux.resources.memory.limit", &v, err)) <
	    0)
		return r;
	rs->memory_limit = v > 0 ? (uint64_t)v : 0;
	v = 0;
	if ((r = spec_json_int_unlimited(pids, "limit", "linux.resources.pids.limit", &v, err)) < 0)
		return r;
	rs->pids_limit = v > 0 ? v : 0;
	v = 0;
	if ((r = spec_json_int_unlimited(cpu, "quota", "linux.resources.cpu.quota", &v, err)) < 0)
		return r;
	rs->cpu_quota = v > 0 ? v : 0;
	if ((r = spec_json_uint(cpu, "period", "linux.resources.cpu.period", 1000000,
				&rs->cpu_period, err)) < 0 ||
	    (r = spec_json_uint(cpu, "shares", "linux.resources.cpu.shares", 262144,
				&rs->cpu_shares, err)) < 0)
		return r;
	_cleanup_free_ char *cpus = NULL;
	if ((r = spec_json_string(cpu, "cpus", "linux.resources.cpu.cpus", false, &cpus, err)) < 0)
		return r;
	if (cpus && *cpus && (b->cpuset_cpus = spec_cpuset_count(cpus)) < 0)
		return error_setx(err, EINVAL,
				  "config.json: linux.resources.cpu.cpus: '%s' is not a CPU list",
				  cpus);
	static const char *const mem_unapplied[] = {"reservation", "swap", "kernel", "kernelTCP",
						    "swappiness"};
	for (size_t i = 0; i < ARRAY_SIZE(mem_unapplied); i++)
		if (spec_json_member(mem, mem_unapplied[i]))
			spec_warn(b,
				  "linux.resources.memory.%s is not applied inside the VM; ignored",
				  mem_unapplied[i]);
	static const char *const unapplied[] = {"blockIO", "network", "rdma"};
	for (size_t i = 0; i < ARRAY_SIZE(unapplied); i++)
		if (spec_json_member(res, unapplied[i]))
			spec_warn(b, "linux.resources.%s is not applied inside the VM; ignored",
				  unapplied[i]);
	return 0;
}

/* linux.cgroupsPath: where the shim shows the engines the container's
 * figures (cgroup-mirror.h). */
int spec_parse_cgroups_path(json_object *lin, struct oci_bundle *b, struct error **err)
{
	_cleanup_free_ char *raw = NULL;
	char path[CGMIRROR_PATH_MAX];
	int r = spec_json_string(lin, "cgroupsPath", "linux.cgroupsPath", false, &raw, err);
	if (r < 0 || !raw || !*raw)
		return r;
	if ((r = cgmirror_path(raw, path, sizeof(path), err)) < 0)
		return r;
	b->cgroup = strdup(path);
	return b->cgroup ? 0 : error_set(err, ENOMEM, "config.json");
}
