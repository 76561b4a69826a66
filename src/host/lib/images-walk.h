/* What publishing and verifying checkpoint images share (images-walk.c): a
 * walk of an images directory that refuses anything but plain regular
 * files, a budget of bytes, files and time, and the files' hashes. */
#pragma once

#include "images.h"

#ifndef COCOON_VERSION
#define COCOON_VERSION "unknown"
#endif

/* What a walk may still take (images_limits) and when it must stop. */
struct images_budget {
	const struct images_limits *lim;
	uint64_t bytes, files;
	long long deadline;
};

/* A file name the images may hold: 1-128 of [A-Za-z0-9._-], no leading dot. */
bool images_plain_name(const char *n);

/* Starts a budget against LIM: bytes, files, and a deadline from now. */
void images_budget_init(struct images_budget *b, const struct images_limits *lim);

/* Counts one more file of SIZE bytes; 0, or -EFBIG naming NAME past a limit. */
int images_budget_file(struct images_budget *b, const char *name, uint64_t size,
		       struct error **err);

/* 0 while b's deadline holds, else -ETIMEDOUT naming
 * limits.verify_timeout_ms. */
int images_budget_time(const struct images_budget *b, struct error **err);

/* Reads NAME, a regular file of at most max bytes beneath dirfd
 * (safefs_open_regular: no FIFO, device or symlink), NUL-terminated into
 * *out (caller frees; *len bytes), 1 MiB at a time within b's deadline:
 * -ETIMEDOUT naming limits.verify_timeout_ms once it has passed, checked
 * before the open and after every read. */
int images_read_budgeted(int dirfd, const char *name, size_t max, const struct images_budget *b,
			 char **out, size_t *len, struct error **err);

/* Walks a directory; calls fn for each regular file. Anything else (a
 * symlink, a FIFO, a device, a subdirectory, an odd name) is refused, but
 * for CRIU's "parent" link when allow_parent is set. */
int images_walk_files(int dirfd, bool allow_parent,
		      int (*fn)(int dirfd, const char *name, void *ud), void *ud,
		      struct error **err);

/* Hashes exactly size bytes of in (and writes them to out, unless out is
 * -1): a file that grows or shrinks meanwhile is refused. */
int images_hash_copy(int in, int out, const char *name, uint64_t size,
		     const struct images_budget *b, uint64_t *hash, struct error **err);

/* images_hash_copy() without the copy. */
int images_hash_fd(int fd, const char *name, uint64_t size, const struct images_budget *b,
		   uint64_t *hash, struct error **err);
