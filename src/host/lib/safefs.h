/* Files in directories the guest can write (docs/security.md).
 *
 * The guest can plant symlinks, "..", FIFOs, device nodes and hard links in
 * the shared directory, and swap any of them between two host system calls.
 * So every path below such a directory is resolved relative to a directory
 * fd opened once: openat2() with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_XDEV where the kernel has it, else O_NOFOLLOW at each step and
 * a device check. Files are checked with fstat() on the fd that is then
 * read, never by path.
 */
#pragma once

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "error.h"

/* Tests set this to exercise the O_NOFOLLOW-per-step fallback. */
extern bool safefs_force_fallback;

/* Whether PATH has a ".." component; the two characters in a name ("a..b")
 * are not one. */
bool safefs_has_dotdot(const char *path);

/* Opens PATH (relative, no "..", no symlink anywhere, same filesystem)
 * beneath dirfd. Returns the fd or a negative errno; O_CLOEXEC is added. */
int safefs_open(int dirfd, const char *path, int flags, mode_t mode);

/* Opens a regular file beneath dirfd for reading, without side effects on
 * anything else: a FIFO, a device or a symlink is refused before it is
 * opened for reading. Fails with EFBIG when it holds more than max bytes.
 * Fills *st from the fd that is returned. */
int safefs_open_regular(int dirfd, const char *path, uint64_t max, struct stat *st,
			struct error **err);

/* Reads a regular file of at most max bytes beneath dirfd, NUL-terminated.
 * A file that grows past max while it is read is refused too. */
int safefs_read(int dirfd, const char *path, size_t max, char **out, size_t *len,
		struct error **err);

/* Creates NAME in dirfd from data: written to a temporary name made with
 * O_EXCL | O_NOFOLLOW, then renamed over NAME. */
int safefs_write(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
		 struct error **err);

/* Copies at most max bytes from the fd in to a new file NAME (O_EXCL,
 * O_NOFOLLOW, mode) in dirfd. More than max bytes is EFBIG. */
int safefs_copy_fd(int in, int dirfd, const char *name, uint64_t max, mode_t mode,
		   struct error **err);

/* A directory stream over a duplicate of dirfd, rewound to the start (a
 * dup shares the offset of a directory read before); dirfd stays open and
 * the caller closes the stream. NULL with errno set on failure. */
DIR *safefs_opendir(int dirfd);

/* Removes NAME in dirfd and, when it is a directory, everything below it,
 * walking by fd: a symlink is removed, never followed, and a mount point
 * (another mount ID from statx(2), or another st_dev) is left alone and
 * reported as EXDEV. Any depth is removed with bounded stack: directories
 * nested deeper than the walk's limit are renamed up into NAME and taken
 * on a later pass. Missing is not an error. */
int safefs_remove(int dirfd, const char *name, struct error **err);
