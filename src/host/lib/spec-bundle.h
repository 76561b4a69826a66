/* The parsed bundle (struct oci_bundle) and the spec's limits: what spec.c
 * and its parts (spec-*.c) fill in, and the rest of the host reads. Types
 * only; spec.h has the functions. */
#pragma once

#include "pod.h"
#include "proto.h"
#include "volumes.h"

struct json_object;

#define SPEC_MAX_BYTES (4 * 1024 * 1024)
/* A spec's mounts: at most COCOON_MAX_BINDS, so that every bind mount the
 * host accepts fits the guest's table. */
#define SPEC_MAX_STRINGS 4096
#define SPEC_MAX_SECCOMP_RULES 1024

struct oci_bundle {
	char *bundle;	  /* absolute bundle path */
	char *rootfs;	  /* absolute host path of root.path */
	char *netns_path; /* the engine's network namespace to carry, or NULL */
	char *cgroup;	  /* linux.cgroupsPath as a cgroupfs path (cgroup-mirror.h), or NULL */
	Cocoon__ContainerSpec *spec;
	struct volume volumes[COCOON_MAX_BINDS]; /* the bind mounts of host paths */
	size_t n_volumes;
	int cpuset_cpus; /* CPUs in linux.resources.cpu.cpus, 0 when none */
	char **warnings;
	size_t n_warnings;
	struct spec_pod pod; /* the pod it belongs to (pod.h) */
};
