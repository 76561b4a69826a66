/* Pods: the limits of the whole pod, which size the sandbox's VM (pod.h,
 * docs/pods.md "Pod sizing"). The engines say them in two ways: containerd's
 * CRI plugin puts the kubelet's pod-level sums on the sandbox as annotations
 * (spec.c reads them), and both podman (`pod create --memory/--cpus`) and the
 * kubelet set them on the cgroup they make for the pod, the parent of each
 * container's linux.cgroupsPath. cocoon does not put its shim or QEMU in that
 * cgroup; it reads the limits there. */
#include "cleanup.h"
#include "paths.h"
#include "pod.h"
#include "resources.h"
#include "spec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A memory limit at or above this is "none": cgroup v1 writes
 * PAGE_COUNTER_MAX pages (9223372036854771712 with 4 KiB pages). */
#define POD_NO_LIMIT (UINT64_C(1) << 50)

static bool clean_component(const char *p, size_t n)
{
	return n > 0 && !(n == 1 && p[0] == '.') && !(n == 2 && p[0] == '.' && p[1] == '.');
}

/* systemd's slice "a-b-c.slice" lives at "a.slice/a-b.slice/a-b-c.slice"
 * (systemd.slice(5)); "-.slice" is the root. */
static int slice_path(const char *slice, char *out, size_t size)
{
	size_t len = strlen(slice), used = 0;
	if (len < 7 || strcmp(slice + len - 6, ".slice") != 0 || strchr(slice, '/'))
		return -EINVAL;
	len -= 6;
	if (len == 1 && slice[0] == '-')
		return -EINVAL; /* the root has no parent worth reading */
	out[0] = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && slice[i] != '-')
			continue;
		if (i == 0 || slice[i - 1] == '-')
			return -EINVAL; /* an empty part */
		int n = snprintf(out + used, size - used, "%s%.*s.slice", used ? "/" : "", (int)i,
				 slice);
		if (n < 0 || (size_t)n >= size - used)
			return -ENAMETOOLONG;
		used += (size_t)n;
	}
	return 0;
}

int pod_cgroup_parent(const char *cgroups_path, char *out, size_t size)
{
	const char *colon = strchr(cgroups_path, ':');
	if (colon) {
		/* runc's systemd form: "parent.slice:prefix:name"; the
		 * container's scope sits in the slice. */
		char slice[256];
		size_t n = (size_t)(colon - cgroups_path);
		if (n >= sizeof(slice) || !strchr(colon + 1, ':'))
			return -EINVAL;
		memcpy(slice, cgroups_path, n);
		slice[n] = 0;
		return slice_path(n ? slice : "system.slice", out, size);
	}
	/* cgroupfs: an absolute path; relative ones are the caller's, unknown
	 * here. */
	if (cgroups_path[0] != '/' || strstr(cgroups_path, "//"))
		return -EINVAL;
	const char *last = strrchr(cgroups_path, '/');
	const char *p = cgroups_path + 1;
	size_t used = 0;
	if (last == cgroups_path)
		return -EINVAL; /* "/x": its parent is the root */
	while (p < last) {
		const char *e = strchr(p, '/');
		size_t n = (size_t)(e - p);
		if (!clean_component(p, n))
			return -EINVAL;
		if (used + n + 2 > size)
			return -ENAMETOOLONG;
		if (used)
			out[used++] = '/';
		memcpy(out + used, p, n);
		used += n;
		p = e + 1;
	}
	if (!clean_component(last + 1, strlen(last + 1)))
		return -EINVAL;
	out[used] = 0;
	return 0;
}

/* The first line of root/dir/name, or NULL when there is none. */
static char *read_limit(const char *root, const char *hier, const char *dir, const char *name)
{
	_cleanup_free_ char *path = NULL;
	char *text = NULL;
	if (asprintf(&path, "%s%s%s/%s/%s", root, hier ? "/" : "", hier ? hier : "", dir, name) <
		    0 ||
	    read_file_bounded(path, 256, &text, NULL, NULL) < 0)
		return NULL;
	text[strcspn(text, "\n")] = 0;
	return text;
}

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !*s || *s == '-')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || (*end && *end != ' '))
		return false;
	*out = v;
	return true;
}

/* pids.max: "max" or a number; at or above the kernel's PID_MAX_LIMIT it
 * limits nothing. */
static int64_t pids_limit(const char *root, const char *hier, const char *dir)
{
	_cleanup_free_ char *p = read_limit(root, hier, dir, "pids.max");
	uint64_t v;
	if (!parse_u64(p, &v) || v == 0 || v >= COCOON_POD_PIDS_MAX)
		return 0;
	return (int64_t)v;
}

