/* The per-mount flags of a container's mounts, kept across a restore.
 *
 * CRIU 3.17 restores the container's root mount without its read-only flag
 * (checkpoint-restore/criu issue #2632, fixed in CRIU 4.2 by PR #2637), so
 * a read-only root came back writable. The dump records every mount's
 * per-mount flags (mount_flags_save, "cocoon-mounts" in the images); at
 * restore CRIU runs the agent as its action script, which at "post-restore"
 * (tasks restored, not yet resumed) enters the container's mount namespace
 * and remounts each mount whose flags differ (mount_flags_restore). */
#pragma once

#include <stddef.h>
#include "error.h"
#include <sys/types.h>

/* The images' file of the saved flags. */
#define MOUNT_FLAGS_FILE "cocoon-mounts"
/* Bounds of what is read: a mountinfo (or the saved file) of more bytes or
 * more mounts than these fails the dump or the restore, naming the bound,
 * rather than leaving mounts unchecked. */
#define MOUNT_FLAGS_MAX_BYTES (16u << 20)
#define MOUNT_FLAGS_MAX_MOUNTS 65536

/* At dump: "mount-point per-mount-options" (both as mountinfo writes them,
 * the mount point escaped) for every mount of pid, in mountinfo order, into
 * img_dir/MOUNT_FLAGS_FILE (a new file). Returns 0 or a negative errno. */
int mount_flags_save(pid_t pid, const char *img_dir);

/* One remount: the mount point (unescaped, relative to the container's
 * root) and the flags for mount(MS_REMOUNT | MS_BIND | flags). */
struct mount_remount {
	char *mp;
	unsigned long flags;
};

/* The remounts, owned by the plan (mount_plan_free). */
struct mount_plan {
	struct mount_remount *v;
	size_t n;
};

/* The remounts that give the mounts of a restored container the per-mount
 * flags they had at the dump: saved is MOUNT_FLAGS_FILE's text, now the
 * restored init's /proc/PID/mountinfo. Where mounts are stacked on one
 * mount point, only the top one (the last in mountinfo order) can be
 * reached by its path, in both texts: it gets the flags of its own saved
 * line; the mounts under it are hidden, and a remount by path could only
 * hit the top one. The atime mode is always given (MS_NOATIME, MS_RELATIME
 * or MS_STRICTATIME), since a remount without one keeps the current mode.
 * A saved mount point missing from now is left alone (nothing to fix).
 * Returns 0, or a negative errno with *ERR filled: -E2BIG past
 * MOUNT_FLAGS_MAX_MOUNTS, -EINVAL for a line that is not a mount. */
int mount_flags_plan(const char *saved, const char *now, struct mount_plan *plan,
		     struct error **err);
void mount_plan_free(struct mount_plan *plan);

/* The action script's post-restore step for the images in dir `images` and
 * the restored init pid: plans, enters pid's mount namespace, remounts.
 * Writes each failure to stderr (CRIU's restore log) and returns a negative
 * errno then; a restore then fails rather than going on with the wrong
 * flags. Images without MOUNT_FLAGS_FILE (older ones) are 0. */
int mount_flags_restore(const char *images, pid_t pid);
