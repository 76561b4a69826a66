#include "safefs.h"
#include "cleanup.h"
#include "fdio.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

bool safefs_force_fallback;

/* A guest can nest directories deeper than any host stack; the images and
 * the shared directory never need more than a few levels. */
#define SAFEFS_MAX_DEPTH 32

bool safefs_has_dotdot(const char *path)
{
	for (const char *p = path; *p;) {
		size_t n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return true;
		p += n + (p[n] == '/');
	}
	return false;
}

static int open_openat2(int dirfd, const char *path, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.mode = flags & O_CREAT ? mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV |
			   RESOLVE_NO_MAGICLINKS,
	};
	long fd;
	do
		fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	while (fd < 0 && errno == EAGAIN);
	return fd < 0 ? -errno : (int)fd;
}

/* Kernels before 5.6: one component at a time, never following a symlink,
 * never leaving dirfd's filesystem. */
static int open_stepwise(int dirfd, const char *path, int flags, mode_t mode)
{
	struct stat root, st;
	char comp[256];
	_cleanup_close_ int cur = -1;
	int at = dirfd;

	if (fstat(dirfd, &root) < 0)
		return -errno;
	for (const char *p = path;;) {
		size_t n = strcspn(p, "/");
		if (n >= sizeof(comp))
			return -ENAMETOOLONG;
		memcpy(comp, p, n);
		comp[n] = 0;
		p += n;
		p += strspn(p, "/");
		bool last = *p == 0;
		int fd = last ? openat(at, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode)
			      : openat(at, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		int e = fstat(fd, &st) < 0	   ? errno
			: S_ISLNK(st.st_mode)	   ? ELOOP
			: st.st_dev != root.st_dev ? EXDEV
						   : 0;
		if (e) {
			close(fd);
			return -e;
		}
		if (last)
			return fd;
		closep(&cur);
		at = cur = fd;
	}
}

int safefs_open(int dirfd, const char *path, int flags, mode_t mode)
{
	if (!path || !*path || path[0] == '/' || safefs_has_dotdot(path))
		return -EINVAL;
	if (!safefs_force_fallback) {
		int fd = open_openat2(dirfd, path, flags, mode);
		if (fd != -ENOSYS && fd != -E2BIG)
			return fd;
	}
	return open_stepwise(dirfd, path, flags, mode);
}

static const char *file_kind(mode_t m)
{
	return S_ISDIR(m)    ? "a directory"
	       : S_ISFIFO(m) ? "a FIFO"
	       : S_ISCHR(m)  ? "a character device"
	       : S_ISBLK(m)  ? "a block device"
	       : S_ISSOCK(m) ? "a socket"
	       : S_ISLNK(m)  ? "a symlink"
			     : "not a regular file";
}

/* An O_PATH fd opens nothing: a FIFO or a device is only looked at. The
 * checked inode is then reopened through /proc, so no swap can slip in. */
int safefs_open_regular(int dirfd, const char *path, uint64_t max, struct stat *st,
			struct error **err)
{
	_cleanup_close_ int pfd = safefs_open(dirfd, path, O_PATH, 0);
	struct stat again;
	char proc[64];

	if (pfd < 0)
		return error_set(err, -pfd, "%s%s", path, pfd == -ELOOP ? " (a symlink)" : "");
	if (fstat(pfd, st) < 0)
		return error_set(err, errno, "%s", path);
	if (!S_ISREG(st->st_mode))
		return error_setx(err, EINVAL, "%s is %s", path, file_kind(st->st_mode));
	if ((uint64_t)st->st_size > max)
		return error_setx(err, EFBIG, "%s holds %llu bytes, over the limit of %llu", path,
				  (unsigned long long)st->st_size, (unsigned long long)max);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	int fd = open(proc, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) /* no /proc: the next best */
		fd = safefs_open(dirfd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
	else if (fd < 0)
		fd = -errno;
	if (fd < 0)
		return error_set(err, -fd, "open %s", path);
	if (fstat(fd, &again) < 0 || again.st_ino != st->st_ino || again.st_dev != st->st_dev ||
	    !S_ISREG(again.st_mode)) {
		close(fd);
		return error_setx(err, EINVAL, "%s changed while it was opened", path);
	}
	return fd;
}

int safefs_read(int dirfd, const char *path, size_t max, char **out, size_t *len,
		struct error **err)
{
	struct stat st;
	_cleanup_close_ int fd = safefs_open_regular(dirfd, path, max, &st, err);
	if (fd < 0)
		return fd;
	/* Past its size it grew after the fstat(): refused, not truncated. */
	int r = fd_read_bounded(fd, (size_t)st.st_size, out, len);
	if (r == -EFBIG)
		return error_setx(err, EFBIG, "%s grew while it was read", path);
	if (r < 0)
		return error_set(err, -r, "read %s", path);
	return 0;
}

static int create_tmp(int dirfd, const char *name, mode_t mode, char *tmp, size_t size)
{
	snprintf(tmp, size, ".%s.tmp-%d", name, getpid());
	unlinkat(dirfd, tmp, 0); /* our own leftover: same name, same pid */
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd >= 0 && fchmod(fd, mode) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int safefs_write(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
		 struct error **err)
{
	char tmp[300];
	_cleanup_close_ int fd = create_tmp(dirfd, name, mode, tmp, sizeof(tmp));
	if (fd < 0)
		return error_set(err, errno, "create %s", tmp);
	int r = fd_write_all(fd, data, len);
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dirfd, tmp, 0);
		return error_set(err, -r, "write %s", name);
	}
	return 0;
}

int safefs_copy_fd(int in, int dirfd, const char *name, uint64_t max, mode_t mode,
		   struct error **err)
{
	_cleanup_close_ int out =
		openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	_cleanup_free_ char *buf = malloc(4 << 20);
	uint64_t total = 0;

	if (out < 0 || !buf)
		return error_set(err, out < 0 ? errno : ENOMEM, "create %s", name);
	for (;;) {
		ssize_t n = fd_read(in, buf, 4 << 20);
		if (n < 0)
			return error_set(err, (int)-n, "read %s", name);
		if (n == 0)
			break;
		total += (uint64_t)n;
		if (total > max)
			return error_setx(err, EFBIG, "%s: more than %llu bytes", name,
					  (unsigned long long)max);
		int r = fd_write_all(out, buf, (size_t)n);
		if (r < 0)
			return error_set(err, -r, "write %s", name);
	}
	if (fchmod(out, mode) < 0 || fsync(out) < 0)
		return error_set(err, errno, "%s", name);
	return 0;
}

/* The walk of one removal. Recursion is bounded by SAFEFS_MAX_DEPTH; a
 * directory nested deeper (a guest can make any depth) is renamed up into
 * the top directory being removed and taken on a later pass, so any depth
 * is removed with bounded stack. The entries of one filesystem mount only
 * are removed: a mount point (another mount ID, or another st_dev where
 * statx gives no mount ID) is left alone and reported. */
struct remove_walk {
	int topfd; /* the directory being removed, once open */
	dev_t dev;
	uint64_t mnt_id;  /* 0: the kernel gave none; st_dev alone decides */
	unsigned hoisted; /* directories renamed into topfd this pass */
	unsigned serial;
};

static int remove_below(int dirfd, struct remove_walk *w, int depth, struct error **err);

/* statx(2): STATX_MNT_ID since Linux 5.8. */
static int entry_stat(int dirfd, const char *name, struct stat *st, uint64_t *mnt_id)
{
	struct statx sx;
	*mnt_id = 0;
	int at = *name ? AT_SYMLINK_NOFOLLOW : AT_EMPTY_PATH;
	if (statx(dirfd, name, at | AT_NO_AUTOMOUNT, STATX_TYPE | STATX_MNT_ID, &sx) == 0) {
		if (sx.stx_mask & STATX_MNT_ID)
			*mnt_id = sx.stx_mnt_id;
	}
	return fstatat(dirfd, name, st, at);
}

static int hoist(int dirfd, const char *name, struct remove_walk *w, struct error **err)
{
	for (int tries = 0; tries < 64; tries++) {
		char to[64];
		snprintf(to, sizeof(to), ".cocoon-removing-%u", w->serial++);
		if (renameat2(dirfd, name, w->topfd, to, RENAME_NOREPLACE) == 0) {
			w->hoisted++;
			return 0;
		}
		if (errno != EEXIST)
			return error_set(err, errno, "remove %s (nested deeper than %d levels)",
					 name, SAFEFS_MAX_DEPTH);
	}
	return error_setx(err, EEXIST, "remove %s: no free name to move it to", name);
}

static int remove_entry(int dirfd, const char *name, struct remove_walk *w, int depth,
			struct error **err)
{
	struct stat st;
	uint64_t mnt_id;
	if (entry_stat(dirfd, name, &st, &mnt_id) < 0)
		return errno == ENOENT ? 0 : error_set(err, errno, "stat %s", name);
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
			return error_set(err, errno, "remove %s", name);
		return 0;
	}
	if (st.st_dev != w->dev || (w->mnt_id && mnt_id && mnt_id != w->mnt_id))
		return error_setx(err, EXDEV, "%s is a mount point; not removed", name);
	if (depth >= SAFEFS_MAX_DEPTH && w->topfd >= 0)
		return hoist(dirfd, name, w, err);
	_cleanup_close_ int fd =
		openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : error_set(err, errno, "open %s", name);
	if (depth == 0)
		w->topfd = fd;
	int r;
	do {
		w->hoisted = depth == 0 ? 0 : w->hoisted;
		r = remove_below(fd, w, depth + 1, err);
		/* Each pass removes SAFEFS_MAX_DEPTH levels of what it moved up. */
	} while (r == 0 && depth == 0 && w->hoisted > 0);
	if (depth == 0)
		w->topfd = -1;
	if (r < 0)
		return r;
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return error_set(err, errno, "remove %s", name);
	return 0;
}

