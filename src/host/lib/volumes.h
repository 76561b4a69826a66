/* Host directories and files bind-mounted into a container (volumes, the
 * engines' /dev/shm, /etc/hosts, Kubernetes' secrets and configMaps).
 *
 * Kata's way: each source is bind-mounted on the host into one per-sandbox
 * share directory, <state>/<id>/volumes/<n>, and that directory is one more
 * share of the VM (9p or virtiofs), whatever the number of mounts. The guest
 * bind-mounts /run/cocoon/volumes/<n> into place.
 *
 * The binds live in a mount namespace of the shim's own (a slave of the
 * host's): QEMU and virtiofsd inherit it, nothing leaks into the host's
 * mount table, and they go away with the shim, however it ends. The host's
 * view of <state>/<id>/volumes holds only empty mount points, so removing a
 * state directory can never reach into a volume. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "contract.h"
#include "error.h"

#define VOLUMES_DIR "volumes"
/* The guest mounts the share at COCOON_GUEST_VOLUMES_DIR: the sources the
 * guest sees are under it. */

struct volume {
	char *host_path; /* the spec's source, as given */
	char name[16];	 /* <n> under the share directory */
	bool is_dir;
	bool recursive;		   /* rbind */
	unsigned long flags;	   /* MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC */
	unsigned long propagation; /* MS_PRIVATE, MS_SLAVE, MS_SHARED (| MS_REC), or 0 */
};

/* Checks one bind mount's source and options: the source must be a
 * directory or a regular file (a socket, a device node or a FIFO cannot
 * cross the VM boundary; the error names it). Fills v. */
int volume_parse(const char *source, const char *destination, char *const *options,
		 size_t n_options, size_t index, struct volume *v, struct error **err);
void volume_free(struct volume *v);

/* In the shim, before the VM starts: enters a mount namespace of its own
 * (a slave of the host's) and bind-mounts every source on its mount point
 * under share_dir (created 0700, must not exist), which itself becomes a
 * read-only bind so that the guest cannot add anything beside them. */
int volumes_setup(const char *share_dir, const struct volume *v, size_t n, struct error **err);
/* A detached copy of one volume's source mount (open_tree), with the
 * spec's flags set: an fd the caller closes, or a negative errno. Taken in
 * the mount namespace that sees the source. */
int volume_clone(const struct volume *v, struct error **err);
/* A pod member's volumes (pod.h), in the sandbox shim's mount namespace:
 * mount points made in POINTS_DIR (created 0700, must not exist), which the
 * guest cannot write, and TREES[i] (volume_clone of v[i], taken before
 * entering that namespace) attached on them as seen through MOUNT_DIR, the
 * read-only view of POINTS_DIR the VM shares. The mounts go with that
 * namespace. */
int volumes_share_at(const char *points_dir, const char *mount_dir, const struct volume *v,
		     const int *trees, size_t n, struct error **err);
