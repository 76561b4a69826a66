#include "guard.h"
#include "cleanup.h"
#include "log.h"
#include "paths.h"
#include "safefs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>

#define CONSOLE_KEEP_MAX (4 << 20)

/* A log QEMU appends to, past CAP: its last half-cap (at most
 * CONSOLE_KEEP_MAX) goes to PATH.1 and the log starts again. */
static void cap_log(int fd, const char *path, uint64_t cap)
{
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_size <= cap)
		return;
	uint64_t half = cap / 2;
	size_t keep = (size_t)(half < CONSOLE_KEEP_MAX ? half : CONSOLE_KEEP_MAX);
	_cleanup_free_ char *buf = malloc(keep ? keep : 1), *old = NULL;
	ssize_t n = buf ? pread(fd, buf, keep, st.st_size - (off_t)keep) : -1;
	if (n > 0 && asprintf(&old, "%s.1", path) >= 0)
		(void)write_file_atomic(old, buf, (size_t)n, 0600, NULL); /* keep what we can */
	/* QEMU writes with O_APPEND: its next line lands at the new end. */
	if (ftruncate(fd, 0) < 0)
		return;
}

/* The logs of the virtiofsd processes, vfs-TAG.log in the state
 * directory: found by name, each opened (never following a symlink) only
 * when it is over the cap. */
static void cap_vfs_logs(struct sandbox_guard *g)
{
	if (g->vfs_dir_fd < 0)
		return;
	_cleanup_closedir_ DIR *d = safefs_opendir(g->vfs_dir_fd);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		struct stat st;
		size_t n = strlen(de->d_name);
		if (strncmp(de->d_name, "vfs-", 4) != 0 || n < 8 ||
		    strcmp(de->d_name + n - 4, ".log") != 0 ||
		    fstatat(g->vfs_dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode) || (uint64_t)st.st_size <= g->o.console_cap)
			continue;
		_cleanup_free_ char *path = NULL;
		_cleanup_close_ int fd = openat(g->vfs_dir_fd, de->d_name,
						O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0 && asprintf(&path, "%s/%s", g->o.vfs_log_dir, de->d_name) >= 0)
			cap_log(fd, path, g->o.console_cap);
	}
}

void guard_check_console(struct sandbox_guard *g)
{
	cap_log(g->console_fd, g->console_path, g->o.console_cap);
	cap_log(g->vmm_log_fd, g->o.vmm_log_path, g->o.console_cap);
	cap_vfs_logs(g);
}

/* What the extended attributes of PATH (not followed) cost: each its name,
 * its value and GUARD_XATTR_OVERHEAD. 9p's passthrough model sets the
 * guest's user.* attributes and POSIX ACLs on the host's inode, and tmpfs
 * keeps them in kernel memory (up to its inode space, some 1 KiB for each
 * inode it may hold: gigabytes) while the file stores no block. A list
 * longer than the kernel hands out (XATTR_LIST_MAX: E2BIG) is over any
 * cap. NAMES is a buffer of GUARD_XATTR_LIST_MAX bytes. */
static uint64_t xattr_usage(const char *path, char *names, uint64_t enough)
{
	ssize_t n = llistxattr(path, names, GUARD_XATTR_LIST_MAX);
	if (n < 0)
		return errno == E2BIG || errno == ERANGE ? enough + 1 : 0;
	uint64_t sum = 0;
	for (ssize_t at = 0; at < n && sum <= enough;) {
		const char *name = names + at;
		size_t len = strnlen(name, (size_t)(n - at));
		ssize_t v = lgetxattr(path, name, NULL, 0);
		sum += len + 1 + (v > 0 ? (uint64_t)v : 0) + GUARD_XATTR_OVERHEAD;
		at += (ssize_t)len + 1;
	}
	return sum;
}

/* Entry NAME of dirfd ("." for dirfd itself), by a path that reaches it
 * through the descriptor (the magic link is followed, NAME is not): the
 * xattr calls take no descriptor without opening the file, which may be a
 * FIFO. */
