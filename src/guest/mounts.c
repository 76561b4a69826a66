/* The container's filesystem view, built in its own mount namespace. */
#include "mounts.h"
#include "cleanup.h"
#include "copy-up.h"
#include "error.h"
#include "fdio.h"
#include "argv.h"

#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

static const struct {
	const char *name;
	bool clear;
	unsigned long flag;
} mount_flags[] = {
	{"ro", false, MS_RDONLY},
	{"rw", true, MS_RDONLY},
	{"nosuid", false, MS_NOSUID},
	{"suid", true, MS_NOSUID},
	{"nodev", false, MS_NODEV},
	{"dev", true, MS_NODEV},
	{"noexec", false, MS_NOEXEC},
	{"exec", true, MS_NOEXEC},
	{"sync", false, MS_SYNCHRONOUS},
	{"async", true, MS_SYNCHRONOUS},
	{"noatime", false, MS_NOATIME},
	{"atime", true, MS_NOATIME},
	{"relatime", false, MS_RELATIME},
	{"norelatime", true, MS_RELATIME},
	{"strictatime", false, MS_STRICTATIME},
	{"nodiratime", false, MS_NODIRATIME},
	{"nosymfollow", false, MS_NOSYMFOLLOW},
	{"bind", false, MS_BIND},
	{"rbind", false, MS_BIND | MS_REC},
	{"private", false, 0},
	{"rprivate", false, 0},
	{"slave", false, 0},
	{"rslave", false, 0},
	{"shared", false, 0},
	{"rshared", false, 0},
	/* runc's extension (podman's tmpfs of a --read-only container): not
	 * the kernel's, see copy-up.h. */
	{"tmpcopyup", false, 0},
};

static bool has_option(const Cocoon__Mount *m, const char *name)
{
	for (size_t i = 0; i < m->n_options; i++)
		if (strcmp(m->options[i], name) == 0)
			return true;
	return false;
}

/* The flags of M's options into *FLAGS, the others (the filesystem's data)
 * comma-joined into DATA. Returns 0, or -ENAMETOOLONG when they do not fit
 * in DATA_SIZE bytes. */
static int parse_options(const Cocoon__Mount *m, unsigned long *flags, char *data, size_t data_size)
{
	size_t used = 0;
	*flags = 0;
	data[0] = 0;
	for (size_t i = 0; i < m->n_options; i++) {
		bool known = false;
		for (size_t j = 0; j < ARRAY_SIZE(mount_flags); j++) {
			if (strcmp(m->options[i], mount_flags[j].name) != 0)
				continue;
			known = true;
			if (mount_flags[j].clear)
				*flags &= ~mount_flags[j].flag;
			else
				*flags |= mount_flags[j].flag;
		}
		if (known)
			continue;
		if (used + strlen(m->options[i]) + 2 > data_size)
			return -ENAMETOOLONG;
		used += (size_t)snprintf(data + used, data_size - used, "%s%s", used ? "," : "",
					 m->options[i]);
	}
	return 0;
}

/* A bind mount of a file needs a file to mount on. */
static int make_target(const char *target, bool is_file)
{
	if (!is_file)
		return mkdir_p(target, 0755, NULL);
	char dir[PATH_MAX];
	if (path_fmt(dir, sizeof(dir), "%s", target) < 0)
		return -ENAMETOOLONG;
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		int r = mkdir_p(dir, 0755, NULL);
		if (r < 0)
			return r;
	}
	int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 && errno != EISDIR)
		return -errno;
	if (fd >= 0)
		close(fd);
	return 0;
}

const char *const mounts_dev_nodes[MOUNTS_DEV_NODES] = {"null",	  "zero",    "full",
							"random", "urandom", "tty"};

void mounts_dev_binds_external(struct argv *av)
{
	for (size_t i = 0; i < MOUNTS_DEV_NODES; i++) {
		argv_add(av, "--external");
		argv_addf(av, "mnt[/dev/%s]:/dev/%s", mounts_dev_nodes[i], mounts_dev_nodes[i]);
	}
}

