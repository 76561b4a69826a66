/* tmpcopyup: see copy-up.h. */
#include "copy-up.h"
#include "cleanup.h"
#include "fdio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Copies the regular file name (opened in from sdir) into ddir. */
static int copy_up_file(int sdir, int ddir, const char *name, const struct stat *st)
{
	_cleanup_close_ int in = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_close_ int out =
		openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		       st->st_mode & 07777);
	char buf[16384];
	if (in < 0 || out < 0)
		return -errno;
	return fd_copy_stream(in, out, buf, sizeof(buf));
}

/* One entry of a copy-up: made in ddir like its original in sdir, owner,
 * mode and times included. Never follows a link of the image. */
static int copy_up_entry(int sdir, int ddir, const char *name, int depth, char *what, size_t size);

static int copy_up(int from, int to, int depth, char *what, size_t size)
{
	int dup_fd = fcntl(from, F_DUPFD_CLOEXEC, 3);
	if (dup_fd < 0)
		return -errno;
	_cleanup_closedir_ DIR *d = fdopendir(dup_fd);
	if (!d) {
		close(dup_fd);
		return -errno;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		int r = copy_up_entry(from, to, de->d_name, depth, what, size);
		if (r < 0)
			return r;
	}
	return 0;
}

static int copy_up_entry(int sdir, int ddir, const char *name, int depth, char *what, size_t size)
{
	struct stat st;
	int r = 0;
	snprintf(what, size, "%s", name);
	if (fstatat(sdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode)) {
		if (depth >= 64)
			return -ELOOP;
		if (mkdirat(ddir, name, 0700) < 0)
			return -errno;
		_cleanup_close_ int in =
			openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		_cleanup_close_ int out =
			openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (in < 0 || out < 0)
			return -errno;
		r = copy_up(in, out, depth + 1, what, size);
	} else if (S_ISREG(st.st_mode)) {
		r = copy_up_file(sdir, ddir, name, &st);
	} else if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(sdir, name, target, sizeof(target) - 1);
		if (n < 0)
			return -errno;
		target[n] = 0;
		r = symlinkat(target, ddir, name) < 0 ? -errno : 0;
	} else if (mknodat(ddir, name, st.st_mode, st.st_rdev) < 0) {
		r = -errno;
	}
	if (r < 0)
		return r;
	struct timespec times[2] = {st.st_atim, st.st_mtim};
	if (fchownat(ddir, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 ||
	    (!S_ISLNK(st.st_mode) && fchmodat(ddir, name, st.st_mode & 07777, 0) < 0) ||
	    utimensat(ddir, name, times, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

int copy_up_dir(int from, int to, char *what, size_t size)
{
	if (size)
		what[0] = 0;
	return copy_up(from, to, 0, what, size);
}
