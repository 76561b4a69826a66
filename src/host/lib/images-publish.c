/* Publishing a checkpoint's images: sealed with a manifest of hashes,
 * then copied or moved to the destination, or staged beside it in the
 * engine's mount namespace and renamed into place (images.h). */
#include "images.h"
#include "images-walk.h"
#include "cleanup.h"
#include "config.h"
#include "paths.h"
#include "pbwire.h"
#include "safefs.h"

#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <xxhash.h>

struct seal_ctx {
	struct images_budget b;
	json_object *files;
	struct error **err;
};

/* One file of a dump: ours from now on, or refused. */
static int seal_file(int dirfd, const char *name, void *ud)
{
	struct seal_ctx *m = ud;
	struct stat st;
	uint64_t hash;
	char hex[17];

	_cleanup_close_ int fd = safefs_open_regular(dirfd, name, UINT64_MAX, &st, m->err);
	if (fd < 0)
		return fd;
	if (st.st_nlink != 1)
		return error_setx(m->err, EMLINK, "%s has %ju links; refused", name,
				  (uintmax_t)st.st_nlink);
	int r = images_budget_file(&m->b, name, (uint64_t)st.st_size, m->err);
	if (r < 0)
		return r;
	/* The guest chose the owner and mode (9p passthrough): the host's
	 * user and 0600 replace them, setuid bits included. */
	if ((st.st_uid != geteuid() || st.st_gid != getegid()) &&
	    fchown(fd, geteuid(), getegid()) < 0)
		return error_set(m->err, errno, "chown %s", name);
	if (fchmod(fd, 0600) < 0)
		return error_set(m->err, errno, "chmod %s", name);
	if ((r = images_hash_fd(fd, name, (uint64_t)st.st_size, &m->b, &hash, m->err)) < 0)
		return r;
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)hash);
	json_object *f = json_object_new_object();
	json_object_object_add(f, "size", json_object_new_uint64((uint64_t)st.st_size));
	json_object_object_add(f, "xxh3", json_object_new_string(hex));
	json_object_object_add(m->files, name, f);
	return 0;
}

static int write_manifest(int dirfd, const struct images_info *info, struct seal_ctx *m,
			  struct error **err)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "format", json_object_new_int(IMAGES_FORMAT));
	json_object_object_add(o, "runtime", json_object_new_string("cocoon"));
	json_object_object_add(o, "version", json_object_new_string(COCOON_VERSION));
	json_object_object_add(o, "container", json_object_new_string(info->container_id));
	json_object_object_add(o, "checkpoint", json_object_new_string(info->checkpoint_id));
	json_object_object_add(
		o, "guest_kernel",
		json_object_new_string(info->guest_kernel ? info->guest_kernel : ""));
	json_object_object_add(
		o, "criu", json_object_new_string(info->criu_version ? info->criu_version : ""));
	json_object_object_add(o, "bytes", json_object_new_uint64(m->b.bytes));
	json_object_object_add(o, "files", json_object_get(m->files));
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
	int r = safefs_write(dirfd, IMAGES_META, text, strlen(text), 0600, err);
	json_object_put(o);
	return r;
}

/* CRIU linked the dump to its parent by the guest's name for it; on the
 * host the parent is the pre-dump the user named, beside dest (runc's
 * ../NAME layout). */
static int link_parent(int dirfd, const char *parent_path, const char *dest, struct error **err)
{
	char parent_abs[PATH_MAX], dest_abs[PATH_MAX];
	_cleanup_free_ char *dest_dir = path_beside(dest, "."), *link = NULL;

	if (!parent_path)
		return 0;
	if (!realpath(parent_path, parent_abs) || !dest_dir || !realpath(dest_dir, dest_abs))
		return error_set(err, errno ? errno : ENOMEM, "parent %s", parent_path);
	char *slash = strrchr(parent_abs, '/');
	*slash = 0;
	if (strcmp(*parent_abs ? parent_abs : "/", dest_abs) != 0)
		return error_setx(
			err, EINVAL,
			"--parent-path %s must be next to the image path %s (runc's ../NAME layout)",
			parent_path, dest);
	if (asprintf(&link, "../%s", slash + 1) < 0 || symlinkat(link, dirfd, "parent") < 0)
		return error_set(err, errno ? errno : ENOMEM, "parent link");
	return 0;
}

