/* The per-container shim: a detached host process that owns the VM. Its pid
 * is what --pid-file gets; it lives as long as the container and exits with
 * the container's exit status (or 128+signal), which is what containerd's
 * shim and conmon wait for. */
#pragma once

#include "opts.h"
#include "images.h"
#include "pod.h"
#include "shim-client.h"
#include "spec.h"

#define SHIM_SOCKET "shim.sock"
/* Connections at once: the engine's commands (state, kill, exec, ...) and,
 * for a pod's sandbox, one per member shim (pod.h POD_MAX_MEMBERS), so that
 * a full pod still leaves room for the commands that stop it. */
#define SHIM_MAX_CONTROL 16
#define SHIM_MAX_CLIENTS (SHIM_MAX_CONTROL + POD_MAX_MEMBERS)
#define SHIM_MAX_EXECS 16
#define SHIM_CALL_TIMEOUT_MS 30000
/* Requests sent to the agent and not yet answered (shim-forward.c): at
 * most SHIM_FORWARD_INFLIGHT per connection (a pod member's shim, or a
 * command asking for the container's own), so that a guest that swallows
 * one container's requests cannot take the slots of the others
 * (SHIM_MAX_FORWARDS holds every connection's share). */
#define SHIM_FORWARD_INFLIGHT 4
#define SHIM_MAX_FORWARDS (SHIM_MAX_CLIENTS * SHIM_FORWARD_INFLIGHT)
/* How long the VM's owner waits for the agent's answer to a short request
 * (kill, pause, exec, ps, stats, update) of a member or of its own
 * container: less than the caller waits for the shim (SHIM_CALL_TIMEOUT_MS),
 * so that the caller gets the shim's error, which names the request. */
#define SHIM_FORWARD_TIMEOUT_MS (SHIM_CALL_TIMEOUT_MS - 2000)
/* A checkpoint of a large container takes a while under TCG. */
#define SHIM_CHECKPOINT_TIMEOUT_MS (15 * 60 * 1000)

struct shim_args {
	struct global_opts *g;
	const char *id;
	const char *dir;
	struct oci_bundle *bundle;
	const char *console_socket; /* NULL unless process.terminal */
	int ready_fd;		    /* "OK" or an error text, then closed */
	/* Restore instead of create: */
	const struct images_chain *restore; /* verified images, or NULL to create */
	const Cocoon__CriuOptions *criu;
	const char *work_path; /* CRIU's logs go here too */
	bool bench_from_tmpfs; /* make bench's raw-restore baseline */
	/* Whole-VM checkpoints (vmsnap.h): the VM is booted for them, or with
	 * vmsnap_state, started from a saved VM of key vmsnap_key. */
	bool vmsnap;
	const char *vmsnap_state;
	int vmsnap_state_fd; /* inherited from restore: what it checked */
	const char *vmsnap_key;
	/* A pod member: no VM of its own, the sandbox's shim is its agent. */
	const struct pod_sandbox *pod;
};

/* Runs in the forked child; never returns. */
void __attribute__((noreturn)) shim_main(struct shim_args *a);
