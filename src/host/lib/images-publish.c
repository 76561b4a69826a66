/* Publishing a checkpoint's images: each file taken into a new inode of
 * the host's and hashed, a manifest written, the directory renamed into
 * place, or staged beside the destination in the engine's mount namespace
 * first (images.h). */
#include "images.h"
#include "images-walk.h"
#include "cleanup.h"
#include "config.h"
#include "fdio.h"
#include "paths.h"
#include "pbwire.h"
#include "safefs.h"
#include "vmsnap.h"

#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <xxhash.h>

/* linux/fs.h's, whose other definitions clash with sys/mount.h's. */
#ifndef FICLONE
#define FICLONE _IOW(0x94, 9, int)
#endif

/* Publishing never moves an inode the guest has touched to the host's side:
 * a guest process that opened an image file through the share keeps its
 * handle (a 9p fid is an open descriptor in QEMU, virtiofsd keeps its own),
 * and could write, or grow without end, whatever inode that handle names,
 * wherever the host renames it. So every file is taken into a new inode the
 * host creates (O_EXCL | O_NOFOLLOW in a directory it made beside dest):
 * shared extents where the filesystem can clone (FICLONE: btrfs, XFS), else
 * a copy, hashed as it is written. The guest's inodes are then removed;
 * nothing it still holds reaches dest. */
struct take_ctx {
	struct images_budget b;
	int to; /* the host's new directory */
	json_object *files;
	struct error **err;
};

/* The clone shares the guest file's extents, not its inode: a later write
 * through the guest's handle gets blocks of its own (copy on write). Its
 * size is read back, since the guest may have changed the file since the
 * fstat(); the clone's bytes are then hashed, and nothing can change them. */
static int take_data(int in, int out, const char *name, uint64_t size,
		     const struct images_budget *b, uint64_t *hash, struct error **err)
{
	struct stat cs;
	if (ioctl(out, FICLONE, in) < 0)
		return images_hash_copy(in, out, name, size, b, hash, err);
	if (fstat(out, &cs) < 0)
		return error_set(err, errno, "%s", name);
	if ((uint64_t)cs.st_size != size)
		return error_setx(err, EIO, "%s changed while it was published", name);
	return images_hash_fd(out, name, size, b, hash, err);
}

/* The names the host writes, or reads as its own, in an image directory.
 * A guest file under one was taken for the host's: cocoon.json was listed
 * with the guest's hash and then written over, so the checkpoint was
 * published as good and its restore failed ("cocoon.json is 646 bytes,
 * expected 14 (truncated?)"); vm.json would make a restore start the
 * guest's vm.state as a whole VM. CRIU writes none of them. */
static bool host_name(const char *name)
{
	static const char *const names[] = {IMAGES_META, VMSNAP_META, VMSNAP_STATE,
					    VMSNAP_STATE_ZST};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

/* One file of a dump: into a new file of the host's (its user, mode 0600),
 * or refused. */
static int take_file(int dirfd, const char *name, void *ud)
{
	struct take_ctx *c = ud;
	struct stat st;
	uint64_t hash;
	char hex[17];

	if (host_name(name))
		return error_setx(
			c->err, EINVAL,
			"%s is a name of the host's, not of an image CRIU writes; refused", name);
	_cleanup_close_ int in = safefs_open_regular(dirfd, name, UINT64_MAX, &st, c->err);
	if (in < 0)
		return in;
	/* Not needed for the copy, but a second link means the guest made
	 * this file out of another one: never a CRIU image. */
	if (st.st_nlink != 1)
		return error_setx(c->err, EMLINK, "%s has %ju links; refused", name,
				  (uintmax_t)st.st_nlink);
	int r = images_budget_file(&c->b, name, (uint64_t)st.st_size, c->err);
	if (r < 0)
		return r;
	_cleanup_close_ int out =
		openat(c->to, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0)
		return error_set(c->err, errno, "create %s", name);
	if ((r = take_data(in, out, name, (uint64_t)st.st_size, &c->b, &hash, c->err)) < 0)
		return r;
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)hash);
	json_object *f = json_object_new_object();
	json_object_object_add(f, "size", json_object_new_uint64((uint64_t)st.st_size));
	json_object_object_add(f, "xxh3", json_object_new_string(hex));
	json_object_object_add(c->files, name, f);
	return 0;
}

