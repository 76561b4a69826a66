/* The host library's container operations (container.c), under the
 * commands (cmd-*.c). */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "agent-client.h"
#include "opts.h"
#include "images.h"
#include "state.h"

/* Removes a container's traces on the host once its shim is gone: the host
 * cgroup its state names (cgroup-mirror.h; a failure there is a warning),
 * then its state directory; but while a pod's keeper still runs the VM for
 * the members (a sandbox deleted first), only state.json: the keeper
 * removes the rest when it ends (docs/pods.md "Lifetimes"). */
int container_remove_files(const char *dir, struct error **err);

/* runc delete: stops the container's VM (FORCE, or a container never
 * started) and removes every trace of it on the host (the shim's process
 * group with QEMU and virtiofsd, its host cgroup, its state directory).
 * Without FORCE a running, paused or creating container is refused
 * (-EBUSY). With FORCE a missing container is success (runc's rule).
 * Returns 0, or a negative errno with *ERR set. */
int container_delete(struct global_opts *g, const char *id, bool force, struct error **err);

/* Removes dir when it is what a pod's keeper left by dying after its
 * sandbox was deleted (state.h STATE_KEEPER_FILE): no state.json, a keeper
 * that is gone. The deletes of the pod's members call it on their sandbox's
 * directory, as create and delete --force do on theirs. */
void container_reap_stale(const char *dir);

/* Loads the state of an existing container. */
int container_load(struct global_opts *g, const char *id, char **dir, struct container_state *st,
		   struct error **err);

/* container_load for a container that must not be stopped (a request to
 * its shim follows): -ESRCH with *err "container ID is stopped" when it
 * is. *dir as container_load's. */
int container_load_live(struct global_opts *g, const char *id, char **dir, struct error **err);

/* Sends one request to the container's shim and waits for the reply. */
int container_call(struct global_opts *g, const char *id, Cocoon__Request *req,
		   Cocoon__Response **resp, struct error **err);
int container_call_timeout(struct global_opts *g, const char *id, Cocoon__Request *req,
			   Cocoon__Response **resp, int timeout_ms, struct error **err);
/* container_call_timeout that passes fds (nfds of them, borrowed: the
 * caller still closes its own) with the request, SCM_RIGHTS: a whole-VM
 * checkpoint's state file (vmsnap_stage). */
int container_call_fds(struct global_opts *g, const char *id, Cocoon__Request *req, const int *fds,
		       size_t nfds, Cocoon__Response **resp, int timeout_ms, struct error **err);

/* container_call for a request whose reply says only that it was done. */
int container_request(struct global_opts *g, const char *id, Cocoon__Request *req,
		      struct error **err);

/* Freezes the container's processes (the cgroup freezer in the guest), or
 * thaws them with RESUME: runc pause and resume. */
int container_pause(struct global_opts *g, const char *id, bool resume, struct error **err);

/* runc pause (PAUSED) and resume: container ID must be running to be
 * paused, paused to be resumed. Returns 0, or a negative errno with *ERR
 * set ("pause ID: ..."). */
int container_set_paused(struct global_opts *g, const char *id, bool paused, struct error **err);

/* runc ps: the container's processes, as the guest numbers them, into
 * *PIDS (*N of them; the caller frees it). Returns 0, or a negative errno
 * with *ERR set. */
int container_ps(struct global_opts *g, const char *id, uint32_t **pids, size_t *n,
		 struct error **err);

/* runc list: the state of every container under the state root, into *OUT
 * (*N of them; the caller frees it; none when the root does not exist). A
 * container whose state cannot be read is left out with a warning; one
 * being created or removed silently. Returns 0, or a negative errno with
 * *ERR set. */
int container_list(struct global_opts *g, struct container_state **out, size_t *n,
		   struct error **err);

/* Sends signal SIG to the container's process, or with ALL to every process
 * of the container: runc kill. A stopped container, as runc answers it:
 * with ALL, 0 (nothing left to signal); without, -ESRCH and "container not
 * running" in the message, the words containerd's shim reads as "process
 * already finished". -ENOENT when there is no such container. */
int container_signal(struct global_opts *g, const char *id, int sig, bool all, struct error **err);

/* Runs the process of a created container (runc start). */
int container_start(struct global_opts *g, const char *id, struct error **err);

/* Waits for the shim (our child) and returns the container's exit code. */
int container_wait_foreground(pid_t shim);

/* Parses a signal name (KILL, SIGKILL) or number. */
int parse_signal(const char *s);
