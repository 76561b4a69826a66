/* Pods: which sandbox a container joins, and the pod share its rootfs
 * reaches the VM through (pod.h, docs/pods.md). */
#include "pod.h"
#include "cleanup.h"
#include "paths.h"
#include "spec.h"
#include "state.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

/* ---- what the spec says ------------------------------------------------------ */

bool pod_may_host_members(const struct oci_bundle *b)
{
	return !b->pod.join_pid && !b->pod.sandbox_id;
}

/* ---- finding the sandbox ------------------------------------------------------ */

static bool same_executable(pid_t pid)
{
	char path[64];
	struct stat mine, theirs;
	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	return stat("/proc/self/exe", &mine) == 0 && stat(path, &theirs) == 0 &&
	       mine.st_dev == theirs.st_dev && mine.st_ino == theirs.st_ino;
}

/* The container of root whose live shim has this pid, or -ESRCH. */
static int find_by_shim_pid(const char *root, pid_t pid, char id[65])
{
	_cleanup_closedir_ DIR *d = opendir(root);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		_cleanup_free_ char *dir = NULL;
		struct container_state st;
		if (de->d_name[0] == '.' || state_dir(root, de->d_name, &dir, NULL) < 0 ||
		    state_read(dir, &st, NULL) < 0)
			continue;
		if (st.status != STATUS_STOPPED && st.shim_pid == pid) {
			if (snprintf(id, 65, "%s", de->d_name) >= 65)
				continue; /* not a container ID: state_dir() refuses those */
			return 0;
		}
	}
	return -ESRCH;
}

static int load_sandbox(struct global_opts *g, const char *id, struct pod_sandbox *sb,
			struct error **err)
{
	struct container_state st;
	_cleanup_free_ char *share = NULL, *marker = NULL;
	int r = state_dir(g->root, id, &sb->dir, err);
	if (r < 0)
		return r;
	snprintf(sb->id, sizeof(sb->id), "%s", id);
	if ((r = state_read(sb->dir, &st, err)) < 0)
		return r == -ENOENT ? error_setx(err, ESRCH, "pod sandbox %s does not exist", id)
				    : r;
	if (st.status == STATUS_STOPPED)
		return error_setx(err, ESRCH, "pod sandbox %s is stopped: its VM is gone", id);
	if (asprintf(&marker, "%s/" POD_SANDBOX_FILE, sb->dir) < 0 ||
	    asprintf(&share, "%s/" POD_SHARE, sb->dir) < 0)
		return error_set(err, ENOMEM, "pod");
	if (access(marker, F_OK) == 0)
		return error_setx(err, EINVAL, "container %s is a member of a pod, not its sandbox",
				  id);
	if (access(share, F_OK) < 0)
		return error_setx(
			err, EINVAL,
			"container %s was started without a pod share and takes no members", id);
	sb->shim_pid = st.shim_pid;
	sb->shim_start = st.shim_start;
	r = state_keeper_read(sb->dir, &sb->keeper_pid, &sb->keeper_start, NULL);
	if (r == -ENOENT) {
		/* No keeper (its fork failed, or a cocoon from before the
		 * keeper started it): the shim owns the VM and the pod share
		 * (rev16b L5). */
		sb->keeper_pid = st.shim_pid;
		sb->keeper_start = st.shim_start;
		return 0;
	}
	if (r == -ESRCH)
		return error_setx(err, ESRCH, "the VM of pod sandbox %s is gone", id);
	if (r < 0)
		return error_set(err, -r, "pod sandbox %s: read its " STATE_KEEPER_FILE " file",
				 id);
	return 0;
}

/* restore --pod: the pod's sandbox was restored just now, under the id
 * pod.json names; the member's spec must still say it is a member. */
