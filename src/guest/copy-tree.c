/* Directories of CRIU image files. The dump's images go from guest tmpfs to
 * the shared directory with large writes, in a child process (the agent
 * binary run as `cocoon-agent --copy-tree`), while PID 1 keeps serving; a
 * restore stages the small images into tmpfs beside links to the pages.
 */
#include "copy-tree.h"
#include "cleanup.h"
#include "fdio.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <net/if.h>
#include <sched.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <poll.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

static size_t copy_buf_size = COPY_TREE_BUF;
static bool copy_like_cp;
/* The streaming route: what is copied is punched out of tmpfs at once, and
 * the writer (CRIU's page server) is stopped while too much waits. */
static pid_t stream_writer;
static bool writer_stopped;
#define STREAM_BACKLOG_HIGH ((off_t)32 << 20)
#define STREAM_BACKLOG_LOW ((off_t)8 << 20)

/* Writes straight from a shared mapping of the source: 9p's zero-copy path
 * then hands the tmpfs pages to QEMU, and the guest copies nothing. Under
 * TCG a guest memcpy is the dearest part of a copy: 256 MiB took 2.3 s with
 * read()+write() and 0.95 s like this (docs/performance.md). */
static int copy_mapped(int in, int out, off_t from, off_t to)
{
	if (to <= from)
		return 0;
	size_t size = (size_t)(to - from);
	void *map = mmap(NULL, size, PROT_READ, MAP_SHARED | MAP_POPULATE, in, from);
	if (map == MAP_FAILED)
		return -errno;
	int r = 0;
	for (size_t off = 0; off < size && r == 0; off += copy_buf_size) {
		size_t len = size - off < copy_buf_size ? size - off : copy_buf_size;
		r = fd_write_all(out, (const char *)map + off, len);
	}
	munmap(map, size);
	return r;
}

int copy_tree_file(int sdir, int ddir, const char *name, char *buf)
{
	_cleanup_close_ int in = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_close_ int out =
		openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	struct stat st;
	if (in < 0 || out < 0 || fstat(in, &st) < 0)
		return -errno;
	if (!copy_like_cp && st.st_size >= (off_t)copy_buf_size)
		return copy_mapped(in, out, 0, st.st_size);
	return fd_copy_stream(in, out, buf, copy_buf_size);
}

int copy_tree_link(int sdir, int ddir, const char *name)
{
	char target[256];
	ssize_t n = readlinkat(sdir, name, target, sizeof(target) - 1);
	if (n <= 0)
		return n < 0 ? -errno : 0;
	target[n] = 0;
	return symlinkat(target, ddir, name) < 0 ? -errno : 0;
}

/* A page image CRIU is still writing, copied as it grows. */
struct growing_file {
	char name[64];
	int in, out;
	off_t copied; /* a multiple of COPY_TREE_BUF until the last pass */
};

static int growing_copy(struct growing_file *f, bool last)
{
	struct stat st;
	if (fstat(f->in, &st) < 0)
		return -errno;
	/* Below i_size a tmpfs file is written: CRIU appends page runs. */
	off_t end = last ? st.st_size : st.st_size - st.st_size % (off_t)COPY_TREE_BUF;
	int r = copy_mapped(f->in, f->out, f->copied, end);
	if (r == 0 && end > f->copied && stream_writer > 0 &&
	    fallocate(f->in, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, f->copied,
		      end - f->copied) < 0)
		r = -errno;
	if (r == 0 && end > f->copied)
		f->copied = end;
	return r;
}

/* Flow control for the streaming route: the page server stops while more
 * than STREAM_BACKLOG_HIGH waits in tmpfs (then CRIU blocks on the full
 * socket), and goes on below STREAM_BACKLOG_LOW. */
static void stream_throttle(struct growing_file *g, size_t n)
{
	off_t backlog = 0;
	struct stat st;
	if (stream_writer <= 0)
		return;
	for (size_t i = 0; i < n; i++)
		if (fstat(g[i].in, &st) == 0 && st.st_size > g[i].copied)
			backlog += st.st_size - g[i].copied;
	if (!writer_stopped && backlog > STREAM_BACKLOG_HIGH)
		writer_stopped = kill(stream_writer, SIGSTOP) == 0;
	else if (writer_stopped && backlog < STREAM_BACKLOG_LOW &&
		 kill(stream_writer, SIGCONT) == 0)
		writer_stopped = false;
}

static struct growing_file *growing_find(struct growing_file *g, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(g[i].name, name) == 0)
			return &g[i];
	return NULL;
}

/* --follow: the page images are copied while CRIU writes them, so that the
 * transfer overlaps the dump; fd 3 reaches end-of-file when the agent has seen
 * CRIU finish. Everything else (small images, the rest of the pages) is
 * copied after that. */
