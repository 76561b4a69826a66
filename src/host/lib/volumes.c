#include "volumes.h"
#include "cleanup.h"

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

static const char *file_kind(mode_t mode)
{
	if (S_ISSOCK(mode))
		return "a unix socket";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISFIFO(mode))
		return "a FIFO";
	return "neither a directory nor a regular file";
}

int volume_parse(const char *source, const char *destination, char *const *options,
		 size_t n_options, size_t index, struct volume *v, struct error **err)
{
	struct stat st;

	memset(v, 0, sizeof(*v));
	if (!source || !*source)
		return error_setx(err, EINVAL, "mounts[%zu] (%s): a bind mount needs a source",
				  index, destination);
	if (stat(source, &st) < 0)
		return error_set(err, errno, "mounts[%zu] (%s): source %s", index, destination,
				 source);
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
		return error_setx(
			err, EOPNOTSUPP,
			"mounts[%zu] (%s): source %s is %s, which cannot cross the VM boundary: the container runs in its own kernel, where a host socket or device means nothing",
			index, destination, source, file_kind(st.st_mode));
	v->is_dir = S_ISDIR(st.st_mode);
	v->propagation = MS_SLAVE;
	for (size_t i = 0; i < n_options; i++) {
		const char *o = options[i];
		/* The recursive forms (rro, rnosuid, ... from mount_setattr(2),
		 * as runc reads them) mean the same here: the flags are set on
		 * the whole cloned tree of an rbind. */
		if (*o == 'r' && (strcmp(o + 1, "ro") == 0 || strcmp(o + 1, "nosuid") == 0 ||
				  strcmp(o + 1, "nodev") == 0 || strcmp(o + 1, "noexec") == 0 ||
				  strcmp(o + 1, "rw") == 0))
			o++;
		if (strcmp(o, "rbind") == 0)
			v->recursive = true;
		else if (strcmp(o, "ro") == 0)
			v->flags |= MS_RDONLY;
		else if (strcmp(o, "rw") == 0)
			v->flags &= ~(unsigned long)MS_RDONLY;
		else if (strcmp(o, "nosuid") == 0)
			v->flags |= MS_NOSUID;
		else if (strcmp(o, "nodev") == 0)
			v->flags |= MS_NODEV;
		else if (strcmp(o, "noexec") == 0)
			v->flags |= MS_NOEXEC;
		else if (strcmp(o, "idmap") == 0 || strcmp(o, "ridmap") == 0 ||
			 strcmp(o, "nosymfollow") == 0 || strcmp(o, "rnosymfollow") == 0)
			return error_setx(
				err, EOPNOTSUPP,
				"mounts[%zu] (%s): option '%s' is not supported for a volume shared into the VM; remove it",
				index, destination, o);
		else if (strcmp(o, "private") == 0 || strcmp(o, "rprivate") == 0)
			v->propagation = MS_PRIVATE;
		/* shared and slave both mean "host mounts below the source show
		 * up": a mount made in the guest can never reach the host. */
		else if (strcmp(o, "slave") == 0 || strcmp(o, "rslave") == 0 ||
			 strcmp(o, "shared") == 0 || strcmp(o, "rshared") == 0)
			v->propagation = MS_SLAVE;
	}
	snprintf(v->name, sizeof(v->name), "%zu", index);
	v->host_path = strdup(source);
	return v->host_path ? 0 : error_set(err, ENOMEM, "mounts");
}

void volume_free(struct volume *v)
{
	free(v->host_path);
	v->host_path = NULL;
}

static uint64_t mount_attr_of(unsigned long flags)
{
	uint64_t a = 0;
	a |= flags & MS_RDONLY ? MOUNT_ATTR_RDONLY : 0;
	a |= flags & MS_NOSUID ? MOUNT_ATTR_NOSUID : 0;
	a |= flags & MS_NODEV ? MOUNT_ATTR_NODEV : 0;
	a |= flags & MS_NOEXEC ? MOUNT_ATTR_NOEXEC : 0;
	return a;
}

/* A detached copy of the source's mount (and, for rbind, of the mounts
 * below it) with the spec's flags set on all of it: read-only holds for the
 * submounts of an rbind too, and nothing is attached until it is final. */