static int resolve_restored(struct global_opts *g, const struct spec_pod *p, const char *sandbox_id,
			    struct pod_sandbox *sb, struct error **err)
{
	if (!p->join_pid && !p->sandbox_id)
		return error_setx(err, EINVAL,
				  "config.json joins no pod (no namespace path of a sandbox, no "
				  "sandbox-id annotation), but pod.json lists it as a member of %s",
				  sandbox_id);
	if (p->sandbox_id && strcmp(p->sandbox_id, sandbox_id) != 0)
		return error_setx(err, EINVAL,
				  "config.json: the sandbox-id annotation names %s, pod.json's "
				  "sandbox is %s",
				  p->sandbox_id, sandbox_id);
	int r = load_sandbox(g, sandbox_id, sb, err);
	if (r < 0) {
		pod_sandbox_free(sb);
		return r;
	}
	return 1;
}

int pod_sandbox_record_netns(const char *dir, const char *netns_path, struct error **err)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/" POD_NETNS_FILE, dir);
	return write_file_atomic(path, netns_path, strlen(netns_path), 0600, err);
}

/* A member that names a network namespace by path (CRI's CNI path, or a
 * podman member given a --network of its own) must name the pod's: in the
 * VM it gets the pod's network whatever it names, so any other is refused
 * rather than silently replaced. Same namespace = same nsfs inode. */
static int check_member_netns(const struct oci_bundle *b, const struct pod_sandbox *sb,
			      struct error **err)
{
	const char *own = b->pod.netns_path ? b->pod.netns_path : b->netns_path;
	char path[4200];
	_cleanup_free_ char *pods = NULL;
	struct stat mine, theirs;
	if (!own)
		return 0;
	snprintf(path, sizeof(path), "%s/" POD_NETNS_FILE, sb->dir);
	int r = read_file_bounded(path, 4096, &pods, NULL, NULL);
	if (r < 0 && r != -ENOENT)
		return error_set(err, -r, "read %s", path);
	if (r < 0)
		return error_setx(
			err, EINVAL,
			"config.json: the network namespace %s: pod sandbox %s has no network "
			"namespace path, it made its own; a container of a pod shares its sandbox's "
			"network (docs/pods.md)",
			own, sb->id);
	if (stat(own, &mine) < 0)
		return error_set(err, errno, "config.json: the network namespace %s", own);
	if (strcmp(own, pods) != 0 && (stat(pods, &theirs) < 0 || mine.st_dev != theirs.st_dev ||
				       mine.st_ino != theirs.st_ino))
		return error_setx(
			err, EINVAL,
			"config.json: the network namespace %s is not the one of pod sandbox %s (%s): "
			"a container of a pod shares its sandbox's network, carried into the pod's VM "
			"once (docs/pods.md)",
			own, sb->id, pods);
	return 0;
}

int pod_resolve(struct global_opts *g, const struct oci_bundle *b, const char *sandbox_id,
		struct pod_sandbox *sb, struct error **err)
{
	const struct spec_pod *p = &b->pod;
	char by_pid[65] = "";

	memset(sb, 0, sizeof(*sb));
	if (sandbox_id)
		return resolve_restored(g, p, sandbox_id, sb, err);
	if (!p->join_pid && !p->sandbox_id)
		return 0;
	if (p->join_pid) {
		/* Only a cocoon shim of this root has namespaces that lead into
		 * a VM; any other process's would be the host's. */
		if (find_by_shim_pid(g->root, p->join_pid, by_pid) < 0 ||
		    !same_executable(p->join_pid))
			return error_setx(
				err, ESRCH,
				"config.json: the namespaces of /proc/%d: process %d is not the shim of a running cocoon container under %s; a container in a VM can only join the namespaces of its own pod's sandbox",
				p->join_pid, p->join_pid, g->root);
		if (p->sandbox_id && strcmp(p->sandbox_id, by_pid) != 0)
			return error_setx(
				err, EINVAL,
				"config.json: the sandbox-id annotation names %s, the namespace paths container %s",
				p->sandbox_id, by_pid);
	}
	int r = load_sandbox(g, p->sandbox_id ? p->sandbox_id : by_pid, sb, err);
	if (r < 0) {
		pod_sandbox_free(sb);
		return r;
	}
	if (p->join_pid && proc_start_time(p->join_pid) != sb->shim_start) {
		pod_sandbox_free(sb);
		return error_setx(err, ESRCH, "the shim of pod sandbox %s (pid %d) is gone", by_pid,
				  p->join_pid);
	}
	if ((r = check_member_netns(b, sb, err)) < 0) {
		pod_sandbox_free(sb);
		return r;
	}
	return 1;
}