static void cgroup_limits(const char *root, const char *dir, struct pod_limits *l)
{
	uint64_t mem = 0, quota = 0, period = 0;
	int64_t pids;
	_cleanup_free_ char *probe = NULL;
	if (asprintf(&probe, "%s/cgroup.controllers", root) < 0)
		return;
	if (access(probe, F_OK) == 0) {
		/* v2: memory.max "max" or bytes; cpu.max "max 100000" or
		 * "150000 100000". */
		_cleanup_free_ char *m = read_limit(root, NULL, dir, "memory.max");
		_cleanup_free_ char *c = read_limit(root, NULL, dir, "cpu.max");
		if (!parse_u64(m, &mem))
			mem = 0;
		if (c && parse_u64(c, &quota)) {
			const char *sp = strchr(c, ' ');
			if (!sp || !parse_u64(sp + 1, &period))
				quota = 0;
		}
		pids = pids_limit(root, NULL, dir);
	} else {
		_cleanup_free_ char *m = read_limit(root, "memory", dir, "memory.limit_in_bytes");
		_cleanup_free_ char *q = read_limit(root, "cpu", dir, "cpu.cfs_quota_us");
		_cleanup_free_ char *p = read_limit(root, "cpu", dir, "cpu.cfs_period_us");
		if (!parse_u64(m, &mem))
			mem = 0;
		if (!parse_u64(q, &quota) || !parse_u64(p, &period)) /* quota -1: none */
			quota = 0;
		pids = pids_limit(root, "pids", dir);
	}
	if (mem >= POD_NO_LIMIT)
		mem = 0;
	if (!quota || !period || period > 1000000 || quota > (UINT64_C(1) << 31))
		quota = period = 0;
	l->memory = mem;
	l->cpu_quota = (int64_t)quota;
	l->cpu_period = period;
	l->pids = pids;
	if (mem || quota || pids)
		snprintf(l->source, sizeof(l->source), "the limits of its pod's cgroup %.128s",
			 dir);
}

static bool all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return n > 0;
}

bool pod_cgroup_is_pod(const char *parent)
{
	const char *last = strrchr(parent, '/');
	last = last ? last + 1 : parent;
	size_t n = strlen(last);
	/* podman, cgroupfs: <cgroup parent>/<64-hex pod id> (libpod's
	 * cgroupfs pod cgroup); systemd: machine-libpod_pod_<id>.slice. */
	if (n == 64 && all_hex(last, n))
		return true;
	if (strstr(last, "libpod_pod_") && n > 6 && strcmp(last + n - 6, ".slice") == 0)
		return true;
	/* The kubelet: .../pod<uid> (cgroupfs), ...-pod<uid>.slice (systemd). */
	if (strncmp(last, "pod", 3) == 0 && n > 3 && !strchr(last, '.'))
		return true;
	return strstr(last, "-pod") && n > 6 && strcmp(last + n - 6, ".slice") == 0;
}

int pod_limits_of(const struct oci_bundle *b, const char *cgroup_root, struct pod_limits *out,
		  struct error **err)
{
	char parent[512];
	struct pod_limits cg;
	bool annotated =
		b->pod.limits.memory || (b->pod.limits.cpu_quota && b->pod.limits.cpu_period);
	(void)err;
	memset(out, 0, sizeof(*out));
	if (annotated)
		*out = b->pod.limits;
	/* No cgroupsPath, or one cocoon cannot place: nothing to read, and no
	 * reason to refuse the container (the VM gets the configured size). */
	if (!b->pod.cgroups_path ||
	    pod_cgroup_parent(b->pod.cgroups_path, parent, sizeof(parent)) < 0)
		return 0;
	/* Only a pod's cgroup carries the pod's limits: the parent of a plain
	 * container's (machine.slice, libpod_parent, containerd's /<namespace>)
	 * is no pod, and its limits are the host's, not the container's
	 * (rev16c F2). A CRI sandbox's parent is the kubelet's pod cgroup. */
	if (!b->pod.sandbox && !pod_cgroup_is_pod(parent))
		return 0;
	memset(&cg, 0, sizeof(cg));
	cgroup_limits(cgroup_root, parent, &cg);
	/* The annotations carry no pids limit: the kubelet's podPidsLimit is
	 * the pod cgroup's pids.max. */
	if (annotated)
		out->pids = cg.pids;
	else
		*out = cg;
	return 0;
}

int pod_vm_size(const struct cocoon_config *cfg, const struct oci_bundle *b,
		const char *cgroup_root, int *memory_mib, int *vcpus, struct pod_limits *pl,
		struct error **err)
{
	const Cocoon__Resources *own = b->spec->resources;
	Cocoon__Resources pod_r = COCOON__RESOURCES__INIT;
	const Cocoon__Resources *size_from = own;
	struct pod_limits none;
	int r;

	if (!pl)
		pl = &none;
	memset(pl, 0, sizeof(*pl));
	if (pod_may_host_members(b) && (r = pod_limits_of(b, cgroup_root, pl, err)) < 0)
		return r;
	if (pl->memory || pl->cpu_quota) {
		if (own)
			pod_r = *own;
		if (pl->memory)
			pod_r.memory_limit = pl->memory;
		if (pl->cpu_quota) {
			pod_r.cpu_quota = pl->cpu_quota;
			pod_r.cpu_period = pl->cpu_period;
		}
		size_from = &pod_r;
	}
	if ((r = resources_vm_size(cfg, size_from, b->cpuset_cpus, memory_mib, vcpus, err)) < 0)
		return pl->memory ? error_wrap(err, "pod limits from %s", pl->source) : r;
	return 0;
}
