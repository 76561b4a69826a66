/* Pods: every container of a pod runs in the VM of the pod's sandbox (CRI's
 * pause container, podman's infra container), each with a shim of its own
 * (docs/pods.md).
 *
 * The pod's keeper, a process of the sandbox's shim but apart from it, owns
 * the VM and its agent channel and lives until the last container of the
 * pod has gone (docs/pods.md "Lifetimes"). A member's shim talks to the
 * agent through the keeper's control socket (the sandbox's shim.sock): it
 * sends the requests of its own container, and the keeper sends it that
 * container's output and exit events.
 *
 * The members' rootfs reach the running VM through one more 9p share, tag
 * "pod", made at boot: <sandbox dir>/pod, a read-only bind of pod-rw in the
 * keeper's own mount namespace. A member's shim enters that namespace
 * and bind-mounts its rootfs on pod/<id>/rootfs; QEMU sees it at once. The
 * guest cannot write into pod/ itself, so it can plant nothing in the paths
 * the host mounts on, and the binds vanish with the keeper's mount
 * namespace, however it ends. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "opts.h"
#include "contract.h"
#include "error.h"

struct oci_bundle;

/* A pod checkpoint's list of its members and their bundles, in the
 * checkpoint's directory (checkpoint_pod writes it, restore --pod reads it). */
#define POD_CHECKPOINT_FILE "pod.json"
#define POD_SHARE "pod"
#define POD_SHARE_RW "pod-rw"
/* The agent mounts the pod share (COCOON_TAG_POD) at COCOON_GUEST_POD_DIR:
 * the sources of a member's bind mounts of host files are under it. */
/* A member restored in place gets its checkpoint's image directories (the
 * checkpoint and its pre-dumps, images.h COCOON_MAX_CHAIN) through the pod
 * share too: pod/<id>/images<i>, read-only. */
#define POD_MAX_IMAGES 8
/* The most containers a pod has besides its sandbox. Each member's shim
 * holds a connection to the sandbox's shim for its lifetime, so the
 * sandbox's shim keeps this many connections for members on top of those of
 * the engine's commands (shim.h SHIM_MAX_CONTROL); checkpoint --pod and
 * restore --pod take a pod of this size. */
#define POD_MAX_MEMBERS 32
/* In a member's state directory: the id of its pod's sandbox. */
#define POD_SANDBOX_FILE "pod-sandbox"
/* In a member's state directory too: the pid of its pod's keeper, which
 * finds the sandbox's directory once it moved out of the id's way. */
#define POD_KEEPER_OF_FILE "pod-keeper"
/* In a sandbox's: the network namespace path it carried into the VM, which
 * its members must name too when they name one by path. */
#define POD_NETNS_FILE "pod-netns"

/* Limits of a whole pod: memory in bytes, CFS quota and period in µs;
 * 0 is "none". source names where they came from, for errors and logs. */
struct pod_limits {
	uint64_t memory;
	int64_t cpu_quota;
	uint64_t cpu_period;
	char source[160];
};

/* What config.json says about the container's pod. */
struct spec_pod {
	bool sandbox;	  /* CRI's (or CRI-O's) sandbox container */
	char *sandbox_id; /* CRI's (or CRI-O's) id of the pod's sandbox */
	pid_t join_pid;	  /* the pid of /proc/<pid>/ns/... namespace paths */
	/* A CRI sandbox's pod-level limits: containerd's (>= 1.6.7, with a
	 * kubelet >= 1.23) annotations io.kubernetes.cri.sandbox-memory,
	 * -cpu-quota and -cpu-period, the sums of the pod's containers. */
	struct pod_limits limits;
	char *cgroups_path; /* linux.cgroupsPath, NULL when none */
	/* A CRI member's network namespace path (by CNI path, not by
	 * /proc/<pid>): it must be its sandbox's (pod_resolve checks). */
	char *netns_path;
};

/* The sandbox a member joins. */
struct pod_sandbox {
	char id[65];
	char *dir;
	pid_t shim_pid; /* the sandbox's shim: the pid its engine knows */
	unsigned long long shim_start;
	pid_t keeper_pid; /* the pod's keeper: QEMU, the channel, the pod share */
	unsigned long long keeper_start;
};
/* Whether the container needs the pod share at boot: a CRI sandbox, or a
 * container whose namespaces no one else's spec names yet (podman's infra
 * container carries no mark; any container may become a sandbox). */
bool pod_may_host_members(const struct oci_bundle *b);

/* Finds the sandbox a member joins (by CRI annotation or by the shim pid
 * of /proc/<pid>/ns paths; restore --pod names it in sandbox_id instead,
 * NULL otherwise). Returns 1 and fills sb for a member, 0 for a container
 * that joins no pod, or a negative errno with a clear error. */