static uint64_t entry_xattr_usage(int dirfd, const char *name, char *names, uint64_t enough)
{
	char path[64 + 256];
	if (!names ||
	    snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, name) >= (int)sizeof(path))
		return 0;
	return xattr_usage(path, names, enough);
}

static uint64_t usage_walk(int dirfd, int depth, uint64_t enough, bool *too_deep, char *names)
{
	_cleanup_closedir_ DIR *d = safefs_opendir(dirfd);
	struct dirent *de;
	uint64_t sum = 0;
	if (!d)
		return 0;
	/* The shared directory's own attributes (each directory below is an
	 * entry of its parent's). */
	if (depth == 0)
		sum += entry_xattr_usage(dirfd, ".", names, enough);
	/* Past ENOUGH the answer is known: a walk visits at most
	 * ENOUGH / GUARD_ENTRY_MIN_BYTES + 1 entries, however many the
	 * guest made (a guest making empty files without end made every
	 * walk, twice a second, as long as what it had made, and the trip
	 * waited for the walk). */
	while (sum <= enough && (de = readdir(d))) {
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		/* An empty file or a directory stores no block, but its inode
		 * and name cost the state root's filesystem (host memory on
		 * tmpfs): a guest making millions of them is stopped too. */
		uint64_t blocks = (uint64_t)st.st_blocks * 512;
		sum += blocks > GUARD_ENTRY_MIN_BYTES ? blocks : GUARD_ENTRY_MIN_BYTES;
		if (sum <= enough)
			sum += entry_xattr_usage(dirfd, de->d_name, names, enough - sum);
		if (!S_ISDIR(st.st_mode))
			continue;
		/* Deeper than any dump: what is below would go uncounted. */
		if (depth + 1 >= GUARD_MAX_DEPTH) {
			*too_deep = true;
			continue;
		}
		_cleanup_close_ int sub =
			openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0 && sum <= enough)
			sum += usage_walk(sub, depth + 1, enough - sum, too_deep, names);
	}
	return sum;
}

uint64_t guard_usage(int dirfd, int depth, uint64_t enough, bool *too_deep)
{
	/* One buffer for the attribute names of the whole walk; without it
	 * the attributes go uncounted this time. */
	_cleanup_free_ char *names = malloc(GUARD_XATTR_LIST_MAX);
	return usage_walk(dirfd, depth, enough, too_deep, names);
}

/* Whether fd NAME of the process whose fdinfo directory is infofd was opened
 * O_PATH: such a handle neither reads nor writes. A virtiofsd keeps one
 * for each inode the guest's kernel has looked up, until it forgets it, so
 * a dump the host removed after publishing it stays, unread, until then:
 * space the host user's checkpoints took, not the guest's own doing. */
static bool opened_path_only(int infofd, const char *name)
{
	char text[256];
	unsigned long flags = 0;
	_cleanup_close_ int fd = openat(infofd, name, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof(text) - 1);
	if (n <= 0)
		return false;
	text[n] = 0;
	const char *f = strstr(text, "flags:");
	return f && sscanf(f + 6, "%lo", &flags) == 1 && (flags & O_PATH);
}

uint64_t guard_held_usage(pid_t pid, int shared_fd, uint64_t enough)
{
	char path[64], prefix[PATH_MAX + 1], target[PATH_MAX];
	struct stat sd;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", shared_fd);
	ssize_t plen = readlink(path, prefix, sizeof(prefix) - 2);
	if (pid <= 0 || plen <= 0 || fstat(shared_fd, &sd) < 0)
		return 0;
	prefix[plen++] = '/'; /* the directory's path now, whatever it was */
	prefix[plen] = 0;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	_cleanup_close_ int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%d/fdinfo", (int)pid);
	_cleanup_close_ int infofd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_closedir_ DIR *d = dfd < 0 ? NULL : safefs_opendir(dfd);
	struct dirent *de;
	uint64_t sum = 0;
	while (d && sum <= enough && (de = readdir(d))) {
		struct stat st;
		/* The open file itself (the magic link is followed): a removed
		 * regular file of the shared directory's filesystem, whose
		 * name was in the shared directory. */
		if (de->d_name[0] == '.' || fstatat(dfd, de->d_name, &st, 0) < 0 ||
		    !S_ISREG(st.st_mode) || st.st_nlink != 0 || st.st_dev != sd.st_dev)
			continue;
		ssize_t n = readlinkat(dfd, de->d_name, target, sizeof(target) - 1);
		if (n < plen || strncmp(target, prefix, (size_t)plen) != 0 ||
		    opened_path_only(infofd, de->d_name))
			continue;
		sum += (uint64_t)st.st_blocks * 512;
	}
	return sum;
}

