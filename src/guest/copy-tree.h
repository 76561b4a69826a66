/* Directories of CRIU image files: copied with large writes (the agent's
 * --copy-tree mode, run as a job), staged for a restore, removed. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/* Bytes per write of a copy; page images growing under CRIU are copied in
 * whole multiples of it until CRIU has finished. */
#define COPY_TREE_BUF (4 * 1024 * 1024)

/* --copy-tree SRC DST: copies a directory of regular files with large
 * writes (the agent binary runs itself for this, as a job). With done_fd
 * >= 0 it copies the page images while they grow, until done_fd ends; with
 * writer > 0 as well (the streaming route) it punches what it copied out of
 * SRC and stops the writer while too much waits. Returns the process's exit
 * status: 0, or 1 after a message on stderr. */
int copy_tree_main(const char *src, const char *dst, int done_fd, pid_t writer, bool like_cp);
/* Copies the regular file NAME from the directory SDIR into DDIR, where it
 * must not exist yet, through BUF (COPY_TREE_BUF bytes, the caller's).
 * Returns 0 or a negative errno. */
int copy_tree_file(int sdir, int ddir, const char *name, char *buf);
/* Copies the symlink NAME (a target of up to 255 bytes) from SDIR into DDIR.
 * Returns 0 or a negative errno. */
int copy_tree_link(int sdir, int ddir, const char *name);
/* Removes the entries of DIR (one level, no recursion), then DIR; what
 * cannot be removed stays, silently. */
void copy_tree_remove(const char *dir);
/* Who a staged directory is for: NULL, the guest's root (CRIU's restored
 * tasks start as root in the guest's user namespace); else the root of the
 * container's user namespace (its uid and gid in the guest), for whom the
 * page images are copied too and everything staged is chowned (see
 * copy-tree.c). */
struct copy_tree_owner {
	uid_t uid;
	gid_t gid;
};
/* Builds STAGE, the directory CRIU restores from, out of the images in
 * SHARE: see copy-tree.c. SHARE_REL is SHARE relative to STAGE. OWNER: see
 * struct copy_tree_owner. Returns 0 or a negative errno. */
int copy_tree_stage(const char *share, const char *share_rel, const char *stage,
		    const struct copy_tree_owner *owner);
