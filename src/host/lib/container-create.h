/* Creating a container, in the host library (container-create.c); create,
 * run and restore call it. */
#pragma once

#include <sys/types.h>

#include "images.h"
#include "opts.h"
#include "proto.h"

struct create_options {
	const char *bundle;
	const char *pid_file;
	const char *console_socket;
	const struct images_chain *restore; /* restore instead of create */
	const Cocoon__CriuOptions *criu;
	const char *work_path;
	bool bench_from_tmpfs;
	char **stats_line; /* restore --print-stats: out, its timings line, or NULL */
	/* restore --pod: the sandbox a member joins, whatever its spec's
	 * /proc/<pid>/ns paths name (the old sandbox's shim is gone). */
	const char *pod_sandbox;
	/* restore of a whole-VM checkpoint (vmsnap.h): the saved VM (its path,
	 * for messages, and the descriptor it was checked through, which QEMU
	 * loads: never the path again) and its key */
	const char *vmsnap_state;
	int vmsnap_state_fd;
	const char *vmsnap_key;
	/* Descriptors of this process that the shim (a fork) must not keep:
	 * restore's image directories, every container's of a pod (its VM
	 * and its members' shims get them as /proc/<this pid>/fd/N paths,
	 * opened before this process exits). Closed in the shim. */
	const int *shim_drops;
	int n_shim_drops;
};

/* Boots the container's VM through a new shim and creates the container,
 * stopped before its process runs. On failure nothing is left behind. */
int container_create(struct global_opts *g, const char *id, const struct create_options *o,
		     pid_t *shim_pid, struct error **err);

/* runc run: container_create, then container_start; when the start fails
 * the container's shim, VM and state are gone on return. */
int container_run(struct global_opts *g, const char *id, const struct create_options *o,
		  pid_t *shim_pid, struct error **err);