/* The images in tmpfd become the host's: sealed, listed, linked. */
static int seal_images(int tmpfd, const char *dest, const struct images_info *info,
		       const struct images_limits *lim, struct error **err)
{
	struct seal_ctx m = {.files = json_object_new_object(), .err = err};
	images_budget_init(&m.b, lim);
	unlinkat(tmpfd, "parent", 0); /* CRIU's link; a directory so named is refused below */
	int r = images_walk_files(tmpfd, false, seal_file, &m, err);
	if (r < 0)
		error_wrap(err, "images from the guest rejected");
	if (r == 0)
		r = write_manifest(tmpfd, info, &m, err);
	json_object_put(m.files);
	if (r == 0)
		r = link_parent(tmpfd, info->parent_path, dest, err);
	if (r == 0 && (fchmod(tmpfd, 0700) < 0 || fsync(tmpfd) < 0))
		r = error_set(err, errno, "%s", dest);
	return r;
}

struct copy_ctx {
	struct images_budget b;
	int to;
	struct error **err;
};

static int copy_one(int dirfd, const char *name, void *ud)
{
	struct copy_ctx *c = ud;
	struct stat st;
	_cleanup_close_ int in = safefs_open_regular(dirfd, name, UINT64_MAX, &st, c->err);
	if (in < 0)
		return in;
	int r = images_budget_file(&c->b, name, (uint64_t)st.st_size, c->err);
	return r < 0 ? r : safefs_copy_fd(in, c->to, name, (uint64_t)st.st_size, 0600, c->err);
}

/* Another filesystem, or a share whose server keeps handles on the guest's
 * files (virtiofs): new host files, copied by fd. */
static int copy_images(int srcfd, int parentfd, const char *tmpname,
		       const struct images_limits *lim, struct error **err)
{
	if (mkdirat(parentfd, tmpname, 0700) < 0)
		return error_set(err, errno, "create %s", tmpname);
	struct copy_ctx c = {.err = err};
	images_budget_init(&c.b, lim);
	c.to = openat(parentfd, tmpname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (c.to < 0)
		return error_set(err, errno, "open %s", tmpname);
	int r = images_walk_files(srcfd, true, copy_one, &c, err);
	close(c.to);
	return r < 0 ? error_wrap(err, "images from the guest rejected") : 0;
}

/* Same filesystem: the guest's directory is renamed out of its reach, then
 * it must still be the one that was opened (not a swapped-in symlink).
 * -EXDEV, without a message, when it has to be copied instead. */
static int move_images(int ckfd, const char *ckid, int srcfd, int parentfd, const char *tmpname,
		       struct error **err)
{
	struct stat a, b;
	if (renameat(ckfd, ckid, parentfd, tmpname) < 0)
		return errno == EXDEV ? -EXDEV
				      : error_set(err, errno,
						  "move the images out of the shared directory");
	_cleanup_close_ int fd =
		openat(parentfd, tmpname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &a) < 0 || fstat(srcfd, &b) < 0 || a.st_ino != b.st_ino ||
	    a.st_dev != b.st_dev)
		return error_setx(err, EINVAL,
				  "the image directory was swapped while it was published");
	return 0;
}

static int open_ckdir(const char *state_dir, struct error **err)
{
	_cleanup_free_ char *shared = NULL;
	if (asprintf(&shared, "%s/shared", state_dir) < 0)
		return error_set(err, ENOMEM, "shared");
	_cleanup_close_ int sfd = open(shared, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0)
		return error_set(err, errno, "open %s", shared);
	int fd = safefs_open(sfd, IMAGES_SHARED_SUBDIR, O_RDONLY | O_DIRECTORY, 0);
	return fd < 0 ? error_set(err, -fd, "%s/" IMAGES_SHARED_SUBDIR, shared) : fd;
}

/* dest must be absent or an empty directory (removed here), below a
 * directory the user chose. */
static int open_dest_parent(const char *dest, struct error **err)
{
	_cleanup_free_ char *parent = path_beside(dest, ".");
	if (!parent)
		return error_set(err, ENOMEM, "%s", dest);
	if (rmdir(dest) < 0 && errno != ENOENT) {
		if (errno == ENOTEMPTY || errno == EEXIST)
			return error_setx(err, ENOTEMPTY, "%s is not empty", dest);
		return error_set(err, errno, "%s", dest);
	}
	int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? error_set(err, errno, "%s", parent) : fd;
}

