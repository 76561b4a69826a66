/* Restore, in the host library (restore.c). cmd-restore.c parses the
 * options and calls one of these. */
#pragma once

#include "container.h"
#include "container-create.h"
#include "opts.h"
#include "proto.h"

#include <sys/types.h>

/* Restores container ID from the checkpoint at IMAGE_PATH into a new VM.
 * The ID is checked (validate_id) before anything is read. An image
 * directory with vm.json is a whole-VM checkpoint (vmsnap.h): the saved VM
 * starts, no boot and no CRIU, and only under the ID it was saved with.
 * Otherwise the images are verified first (a damaged image can make CRIU
 * loop forever instead of failing) and CRIU restores the container in a
 * fresh VM with CRIU's options from CRIU (the command line's) plus the
 * bundle's org.criu.config, else cocoon's criu.conf (criu-config.h). O is
 * create's (bundle, pid file, console socket, work path); its restore,
 * criu and vmsnap fields are set here; with o->stats_line set, its
 * timings as one "stats:" JSON line go there (the caller prints and frees
 * it). Sets *SHIM_PID. Returns 0, or a
 * negative errno with *ERR set ("restore ID: ...") and nothing of the
 * container left. */
int container_restore(struct global_opts *g, const char *id, const char *image_path,
		      struct create_options *o, Cocoon__CriuOptions *criu, pid_t *shim_pid,
		      struct error **err);

/* restore --pod IMAGE_PATH SANDBOX: checkpoint --pod's pod (pod.json,
 * docs/pods.md) back: the sandbox into a fresh VM, then every member into
 * it, with the pod's loopback held meanwhile. Each container gets the
 * bundle pod.json names (o->bundle, when set, is the sandbox's) and the
 * CRIU settings of its own bundle over CRIU (the command line's), all read
 * before anything boots. Any failure removes what was restored
 * (container_delete, members first). Returns 0, or a negative errno with
 * *ERR set ("restore --pod SANDBOX: ..."). */
int restore_pod(struct global_opts *g, const char *sandbox, const char *image_path,
		const struct create_options *o, const Cocoon__CriuOptions *criu,
		struct error **err);