int pod_member_record(const char *dir, const struct pod_sandbox *sb, struct error **err)
{
	char path[4200], pid[24];
	snprintf(path, sizeof(path), "%s/" POD_SANDBOX_FILE, dir);
	int r = write_file_atomic(path, sb->id, strlen(sb->id), 0600, err);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/" POD_KEEPER_OF_FILE, dir);
	int n = snprintf(pid, sizeof(pid), "%d", sb->keeper_pid);
	return write_file_atomic(path, pid, (size_t)n, 0600, err);
}

char *pod_kept_dir(const char *dir, pid_t keeper)
{
	const char *base = strrchr(dir, '/');
	char *out;
	base = base ? base + 1 : dir;
	if (asprintf(&out, "%.*s.pod-%d-%s", (int)(base - dir), dir, keeper, base) < 0)
		return NULL;
	return out;
}

/* The directory DIR of a sandbox as it is now for a pod whose keeper is
 * KEEPER (0: unknown, the id's own). */
static char *sandbox_dir_now(const char *dir, pid_t keeper)
{
	struct stat st;
	if (keeper > 0) {
		char *kept = pod_kept_dir(dir, keeper);
		if (!kept || (lstat(kept, &st) == 0 && S_ISDIR(st.st_mode)))
			return kept;
		free(kept);
	}
	return strdup(dir);
}

char *pod_sandbox_dir_now(const struct pod_sandbox *sb)
{
	return sandbox_dir_now(sb->dir, sb->keeper_pid);
}

void pod_sandbox_free(struct pod_sandbox *sb)
{
	free(sb->dir);
	sb->dir = NULL;
}

/* ---- the pod share ----------------------------------------------------------- */

int pod_share_prepare(const char *dir, struct error **err)
{
	_cleanup_free_ char *ro = NULL, *rw = NULL;

	if (asprintf(&ro, "%s/" POD_SHARE, dir) < 0 || asprintf(&rw, "%s/" POD_SHARE_RW, dir) < 0)
		return error_set(err, ENOMEM, "pod share");
	/* Our own mount namespace, a slave of the host's: the members' binds
	 * never reach the host's mount table and vanish with this shim and
	 * its QEMU. */
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return error_set(err, errno, "pod share: a mount namespace");
	if ((mkdir(rw, 0700) < 0 && errno != EEXIST) || (mkdir(ro, 0700) < 0 && errno != EEXIST))
		return error_set(err, errno, "pod share %s", ro);
	if (mount(rw, ro, NULL, MS_BIND, NULL) < 0 ||
	    mount(NULL, ro, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) <
		    0)
		return error_set(err, errno, "pod share %s", ro);
	return 0;
}

static int enter_sandbox_mounts(const struct pod_sandbox *sb, struct error **err)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", sb->keeper_pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || proc_start_time(sb->keeper_pid) != sb->keeper_start)
		return error_setx(err, ESRCH, "the VM of pod sandbox %s is gone", sb->id);
	if (setns(fd, CLONE_NEWNS) < 0)
		return error_set(err, errno, "entering the mount namespace of pod sandbox %s",
				 sb->id);
	return 0;
}

/* A member's bind mounts of host paths (volumes.h) go beside its rootfs,
 * pod/<id>/volumes/<n>, and the spec's sources follow them. */
