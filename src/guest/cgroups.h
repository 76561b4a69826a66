#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "contract.h"
#include "error.h"
#include "proto.h"

/* The guest's cgroup v2 hierarchy: a container's cgroup is <root>/<id>, or
 * <root>/pod-<sandbox id>/<id> in a pod with limits (cgroups_pod_make). */
#define CGROUPS_ROOT "/sys/fs/cgroup"
/* Room for a container's cgroup path (two IDs of COCOON_ID_MAX beneath the
 * root) and for a pod's. */
#define CGROUPS_PATH_MAX 160
#define CGROUPS_POD_PATH_MAX 96
_Static_assert(CGROUPS_POD_PATH_MAX >=
		       sizeof(CGROUPS_ROOT "/" COCOON_POD_CGROUP_PREFIX) + COCOON_ID_MAX,
	       "CGROUPS_POD_PATH_MAX: too short for a pod's cgroup");
_Static_assert(CGROUPS_PATH_MAX >= CGROUPS_POD_PATH_MAX + COCOON_ID_MAX,
	       "CGROUPS_PATH_MAX: too short for a pod member's cgroup");

/* Which limits cgroups_apply writes. */
#define CGROUPS_MEMORY 1u
#define CGROUPS_PIDS 2u
#define CGROUPS_CPU_MAX 4u
#define CGROUPS_CPU_WEIGHT 8u

/* Writes value to the file name of the cgroup directory cgroup (cgroup v1 or v2,
 * a path under /sys/fs/cgroup). Returns 0, or -errno from open() or a short
 * write(). The kernel takes a cgroup file's value in one write (cgroup-v2.rst). */
int cgroup_write(const char *cgroup, const char *name, const char *value);

/* Writes memory.max, pids.max, cpu.max and cpu.weight of cgroup (a path)
 * from r. mask names the files (a value of 0 in r writes "max", or the
 * default weight 100); mask 0 means each one r sets (> 0), as at create.
 * Returns 0 or a negative errno; on failure fills *err, naming the file and
 * the value. */
int cgroups_apply(const char *cgroup, const Cocoon__Resources *r, unsigned mask,
		  struct error **err);

/* A new container's cgroup, made: CGROUPS_ROOT/<id>, or POD/<id> in a pod
 * with limits. With POD_LIMITS (ContainerSpec.pod_resources: a sandbox's
 * create or restore) it makes the pod's cgroup (cgroups_pod_make); a member
 * (JOINS, its join_container, not NULL) goes beneath JOINED_POD, the pod
 * cgroup of the container it joins ("" or NULL: none, at the top) and may
 * not carry pod limits itself. CGROUP gets the container's cgroup, POD the
 * pod's ("" when none). Returns 0, or a negative errno with *ERR set; the
 * caller removes what was made (rmdir of both) on failure. */
int cgroups_container_make(const char *id, const char *joins, const Cocoon__Resources *pod_limits,
			   const char *joined_pod, char cgroup[CGROUPS_PATH_MAX],
			   char pod[CGROUPS_POD_PATH_MAX], struct error **err);

/* Moves PID into CGROUP (its cgroup.procs). Returns 0 or -errno. */
int cgroups_join(const char *cgroup, pid_t pid);

/* Pods (ContainerSpec.pod_resources, docs/pods.md "The pod's limits in the
 * guest"): makes the pod's cgroup POD (a path under CGROUPS_ROOT, kept if it
 * exists) and writes R's limits there (memory.max, pids.max, cpu.max), once
 * R holds to cocoon_pod_limits_check (contract.h: R comes from the channel);
 * turns on the cpu, memory and pids controllers beneath it for its
 * containers' cgroups. Returns 0 or a negative errno with *ERR naming the
 * cgroup and the cause. The caller removes POD on failure. */
int cgroups_pod_make(const char *pod, const Cocoon__Resources *r, struct error **err);

/* linux.resources.unified: writes each FILES[i]->value to CGROUP's
 * FILES[i]->name, in order, after enabling the controller the name starts
 * with (runc: libcontainer/cgroups/fs2 setUnified, which writes them after
 * the other limits, so they win). Returns 0 or a negative errno with *ERR
 * naming the file and the kernel's answer. */
int cgroups_apply_unified(const char *cgroup, Cocoon__CgroupFile *const *files, size_t n,
			  struct error **err);

/* cgroup's cpu.max: quota in microseconds (0: "max") and period. Returns 0
 * or a negative errno (no cpu controller: -ENOENT). */
int cgroups_read_cpu_max(const char *cgroup, int64_t *quota, uint64_t *period);

/* Turns on the cpu, memory and pids controllers for the guest's cgroups,
 * so that stats have figures also for a container without limits; a
 * controller the kernel lacks is left out. */
void cgroups_enable_accounting(void);

/* Storage for a StatsReply's memory.stat entries: owned by the caller,
 * valid while the reply is. */
struct cgroups_stat_buf {
	Cocoon__StatEntry entries[64];
	Cocoon__StatEntry *ptrs[64];
	char keys[64][64];
};

/* Fills r from cgroup's cpu.stat, memory.{current,max,peak,events,stat},
 * pids.{current,max} and the guest's MemTotal; a file that is missing (a
 * controller not enabled) leaves its fields 0. */
void cgroups_stats(const char *cgroup, Cocoon__StatsReply *r, struct cgroups_stat_buf *buf);

/* cgroup's memory.events oom_kill: the OOM kills in it so far (0 without a
 * memory controller). */
uint64_t cgroups_oom_kills(const char *cgroup);
