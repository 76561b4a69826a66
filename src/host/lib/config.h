/* cocoon's configuration file: a documented subset of TOML (docs/config.md). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define CONFIG_DEFAULT_PATH "/etc/cocoon/config.toml"
#define CONFIG_ENV "COCOON_CONFIG"

struct cocoon_config {
	char *source; /* the file read, or NULL when only defaults apply */

	/* [runtime]: the keys of the Kata seed, same names and meaning. */
	bool enable_checkpoint;
	bool enable_debug;
	char *guest_criu_path;
	char *guest_checkpoint_dir;
	char *host_checkpoint_dir;
	char *criu_config; /* the user's CRIU settings (src/host/lib/criu-config.c) */
	/* "criu" (CRIU in the guest) or "vm" (the whole VM, vmsnap.h): how
	 * the containers created from now on are checkpointed. */
	char *checkpoint_mode;

	/* [vm] */
	char *kernel;
	char *initrd;
	char *qemu;
	char *accel;	 /* auto | kvm | tcg */
	char *shared_fs; /* 9p | virtiofs */
	/* 9p | virtiofs: how the container's rootfs reaches the guest. virtiofs
	 * answers by inode, so CRIU can dump deleted files held open there. */
	char *rootfs_fs;
	int64_t memory_mib;
	int64_t vcpus;
	int64_t max_memory_mib; /* what a container's limits may ask for */
	int64_t max_vcpus;
	int64_t boot_timeout_ms;
	bool vm_template;   /* start VMs from a saved template (template.c) */
	char *template_dir; /* where templates are kept; NULL: <cache>/templates */
	/* Whole-VM checkpoints (vmsnap.h): the QEMU ("": qemu) and virtiofsd
	 * that can migrate a VM with virtiofs shares. */
	char *snapshot_qemu;
	char *snapshot_virtiofsd;
	int64_t snapshot_zstd_level; /* 0: off; 1-19: vm.state.zst (vmsnap-zstd.h) */

	/* [limits]: what a guest, or a checkpoint handed to restore, can make
	 * the host spend (docs/security.md). */
	int64_t checkpoint_max_bytes;
	int64_t checkpoint_max_files;
	int64_t verify_timeout_ms;
	int64_t console_log_max_bytes;
	int64_t shared_max_bytes; /* 0: twice the VM's memory + 256 MiB */
	/* How long a send to a guest's agent may wait for the guest to read
	 * (agent-client.h): its channel, or a pod member's shim. */
	int64_t channel_send_timeout_ms;
	/* How long the VM's owner waits for a word of a checkpoint's or a
	 * restore's progress (the agent's CheckpointProgress, every second)
	 * before it fails it: a wedged guest no longer holds them for the
	 * guest's last-resort deadline (minutes). Read when the container's
	 * VM starts (create, restore). */
	int64_t checkpoint_silence_ms;
	/* The most bytes of one output stream (a container's or an exec's
	 * stdout or stderr) the shim holds for an engine that has not read
	 * them (shim-output.h): past it, output of a guest that ignored the
	 * hold is dropped and reported. Read when the shim starts. */
	int64_t output_queue_max_bytes;
};

void config_init_defaults(struct cocoon_config *c);
void config_free(struct cocoon_config *c);

/* Parses text (from a file called name) over the values already in c. */
int config_parse_string(struct cocoon_config *c, const char *name, const char *text,
			struct error **err);

/* Loads the configuration: explicit path, else $COCOON_CONFIG, else the
 * default path. Only the default path may be missing. */
int config_load(struct cocoon_config *c, const char *explicit_path, struct error **err);

/* The guest kernel and initrd CFG names, or the built image in the cache
 * (cache_dir()/image): two strings the caller frees. Returns 0, or a
 * negative errno with *ERR naming the missing file. */
int config_image_paths(const struct cocoon_config *cfg, char **kernel, char **initrd,
		       struct error **err);
