/* Checkpoint image directories on the host. Images come from the guest, so
 * they are data to check, never to trust: structure before publishing, and
 * sizes, checksums and CRIU's own pagemap accounting before a restore. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "contract.h"
#include "error.h"

#define IMAGES_META "cocoon.json"
#define IMAGES_FORMAT 1
/* Where the agent leaves a dump in the shared directory:
 * COCOON_CHECKPOINTS_DIR/CKID, with CRIU's log beside it as
 * COCOON_CHECKPOINTS_DIR/CKID.dump.log on failure. The host builds these
 * paths from the checkpoint ID it made; it takes none from the guest. */
/* CRIU's logs are text the guest wrote: read this much at most. */
#define IMAGES_MAX_LOG (64 << 20)

/* What a guest (or a restore directory) can make the host spend; from the
 * [limits] section of the configuration (docs/config.md). */
struct images_limits {
	uint64_t max_bytes; /* limits.checkpoint_max_bytes */
	uint64_t max_files; /* limits.checkpoint_max_files */
	uint64_t verify_ms; /* limits.verify_timeout_ms */
};

struct images_info {
	const char *container_id;
	const char *checkpoint_id;
	const char *guest_kernel;
	const char *criu_version;
	uint64_t bytes;
	uint32_t files;
	const char *parent_path; /* the pre-dump this one is incremental to */
	const char *resources;	 /* update's limits to keep (resources-kept.h), or NULL */
};

/* A checkpoint and the pre-dumps it depends on, newest first: each
 * directory's path (dirs, for messages and this host's notes), its name,
 * and the descriptor it was verified through (fds, owned). shares, when
 * images_chain_share_fds() made them, are the paths the VM's shares are
 * made from: /proc/<pid>/fd/<fd>, which reach exactly the directory that
 * was verified, however its path changed since (restore --pod). */
struct images_chain {
	char *dirs[COCOON_MAX_CHAIN];
	char *names[COCOON_MAX_CHAIN];
	int fds[COCOON_MAX_CHAIN];
	char *shares[COCOON_MAX_CHAIN];
	int n;
	char *resources; /* the checkpoint's kept limits (resources-kept.h), or NULL */
};
/* Frees the strings and closes the descriptors of the first n entries. */
void images_chain_free(struct images_chain *c);
/* shares[] for every directory, from this process's descriptors: they are
 * valid as long as this process holds them (restore waits for its shims'
 * reports, and QEMU and a member's shim open their shares before that).
 * 0 or -ENOMEM. */
int images_chain_share_fds(struct images_chain *c, struct error **err);
/* What the VM shares: shares[] when made, else dirs[]. */
const char *const *images_chain_paths(const struct images_chain *c);

struct cocoon_config;
void images_limits_from_config(const struct cocoon_config *cfg, struct images_limits *lim);

/* Takes the dump checkpoints/CKID out of the shared directory of the
 * sandbox in state_dir and publishes it at dest, atomically: dest appears
 * complete or not at all (it may exist as an empty directory). Everything
 * is reached by fd: only regular files with plain names and one link are
 * taken, within the limits, each into a new file the host creates (its
 * user, mode 0600, in a 0700 directory), cloned where the filesystem can
 * and copied where not. No inode of the guest's reaches dest, so a handle
 * the guest kept on an image file (a 9p fid, virtiofsd's) cannot change
 * what was published. cocoon.json records sizes and checksums. The dump
 * is removed from the shared directory in any case; on failure nothing is
 * left at dest. */
int images_publish(const char *state_dir, const char *ckid, const char *dest,
		   const struct images_info *info, const struct images_limits *lim,
		   struct error **err);

/* The engines' layout: a state root on tmpfs, --image-path on disk. The
 * images are then staged beside dest, on its filesystem: a new directory
 * .BASE.tmp-PID/IMAGES_STAGE_INNER next to dest is bind-mounted on the
 * shared directory's checkpoints/CKID (9p serves it to the guest from
 * there; .BASE.tmp-PID is the host's, 0700, so no user of the host reaches
 * what the guest makes in its mount, setuid files and device nodes
 * included, while it dumps), so no image
 * byte lands in host memory; publishing takes them into new files beside
 * (as images_publish() does), on the same filesystem. Only when dest's
 * filesystem is not the state root's; returns 1 when staged, 0 when it is
 * not worth it or cannot be done here (the images go through the shared
 * directory as before), or a negative errno. */
