/* Reading an OCI bundle's config.json into the structured subset the guest
 * understands. Every field cocoon does not honour gets a warning or an error
 * that names it; nothing is ignored silently. */
#pragma once

#include "error.h"
#include "pod.h"
#include "proto.h"

#define SPEC_MAX_BYTES (4 * 1024 * 1024)
#define SPEC_MAX_MOUNTS 64
#define SPEC_MAX_STRINGS 4096

struct bind_file {
	char *host_path;  /* source on the host */
	char *guest_name; /* file name under shared/mounts/ */
};

struct oci_bundle {
	char *bundle;	/* absolute bundle path */
	char *rootfs;	/* absolute host path of root.path */
	Cocoon__ContainerSpec *spec;
	struct bind_file binds[SPEC_MAX_MOUNTS];
	size_t n_binds;
	char **warnings;
	size_t n_warnings;
	struct spec_pod pod; /* the pod it belongs to (pod.h) */
};

/* Parses bundle/config.json for container id. */
int spec_load(const char *bundle, const char *id, struct oci_bundle *out, struct error **err);
/* Parses a process object (exec --process, or the "process" member). */
int spec_parse_process_file(const char *path, Cocoon__ProcessSpec **out, struct error **err);
void spec_process_free(Cocoon__ProcessSpec *p);
void spec_free(struct oci_bundle *b);

/* Where the guest finds files bind-mounted from the host. */
#define SPEC_GUEST_MOUNTS_DIR "/run/cocoon/shared/mounts"