void mounts_cgroup_binds_external(struct argv *av, const Cocoon__ContainerSpec *s, bool bound,
				  const char *cgroup)
{
	bool any = false;
	for (size_t i = 0; bound && i < s->n_mounts; i++) {
		const Cocoon__Mount *m = s->mounts[i];
		bool bind = false;
		for (size_t j = 0; j < m->n_options; j++)
			bind |= strcmp(m->options[j], "bind") == 0 ||
				strcmp(m->options[j], "rbind") == 0;
		if (bind || !m->type ||
		    (strcmp(m->type, "cgroup") != 0 && strcmp(m->type, "cgroup2") != 0))
			continue;
		any = true;
		if (!cgroup) {
			argv_add(av, "--external");
			argv_addf(av, "mnt[%s]:" MOUNTS_CGROUP_KEY, m->destination);
		}
	}
	if (any && cgroup) {
		argv_add(av, "--external");
		argv_addf(av, "mnt[" MOUNTS_CGROUP_KEY "]:%s", cgroup);
	}
}

/* A user namespace may not mknod (a device node is the guest's kernel's
 * to give): the guest's own node is bind-mounted on an empty file
 * instead, as runc does in a user namespace (bindMountDeviceNode). Before
 * the pivot, the guest's /dev is still there. */
static int bind_dev_node(const char *path, const char *name)
{
	char from[64];
	snprintf(from, sizeof(from), "/dev/%s", name);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0)
		return -1;
	close(fd);
	return mount(from, path, NULL, MS_BIND, NULL);
}

/* The device nodes and links runc puts in a tmpfs /dev. Returns 0 or a
 * negative errno naming the first one that could not be made in *what. */
static int populate_dev(const char *dev, const char **what)
{
	/* In mounts_dev_nodes' order. */
	static const struct {
		unsigned maj, min;
	} devs[MOUNTS_DEV_NODES] = {{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}};
	static const struct {
		const char *name, *target;
	} links[] = {{"fd", "/proc/self/fd"},
		     {"stdin", "/proc/self/fd/0"},
		     {"stdout", "/proc/self/fd/1"},
		     {"stderr", "/proc/self/fd/2"},
		     {"ptmx", "pts/ptmx"}};
	char path[PATH_MAX];

	/* DEV is a mount target, shorter than PATH_MAX by far: nothing here is
	 * cut, and a path that would be is not made. */
	for (size_t i = 0; i < ARRAY_SIZE(devs); i++) {
		if (snprintf(path, sizeof(path), "%s/%s", dev, mounts_dev_nodes[i]) >=
		    (int)sizeof(path))
			return 0;
		*what = mounts_dev_nodes[i];
		if (mknod(path, S_IFCHR | 0666, makedev(devs[i].maj, devs[i].min)) < 0 &&
		    errno != EEXIST &&
		    (errno != EPERM || bind_dev_node(path, mounts_dev_nodes[i]) < 0))
			return -errno;
		/* The mode despite the umask; a node that exists keeps its own. */
		(void)chmod(path, 0666);
	}
	for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
		if (snprintf(path, sizeof(path), "%s/%s", dev, links[i].name) >= (int)sizeof(path))
			return 0;
		*what = links[i].name;
		if (symlink(links[i].target, path) < 0 && errno != EEXIST)
			return -errno;
	}
	return 0;
}

/* A cgroup filesystem where the container may not mount one: in a user
 * namespace without a cgroup namespace of its own, the guest's cgroup
 * namespace is not the container's to mount (cgroup2 wants CAP_SYS_ADMIN
 * over its owner). runc bind-mounts the cgroup tree then; here the
 * container's own cgroup, CGROUP, read-only, which is what a private
 * cgroup namespace would show. */
static int bind_cgroup(const char *cgroup, const char *target, unsigned long flags)
{
	if (!cgroup) {
		errno = EPERM;
		return -1;
	}
	if (mount(cgroup, target, NULL, MS_BIND | MS_REC, NULL) < 0)
		return -1;
	return mount(NULL, target, NULL,
		     MS_BIND | MS_REMOUNT | MS_RDONLY |
			     (flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC)),
		     NULL);
}

static int mount_one(const Cocoon__Mount *m, const char *rootfs, const char *cgroup,
		     struct error **err)
{
	char target[PATH_MAX], data[512];
	unsigned long flags;
	struct stat st;