void guard_check_shared(struct sandbox_guard *g)
{
	if (g->shared_fd < 0 || atomic_load(&g->tripped))
		return;
	bool too_deep = false;
	uint64_t cap = g->o.shared_cap, held = 0;
	uint64_t used = guard_usage(g->shared_fd, 0, cap, &too_deep);
	/* What QEMU's 9p server or a virtiofsd holds open for the guest of
	 * what was removed from the directory: no entry of it, but the state
	 * root's space still (host memory on tmpfs), and the guest writes on
	 * into it. */
	for (int i = -1; i < (int)g->o.n_aux && used + held <= cap && !too_deep; i++)
		held += guard_held_usage(i < 0 ? g->o.vmm : g->o.aux[i], g->shared_fd,
					 cap - used - held);
	used += held;
	if (used <= cap && !too_deep)
		return;
	atomic_store(&g->tripped, true);
	if (too_deep)
		log_errorf(
			"container %s: the guest nested directories in its shared directory deeper than %d levels, past what the host counts against limits.shared_max_bytes; its VM is stopped",
			g->o.id ? g->o.id : "?", GUARD_MAX_DEPTH);
	else
		log_errorf(
			"container %s: the guest stored %llu bytes in its shared directory (%llu of them in files it removed and holds open), over %llu (limits.shared_max_bytes); its VM is stopped",
			g->o.id ? g->o.id : "?", (unsigned long long)used, (unsigned long long)held,
			(unsigned long long)cap);
	if (g->o.vmm > 0)
		kill(g->o.vmm, SIGKILL);
}

static void *guard_main(void *arg)
{
	struct sandbox_guard *g = arg;
	while (!atomic_load(&g->stop)) {
		guard_check_console(g);
		if (g->ticks++ % 5 == 0)
			guard_check_shared(g);
		nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
	}
	return NULL;
}

int guard_start(struct sandbox_guard *g, const struct guard_opts *o, struct error **err)
{
	memset(g, 0, sizeof(*g));
	g->o = *o;
	g->console_fd = g->shared_fd = g->vmm_log_fd = g->vfs_dir_fd = -1;
	if (o->vfs_log_dir)
		g->vfs_dir_fd =
			open(o->vfs_log_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	g->console_fd = open(o->console_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (g->console_fd < 0)
		return error_set(err, errno, "console log %s", o->console_path);
	if (o->vmm_log_path) {
		g->vmm_log_fd =
			open(o->vmm_log_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (g->vmm_log_fd < 0) {
			int e = errno;
			closep(&g->console_fd);
			return error_set(err, e, "QEMU's log %s", o->vmm_log_path);
		}
	}
	if (o->shared_dir)
		g->shared_fd = open(o->shared_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int r = !(g->console_path = strdup(o->console_path)) ? ENOMEM
		: o->shared_dir && g->shared_fd < 0
			? errno
			: pthread_create(&g->thread, NULL, guard_main, g);
	if (r != 0) {
		closep(&g->console_fd);
		closep(&g->shared_fd);
		closep(&g->vmm_log_fd);
		closep(&g->vfs_dir_fd);
		free(g->console_path);
		return error_set(err, r, "guard of %s", o->console_path);
	}
	g->started = true;
	return 0;
}

void guard_stop(struct sandbox_guard *g)
{
	if (!g->started)
		return;
	atomic_store(&g->stop, true);
	pthread_join(g->thread, NULL);
	closep(&g->console_fd);
	closep(&g->shared_fd);
	closep(&g->vmm_log_fd);
	closep(&g->vfs_dir_fd);
	free(g->console_path);
	g->started = false;
}
