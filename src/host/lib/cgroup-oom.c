/* OOM kills in the guest as real OOM events on the host cgroup the engines
 * watch (cgroup-oom.h says why and how). */
#include "cgroup-oom.h"
#include "cleanup.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RELAY_TOUCH (64u << 20) /* bytes the helper touches: 16 times the limit */

static int relay_path(const char *hierarchy, const char *path, char *out, size_t size,
		      struct error **err)
{
	int n = snprintf(out, size, "%s%s%s", hierarchy, CGOOM_RELAY_DIR, path);
	if (n < 0 || (size_t)n >= size)
		return error_setx(err, ENAMETOOLONG, "OOM relay for %s: path too long", path);
	return 0;
}

/* mkdir -p <hierarchy>/cocoon-oom<path>, one component at a time, never
 * following a symlink; returns an O_PATH fd of the leaf. */
static int make_relay(const char *hierarchy, const char *path, struct error **err)
{
	char rel[1200];
	int n = snprintf(rel, sizeof(rel), "%s%s", CGOOM_RELAY_DIR, path);
	if (n < 0 || (size_t)n >= sizeof(rel))
		return error_setx(err, ENAMETOOLONG, "OOM relay for %s: path too long", path);
	_cleanup_close_ int dir = open(hierarchy, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return error_set(err, errno, "%s", hierarchy);
	for (char *s = rel; *s;) {
		while (*s == '/')
			s++;
		size_t len = strcspn(s, "/");
		if (!len)
			break;
		char save = s[len];
		s[len] = 0;
		if (mkdirat(dir, s, 0755) < 0 && errno != EEXIST)
			return error_set(err, errno, "mkdir %s%s", hierarchy, rel);
		int next = openat(dir, s, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			return error_set(err, errno, "%s%s", hierarchy, rel);
		close(dir);
		dir = next;
		s[len] = save;
		s += len;
	}
	return TAKE_FD(dir);
}

static int write_at(int dir, const char *name, const char *text)
{
	_cleanup_close_ int fd = openat(dir, name, O_WRONLY | O_CLOEXEC);
	ssize_t len = (ssize_t)strlen(text);
	if (fd < 0 || write(fd, text, (size_t)len) != len)
		return -errno;
	return 0;
}

/* The relay's file over the mirror's one of the same name (made empty in
 * the tmpfs when the mirror has none). */
static int bind_file(int relay, int mirror_fd, const char *name, struct error **err)
{
	_cleanup_close_ int tree = -1;
	int fd = openat(mirror_fd, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return error_set(err, errno, "OOM relay: %s in the mirror", name);
	close(fd);
	tree = open_tree(relay, name, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (tree < 0 || move_mount(tree, "", mirror_fd, name, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return error_set(err, errno, "OOM relay: bind %s", name);
	return 0;
}

int cgoom_setup(struct cgoom *o, const char *hierarchy, const char *path, int mirror_fd,
		struct error **err)
{
	char limit[32];
	int r;

	o->active = false;
	o->relay_fd = -1;
	o->relayed = 0;
	_cleanup_close_ int relay = make_relay(hierarchy, path, err);
	if (relay < 0)
		return relay;
	snprintf(limit, sizeof(limit), "%u", CGOOM_RELAY_LIMIT);
	if ((r = write_at(relay, "memory.limit_in_bytes", limit)) < 0)
		return error_set(err, -r, "OOM relay: memory.limit_in_bytes");
	/* Reclaim must not swap the helper out instead of killing it. */
	write_at(relay, "memory.swappiness", "0");
	if ((r = bind_file(relay, mirror_fd, "memory.oom_control", err)) < 0)
		return r;
	if ((r = bind_file(relay, mirror_fd, "cgroup.event_control", err)) < 0) {
		char where[1200];
		if (snprintf(where, sizeof(where), "%s%s/memory.oom_control", hierarchy, path) <
		    (int)sizeof(where))
			(void)umount2(where, MNT_DETACH | UMOUNT_NOFOLLOW); /* undo: best effort */
		return r;
	}
	o->relay_fd = TAKE_FD(relay);
	o->active = true;
	return 0;
}

/* The helper: into the relay, then touch memory until the kernel kills it.
 * Runs in the forked child: async-signal-safe calls only, then _exit. */
static void __attribute__((noreturn)) relay_child(int relay)
{
	(void)prctl(PR_SET_NAME, "cocoon-oom", 0, 0, 0); /* a name for ps only */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0); /* cannot fail: a valid signal */
	if (write_at(relay, "cgroup.procs", "0") < 0)
		_exit(2);
	volatile char *m =
		mmap(NULL, RELAY_TOUCH, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		_exit(3);
	for (size_t i = 0; i < RELAY_TOUCH; i += 4096)
		m[i] = 1;
	_exit(4); /* not killed: the limit did not hold */
}

static int relay_one(struct cgoom *o, struct error **err)
{
	pid_t pid = fork();
	int status = 0;
	if (pid < 0)
		return error_set(err, errno, "OOM relay: fork");
	if (pid == 0)
		relay_child(o->relay_fd);
	for (int waited = 0;; waited += 10) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			return error_set(err, errno, "OOM relay: wait");
		if (waited >= CGOOM_RELAY_TIMEOUT_MS) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return error_setx(err, ETIMEDOUT,
					  "OOM relay: the helper was not OOM-killed within %d ms",
					  CGOOM_RELAY_TIMEOUT_MS);
		}
		nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
	}
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
		return 1;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 2)
		return error_setx(err, EPERM,
				  "OOM relay: the helper could not join the relay cgroup");
	return error_setx(
		err, EIO,
		"OOM relay: the helper was not OOM-killed (exit %d) under a %u-byte limit",
		WIFEXITED(status) ? WEXITSTATUS(status) : -1, CGOOM_RELAY_LIMIT);
}

int cgoom_notify(struct cgoom *o, uint64_t count, struct error **err)
{
	if (!o->active || count <= o->relayed)
		return 0;
	/* One event per rise, whatever its size: the engines count events,
	 * not kills (conmon marks the container, containerd sends one
	 * TaskOOM per wake-up). */
	o->relayed = count;
	return relay_one(o, err);
}

void cgoom_close(struct cgoom *o)
{
	if (o->active && o->relay_fd >= 0)
		close(o->relay_fd);
	o->relay_fd = -1;
	o->active = false;
}

int cgoom_remove(const char *hierarchy, const char *path, struct error **err)
{
	char where[1200];
	int r = relay_path(hierarchy, path, where, sizeof(where), err);
	if (r < 0)
		return r;
	/* A helper the kernel just killed may still be leaving it. */
	for (int tries = 0; rmdir(where) < 0; tries++) {
		if (errno == ENOENT)
			return 0;
		if (errno != EBUSY || tries >= 50)
			return error_set(err, errno, "remove OOM relay cgroup %s", where);
		nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
	}
	return 0;
}