int pod_resolve(struct global_opts *g, const struct oci_bundle *b, const char *sandbox_id,
		struct pod_sandbox *sb, struct error **err);
void pod_sandbox_free(struct pod_sandbox *sb);
/* Writes POD_NETNS_FILE into a sandbox's state directory. */
int pod_sandbox_record_netns(const char *dir, const char *netns_path, struct error **err);
/* Writes POD_SANDBOX_FILE and POD_KEEPER_OF_FILE into a member's state
 * directory. */
int pod_member_record(const char *dir, const struct pod_sandbox *sb, struct error **err);

/* A pod sandbox deleted while members of it run keeps its directory, which
 * holds the pod share and the VM's shared directory, until its keeper ends
 * (docs/pods.md "Lifetimes"). The delete moves it out of the id's way, to
 * <root>/.pod-<keeper pid>-<id> (no container id starts with '.'), so that
 * the id is free for a new container at once (podman's `pod start` after
 * `podman stop <infra>` creates the infra container again). Returns that
 * name for the sandbox directory DIR (malloc'd; NULL when out of memory). */
char *pod_kept_dir(const char *dir, pid_t keeper);
/* The sandbox's directory as it is now: the moved one when it exists, else
 * sb->dir (malloc'd; NULL when out of memory). */
char *pod_sandbox_dir_now(const struct pod_sandbox *sb);

/* The sandbox's shim, before its VM starts: a mount namespace of its own and
 * the pod share in it (<dir>/pod). */
int pod_share_prepare(const char *dir, struct error **err);

/* A member's shim: enters the sandbox's mount namespace and shares the
 * rootfs, the member's volumes and, for a restore, the N_IMAGES image
 * directories IMAGES (read-only) into pod/<id>. Rewrites the spec so that
 * the guest finds them there and joins the pod's namespaces. */
int pod_member_share(const struct pod_sandbox *sb, const char *id, struct oci_bundle *b,
		     const char *const *images, int n_images, struct error **err);
/* For a member's checkpoint: the state directory of its sandbox, where the
 * guest leaves the images (its shared directory), in *out (malloc'd).
 * Returns 1 for a member, 0 for any other container (*out NULL), or a
 * negative errno. DIR is the member's state directory. */
int pod_images_state_dir(struct global_opts *g, const char *dir, char **out, struct error **err);
/* pod-size.c: the limits a sandbox's VM is sized from, for the whole pod
 * (docs/pods.md "Pod sizing"): CRI's pod-level annotations (spec_pod.limits),
 * else the limits of the cgroup the engine made for the pod, the parent of
 * linux.cgroupsPath (podman pod create --memory/--cpus, the kubelet's pod
 * cgroup), read under cgroup_root (/sys/fs/cgroup; v2 or v1's memory and
 * cpu hierarchies). *out is zeroed when neither says anything. Errors are
 * an unreadable limit file or a malformed cgroupsPath, named. */
int pod_limits_of(const struct oci_bundle *b, const char *cgroup_root, struct pod_limits *out,
		  struct error **err);
/* Whether PARENT (pod_cgroup_parent's form) is the cgroup an engine made for
 * a pod: podman's (cgroupfs <parent>/<64-hex pod id>, systemd
 * machine-libpod_pod_<id>.slice) or the kubelet's (pod<uid>, ...-pod<uid>
 * .slice). pod_limits_of reads the limits of no other parent (a plain
 * container's machine.slice or libpod_parent is not its pod). */
bool pod_cgroup_is_pod(const char *parent);
/* The VM a container of bundle b boots (the shim's, and what a whole-VM
 * restore must match before it decompresses anything): resources_vm_size()
 * from its linux.resources, or, for a container that may host a pod's
 * members, with the pod's limits (pod_limits_of under cgroup_root) over
 * them. *memory_mib in MiB, *vcpus; *pl (may be NULL) gets the pod's
 * limits. Errors: resources_vm_size()'s, wrapped with the pod limits'
 * source when those are what does not fit, or pod_limits_of()'s. */
int pod_vm_size(const struct cocoon_config *cfg, const struct oci_bundle *b,
		const char *cgroup_root, int *memory_mib, int *vcpus, struct pod_limits *pl,
		struct error **err);
/* The parent of a cgroupsPath as a path under a cgroup hierarchy, in out:
 * "/a/b/c" gives "a/b"; systemd's "parent.slice:prefix:name" gives the
 * slice's path ("machine-libpod_pod_X.slice" is
 * "machine.slice/machine-libpod_pod_X.slice"). Returns 0, or -EINVAL for
 * a path with "..", an empty component or no parent. */
int pod_cgroup_parent(const char *cgroups_path, char *out, size_t size);

/* Undoes pod_member_share; safe to call when it did not run or failed. */
void pod_member_unshare(const struct pod_sandbox *sb, const char *id);