static int publish_at(int ckfd, const char *ckid, const char *dest, const struct images_info *info,
		      const struct images_limits *lim, bool copy, struct error **err)
{
	const char *base = strrchr(dest, '/') ? strrchr(dest, '/') + 1 : dest;
	char tmpname[300];
	_cleanup_close_ int srcfd = safefs_open(ckfd, ckid, O_RDONLY | O_DIRECTORY, 0);
	if (srcfd < 0)
		return error_set(err, -srcfd, "images from the guest (" IMAGES_SHARED_SUBDIR "/%s)",
				 ckid);
	if (!images_plain_name(base))
		return error_setx(err, EINVAL,
				  "image path %s: the last component must be a plain name", dest);
	_cleanup_close_ int parentfd = open_dest_parent(dest, err);
	if (parentfd < 0)
		return parentfd;
	snprintf(tmpname, sizeof(tmpname), ".%s.tmp-%d", base, getpid());
	int r = copy ? -EXDEV : move_images(ckfd, ckid, srcfd, parentfd, tmpname, err);
	if (r == -EXDEV)
		r = copy_images(srcfd, parentfd, tmpname, lim, err);
	_cleanup_close_ int tmpfd =
		r < 0 ? -1
		      : openat(parentfd, tmpname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (r == 0 && tmpfd < 0)
		r = error_set(err, errno, "open %s", tmpname);
	if (r == 0)
		r = seal_images(tmpfd, dest, info, lim, err);
	if (r == 0 && renameat2(parentfd, tmpname, parentfd, base, RENAME_NOREPLACE) < 0)
		r = error_set(err, errno, "publish %s", dest);
	if (r < 0)
		safefs_remove(parentfd, tmpname, NULL);
	return r;
}

int images_publish(const char *state_dir, const char *ckid, const char *dest,
		   const struct images_info *info, const struct images_limits *lim, bool copy,
		   struct error **err)
{
	_cleanup_close_ int ckfd = open_ckdir(state_dir, err);
	if (ckfd < 0)
		return ckfd;
	int r = publish_at(ckfd, ckid, dest, info, lim, copy, err);
	safefs_remove(ckfd, ckid, NULL);
	return r;
}

/* setns(2) into a mount namespace resets the root and the working
 * directory: both come back with ours. */
struct ns_visit {
	int own, cwd, root;
};

static int ns_enter(int nsfd, struct ns_visit *v)
{
	*v = (struct ns_visit){.own = -1, .cwd = -1, .root = -1};
	if (nsfd < 0)
		return 0;
	v->own = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	v->cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	v->root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (v->own < 0 || v->cwd < 0 || v->root < 0 || setns(nsfd, CLONE_NEWNS) < 0) {
		int saved = errno;
		closep(&v->own);
		closep(&v->cwd);
		closep(&v->root);
		return -saved;
	}
	return 1;
}

static void ns_leave(struct ns_visit *v)
{
	if (v->own < 0)
		return;
	/* Back into our namespace; failing that, nothing here is safe. */
	if (setns(v->own, CLONE_NEWNS) < 0 || fchdir(v->root) < 0 || chroot(".") < 0 ||
	    fchdir(v->cwd) < 0)
		abort();
	closep(&v->own);
	closep(&v->cwd);
	closep(&v->root);
}

/* In the namespace entered: the staging mount point, by the same path as
 * in ours, accepted only if it is the very directory made there (device
 * and inode), so nothing the guest could have changed is followed. */
static int ns_mount_point(const char *state_dir, const char *ckid, const struct stat *want)
{
	_cleanup_free_ char *path = NULL;
	struct stat got;
	if (asprintf(&path, "%s/shared", state_dir) < 0)
		return -ENOMEM;
	_cleanup_close_ int sfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_close_ int ckfd =
		sfd < 0 ? -1 : safefs_open(sfd, IMAGES_SHARED_SUBDIR, O_RDONLY | O_DIRECTORY, 0);
	int mp = ckfd < 0 ? -1 : openat(ckfd, ckid, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (mp >= 0 &&
	    (fstat(mp, &got) < 0 || got.st_dev != want->st_dev || got.st_ino != want->st_ino)) {
		close(mp);
		return -ESTALE;
	}
	return mp < 0 ? -ENOENT : mp;
}

int images_stage_beside(const char *state_dir, const char *ckid, const char *dest, int mnt_ns,
			struct images_stage *st, struct error **err)
{
	const char *base = strrchr(dest, '/') ? strrchr(dest, '/') + 1 : dest;
	struct stat sd, dd, mps;
	*st = (struct images_stage){.parentfd = -1, .mnt_fd = -1, .nsfd = -1};
	_cleanup_free_ char *shared = NULL;
	if (!images_plain_name(base) || asprintf(&shared, "%s/shared", state_dir) < 0)
		return 0;
	_cleanup_close_ int sfd = open(shared, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_close_ int parentfd = open_dest_parent(dest, err);
	if (parentfd < 0)
		return parentfd;
	if (sfd < 0 || fstat(sfd, &sd) < 0 || fstat(parentfd, &dd) < 0 || sd.st_dev == dd.st_dev)
		return 0; /* the same filesystem: a rename publishes anyway */
	mkdirat(sfd, IMAGES_SHARED_SUBDIR, 0700);
	_cleanup_close_ int ckfd =
		safefs_open(sfd, IMAGES_SHARED_SUBDIR, O_RDONLY | O_DIRECTORY, 0);
	if (ckfd < 0 || mkdirat(ckfd, ckid, 0700) < 0)
		return 0;
	/* The mount point is reached by fd and never by a path the guest could
	 * have swapped for a symlink. */
	_cleanup_close_ int mp = openat(ckfd, ckid, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	snprintf(st->tmpname, sizeof(st->tmpname), ".%s.tmp-%d", base, getpid());
	if (mp < 0 || mkdirat(parentfd, st->tmpname, 0700) < 0)
		return 0;
	int tree = (int)open_tree(parentfd, st->tmpname,
				  OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
	int target = mp, moved = -1, nsdup = -1;
	struct ns_visit v;
	if (tree >= 0 && fstat(mp, &mps) == 0 &&
	    (mnt_ns < 0 || (nsdup = fcntl(mnt_ns, F_DUPFD_CLOEXEC, 3)) >= 0) &&
	    ns_enter(nsdup, &v) >= 0) {
		/* A detached mount attaches in the namespace we are in. */
		if (nsdup >= 0)
			target = ns_mount_point(state_dir, ckid, &mps);
		if (target >= 0)
			moved = move_mount(tree, "", target, "",
					   MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
		if (target >= 0 && target != mp)
			close(target);
		ns_leave(&v);
	}
	if (moved < 0) {
		if (tree >= 0)
			close(tree);
		if (nsdup >= 0)
			close(nsdup);
		unlinkat(parentfd, st->tmpname, AT_REMOVEDIR);
		unlinkat(ckfd, ckid, AT_REMOVEDIR);
		return 0; /* no mount rights here: staged in the shared directory */
	}
	st->mnt_fd = tree;
	st->nsfd = nsdup;
	st->parentfd = TAKE_FD(parentfd);
	return 1;
}

void images_stage_unmount(struct images_stage *st)
{
	char path[64];
	if (st->mnt_fd < 0)
		return;
	/* The fd is the mount's root: through /proc it names the mount itself,
	 * which only the namespace it is in can take away. */
	struct ns_visit v;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", st->mnt_fd);
	if (ns_enter(st->nsfd, &v) >= 0) {
		umount2(path, MNT_DETACH);
		ns_leave(&v);
	}
	close(st->mnt_fd);
	st->mnt_fd = -1;
	closep(&st->nsfd);
}

int images_publish_staged(struct images_stage *st, const char *dest, const struct images_info *info,
			  const struct images_limits *lim, struct error **err)
{
	const char *base = strrchr(dest, '/') ? strrchr(dest, '/') + 1 : dest;
	images_stage_unmount(st);
	_cleanup_close_ int tmpfd =
		openat(st->parentfd, st->tmpname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int r = tmpfd < 0 ? error_set(err, errno, "open %s", st->tmpname)
			  : seal_images(tmpfd, dest, info, lim, err);
	if (r == 0 &&
	    renameat2(st->parentfd, st->tmpname, st->parentfd, base, RENAME_NOREPLACE) < 0)
		r = error_set(err, errno, "publish %s", dest);
	if (r < 0)
		images_stage_discard(st);
	closep(&st->parentfd);
	return r;
}

void images_stage_discard(struct images_stage *st)
{
	images_stage_unmount(st);
	if (st->parentfd >= 0)
		safefs_remove(st->parentfd, st->tmpname, NULL);
	closep(&st->parentfd);
}

void images_discard(const char *state_dir, const char *ckid)
{
	char log[128];
	_cleanup_close_ int ckfd = open_ckdir(state_dir, NULL);
	if (ckfd < 0)
		return;
	snprintf(log, sizeof(log), "%s." COCOON_DUMP_LOG, ckid);
	safefs_remove(ckfd, ckid, NULL);
	safefs_remove(ckfd, log, NULL);
}

int images_keep_dump_log(const char *state_dir, const char *ckid, const char *keep)
{
	_cleanup_close_ int ckfd = open_ckdir(state_dir, NULL);
	_cleanup_free_ char *text = NULL;
	char log[128];
	size_t len;

	snprintf(log, sizeof(log), "%s." COCOON_DUMP_LOG, ckid);
	if (ckfd < 0 || safefs_read(ckfd, log, IMAGES_MAX_LOG, &text, &len, NULL) < 0)
		return -ENOENT;
	return write_file_atomic(keep, text, len, 0600, NULL);
}
