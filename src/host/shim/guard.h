/* The shim's guard thread: what a guest writes on the host is bounded while
 * it writes it, not only when the host next looks (docs/security.md).
 *
 * - The serial console log (limits.console_log_max_bytes): QEMU appends to
 *   it (append=on); past the cap its last half-cap (at most 4 MiB) moves to
 *   console.log.1 and console.log starts again, empty. QEMU's own log (its
 *   stderr, opened O_APPEND), where a guest that owns its kernel can make
 *   it print a line per bad virtio request, is kept under the same cap, and
 *   so are the virtiofsd processes' logs (vfs-TAG.log, O_APPEND).
 * - The shared directory (limits.shared_max_bytes): the blocks of every
 *   file in it are added up, each entry (an empty file, a directory, a
 *   symlink) counting at least GUARD_ENTRY_MIN_BYTES, and its extended
 *   attributes (9p's passthrough sets the guest's; tmpfs keeps them in
 *   memory, with no block stored), and the files removed from it that QEMU
 *   or a virtiofsd still holds open for the guest; past the cap the VM
 *   is killed, since the state root is often tmpfs, so host memory. A
 *   directory nested GUARD_MAX_DEPTH levels deep kills it too: the walk
 *   goes no deeper, so what is below would go uncounted.
 * The thread checks ten times a second (the shared directory twice). */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* What one entry of the shared directory counts at least: a page, about
 * what an inode, its dentry and its name cost the kernel. */
#define GUARD_ENTRY_MIN_BYTES 4096
/* What one extended attribute counts beside its name and value: about
 * what tmpfs keeps with each (struct simple_xattr). */
#define GUARD_XATTR_OVERHEAD 64
/* The longest list of attribute names the kernel hands out (XATTR_LIST_MAX,
 * linux/limits.h). */
#define GUARD_XATTR_LIST_MAX 65536
/* The depth of the shared directory the guard walks; a dump is 2 levels
 * (checkpoints/CKID). */
#define GUARD_MAX_DEPTH 16

struct guard_opts {
	const char *console_path;
	uint64_t console_cap;
	const char *vmm_log_path; /* QEMU's stderr (O_APPEND), or NULL */
	const char *vfs_log_dir;  /* where virtiofsd's vfs-TAG.log are, or NULL */
	const char *shared_dir;	  /* NULL: not watched */
	uint64_t shared_cap;
	pid_t vmm;	  /* killed when the shared directory passes its cap */
	const pid_t *aux; /* n_aux helpers (virtiofsd; 0: none), the VM's */
	size_t n_aux;
	const char *id; /* for the message */
};

struct sandbox_guard {
	pthread_t thread;
	bool started;
	atomic_bool stop;
	atomic_bool tripped; /* the shared directory passed its cap */
	int console_fd, shared_fd, vmm_log_fd, vfs_dir_fd;
	char *console_path;
	struct guard_opts o;
	unsigned ticks;
};

int guard_start(struct sandbox_guard *g, const struct guard_opts *o, struct error **err);
void guard_stop(struct sandbox_guard *g);
/* One check of each, as the thread makes them (for tests); the first
 * checks the console log and QEMU's log. */
void guard_check_console(struct sandbox_guard *g);
void guard_check_shared(struct sandbox_guard *g);
/* The bytes stored below dirfd (st_blocks, at least GUARD_ENTRY_MIN_BYTES
 * an entry, plus each entry's extended attributes: their names and values
 * and GUARD_XATTR_OVERHEAD each, and dirfd's own when DEPTH is 0), not
 * following symlinks, DEPTH levels below the shared
 * directory; sets *too_deep when a directory is GUARD_MAX_DEPTH levels
 * down (left uncounted). The walk stops once the sum passes ENOUGH (the
 * cap: then it returns some sum over ENOUGH), so it visits at most
 * ENOUGH / GUARD_ENTRY_MIN_BYTES + 1 entries in all, however many the
 * guest made; UINT64_MAX: all. */
uint64_t guard_usage(int dirfd, int depth, uint64_t enough, bool *too_deep);
/* The bytes stored (st_blocks) in the regular files that process PID holds
 * open, that were removed (no link left) and whose name was below the
 * shared directory shared_fd (its path now, by /proc/self/fd), on its
 * filesystem: what QEMU's 9p server or a virtiofsd keeps for a guest that
 * opened a file of the share and then removed it, and that no walk of the
 * directory sees. Handles opened O_PATH do not count: a virtiofsd keeps
 * one per inode the guest's kernel looked up, so the dumps the host removed
 * after publishing them stay until the guest forgets them, which the guest
 * cannot grow nor make more of (the host user's checkpoints do). Stops once
 * past ENOUGH; 0 when PID is not there. */
uint64_t guard_held_usage(pid_t pid, int shared_fd, uint64_t enough);
