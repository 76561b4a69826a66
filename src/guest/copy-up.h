/* tmpcopyup, runc's and crun's mount option (not the kernel's): a tmpfs
 * mounted over a directory of the image starts with that directory's
 * contents, as podman expects of the /tmp, /var/tmp and /run tmpfs of a
 * `--read-only` container. */
#pragma once
#include <stddef.h>

/* Copies the tree of the directory fd from into the directory fd to:
 * directories, regular files, symlinks and device nodes/FIFOs/sockets,
 * each with its owner, mode and times; never follows a symlink of the
 * source; at most 64 directories deep (-ELOOP beyond). from is read
 * through its fd, so it may be covered by a mount (the tmpfs) by then.
 * Returns 0 or a negative errno, with the entry it failed on in what
 * (size bytes, cut to fit). */
int copy_up_dir(int from, int to, char *what, size_t size);