	if (parse_options(m, &flags, data, sizeof(data)) < 0)
		return error_setx(err, ENAMETOOLONG, "mount %s: its options are over %zu bytes",
				  m->destination, sizeof(data) - 1);
	if (path_fmt(target, sizeof(target), "%s%s", rootfs, m->destination) < 0)
		return error_setx(err, ENAMETOOLONG, "mount %s: the path is too long",
				  m->destination);
	bool bind = (flags & MS_BIND) || strcmp(m->type, "bind") == 0;
	bool is_file = bind && stat(m->source, &st) == 0 && !S_ISDIR(st.st_mode);
	int r = make_target(target, is_file);
	if (r < 0)
		return error_set(err, -r, "mount %s: create mount point", m->destination);
	if (bind) {
		if (mount(m->source, target, NULL, MS_BIND | (flags & MS_REC), NULL) < 0 ||
		    ((flags & ~(MS_BIND | MS_REC)) &&
		     mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | (flags & ~(MS_BIND | MS_REC)),
			   NULL) < 0))
			return error_set(err, errno, "mount %s (bind from %s)", m->destination,
					 m->source);
		return 0;
	}
	if (strcmp(m->type, "sysfs") == 0 || strcmp(m->type, "cgroup") == 0 ||
	    strcmp(m->type, "cgroup2") == 0) {
		/* sysfs and cgroups always read-only: the guest's own tree stays
		 * out of the container's reach. */
		flags |= MS_RDONLY;
	}
	const char *type = strcmp(m->type, "cgroup") == 0 ? "cgroup2" : m->type;
	/* The directory the tmpfs will hide, for tmpcopyup: its fd still
	 * reads it once it is covered. */
	bool copying = strcmp(m->type, "tmpfs") == 0 && has_option(m, "tmpcopyup");
	_cleanup_close_ int under =
		copying ? open(target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
	if (mount(m->source && *m->source ? m->source : type, target, type, flags,
		  *data ? data : NULL) < 0 &&
	    (strcmp(type, "cgroup2") != 0 || errno != EPERM ||
	     bind_cgroup(cgroup, target, flags) < 0)) {
		int e = errno;
		return error_setx(err, e, "mount %s (%s): %s", m->destination, m->type,
				  e == ENODEV ? "the guest's kernel has no such filesystem type"
					      : strerror(e));
	}
	if (under >= 0) {
		char what[256] = "";
		struct stat hidden;
		_cleanup_close_ int top = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		r = top < 0 ? -errno : copy_up_dir(under, top, what, sizeof(what));
		/* runc's too: the tmpfs takes the mode and owner of what it hides. */
		if (r == 0 && fstat(under, &hidden) == 0 &&
		    (fchmod(top, hidden.st_mode & 07777) < 0 ||
		     fchown(top, hidden.st_uid, hidden.st_gid) < 0))
			r = -errno;
		if (r < 0)
			return error_set(err, -r, "mount %s (tmpfs, tmpcopyup): copy %s",
					 m->destination, *what ? what : ".");
	}
	const char *what = "";
	if (strcmp(m->destination, "/dev") == 0 && strcmp(m->type, "tmpfs") == 0 &&
	    (r = populate_dev(target, &what)) < 0)
		return error_set(err, -r, "mount /dev: /dev/%s", what);
	return 0;
}

const Cocoon__Mount *mounts_tmpfs_at(const Cocoon__ContainerSpec *s, const char *destination)
{
	for (size_t i = 0; s && i < s->n_mounts; i++)
		if (strcmp(s->mounts[i]->destination, destination) == 0 &&
		    strcmp(s->mounts[i]->type, "tmpfs") == 0)
			return s->mounts[i];
	return NULL;
}

int mounts_prepare_fresh(const Cocoon__ContainerSpec *s, const char *destination, const char *base,
			 struct error **err)
{
	const Cocoon__Mount *fs = mounts_tmpfs_at(s, destination);
	if (!fs)
		return error_setx(err, EINVAL, "the spec has no tmpfs on %s", destination);
	int r = mount_one(fs, base, NULL, err);
	if (r < 0)
		return r;
	/* The mount points of what the spec mounts inside it (for /dev: pts,
	 * shm, mqueue, bind-mounted files): CRIU mounts them back on top. */
	size_t len = strlen(destination);
	for (size_t i = 0; i < s->n_mounts; i++) {
		const Cocoon__Mount *m = s->mounts[i];
		if (strncmp(m->destination, destination, len) != 0 || m->destination[len] != '/' ||
		    strstr(m->destination, ".."))
			continue;
		char target[PATH_MAX];
		struct stat st;
		bool bind = strcmp(m->type, "bind") == 0;
		r = path_fmt(target, sizeof(target), "%s%s", base, m->destination);
		if (r == 0)
			r = make_target(target,
					bind && stat(m->source, &st) == 0 && !S_ISDIR(st.st_mode));
		if (r < 0)
			return error_set(err, -r, "mount point %s", m->destination);
	}
	return 0;
}