int volume_clone(const struct volume *v, struct error **err)
{
	_cleanup_close_ int src = open(v->host_path, O_PATH | O_CLOEXEC);
	struct stat st;
	if (src < 0 || fstat(src, &st) < 0)
		return error_set(err, errno, "bind mount source %s", v->host_path);
	if (S_ISDIR(st.st_mode) != v->is_dir || (!v->is_dir && !S_ISREG(st.st_mode)))
		return error_setx(err, EINVAL,
				  "bind mount source %s changed type since the spec was read",
				  v->host_path);
	int tree = open_tree(src, "",
			     OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH |
				     (v->recursive ? AT_RECURSIVE : 0));
	if (tree < 0)
		return error_set(err, errno, "bind mount %s", v->host_path);
	struct mount_attr attr = {.attr_set = mount_attr_of(v->flags),
				  .propagation = v->propagation};
	if (mount_setattr(tree, "", AT_EMPTY_PATH | (v->recursive ? AT_RECURSIVE : 0), &attr,
			  sizeof(attr)) < 0) {
		int e = errno;
		close(tree);
		return error_set(err, e, "bind mount %s: set its flags", v->host_path);
	}
	return tree;
}

/* The share directory over itself, read-only: the mount points stay the only
 * entries, whatever the guest tries. */
static int share_readonly(const char *dir, struct error **err)
{
	_cleanup_close_ int tree = open_tree(AT_FDCWD, dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
					      MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC};
	if (tree < 0 || mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0 ||
	    move_mount(tree, "", AT_FDCWD, dir, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return error_set(err, errno, "read-only bind of %s", dir);
	return 0;
}

/* A mount point for each volume in DIR (files for files). */
static int make_mount_points(const char *dir_path, const struct volume *v, size_t n,
			     struct error **err)
{
	/* 0711: in the guest, a container in a user namespace is "other" to
	 * this directory's owner and must pass through it to its volume; the
	 * mount points are not listable, and the state directory above is
	 * 0700 on the host. */
	if (mkdir(dir_path, 0711) < 0)
		return error_set(err, errno, "create %s", dir_path);
	_cleanup_close_ int dir = open(dir_path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir < 0)
		return error_set(err, errno, "open %s", dir_path);
	for (size_t i = 0; i < n; i++) {
		int fd = v[i].is_dir ? mkdirat(dir, v[i].name, 0700)
				     : openat(dir, v[i].name,
					      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
					      0600);
		if (fd < 0)
			return error_set(err, errno, "mount point %s/%s", dir_path, v[i].name);
		if (!v[i].is_dir)
			close(fd);
	}
	return 0;
}

/* Every source on its mount point under DIR_PATH. */
static int bind_sources(const char *dir_path, const struct volume *v, size_t n, struct error **err)
{
	_cleanup_close_ int ro = open(dir_path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ro < 0)
		return error_set(err, errno, "open %s", dir_path);
	for (size_t i = 0; i < n; i++) {
		_cleanup_close_ int target = openat(ro, v[i].name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (target < 0)
			return error_set(err, errno, "mount point %s/%s", dir_path, v[i].name);
		_cleanup_close_ int tree = volume_clone(&v[i], err);
		if (tree < 0)
			return tree;
		if (move_mount(tree, "", target, "",
			       MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
			return error_set(err, errno, "bind mount %s", v[i].host_path);
	}
	return 0;
}

int volumes_setup(const char *share_dir, const struct volume *v, size_t n, struct error **err)
{
	if (n == 0)
		return 0;
	/* Our own mount namespace; host mounts still propagate into it. */
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return error_set(err, errno, "a mount namespace for the volumes");
	int r = make_mount_points(share_dir, v, n, err);
	if (r < 0 || (r = share_readonly(share_dir, err)) < 0)
		return r;
	/* The mount points, seen through the read-only bind now on top. */
	return bind_sources(share_dir, v, n, err);
}

int volumes_share_at(const char *points_dir, const char *mount_dir, const struct volume *v,
		     const int *trees, size_t n, struct error **err)
{
	if (n == 0)
		return 0;
	int r = make_mount_points(points_dir, v, n, err);
	if (r < 0)
		return r;
	_cleanup_close_ int dir = open(mount_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir < 0)
		return error_set(err, errno, "open %s", mount_dir);
	for (size_t i = 0; i < n; i++) {
		_cleanup_close_ int target =
			openat(dir, v[i].name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (target < 0)
			return error_set(err, errno, "mount point %s/%s", mount_dir, v[i].name);
		if (move_mount(trees[i], "", target, "",
			       MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
			return error_set(err, errno, "bind mount %s", v[i].host_path);
	}
	return 0;
}
