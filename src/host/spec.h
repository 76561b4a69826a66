/* Reading an OCI bundle's config.json into the structured subset the guest
 * understands. Every field cocoon does not honour gets a warning or an error
 * that names it; nothing is ignored silently. */
#pragma once

#include "error.h"
#include "pod.h"
#include "proto.h"
#include "volumes.h"

struct json_object;

#define SPEC_MAX_BYTES (4 * 1024 * 1024)
#define SPEC_MAX_MOUNTS 64
/* Every bind mount the host accepts must fit the guest's table. */
_Static_assert(SPEC_MAX_MOUNTS <= COCOON_MAX_BINDS,
	       "spec mounts exceed the guest's bind-mount limit");
#define SPEC_MAX_STRINGS 4096
#define SPEC_MAX_SECCOMP_RULES 1024

struct oci_bundle {
	char *bundle;	  /* absolute bundle path */
	char *rootfs;	  /* absolute host path of root.path */
	char *netns_path; /* the engine's network namespace to carry, or NULL */
	char *cgroup;	  /* linux.cgroupsPath as a cgroupfs path (cgroup-mirror.h), or NULL */
	Cocoon__ContainerSpec *spec;
	struct volume volumes[SPEC_MAX_MOUNTS]; /* the bind mounts of host paths */
	size_t n_volumes;
	int cpuset_cpus; /* CPUs in linux.resources.cpu.cpus, 0 when none */
	char **warnings;
	size_t n_warnings;
	struct spec_pod pod; /* the pod it belongs to (pod.h) */
};

/* Parses bundle/config.json for container id. */
int spec_load(const char *bundle, const char *id, struct oci_bundle *out, struct error **err);
/* spec_load() on text already read: the NUL-terminated config.json text
 * (at most SPEC_MAX_BYTES is the caller's check). bundle_dir is the bundle's
 * absolute, resolved path (root.path is relative to it); source names the
 * text in errors. On error *out holds what was parsed; spec_free() it. */
int spec_parse(const char *bundle_dir, const char *source, const char *text, const char *id,
	       struct oci_bundle *out, struct error **err);
/* Parses a process object (exec --process, or the "process" member). */
int spec_parse_process_file(const char *path, Cocoon__ProcessSpec **out, struct error **err);
void spec_process_free(Cocoon__ProcessSpec *p);
void spec_free(struct oci_bundle *b);
/* The number of CPUs a cpuset list ("0-3,6") names, -1 when malformed. */
int spec_cpuset_count(const char *cpus);

/* A warning about the spec, kept for the caller to print. */
void spec_warn(struct oci_bundle *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* spec-confine.c: process.capabilities, linux.seccomp, maskedPaths and
 * readonlyPaths. json is a json_object *. */
int spec_cap_from_name(const char *name);
int spec_parse_capabilities(struct json_object *proc, Cocoon__ProcessSpec *p, struct oci_bundle *b,
			    struct error **err);
int spec_parse_seccomp(struct json_object *lin, Cocoon__ContainerSpec *s, struct oci_bundle *b,
		       struct error **err);
int spec_parse_paths(struct json_object *lin, Cocoon__ContainerSpec *s, struct error **err);
void spec_free_confinement(Cocoon__ContainerSpec *s);