static int write_manifest(int dirfd, const struct images_info *info, struct take_ctx *m,
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
	json_object *kept = info->resources ? json_tokener_parse(info->resources) : NULL;
	if (kept)
		json_object_object_add(o, "resources", kept);
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

/* The guest's images in srcfd become the host's in tmpfd (a directory the
 * host made): taken file by file, listed, linked to their parent. */
static int take_images(int srcfd, int tmpfd, const char *dest, const struct images_info *info,
		       const struct images_limits *lim, struct error **err)
{
	struct take_ctx m = {.files = json_object_new_object(), .to = tmpfd, .err = err};
	images_budget_init(&m.b, lim);
	/* CRIU's "parent" symlink is skipped (the host makes its own below);
	 * anything else that is not a regular file is refused. */
	int r = images_walk_files(srcfd, true, take_file, &m, err);
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

/* Takes the images in srcfd into a new directory beside dest and renames it
 * to dest. On failure nothing is left beside dest. */
static int publish_from(int srcfd, int parentfd, const char *dest, const struct images_info *info,
			const struct images_limits *lim, struct error **err)
{
	const char *base = strrchr(dest, '/') ? strrchr(dest, '/') + 1 : dest;
	char tmpname[300];
	snprintf(tmpname, sizeof(tmpname), ".%s.pub-%d", base, getpid());
	(void)safefs_remove(parentfd, tmpname, NULL); /* our own leftover: same name, same pid */
	if (mkdirat(parentfd, tmpname, 0700) < 0)
		return error_set(err, errno, "create %s", tmpname);
	_cleanup_close_ int tmpfd =
		openat(parentfd, tmpname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int r = tmpfd < 0 ? error_set(err, errno, "open %s", tmpname)
			  : take_images(srcfd, tmpfd, dest, info, lim, err);
	if (r == 0 && renameat2(parentfd, tmpname, parentfd, base, RENAME_NOREPLACE) < 0)
		r = error_set(err, errno, "publish %s", dest);
	if (r < 0)
		(void)safefs_remove(parentfd, tmpname, NULL);
	return r;
}

static int open_ckdir(const char *state_dir, struct error **err)
{
	_cleanup_free_ char *shared = NULL;
	if (asprintf(&shared, "%s/shared", state_dir) < 0)
		return error_set(err, ENOMEM, "shared");
	_cleanup_close_ int sfd = open(shared, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0)
		return error_set(err, errno, "open %s", shared);
	int fd = safefs_open(sfd, COCOON_CHECKPOINTS_DIR, O_RDONLY | O_DIRECTORY, 0);
	return fd < 0 ? error_set(err, -fd, "%s/" COCOON_CHECKPOINTS_DIR, shared) : fd;
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
		      const struct images_limits *lim, struct error **err)
{
	const char *base = strrchr(dest, '/') ? strrchr(dest, '/') + 1 : dest;
	_cleanup_close_ int srcfd = safefs_open(ckfd, ckid, O_RDONLY | O_DIRECTORY, 0);
	if (srcfd < 0)
		return error_set(err, -srcfd,
				 "images from the guest (" COCOON_CHECKPOINTS_DIR "/%s)", ckid);
	if (!images_plain_name(base))
		return error_setx(err, EINVAL,
				  "image path %s: the last component must be a plain name", dest);
	_cleanup_close_ int parentfd = open_dest_parent(dest, err);
	if (parentfd < 0)
		return parentfd;
	return publish_from(srcfd, parentfd, dest, info, lim, err);
}

int images_publish(const char *state_dir, const char *ckid, const char *dest,
		   const struct images_info *info, const struct images_limits *lim,
		   struct error **err)
{
	_cleanup_close_ int ckfd = open_ckdir(state_dir, err);
	if (ckfd < 0)
		return ckfd;
	int r = publish_at(ckfd, ckid, dest, info, lim, err);
	(void)safefs_remove(ckfd, ckid, NULL);
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
		sfd < 0 ? -1 : safefs_open(sfd, COCOON_CHECKPOINTS_DIR, O_RDONLY | O_DIRECTORY, 0);
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
		return 0; /* the same filesystem: nothing to gain */
	mkdirat(sfd, COCOON_CHECKPOINTS_DIR, 0700);
	_cleanup_close_ int ckfd =
		safefs_open(sfd, COCOON_CHECKPOINTS_DIR, O_RDONLY | O_DIRECTORY, 0);
	if (ckfd < 0 || mkdirat(ckfd, ckid, 0700) < 0)
		return 0;
	/* The mount point is reached by fd and never by a path the guest could
	 * have swapped for a symlink. */
	_cleanup_close_ int mp = openat(ckfd, ckid, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	/* The guest owns the mount's root (it chmods and chowns it through
	 * 9p), so that is not what sits beside dest: a directory of the
	 * host's, 0700, which the guest cannot reach, holds it. Otherwise any
	 * user of the host who can reach dest's parent would reach the
	 * setuid files and device nodes the guest makes there while it dumps. */
	snprintf(st->tmpname, sizeof(st->tmpname), ".%s.tmp-%d", base, getpid());
	if (mp < 0 || mkdirat(parentfd, st->tmpname, 0700) < 0)
		return 0;
	_cleanup_close_ int wrapfd =
		openat(parentfd, st->tmpname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (wrapfd < 0 || fchmod(wrapfd, 0700) < 0 ||
	    mkdirat(wrapfd, IMAGES_STAGE_INNER, 0700) < 0) {
		unlinkat(parentfd, st->tmpname, AT_REMOVEDIR);
		return 0;
	}
	int tree = (int)open_tree(wrapfd, IMAGES_STAGE_INNER,
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
		unlinkat(wrapfd, IMAGES_STAGE_INNER, AT_REMOVEDIR);
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
		(void)umount2(path, MNT_DETACH);
		ns_leave(&v);
	}
	close(st->mnt_fd);
	st->mnt_fd = -1;
	closep(&st->nsfd);
}

int images_publish_staged(struct images_stage *st, const char *dest, const struct images_info *info,
			  const struct images_limits *lim, struct error **err)
{
	images_stage_unmount(st);
	/* The staged directory is the guest's (it held the bind mount): its
	 * files are taken into new ones too, then it goes. */
	char inner[sizeof(st->tmpname) + sizeof(IMAGES_STAGE_INNER) + 1];
	snprintf(inner, sizeof(inner), "%s/" IMAGES_STAGE_INNER, st->tmpname);
	_cleanup_close_ int srcfd = safefs_open(st->parentfd, inner, O_RDONLY | O_DIRECTORY, 0);
	int r = srcfd < 0 ? error_set(err, -srcfd, "open %s", inner)
			  : publish_from(srcfd, st->parentfd, dest, info, lim, err);
	images_stage_discard(st);
	return r;
}

void images_stage_discard(struct images_stage *st)
{
	images_stage_unmount(st);
	if (st->parentfd >= 0)
		(void)safefs_remove(st->parentfd, st->tmpname, NULL);
	closep(&st->parentfd);
}

void images_discard(const char *state_dir, const char *ckid)
{
	char log[128];
	_cleanup_close_ int ckfd = open_ckdir(state_dir, NULL);
	if (ckfd < 0)
		return;
	snprintf(log, sizeof(log), "%s." COCOON_DUMP_LOG, ckid);
	(void)safefs_remove(ckfd, ckid, NULL);
	(void)safefs_remove(ckfd, log, NULL);
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