static int remove_below(int dirfd, struct remove_walk *w, int depth, struct error **err)
{
	_cleanup_closedir_ DIR *d = safefs_opendir(dirfd);
	struct dirent *de;
	int r = 0;

	if (!d)
		return error_set(err, errno, "open directory");
	/* Remove what is there; entries added meanwhile make rmdir fail,
	 * which is then reported. */
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		int e = remove_entry(dirfd, de->d_name, w, depth, r < 0 ? NULL : err);
		if (e < 0 && r == 0)
			r = e;
	}
	return r;
}

DIR *safefs_opendir(int dirfd)
{
	int dup = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	DIR *d = dup >= 0 ? fdopendir(dup) : NULL;

	if (!d) {
		if (dup >= 0)
			closep(&dup);
		return NULL;
	}
	rewinddir(d); /* a dup shares the offset of a directory read before */
	return d;
}

int safefs_remove(int dirfd, const char *name, struct error **err)
{
	struct remove_walk w = {.topfd = -1};
	struct stat st;
	if (entry_stat(dirfd, "", &st, &w.mnt_id) < 0 && fstat(dirfd, &st) < 0)
		return error_set(err, errno, "remove %s", name);
	w.dev = st.st_dev;
	return remove_entry(dirfd, name, &w, 0, err);
}