#define IMAGES_STAGE_INNER "images"
struct images_stage {
	int parentfd;	   /* dest's parent directory */
	int mnt_fd;	   /* the bind mount, while mounted */
	int nsfd;	   /* the mount namespace it is in when not ours (the shim's), or -1 */
	char tmpname[300]; /* beside dest, 0700: holds IMAGES_STAGE_INNER, the mount */
};
/* MNT_NS: the mount namespace QEMU serves the shared directory from, when
 * not ours (a shim with volumes has its own, volumes.h): the bind mount is
 * then made there (setns, by a path checked against ours), and taken away
 * there. -1 for ours. Borrowed: the stage keeps a dup. */
int images_stage_beside(const char *state_dir, const char *ckid, const char *dest, int mnt_ns,
			struct images_stage *st, struct error **err);
/* Takes the bind mount away: from here on the guest cannot reach the
 * staged directory by path (what it opened before, it still holds: hence
 * the new files of images_publish_staged()). */
void images_stage_unmount(struct images_stage *st);
/* images_publish() for staged images: unmounts, takes the staged files into
 * new ones, renames those to dest, and removes the staged directory. */
int images_publish_staged(struct images_stage *st, const char *dest, const struct images_info *info,
			  const struct images_limits *lim, struct error **err);
/* Removes staged images (a failed checkpoint). */
void images_stage_discard(struct images_stage *st);

/* Removes what a failed dump left in the shared directory. */
void images_discard(const char *state_dir, const char *ckid);

/* Copies the guest's checkpoints/CKID.dump.log to keep (a host path), at
 * most IMAGES_MAX_LOG bytes. 0 when there was a log to keep. */
int images_keep_dump_log(const char *state_dir, const char *ckid, const char *keep);

/* Everything a restore needs to trust: our metadata and its format, every
 * file's size and checksum, the files CRIU needs, and each pagemap's page
 * count against the size of its pages file; within the limits. */
int images_verify(const char *dir, const struct images_limits *lim, struct images_chain *chain,
		  struct error **err);
/* images_verify() through DIRFD (borrowed; the chain keeps a dup), the
 * directory at DIR (named in messages), and every pre-dump reached by fd
 * from it, within DEADLINE_MS (now_ms() time; restore --pod gives the
 * whole pod one limits.verify_timeout_ms). On failure the chain holds what
 * was opened so far: images_chain_free() it either way. */
int images_verify_at(int dirfd, const char *dir, const struct images_limits *lim,
		     long long deadline_ms, struct images_chain *chain, struct error **err);

/* Copies CRIU's logs and stats from the directory src to the work path
 * (created 0700), each read by fd and at most IMAGES_MAX_LOG bytes. */
void images_copy_logs(const char *src, const char *work_path);
/* The same for NAMES from a directory the guest writes (by fd). */
void images_copy_logs_at(int dirfd, const char *const *from, const char *const *to, size_t n,
			 const char *work_path);

/* Pure readers, for the fuzzers and the unit tests. */
/* Pages a CRIU pagemap image says are stored in pages-<*pages_id>.img. */
int images_pagemap_pages(const uint8_t *data, size_t len, uint64_t *pages_id, uint64_t *pages,
			 struct error **err);
struct images_meta_file {
	char *name;
	uint64_t size;
	char xxh3[17];
};
struct images_meta {
	int format;
	char *version;
	char *checkpoint;
	struct images_meta_file *files;
	size_t n_files;
	uint64_t total_bytes;
	char *resources; /* "resources", checked (resources_check_json), as JSON text */
};
/* Parses cocoon.json: every field is checked for its type and range. */
int images_meta_parse(const char *text, size_t len, const struct images_limits *lim,
		      struct images_meta *m, struct error **err);
void images_meta_free(struct images_meta *m);
