#include "images.h"
#include "cleanup.h"
#include "config.h"
#include "fdio.h"
#include "paths.h"
#include "images-ns.h"
#include "resources-kept.h"
#include "resources.h"
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
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <xxhash.h>

/* linux/fs.h's, whose other definitions clash with sys/mount.h's. */
#ifndef FICLONE
#define FICLONE _IOW(0x94, 9, int)
#endif

#ifndef COCOON_VERSION
#define COCOON_VERSION "unknown"
#endif

static bool plain_name(const char *n)
{
	size_t len = strlen(n);
	if (len == 0 || len > 128 || n[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = n[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

/* ---- limits ------------------------------------------------------------------ */

struct budget {
	const struct images_limits *lim;
	uint64_t bytes, files;
	long long deadline;
};

void images_limits_from_config(const struct cocoon_config *cfg, struct images_limits *lim)
{
	lim->max_bytes = (uint64_t)cfg->checkpoint_max_bytes;
	lim->max_files = (uint64_t)cfg->checkpoint_max_files;
	lim->verify_ms = (uint64_t)cfg->verify_timeout_ms;
}

static void budget_init(struct budget *b, const struct images_limits *lim)
{
	*b = (struct budget){.lim = lim, .deadline = now_ms() + (long long)lim->verify_ms};
}

static int budget_file(struct budget *b, const char *name, uint64_t size, struct error **err)
{
	if (++b->files > b->lim->max_files)
		return error_setx(err, E2BIG, "more than %llu files (limits.checkpoint_max_files)",
				  (unsigned long long)b->lim->max_files);
	if (size > b->lim->max_bytes - b->bytes)
		return error_setx(
			err, EFBIG,
			"%s (%llu bytes) takes the images past %llu bytes (limits.checkpoint_max_bytes)",
			name, (unsigned long long)size, (unsigned long long)b->lim->max_bytes);
	b->bytes += size;
	return 0;
}

static int budget_time(const struct budget *b, struct error **err)
{
	if (now_ms() <= b->deadline)
		return 0;
	return error_setx(err, ETIMEDOUT,
			  "checking the images took longer than %llu ms (limits.verify_timeout_ms)",
			  (unsigned long long)b->lim->verify_ms);
}

/* Walks a directory; calls fn for each regular file. Anything else (a
 * symlink, a FIFO, a device, a subdirectory, an odd name) is refused, but
 * for CRIU's "parent" link when allow_parent is set. */
static int walk_files(int dirfd, bool allow_parent,
		      int (*fn)(int dirfd, const char *name, void *ud), void *ud,
		      struct error **err)
{
	_cleanup_closedir_ DIR *d = safefs_opendir(dirfd);
	struct dirent *de;
	int r = 0;

	if (!d)
		return error_set(err, errno, "open image directory");
	while (r == 0 && (de = readdir(d))) {
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (!plain_name(de->d_name))
			return error_setx(err, EINVAL, "unexpected file name '%.40s'", de->d_name);
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return error_set(err, errno, "%s", de->d_name);
		if (allow_parent && S_ISLNK(st.st_mode) && strcmp(de->d_name, "parent") == 0)
			continue;
		if (!S_ISREG(st.st_mode))
			return error_setx(err, EINVAL, "%s is not a regular file", de->d_name);
		r = fn(dirfd, de->d_name, ud);
	}
	return r;
}

/* ---- publishing ---------------------------------------------------------------- */

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
	struct budget b;
	int to; /* the host's new directory */
	json_object *files;
	struct error **err;
};

/* Hashes exactly size bytes of in (and writes them to out, unless out is
 * -1): a file that grows or shrinks meanwhile is refused. */
static int hash_copy(int in, int out, const char *name, uint64_t size, const struct budget *b,
		     uint64_t *hash, struct error **err)
{
	_cleanup_free_ char *buf = malloc(1 << 20);
	XXH3_state_t *st = XXH3_createState();
	uint64_t done = 0;
	int r = 0;

	if (!buf || !st) {
		XXH3_freeState(st);
		return error_set(err, ENOMEM, "hash %s", name);
	}
	XXH3_64bits_reset(st);
	while (r == 0) {
		ssize_t n = read(in, buf, 1 << 20);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = error_set(err, errno, "read %s", name);
		else if (n == 0)
			break;
		else if ((done += (uint64_t)n) > size)
			r = error_setx(err, EFBIG, "%s grew while it was read", name);
		else if (out >= 0 && (r = fd_write_all(out, buf, (size_t)n)) < 0)
			r = error_set(err, -r, "write %s", name);
		else
			XXH3_64bits_update(st, buf, (size_t)n);
		if (r == 0)
			r = budget_time(b, err);
	}
	if (r == 0 && done != size)
		r = error_setx(err, EIO, "%s shrank while it was read", name);
	*hash = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return r;
}

static int hash_fd(int fd, const char *name, uint64_t size, const struct budget *b, uint64_t *hash,
		   struct error **err)
{
	return hash_copy(fd, -1, name, size, b, hash, err);
}

/* The clone shares the guest file's extents, not its inode: a later write
 * through the guest's handle gets blocks of its own (copy on write). Its
 * size is read back, since the guest may have changed the file since the
 * fstat(); the clone's bytes are then hashed, and nothing can change them. */
static int take_data(int in, int out, const char *name, uint64_t size, const struct budget *b,
		     uint64_t *hash, struct error **err)
{
	struct stat cs;
	if (ioctl(out, FICLONE, in) < 0)
		return hash_copy(in, out, name, size, b, hash, err);
	if (fstat(out, &cs) < 0)
		return error_set(err, errno, "%s", name);
	if ((uint64_t)cs.st_size != size)
		return error_setx(err, EIO, "%s changed while it was published", name);
	return hash_fd(out, name, size, b, hash, err);
}

/* One file of a dump: into a new file of the host's (its user, mode 0600),
 * or refused. */
static int take_file(int dirfd, const char *name, void *ud)
{
	struct take_ctx *c = ud;
	struct stat st;
	uint64_t hash;
	char hex[17];

	_cleanup_close_ int in = safefs_open_regular(dirfd, name, UINT64_MAX, &st, c->err);
	if (in < 0)
		return in;
	/* Not needed for the copy, but a second link means the guest made
	 * this file out of another one: never a CRIU image. */
	if (st.st_nlink != 1)
		return error_setx(c->err, EMLINK, "%s has %ju links; refused", name,
				  (uintmax_t)st.st_nlink);
	int r = budget_file(&c->b, name, (uint64_t)st.st_size, c->err);
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
	budget_init(&m.b, lim);
	/* CRIU's "parent" symlink is skipped (the host makes its own below);
	 * anything else that is not a regular file is refused. */
	int r = walk_files(srcfd, true, take_file, &m, err);
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
	safefs_remove(parentfd, tmpname, NULL); /* our own leftover: same name, same pid */
	if (mkdirat(parentfd, tmpname, 0700) < 0)
		return error_set(err, errno, "create %s", tmpname);
	_cleanup_close_ int tmpfd =
		openat(parentfd, tmpname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int r = tmpfd < 0 ? error_set(err, errno, "open %s", tmpname)
			  : take_images(srcfd, tmpfd, dest, info, lim, err);
	if (r == 0 && renameat2(parentfd, tmpname, parentfd, base, RENAME_NOREPLACE) < 0)
		r = error_set(err, errno, "publish %s", dest);
	if (r < 0)
		safefs_remove(parentfd, tmpname, NULL);
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
		      const struct images_limits *lim, struct error **err)
{
	const char *base = strrchr(dest, '/') ? strrchr(dest, '/') + 1 : dest;
	_cleanup_close_ int srcfd = safefs_open(ckfd, ckid, O_RDONLY | O_DIRECTORY, 0);
	if (srcfd < 0)
		return error_set(err, -srcfd, "images from the guest (" IMAGES_SHARED_SUBDIR "/%s)",
				 ckid);
	if (!plain_name(base))
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
	if (!plain_name(base) || asprintf(&shared, "%s/shared", state_dir) < 0)
		return 0;
	_cleanup_close_ int sfd = open(shared, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_close_ int parentfd = open_dest_parent(dest, err);
	if (parentfd < 0)
		return parentfd;
	if (sfd < 0 || fstat(sfd, &sd) < 0 || fstat(parentfd, &dd) < 0 || sd.st_dev == dd.st_dev)
		return 0; /* the same filesystem: nothing to gain */
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
	images_stage_unmount(st);
	/* The staged directory is the guest's (it held the bind mount): its
	 * files are taken into new ones too, then it goes. */
	_cleanup_close_ int srcfd =
		openat(st->parentfd, st->tmpname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int r = srcfd < 0 ? error_set(err, errno, "open %s", st->tmpname)
			  : publish_from(srcfd, st->parentfd, dest, info, lim, err);
	images_stage_discard(st);
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

/* ---- verifying ------------------------------------------------------------------- */

/* CRIU's pagemap image (criu/images/pagemap.proto): two magics, then
 * u32-sized entries; the first is pagemap_head { pages_id = 1 }, the rest
 * pagemap_entry { vaddr = 1, nr_pages = 2, in_parent = 3, flags = 4 }. */
#define PE_PARENT (1 << 0)
#define PE_PRESENT (1 << 2)
#define PAGE_BYTES 4096

struct pagemap_entry {
	uint64_t nr, in_parent, flags;
	bool has_flags, has_id;
	uint64_t id;
};

static bool pagemap_entry_parse(const uint8_t *q, const uint8_t *qe, struct pagemap_entry *e)
{
	*e = (struct pagemap_entry){0};
	while (q < qe) {
		uint64_t key, v;
		if (!pbwire_varint(&q, qe, &key))
			return false;
		if ((key & 7) == 1) { /* fixed64: vaddr in some CRIU versions */
			if (qe - q < 8)
				return false;
			q += 8;
			continue;
		}
		if ((key & 7) != 0 || !pbwire_varint(&q, qe, &v))
			return false;
		switch (key >> 3) {
		case 1:
			e->id = v;
			e->has_id = true;
			break;
		case 2:
			e->nr = v;
			break;
		case 3:
			e->in_parent = v;
			break;
		case 4:
			e->flags = v;
			e->has_flags = true;
			break;
		}
	}
	return true;
}

int images_pagemap_pages(const uint8_t *data, size_t len, uint64_t *pages_id, uint64_t *pages,
			 struct error **err)
{
	const uint8_t *p = data + 8, *end = data + len;
	bool head = true;

	*pages = *pages_id = 0;
	if (len < 8)
		return error_setx(err, EINVAL, "truncated");
	while (p < end) {
		uint32_t n;
		struct pagemap_entry e;
		if (end - p < 4)
			return error_setx(err, EINVAL, "truncated");
		memcpy(&n, p, 4);
		p += 4;
		if (n > (size_t)(end - p))
			return error_setx(err, EINVAL, "truncated");
		if (!pagemap_entry_parse(p, p + n, &e))
			return error_setx(err, EINVAL, "corrupt");
		p += n;
		if (head) {
			*pages_id = e.id;
			head = false;
			continue;
		}
		bool here = e.has_flags ? (e.flags & PE_PRESENT) && !(e.flags & PE_PARENT)
					: !e.in_parent;
		if (!here)
			continue;
		if (e.nr > UINT64_MAX / PAGE_BYTES - *pages)
			return error_setx(err, EOVERFLOW, "page count overflows");
		*pages += e.nr;
	}
	return 0;
}

static int check_pages(int dirfd, const char *name, void *ud)
{
	struct error **err = ud;
	unsigned id;
	char pages_name[64], tail;
	uint64_t pages_id, pages;
	struct stat st;
	_cleanup_free_ char *data = NULL;
	size_t len;

	if (sscanf(name, "pagemap-%u.im%c", &id, &tail) != 2 || tail != 'g')
		return 0;
	int r = safefs_read(dirfd, name, 64 << 20, &data, &len, err);
	if (r < 0)
		return r;
	if (images_pagemap_pages((const uint8_t *)data, len, &pages_id, &pages, err) < 0)
		return error_wrap(err, "%s", name);
	snprintf(pages_name, sizeof(pages_name), "pages-%llu.img", (unsigned long long)pages_id);
	off_t have = fstatat(dirfd, pages_name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st.st_size : 0;
	if ((uint64_t)have != pages * PAGE_BYTES)
		return error_setx(err, EINVAL,
				  "%s holds %lld bytes but %s accounts for %llu pages (%llu bytes)",
				  pages_name, (long long)have, name, (unsigned long long)pages,
				  (unsigned long long)pages * PAGE_BYTES);
	return 0;
}

/* A restore directory holds what cocoon.json lists, cocoon.json itself and
 * CRIU's "parent" link (walk_files refuses every other kind of entry):
 * anything else would reach CRIU unchecked (a stray pages-9.img or
 * core-99.img is read if some image names it). A second link means the
 * file can change under another name after it was checked. */
struct listed_ctx {
	const struct images_meta *m;
	struct error **err;
};

static int check_listed(int dirfd, const char *name, void *ud)
{
	struct listed_ctx *c = ud;
	struct stat st;
	bool listed = strcmp(name, IMAGES_META) == 0;
	for (size_t i = 0; i < c->m->n_files && !listed; i++)
		listed = strcmp(c->m->files[i].name, name) == 0;
	if (!listed)
		return error_setx(c->err, EINVAL, "%s is not listed in " IMAGES_META, name);
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return error_set(c->err, errno, "%s", name);
	if (st.st_nlink != 1)
		return error_setx(c->err, EMLINK, "%s has %ju links (a hard link); refused", name,
				  (uintmax_t)st.st_nlink);
	return check_pages(dirfd, name, c->err);
}

void images_meta_free(struct images_meta *m)
{
	for (size_t i = 0; i < m->n_files; i++)
		free(m->files[i].name);
	free(m->files);
	free(m->version);
	free(m->checkpoint);
	free(m->resources);
	memset(m, 0, sizeof(*m));
}

static bool is_hex16(const char *s)
{
	return strlen(s) == 16 && strspn(s, "0123456789abcdef") == 16;
}

/* A typed field, or NULL: a null, a number where a string belongs, an
 * object where a number belongs all count as absent. */
static json_object *field(json_object *o, const char *key, json_type type)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, type) ? v : NULL;
}

static int meta_file(json_object *entry, const char *name, struct images_meta *m,
		     struct error **err)
{
	json_object *jsize = field(entry, "size", json_type_int),
		    *jhash = field(entry, "xxh3", json_type_string);
	if (!plain_name(name) || !jsize || !jhash || json_object_get_int64(jsize) < 0 ||
	    !is_hex16(json_object_get_string(jhash)))
		return error_setx(err, EINVAL, "bad entry for '%.40s'", name);
	struct images_meta_file *f = &m->files[m->n_files];
	f->size = json_object_get_uint64(jsize);
	if (f->size > UINT64_MAX - m->total_bytes)
		return error_setx(err, EOVERFLOW, "file sizes overflow");
	m->total_bytes += f->size;
	snprintf(f->xxh3, sizeof(f->xxh3), "%s", json_object_get_string(jhash));
	if (!(f->name = strdup(name)))
		return error_set(err, ENOMEM, "manifest");
	m->n_files++;
	return 0;
}

static int meta_parse_obj(json_object *o, const struct images_limits *lim, struct images_meta *m,
			  struct error **err)
{
	json_object *v, *files;
	if (!json_object_is_type(o, json_type_object))
		return error_setx(err, EINVAL, "not a JSON object");
	m->format = (v = field(o, "format", json_type_int)) ? (int)json_object_get_int(v) : -1;
	m->version = strdup((v = field(o, "version", json_type_string)) ? json_object_get_string(v)
									: "?");
	if ((v = field(o, "checkpoint", json_type_string)))
		m->checkpoint = strdup(json_object_get_string(v));
	if (!m->version)
		return error_set(err, ENOMEM, "manifest");
	if (m->format != IMAGES_FORMAT || strcmp(m->version, COCOON_VERSION) != 0)
		return error_setx(
			err, EPROTO,
			"was made by cocoon %.40s (image format %d); this is cocoon %s (format %d): restore it with the version that made it",
			m->version, m->format, COCOON_VERSION, IMAGES_FORMAT);
	if (!(files = field(o, "files", json_type_object)))
		return error_setx(err, EINVAL, "lists no files");
	size_t n = (size_t)json_object_object_length(files);
	if (n > lim->max_files)
		return error_setx(err, E2BIG,
				  "lists %zu files, more than %llu (limits.checkpoint_max_files)",
				  n, (unsigned long long)lim->max_files);
	if (!(m->files = calloc(n ? n : 1, sizeof(*m->files))))
		return error_set(err, ENOMEM, "manifest");
	json_object_object_foreach(files, name, entry)
	{
		int r = meta_file(entry, name, m, err);
		if (r < 0)
			return r;
	}
	if (m->total_bytes > lim->max_bytes)
		return error_setx(err, EFBIG,
				  "lists %llu bytes, more than %llu (limits.checkpoint_max_bytes)",
				  (unsigned long long)m->total_bytes,
				  (unsigned long long)lim->max_bytes);
	/* The limits update set, laid over the bundle's at restore: the values
	 * create and update accept, nothing else. */
	json_object *kept = NULL;
	if (json_object_object_get_ex(o, "resources", &kept) && kept) {
		int r = resources_check_json(kept, "resources", ".", true, err);
		if (r < 0)
			return r;
		const char *text = json_object_to_json_string_ext(kept, JSON_C_TO_STRING_PLAIN);
		if (strlen(text) > RESOURCES_KEPT_MAX)
			return error_setx(err, E2BIG, "resources: more than %d bytes",
					  RESOURCES_KEPT_MAX);
		if (!(m->resources = strdup(text)))
			return error_set(err, ENOMEM, "manifest");
	}
	return 0;
}

int images_meta_parse(const char *text, size_t len, const struct images_limits *lim,
		      struct images_meta *m, struct error **err)
{
	memset(m, 0, sizeof(*m));
	json_tokener *tok = json_tokener_new();
	if (!tok)
		return error_set(err, ENOMEM, "manifest");
	json_object *o = len <= INT_MAX ? json_tokener_parse_ex(tok, text, (int)len) : NULL;
	if (!o && json_tokener_get_error(tok) == json_tokener_continue)
		o = json_tokener_parse_ex(tok, "", 1); /* the end of the text ends a bare value */
	bool complete = json_tokener_get_error(tok) == json_tokener_success;
	json_tokener_free(tok);
	int r = complete ? meta_parse_obj(o, lim, m, err)
			 : error_setx(err, EINVAL, "not valid JSON");
	json_object_put(o);
	if (r < 0)
		images_meta_free(m);
	return r;
}

static int verify_file(int dirfd, const struct images_meta_file *f, const struct budget *b,
		       struct error **err)
{
	struct stat st;
	uint64_t hash;
	char hex[17];
	_cleanup_close_ int fd = safefs_open_regular(dirfd, f->name, f->size, &st, err);
	if (fd < 0)
		return fd;
	if ((uint64_t)st.st_size != f->size)
		return error_setx(err, EINVAL, "%s is %llu bytes, expected %llu (truncated?)",
				  f->name, (unsigned long long)st.st_size,
				  (unsigned long long)f->size);
	int r = hash_fd(fd, f->name, f->size, b, &hash, err);
	if (r < 0)
		return r;
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)hash);
	if (strcmp(hex, f->xxh3) != 0)
		return error_setx(err, EINVAL, "%s is corrupt (checksum mismatch)", f->name);
	return 0;
}

static int check_size(int dirfd, const struct images_meta_file *f, struct error **err)
{
	struct stat st;
	if (fstatat(dirfd, f->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return error_set(err, errno, "%s is missing", f->name);
	if (!S_ISREG(st.st_mode))
		return error_setx(err, EINVAL, "%s is not a regular file", f->name);
	if ((uint64_t)st.st_size != f->size)
		return error_setx(err, EINVAL, "%s is %llu bytes, expected %llu (truncated?)",
				  f->name, (unsigned long long)st.st_size,
				  (unsigned long long)f->size);
	return 0;
}

static int images_verify_one(const char *dir, bool need_tree, const struct budget *b,
			     char **resources, struct error **err)
{
	_cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
	_cleanup_free_ char *text = NULL;
	struct images_meta m;
	size_t len;

	if (dirfd < 0)
		return error_set(err, errno, "image directory %s", dir);
	int r = safefs_read(dirfd, IMAGES_META, 16 << 20, &text, &len, err);
	if (r == -ENOENT) {
		error_free(err);
		return error_setx(err, ENOENT, "%s is empty or not a cocoon checkpoint (no %s)",
				  dir, IMAGES_META);
	}
	if (r < 0 || (r = images_meta_parse(text, len, b->lim, &m, err)) < 0)
		return error_wrap(err, "%s/%s", dir, IMAGES_META);
	static const char *const required[] = {"inventory.img", "pstree.img"};
	for (size_t i = 0; i < ARRAY_SIZE(required) && need_tree && r == 0; i++) {
		bool found = false;
		for (size_t j = 0; j < m.n_files; j++)
			found |= strcmp(m.files[j].name, required[i]) == 0;
		if (!found)
			r = error_setx(err, ENOENT, "%s has no %s", dir, required[i]);
	}
	/* Sizes and structure first (cheap, and refuses FIFOs and devices
	 * before any read), then every byte. */
	for (size_t i = 0; i < m.n_files && r == 0; i++)
		if ((r = check_size(dirfd, &m.files[i], err)) < 0)
			error_wrap(err, "%s", dir);
	struct listed_ctx lc = {.m = &m, .err = err};
	if (r == 0 && (r = walk_files(dirfd, true, check_listed, &lc, err)) < 0)
		error_wrap(err, "%s", dir);
	for (size_t i = 0; i < m.n_files && r == 0; i++)
		if ((r = verify_file(dirfd, &m.files[i], b, err)) < 0)
			error_wrap(err, "%s", dir);
	if (r == 0 && need_tree && (r = images_check_namespaces(dirfd, err)) < 0)
		error_wrap(err, "%s", dir);
	if (r == 0 && need_tree)
		*resources = TAKE_PTR(m.resources);
	images_meta_free(&m);
	return r;
}

void images_copy_logs_at(int dirfd, const char *const *from, const char *const *to, size_t n,
			 const char *work_path)
{
	if (dirfd < 0 || !work_path || mkdir_p(work_path, 0700, NULL) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *text = NULL, *dst = NULL;
		size_t len;
		if (safefs_read(dirfd, from[i], IMAGES_MAX_LOG, &text, &len, NULL) == 0 &&
		    asprintf(&dst, "%s/%s", work_path, to[i]) >= 0)
			write_file_atomic(dst, text, len, 0600, NULL);
	}
}

void images_copy_logs(const char *src, const char *work_path)
{
	static const char *const names[] = {COCOON_DUMP_LOG, COCOON_RESTORE_LOG, COCOON_STATS_DUMP,
					    COCOON_STATS_RESTORE};
	_cleanup_close_ int dirfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	images_copy_logs_at(dirfd, names, names, ARRAY_SIZE(names), work_path);
}

void images_chain_free(struct images_chain *c)
{
	for (int i = 0; i < c->n; i++) {
		free(c->dirs[i]);
		free(c->names[i]);
	}
	c->n = 0;
	free(c->resources);
	c->resources = NULL;
}

int images_verify(const char *dir, const struct images_limits *lim, struct images_chain *chain,
		  struct error **err)
{
	char cur[PATH_MAX];
	struct budget b;
	budget_init(&b, lim);
	snprintf(cur, sizeof(cur), "%s", dir);
	chain->n = 0;
	chain->resources = NULL;
	for (;;) {
		if (chain->n == IMAGES_MAX_CHAIN)
			return error_setx(err, E2BIG, "%s: more than %d pre-dumps in a chain", dir,
					  IMAGES_MAX_CHAIN);
		int r = images_verify_one(cur, chain->n == 0, &b, &chain->resources, err);
		if (r < 0)
			return r;
		const char *base = strrchr(cur, '/');
		chain->dirs[chain->n] = strdup(cur);
		chain->names[chain->n] = strdup(base ? base + 1 : cur);
		chain->n++;
		char link[PATH_MAX], target[256];
		snprintf(link, sizeof(link), "%s/parent", cur);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		if (n < 0)
			return 0;
		target[n] = 0;
		if (strncmp(target, "../", 3) != 0 || !plain_name(target + 3))
			return error_setx(err, EINVAL, "%s: parent link points at '%.60s'", cur,
					  target);
		char *slash = strrchr(cur, '/');
		if (!slash)
			return error_setx(err, EINVAL, "%s: parent outside", cur);
		*slash = 0;
		size_t len = strlen(cur);
		snprintf(cur + len, sizeof(cur) - len, "/%s", target + 3);
	}
}
