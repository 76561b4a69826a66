/* The contract between the host (src/host) and the guest agent (src/guest):
 * every name, tag, key and limit both sides must agree on, written once.
 * The messages themselves are in proto/cocoon.proto; their framing in
 * frame.h. A change here changes both sides at once, so the guest image
 * must be rebuilt with the host (the image build checks its inputs).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* ---- The channel ---------------------------------------------------------
 * One virtio-serial port (virtserialport name=...); the agent finds its
 * /dev/vport* node by this name in sysfs. */
#define COCOON_CHANNEL_NAME "cocoon.0"

/* ---- Shares (9p mount_tag or virtiofs tag) and where the guest mounts them */
#define COCOON_TAG_SHARED "cocoon"   /* <state>/<id>/shared: checkpoints, logs */
#define COCOON_TAG_ROOTFS "rootfs"   /* the bundle's rootfs */
#define COCOON_TAG_TOOLS "tools"     /* the image's tools tree (CRIU), read-only */
#define COCOON_TAG_VOLUMES "volumes" /* the sources of the spec's bind mounts */
/* The image directories of a restore, read-only: "images0" .. "images<n-1>",
 * n at most COCOON_MAX_CHAIN; cocoon_images_tag() names them. */
#define COCOON_TAG_IMAGES "images"
#define COCOON_TAG_POD "pod" /* a pod's shared tree: members' rootfs and volumes */
/* The agent's own tree in the guest (mode 0711); a share that stays mounted
 * is at COCOON_GUEST_RUN_DIR/<tag>. The host writes bind-mount sources as
 * paths below the volumes and pod directories. */
#define COCOON_GUEST_RUN_DIR "/run/cocoon"
#define COCOON_GUEST_VOLUMES_DIR COCOON_GUEST_RUN_DIR "/" COCOON_TAG_VOLUMES
#define COCOON_GUEST_POD_DIR COCOON_GUEST_RUN_DIR "/" COCOON_TAG_POD

/* ---- Kernel command-line keys (host: sandbox.c, vm-qemu.c; guest: init.c,
 * main.c). Each is one word of /proc/cmdline. */
#define COCOON_CMDLINE_CRIU "cocoon.criu="	 /* + absolute path of criu */
#define COCOON_CMDLINE_CKPTDIR "cocoon.ckptdir=" /* + absolute guest work dir */
#define COCOON_CMDLINE_DEBUG "cocoon.debug=1"
#define COCOON_CMDLINE_VIRTIOFS "cocoon.fs=virtiofs" /* else the shares are 9p */
/* Booted to be saved as a template (its memory in a file): no shares yet. */
#define COCOON_CMDLINE_TEMPLATE "cocoon.template=1"
/* rootfs_fs "virtiofs": the rootfs share (tag "rootfs") is virtiofs. */
#define COCOON_CMDLINE_ROOTFS_VIRTIOFS "cocoon.rootfs=virtiofs"
/* Whole-VM checkpoints: the rootfs and tools are virtiofs too (no 9p). */
#define COCOON_CMDLINE_VMSNAP "cocoon.vmsnap=1"
/* What the agent uses without cocoon.criu= / cocoon.ckptdir=, and the
 * defaults of their settings in the host's config (guest_criu_path,
 * guest_checkpoint_dir; config.c). */
#define COCOON_GUEST_CRIU "/usr/sbin/criu"
#define COCOON_GUEST_CKPT_DIR COCOON_GUEST_RUN_DIR "/checkpoints"
/* The longest values of those two settings, in bytes without the NUL: the
 * agent's buffers for them, and the paths it builds under the checkpoint
 * directory, are sized from these. The host refuses a longer setting
 * (sandbox.c); the agent refuses a longer value rather than cut it. */
#define COCOON_GUEST_CRIU_MAX 255
#define COCOON_GUEST_CKPT_DIR_MAX 127

/* Fault injection, for tests only (docs/checkpoint.md): the host passes this
 * environment variable's value in a checkpoint's or restore's request, and
 * the agent sets it for CRIU, whose action script is the agent again. */
#define COCOON_FAULT_ENV "COCOON_FAULT"

/* ---- Files the guest writes into the shared directory for the host ------
 * A failed dump leaves checkpoints/<ckid>.dump.log; a restore leaves
 * restore-<id>.restore.log and restore-<id>.stats-restore
 * (cocoon_restore_file()). The plain names are those CRIU writes in its
 * directory (the agent gives it the log's with -o; the stats files are
 * CRIU's own names), and the host copies them under them to --work-path
 * (images.c, shim-setup.c). */
#define COCOON_CHECKPOINTS_DIR "checkpoints"
#define COCOON_DUMP_LOG "dump.log"
#define COCOON_RESTORE_LOG "restore.log"
#define COCOON_STATS_DUMP "stats-dump"
#define COCOON_STATS_RESTORE "stats-restore"
/* A restore's files carry the container's ID after this prefix; the agent
 * names its restore work directory the same way. */
#define COCOON_RESTORE_PREFIX "restore-"

/* ---- Limits -------------------------------------------------------------- */
/* Container, exec and checkpoint IDs: see cocoon_id_check(). */
#define COCOON_ID_MAX 64
/* Bind mounts of host paths per container: the guest's table, the dump's
 * external mounts and the restore's mapping all hold this many, and the
 * host refuses a spec with more mounts than this (spec.h). */
#define COCOON_MAX_BINDS 64
/* Checkpoint directories in one restore: the image and its pre-dumps. */
#define COCOON_MAX_CHAIN 4

/* ---- IDs -----------------------------------------------------------------
 * Container, exec and checkpoint IDs become path components on both sides,
 * so there is one rule, checked by every command on the host and again by
 * the agent: 1 to COCOON_ID_MAX characters from [A-Za-z0-9_.-], starting
 * with a letter or digit, without "..". (runc allows the same set; the
 * first-character rule keeps an ID from reading as an option or a hidden
 * file.) */
enum cocoon_id_problem {
	COCOON_ID_OK = 0,
	COCOON_ID_EMPTY,
	COCOON_ID_TOO_LONG,
	COCOON_ID_BAD_START, /* not a letter or digit first */
	COCOON_ID_BAD_CHAR,  /* *bad gets the character */
	COCOON_ID_DOTDOT,
};

/* Checks id (NULL counts as empty); on COCOON_ID_BAD_CHAR, *bad (when not
 * NULL) gets the first character outside the set. */
enum cocoon_id_problem cocoon_id_check(const char *id, char *bad);

static inline bool cocoon_id_valid(const char *id)
{
	return cocoon_id_check(id, NULL) == COCOON_ID_OK;
}

/* ---- Names built from the above ------------------------------------------ */
/* Room for any image share's tag: "images" and an int. */
#define COCOON_TAG_IMAGES_SIZE (sizeof(COCOON_TAG_IMAGES) + 11)

/* The tag of image share i (0 .. COCOON_MAX_CHAIN-1): "images<i>". */
void cocoon_images_tag(char out[static COCOON_TAG_IMAGES_SIZE], int i);

/* The name in the shared directory of a restore's file NAME
 * (COCOON_RESTORE_LOG or COCOON_STATS_RESTORE) for container ID:
 * "restore-<id>.<name>", into out (size bytes). Returns 0, or -ENAMETOOLONG
 * when it does not fit (nothing is cut). */
int cocoon_restore_file(char *out, size_t size, const char *id, const char *name);