static int follow_pages(int sdir, int ddir, int done_fd, struct growing_file *g, size_t max,
			size_t *n)
{
	for (;;) {
		struct pollfd p = {.fd = done_fd, .events = POLLIN};
		int finished = poll(&p, 1, 40);
		if (finished < 0 && errno != EINTR)
			return -errno;
		if (finished > 0 && (p.revents & POLLNVAL))
			return -EBADF; /* no fd 3: not started by the agent */
		int scan = openat(sdir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		_cleanup_closedir_ DIR *d = scan >= 0 ? fdopendir(scan) : NULL;
		if (!d) {
			int saved = errno;
			if (scan >= 0)
				close(scan);
			return -saved;
		}
		struct dirent *de;
		while ((de = readdir(d))) {
			struct growing_file *f = growing_find(g, *n, de->d_name);
			if (!f && *n < max && strncmp(de->d_name, "pages-", 6) == 0 &&
			    strlen(de->d_name) < sizeof(f->name)) {
				f = &g[*n];
				snprintf(f->name, sizeof(f->name), "%s", de->d_name);
				/* Writable to punch holes in it (streaming route). */
				f->in = openat(sdir, de->d_name,
					       (stream_writer > 0 ? O_RDWR : O_RDONLY) |
						       O_NOFOLLOW | O_CLOEXEC);
				f->out = openat(
					ddir, de->d_name,
					O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
				f->copied = 0;
				if (f->in < 0 || f->out < 0)
					return -errno;
				(*n)++;
			}
			int r = f ? growing_copy(f, false) : 0;
			if (r < 0)
				return r;
		}
		stream_throttle(g, *n);
		if (finished > 0)
			return 0;
	}
}

int copy_tree_main(const char *src, const char *dst, int done_fd, pid_t writer, bool like_cp)
{
	stream_writer = writer;
	/* ROUTE_SEED's baseline copies like cp(1): 128 KiB at a time. */
	if (like_cp) {
		copy_buf_size = 128 * 1024;
		copy_like_cp = true;
	}
	_cleanup_closedir_ DIR *d = opendir(src);
	_cleanup_free_ char *buf = malloc(COPY_TREE_BUF);
	struct growing_file growing[16];
	size_t n_growing = 0;
	struct dirent *de;
	int r = 0;

	if (!d || !buf || (mkdir(dst, 0700) < 0 && errno != EEXIST)) {
		fprintf(stderr, "copy %s -> %s: %s\n", src, dst, strerror(errno));
		return 1;
	}
	_cleanup_close_ int ddir = open(dst, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int sdir = dirfd(d);
	r = done_fd >= 0
		    ? follow_pages(sdir, ddir, done_fd, growing, ARRAY_SIZE(growing), &n_growing)
		    : 0;
	if (writer_stopped)
		kill(stream_writer, SIGCONT);
	if (r < 0) {
		fprintf(stderr, "copy %s -> %s while CRIU writes: %s\n", src, dst, strerror(-r));
		return 1;
	}
	while ((de = readdir(d))) {
		struct stat st;
		if (de->d_name[0] == '.' || fstatat(sdir, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		struct growing_file *f = growing_find(growing, n_growing, de->d_name);
		if (f)
			r = growing_copy(f, true);
		else if (S_ISREG(st.st_mode))
			r = copy_tree_file(sdir, ddir, de->d_name, buf);
		else if (S_ISLNK(st.st_mode))
			r = copy_tree_link(sdir, ddir, de->d_name);
		if (r < 0) {
			fprintf(stderr, "copy %s/%s: %s\n", src, de->d_name, strerror(-r));
			return 1;
		}
	}
	return 0;
}

void copy_tree_remove(const char *dir)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' || de->d_name[1] != 0)
			unlinkat(dirfd(d), de->d_name, 0);
	rmdir(dir);
}

/* Builds the directory CRIU restores from: the small images (pstree,
 * core, mm, fds, ...) copied into guest tmpfs, where CRIU's many small reads
 * cost nothing, and symlinks to the page images on the share, which CRIU
 * reads in large runs (at 256 MiB: 8.6 s through a cached 9p mount, see
 * docs/performance.md for the figure with this).
 *
 * With OWNER (a container with a user namespace): CRIU 3.17 makes the user
 * namespace itself and its restored tasks open their images from inside it
 * (the root task reads tty-info.img, the namespaces' and files' images, each
 * task its core, mm and pages). The namespace's root has no rights over a
 * file whose owner it does not map (user_namespaces(7): capabilities over an
 * inode need its uid and gid mapped), and the share's files are the host
 * root's, mode 0600. So everything is staged in guest tmpfs, the pages
 * copied too, and chowned to the namespace's root, as runc's own test
 * chowns a checkpoint for such a restore (opencontainers/runc#5121). The
 * host's files stay as they were. */
int copy_tree_stage(const char *share, const char *share_rel, const char *stage,
		    const struct copy_tree_owner *owner)
{
	_cleanup_closedir_ DIR *d = opendir(share);
	_cleanup_free_ char *buf = malloc(COPY_TREE_BUF);
	struct dirent *de;

	copy_tree_remove(stage);
	if (!d || !buf || (mkdir(stage, 0700) < 0 && errno != EEXIST))
		return -errno;
	_cleanup_close_ int ddir = open(stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ddir < 0)
		return -errno;
	if (owner && fchown(ddir, owner->uid, owner->gid) < 0)
		return -errno;
	while ((de = readdir(d))) {
		struct stat st;
		if (de->d_name[0] == '.' ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		int r = 0;
		if (S_ISREG(st.st_mode) && strncmp(de->d_name, "pages-", 6) == 0 && !owner) {
			/* Relative: CRIU opens the pages from inside the restored
			 * mount namespace, through its fd of the images directory,
			 * where an absolute guest path does not resolve. */
			char target[600];
			snprintf(target, sizeof(target), "%s/%s", share_rel, de->d_name);
			r = symlinkat(target, ddir, de->d_name) < 0 ? -errno : 0;
		} else if (S_ISREG(st.st_mode)) {
			r = copy_tree_file(dirfd(d), ddir, de->d_name, buf);
			if (r == 0 && owner &&
			    fchownat(ddir, de->d_name, owner->uid, owner->gid,
				     AT_SYMLINK_NOFOLLOW) < 0)
				r = -errno;
		} else if (S_ISLNK(st.st_mode)) {
			r = copy_tree_link(dirfd(d), ddir, de->d_name);
		}
		if (r < 0)
			return r;
	}
	return 0;
}
