/* A sandbox: one VM with its agent channel and shared directory, kept in a
 * state directory of its own (0700). Containers live inside sandboxes. */
#pragma once

#include <stdbool.h>

#include "agent-client.h"
#include "config.h"
#include "error.h"
#include "vm.h"

#define SANDBOX_CHANNEL "agent.sock"
#define SANDBOX_CONSOLE "console.log"
#define SANDBOX_VMM_LOG "qemu.log"
#define SANDBOX_SHARED "shared"
#define SANDBOX_QMP "qmp.sock"

struct sandbox {
	char *dir;
	char *shared_dir;
	char *channel_path;
	char *console_log;
	char *vmm_log;
	char accel[8];
	struct vm vm;
	struct agent_client agent;
	long long boot_ms; /* from VMM start to the first Pong */
	int memory_mib;	   /* what the VM was given */
	/* Started from a VM template (template.c): its NICs have placeholder
	 * MACs until the agent sets the engine's (network_placeholders). */
	bool from_template;
	bool vmsnap; /* booted for whole-VM checkpoints (vmsnap.h) */
};

struct sandbox_options {
	const char *accel;		  /* "kvm" or "tcg"; NULL resolves the config's */
	int ready_timeout_ms;		  /* 0: the config's boot_timeout_ms */
	bool quiet_failure;		  /* no console excerpt in the error (probes) */
	const struct vm_backend *backend; /* NULL: QEMU */
	const char *rootfs_dir;		  /* a container rootfs to share, or NULL */
	const char *pod_dir;		  /* the pod share (pod.h), or NULL */
	const char *volumes_dir; /* the container's bind mount sources (volumes.h), or NULL */
	int memory_mib, vcpus;	 /* 0: the config's (resources.h sizes them from the spec) */
	const char *const *images_dirs; /* checkpoint images to share read-only */
	int n_images_dirs;
	bool keep_dir_on_failure; /* the caller owns and removes the directory */
	const int *net_fds;	  /* taps for virtio-net devices, and their MACs */
	const char *const *net_macs;
	int n_nets;
	bool cold_boot; /* never from a VM template (the KVM probe) */
	/* Whole-VM checkpoints (vmsnap.h): boot with every share on a
	 * migratable virtiofs, the VMM that can save it, and QMP; the key is
	 * written to <dir>/vmsnap.key. */
	bool vmsnap;
	/* And instead of booting, load this saved VM (a vm.state file, read
	 * through vmsnap_state_fd; the path names it in messages), which was
	 * saved from a VM of this key. */
	const char *vmsnap_state;
	int vmsnap_state_fd;
	const char *vmsnap_key;
};

/* Boots a VM for the sandbox in dir (created 0700, must not exist yet) and
 * waits until its agent answers. On failure nothing is left running and dir
 * is removed. */
int sandbox_boot(struct sandbox *sb, const struct cocoon_config *cfg, const char *dir,
		 const struct sandbox_options *opts, struct error **err);

/* Asks the agent to power off, waits briefly, then makes sure the VMM is gone. */
void sandbox_shutdown(struct sandbox *sb);

/* Frees the structure; with remove_dir, deletes the state directory too. */
void sandbox_destroy(struct sandbox *sb, bool remove_dir);

/* The image's tools tree, "tools" beside the initrd (guest/image/mkimage.sh),
 * or NULL when there is none: an initrd that holds everything itself. */
char *sandbox_tools_dir(const char *initrd);

/* accel_probe_fn (accel.h): boots the guest under KVM to see whether it
 * runs there at all. */
int sandbox_probe_kvm(const struct cocoon_config *cfg, bool *works, char **why, struct error **err);