static int share_volumes(const char *rw, const char *ro, const char *id, struct oci_bundle *b,
			 const int *trees, struct error **err)
{
	_cleanup_free_ char *points = NULL, *mounts = NULL;
	if (b->n_volumes == 0)
		return 0;
	if (asprintf(&points, "%s/" VOLUMES_DIR, rw) < 0 ||
	    asprintf(&mounts, "%s/" VOLUMES_DIR, ro) < 0)
		return error_set(err, ENOMEM, "pod");
	int r = volumes_share_at(points, mounts, b->volumes, trees, b->n_volumes, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < b->spec->n_mounts; i++) {
		Cocoon__Mount *m = b->spec->mounts[i];
		const char *prefix = COCOON_GUEST_VOLUMES_DIR "/";
		if (strcmp(m->type, "bind") != 0 || strncmp(m->source, prefix, strlen(prefix)) != 0)
			continue;
		char *src;
		if (asprintf(&src, COCOON_GUEST_POD_DIR "/%s/" VOLUMES_DIR "/%s", id,
			     m->source + strlen(prefix)) < 0)
			return error_set(err, ENOMEM, "pod");
		free(m->source);
		m->source = src;
	}
	return 0;
}

/* What a member left in the pod share: its volumes, its rootfs, the
 * directory. Safe when there is nothing. */
static void member_leave(const char *sandbox_dir, const char *id)
{
	char ro[4200], rw[4200], path[sizeof(ro) + sizeof(VOLUMES_DIR) + 257];
	snprintf(ro, sizeof(ro), "%s/" POD_SHARE "/%s", sandbox_dir, id);
	snprintf(rw, sizeof(rw), "%s/" POD_SHARE_RW "/%s", sandbox_dir, id);
	snprintf(path, sizeof(path), "%s/" VOLUMES_DIR, rw);
	_cleanup_closedir_ DIR *d = opendir(path);
	for (struct dirent *e; d && (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/" VOLUMES_DIR "/%s", ro, e->d_name);
		(void)umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW);
	}
	for (int i = 0; i < POD_MAX_IMAGES; i++) {
		snprintf(path, sizeof(path), "%s/images%d", ro, i);
		(void)umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW);
	}
	snprintf(path, sizeof(path), "%s/rootfs", ro);
	(void)umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW);
	(void)remove_tree(rw, NULL);
}

/* The rootfs and volumes, detached copies taken in the member's own mount
 * namespace: the engine mounted them there (containerd's shim mounts a
 * member's overlay after the sandbox's shim made its namespace, so they are
 * not all visible from it). */
struct member_trees {
	int rootfs;
	int volumes[COCOON_MAX_BINDS];
	size_t n;
	int images[POD_MAX_IMAGES]; /* a restore's image directories, read-only */
	int n_images;
};

static void member_trees_close(struct member_trees *t)
{
	if (t->rootfs >= 0)
		close(t->rootfs);
	for (size_t i = 0; i < t->n; i++)
		close(t->volumes[i]);
	for (int i = 0; i < t->n_images; i++)
		close(t->images[i]);
}