/* Under the destination of one of the spec's tmpfs mounts: CRIU restores
 * those with their contents, mount points included. */
static bool under_tmpfs(const Cocoon__ContainerSpec *s, const char *path)
{
	for (size_t i = 0; i < s->n_mounts; i++) {
		const Cocoon__Mount *m = s->mounts[i];
		size_t n = strlen(m->destination);
		if (strcmp(m->type, "tmpfs") == 0 && strncmp(path, m->destination, n) == 0 &&
		    path[n] == '/')
			return true;
	}
	return false;
}

/* The child of mounts_prepare_restore, in a mount namespace of its own: its
 * bind mounts exist only so that the mount points of nested mounts can be
 * made inside them, and vanish with it. */
static void __attribute__((noreturn))
make_mountpoints_child(const Cocoon__ContainerSpec *s, const char *rootfs, int report)
{
	char msg[400] = "";
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		snprintf(msg, sizeof(msg), "a mount namespace: %s", strerror(errno));
		goto fail;
	}
	for (size_t i = 0; i < s->n_mounts; i++) {
		const Cocoon__Mount *m = s->mounts[i];
		if (under_tmpfs(s, m->destination))
			continue;
		char target[PATH_MAX];
		struct stat st;
		bool bind = strcmp(m->type, "bind") == 0;
		int r = path_fmt(target, sizeof(target), "%s%s", rootfs, m->destination);
		if (r == 0)
			r = make_target(target,
					bind && stat(m->source, &st) == 0 && !S_ISDIR(st.st_mode));
		if (r < 0) {
			snprintf(msg, sizeof(msg), "mount point %.300s: %s", m->destination,
				 strerror(-r));
			goto fail;
		}
		if (bind && mount(m->source, target, NULL, MS_BIND | MS_REC, NULL) < 0) {
			snprintf(msg, sizeof(msg), "mount %.150s (bind from %.150s): %s",
				 m->destination, m->source, strerror(errno));
			goto fail;
		}
	}
	_exit(0);
fail:
	if (write(report, msg, strlen(msg)) < 0)
		_exit(1);
	_exit(1);
}

int mounts_prepare_restore(const Cocoon__ContainerSpec *s, const char *rootfs, struct error **err)
{
	char msg[400];
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return error_set(err, errno, "pipe");
	pid_t pid = fork();
	if (pid < 0) {
		int e = error_set(err, errno, "fork");
		close(p[0]);
		close(p[1]);
		return e;
	}
	if (pid == 0) {
		close(p[0]);
		make_mountpoints_child(s, rootfs, p[1]);
	}
	close(p[1]);
	ssize_t n;
	size_t len = 0;
	msg[0] = 0;
	while (len + 1 < sizeof(msg) && (n = read(p[0], msg + len, sizeof(msg) - 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		len += (size_t)n;
	}
	msg[len] = 0;
	close(p[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	return error_setx(err, EIO, "%s", *msg ? msg : "making the mount points failed");
}

int mounts_setup_rootfs(const Cocoon__ContainerSpec *s, const char *rootfs, const char *cgroup,
			struct error **err)
{
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
		return error_set(err, errno, "rootfs");
	for (size_t i = 0; i < s->n_mounts; i++) {
		int r = mount_one(s->mounts[i], rootfs, cgroup, err);
		if (r < 0)
			return r;
	}
	/* pivot_root(".", ".") stacks the old root under the new one; the
	 * detach then drops it. But the guest's own root is the initramfs,
	 * and pivot_root() refuses to move that (EINVAL). There we do what
	 * switch_root and runc --no-pivot do: move the new root over "/" and
	 * chroot into it. The old root stays reachable only through a chroot
	 * escape inside the guest, which is not the isolation boundary: the
	 * VM is. */
	if (chdir(rootfs) < 0)
		goto fail;
	if (syscall(SYS_pivot_root, ".", ".") == 0) {
		if (umount2(".", MNT_DETACH) < 0)
			goto fail;
	} else if (errno != EINVAL || mount(rootfs, "/", NULL, MS_MOVE, NULL) < 0 ||
		   chroot(".") < 0) {
		goto fail;
	}
	if (chdir("/") < 0)
		goto fail;
	if (s->readonly_rootfs &&
	    mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
		return error_set(err, errno, "root.readonly");
	return 0;
fail:
	return error_set(err, errno, "pivot_root into %s", rootfs);
}