static int member_trees_take(const struct oci_bundle *b, const char *const *images, int n_images,
			     struct member_trees *t, struct error **err)
{
	if (n_images > POD_MAX_IMAGES)
		return error_setx(err, E2BIG, "at most %d image directories for a pod member",
				  POD_MAX_IMAGES);
	for (t->n_images = 0; t->n_images < n_images; t->n_images++) {
		int fd = open_tree(AT_FDCWD, images[t->n_images],
				   OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
						      MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC};
		if (fd >= 0 && mount_setattr(fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0) {
			int e = errno;
			close(fd);
			fd = -1;
			errno = e;
		}
		if (fd < 0)
			return error_set(err, errno, "checkpoint images %s", images[t->n_images]);
		t->images[t->n_images] = fd;
	}
	t->rootfs =
		open_tree(AT_FDCWD, b->rootfs, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
	if (t->rootfs < 0)
		return error_set(err, errno, "rootfs %s", b->rootfs);
	for (t->n = 0; t->n < b->n_volumes; t->n++) {
		int fd = volume_clone(&b->volumes[t->n], err);
		if (fd < 0)
			return fd;
		t->volumes[t->n] = fd;
	}
	return 0;
}

int pod_member_share(const struct pod_sandbox *sb, const char *id, struct oci_bundle *b,
		     const char *const *images, int n_images, struct error **err)
{
	_cleanup_free_ char *rw = NULL, *ro = NULL, *rw_root = NULL, *target = NULL;
	Cocoon__ContainerSpec *s = b->spec;
	struct member_trees trees = {.rootfs = -1};

	if (asprintf(&rw, "%s/" POD_SHARE_RW "/%s", sb->dir, id) < 0 ||
	    asprintf(&ro, "%s/" POD_SHARE "/%s", sb->dir, id) < 0 ||
	    asprintf(&rw_root, "%s/rootfs", rw) < 0 ||
	    asprintf(&target, "%s/" POD_SHARE "/%s/rootfs", sb->dir, id) < 0)
		return error_set(err, ENOMEM, "pod");
	int r = member_trees_take(b, images, n_images, &trees, err);
	if (r < 0 || (r = enter_sandbox_mounts(sb, err)) < 0)
		goto out;
	/* A member of that id whose shim was killed left its mounts. */
	member_leave(sb->dir, id);
	if (mkdir(rw, 0700) < 0 || mkdir(rw_root, 0755) < 0) {
		r = error_set(err, errno, "pod share %s", rw);
		goto out;
	}
	if (move_mount(trees.rootfs, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
		r = error_set(err, errno, "sharing rootfs %s into pod sandbox %s", b->rootfs,
			      sb->id);
		goto out;
	}
	if ((r = share_volumes(rw, ro, id, b, trees.volumes, err)) < 0)
		goto out;
	for (int i = 0; i < trees.n_images; i++) {
		char point[4300], where[4300];
		snprintf(point, sizeof(point), "%s/images%d", rw, i);
		snprintf(where, sizeof(where), "%s/images%d", ro, i);
		if (mkdir(point, 0700) < 0 ||
		    move_mount(trees.images[i], "", AT_FDCWD, where, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
			r = error_set(err, errno,
				      "sharing checkpoint images %s into pod sandbox %s", images[i],
				      sb->id);
			goto out;
		}
	}
	free(s->rootfs_tag);
	s->rootfs_tag = NULL;
	if (asprintf(&s->rootfs_tag, COCOON_TAG_POD) < 0 ||
	    asprintf(&s->rootfs_path, "%s/rootfs", id) < 0 || !(s->join_container = strdup(sb->id)))
		r = error_set(err, ENOMEM, "pod");
out:
	member_trees_close(&trees);
	return r;
}

void pod_member_unshare(const struct pod_sandbox *sb, const char *id)
{
	/* Its sandbox may have been deleted, its directory moved, and a new
	 * container made under the id meanwhile (pod_kept_dir). */
	_cleanup_free_ char *dir = pod_sandbox_dir_now(sb);
	if (dir)
		member_leave(dir, id);
}

int pod_images_state_dir(struct global_opts *g, const char *dir, char **out, struct error **err)
{
	_cleanup_free_ char *path = NULL, *id = NULL;
	*out = NULL;
	if (asprintf(&path, "%s/" POD_SANDBOX_FILE, dir) < 0)
		return error_set(err, ENOMEM, "pod");
	int r = read_file_bounded(path, COCOON_ID_MAX + 1, &id, NULL, NULL);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return error_set(err, -r, "read %s", path);
	if ((r = validate_id("pod sandbox", id, err)) < 0)
		return r;
	_cleanup_free_ char *own = NULL, *keeper = NULL;
	if ((r = state_dir(g->root, id, &own, err)) < 0)
		return r;
	/* None (a member made by a cocoon from before the record): the id's. */
	free(path);
	if (asprintf(&path, "%s/" POD_KEEPER_OF_FILE, dir) < 0)
		return error_set(err, ENOMEM, "pod");
	(void)read_file_bounded(path, 24, &keeper, NULL, NULL);
	if (!(*out = sandbox_dir_now(own, keeper ? atoi(keeper) : 0)))
		return error_set(err, ENOMEM, "pod");
	return 1;
}
