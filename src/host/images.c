#include "images.h"
#include "cleanup.h"
#include "paths.h"
#include "pbwire.h"

#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

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

static int hash_file(int dirfd, const char *name, uint64_t *size, uint64_t *hash, struct error **err)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_free_ char *buf = malloc(1 << 20);
	XXH3_state_t *st = XXH3_createState();
	struct stat sb;

	if (fd < 0 || !buf || !st || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		XXH3_freeState(st);
		return error_set(err, errno ? errno : EINVAL, "image %s", name);
	}
	XXH3_64bits_reset(st);
	*size = 0;
	for (;;) {
		ssize_t n = read(fd, buf, 1 << 20);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			XXH3_freeState(st);
			return error_set(err, errno, "read image %s", name);
		}
		if (n == 0)
			break;
		XXH3_64bits_update(st, buf, (size_t)n);
		*size += (uint64_t)n;
	}
	*hash = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return 0;
}

/* Walks the directory; calls fn for each regular file. Anything else (a
 * symlink, a device, a subdirectory, an odd name) is refused. */
static int walk_files(int dirfd, int (*fn)(int dirfd, const char *name, void *ud), void *ud,
		      struct error **err)
{
	int dup = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
	struct dirent *de;
	unsigned count = 0;
	int r = 0;

	if (!d) {
		if (dup >= 0)
			close(dup);
		return error_set(err, errno, "open image directory");
	}
	while (r == 0 && (de = readdir(d))) {
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (++count > IMAGES_MAX_FILES) {
			r = error_setx(err, E2BIG, "more than %d files", IMAGES_MAX_FILES);
			break;
		}
		if (!plain_name(de->d_name)) {
			r = error_setx(err, EINVAL, "unexpected file name '%.40s'", de->d_name);
			break;
		}
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = error_set(err, errno, "%s", de->d_name);
			break;
		}
		if (S_ISLNK(st.st_mode) && strcmp(de->d_name, "parent") == 0) {
			/* CRIU's link to the previous dump: "../NAME", nothing else. */
			char target[256];
			ssize_t n = readlinkat(dirfd, "parent", target, sizeof(target) - 1);
			target[n > 0 ? n : 0] = 0;
			if (n <= 3 || strncmp(target, "../", 3) != 0 || !plain_name(target + 3)) {
				r = error_setx(err, EINVAL, "parent link points at '%.60s'", target);
				break;
			}
			continue;
		}
		if (!S_ISREG(st.st_mode)) {
			r = error_setx(err, EINVAL, "%s is not a regular file", de->d_name);
			break;
		}
		r = fn(dirfd, de->d_name, ud);
	}
	closedir(d);
	return r;
}

struct manifest_ctx {
	json_object *files;
	uint64_t bytes;
	struct error **err;
};

static int add_to_manifest(int dirfd, const char *name, void *ud)
{
	struct manifest_ctx *m = ud;
	uint64_t size, hash;
	char hex[17];

	if (strcmp(name, IMAGES_META) == 0)
		return 0;
	int r = hash_file(dirfd, name, &size, &hash, m->err);
	if (r < 0)
		return r;
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)hash);
	json_object *f = json_object_new_object();
	json_object_object_add(f, "size", json_object_new_uint64(size));
	json_object_object_add(f, "xxh3", json_object_new_string(hex));
	json_object_object_add(m->files, name, f);
	m->bytes += size;
	return 0;
}

static int copy_dir(const char *src, const char *dst, struct error **err)
{
	_cleanup_closedir_ DIR *d = opendir(src);
	_cleanup_free_ char *buf = malloc(4 << 20);
	struct dirent *de;

	if (!d || !buf)
		return error_set(err, errno, "open %s", src);
	if (mkdir(dst, 0700) < 0)
		return error_set(err, errno, "create %s", dst);
	_cleanup_close_ int out_dir = open(dst, O_PATH | O_DIRECTORY | O_CLOEXEC);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		_cleanup_close_ int in = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		_cleanup_close_ int out = openat(out_dir, de->d_name,
						 O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (in < 0 || out < 0)
			return error_set(err, errno, "copy %s", de->d_name);
		ssize_t n;
		while ((n = read(in, buf, 4 << 20)) > 0) {
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(out, buf + off, (size_t)(n - off));
				if (w < 0 && errno == EINTR)
					continue;
				if (w <= 0)
					return error_set(err, w < 0 ? errno : ENOSPC, "write %s/%s", dst, de->d_name);
				off += w;
			}
		}
		if (n < 0)
			return error_set(err, errno, "read %s", de->d_name);
		if (fsync(out) < 0)
			return error_set(err, errno, "fsync %s/%s", dst, de->d_name);
	}
	return 0;
}

int images_publish(const char *src, const char *dest, const struct images_info *info,
		   struct error **err)
{
	_cleanup_close_ int dirfd = open(src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct manifest_ctx m = {.files = json_object_new_object(), .err = err};
	_cleanup_free_ char *meta = NULL, *tmp = NULL;

	if (dirfd < 0) {
		json_object_put(m.files);
		return error_set(err, errno, "images from the guest at %s", src);
	}
	int r = walk_files(dirfd, add_to_manifest, &m, err);
	if (r < 0) {
		json_object_put(m.files);
		return error_wrap(err, "images from the guest rejected");
	}
	json_object *o = json_object_new_object();
	json_object_object_add(o, "format", json_object_new_int(IMAGES_FORMAT));
	json_object_object_add(o, "runtime", json_object_new_string("cocoon"));
	json_object_object_add(o, "version", json_object_new_string(COCOON_VERSION));
	json_object_object_add(o, "container", json_object_new_string(info->container_id));
	json_object_object_add(o, "checkpoint", json_object_new_string(info->checkpoint_id));
	json_object_object_add(o, "guest_kernel", json_object_new_string(info->guest_kernel ? info->guest_kernel : ""));
	json_object_object_add(o, "criu", json_object_new_string(info->criu_version ? info->criu_version : ""));
	json_object_object_add(o, "bytes", json_object_new_uint64(m.bytes));
	json_object_object_add(o, "files", m.files);
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
	if (asprintf(&meta, "%s/" IMAGES_META, src) < 0)
		r = error_set(err, ENOMEM, "meta");
	else
		r = write_file_atomic(meta, text, strlen(text), 0600, err);
	json_object_put(o);
	if (r < 0)
		return r;

	/* CRIU linked the dump to its parent by the guest's name for it; on
	 * the host the parent is the pre-dump the user named. */
	if (unlinkat(dirfd, "parent", 0) == 0 && info->parent_path) {
		char parent_abs[PATH_MAX], dest_abs[PATH_MAX];
		_cleanup_free_ char *dest_dir = strdup(dest), *link = NULL;
		char *slash = dest_dir ? strrchr(dest_dir, '/') : NULL;
		if (slash)
			*slash = 0;
		if (!realpath(info->parent_path, parent_abs) || !dest_dir ||
		    !realpath(slash ? (*dest_dir ? dest_dir : "/") : ".", dest_abs))
			return error_set(err, errno, "parent %s", info->parent_path);
		const char *pbase = strrchr(parent_abs, '/') + 1;
		*strrchr(parent_abs, '/') = 0;
		if (strcmp(parent_abs, dest_abs) != 0)
			return error_setx(err, EINVAL,
					  "--parent-path %s must be next to the image path %s (runc's ../NAME layout)",
					  info->parent_path, dest);
		if (asprintf(&link, "../%s", pbase) < 0 || symlinkat(link, dirfd, "parent") < 0)
			return error_set(err, errno ? errno : ENOMEM, "parent link");
	}

	/* dest may be an empty directory made by the caller (or runc users). */
	if (rmdir(dest) < 0 && errno != ENOENT) {
		if (errno == ENOTEMPTY || errno == EEXIST)
			return error_setx(err, ENOTEMPTY, "%s is not empty", dest);
		return error_set(err, errno, "%s", dest);
	}
	if (rename(src, dest) == 0)
		return 0;
	if (errno != EXDEV)
		return error_set(err, errno, "publish %s", dest);
	/* Another filesystem: copy under a temporary name, then rename, so
	 * that an interrupted copy never looks like a checkpoint. */
	if (asprintf(&tmp, "%s.tmp-%d", dest, getpid()) < 0)
		return error_set(err, ENOMEM, "publish");
	r = copy_dir(src, tmp, err);
	if (r == 0 && rename(tmp, dest) < 0)
		r = error_set(err, errno, "publish %s", dest);
	if (r < 0) {
		remove_tree(tmp, NULL);
		return r;
	}
	remove_tree(src, NULL);
	return 0;
}

/* Counts pages a pagemap says are stored in its pages file. CRIU's
 * pagemap image (criu/images/pagemap.proto): two magics, then u32-sized
 * entries; the first is pagemap_head { pages_id = 1 }, the rest
 * pagemap_entry { vaddr = 1, nr_pages = 2, in_parent = 3, flags = 4 }. */
#define PE_PARENT (1 << 0)
#define PE_PRESENT (1 << 2)

static int pagemap_pages(const char *path, uint64_t *pages_id, uint64_t *pages, struct error **err)
{
	_cleanup_free_ char *data = NULL;
	size_t len;
	int r = read_file_bounded(path, 64 << 20, &data, &len, err);
	if (r < 0)
		return r;
	const uint8_t *p = (const uint8_t *)data + 8, *end = (const uint8_t *)data + len;
	bool head = true;
	*pages = 0;
	*pages_id = 0;
	if (len < 8)
		return error_setx(err, EINVAL, "%s is truncated", path);
	while (p < end) {
		uint32_t n;
		if (end - p < 4)
			return error_setx(err, EINVAL, "%s is truncated", path);
		memcpy(&n, p, 4);
		p += 4;
		if (n > (size_t)(end - p))
			return error_setx(err, EINVAL, "%s is truncated", path);
		const uint8_t *q = p, *qe = p + n;
		uint64_t nr = 0, in_parent = 0, flags = 0, v, key;
		bool has_flags = false;
		while (q < qe) {
			if (!pbwire_varint(&q, qe, &key))
				return error_setx(err, EINVAL, "%s is corrupt", path);
			if ((key & 7) == 0) {
				if (!pbwire_varint(&q, qe, &v))
					return error_setx(err, EINVAL, "%s is corrupt", path);
			} else if ((key & 7) == 1) {
				q += 8;
				continue;
			} else {
				return error_setx(err, EINVAL, "%s is corrupt", path);
			}
			unsigned f = (unsigned)(key >> 3);
			if (head && f == 1)
				*pages_id = v;
			else if (f == 2)
				nr = v;
			else if (f == 3)
				in_parent = v;
			else if (f == 4) {
				flags = v;
				has_flags = true;
			}
		}
		if (!head) {
			bool here = has_flags ? (flags & PE_PRESENT) && !(flags & PE_PARENT) : !in_parent;
			if (here)
				*pages += nr;
		}
		head = false;
		p = qe;
	}
	return 0;
}

static int check_pages(int dirfd, const char *name, void *ud)
{
	struct error **err = ud;
	unsigned id;
	char pages_name[64];
	uint64_t pages_id, pages;
	struct stat st;

	if (sscanf(name, "pagemap-%u.img", &id) != 1)
		return 0;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, name);
	int r = pagemap_pages(path, &pages_id, &pages, err);
	if (r < 0)
		return r;
	snprintf(pages_name, sizeof(pages_name), "pages-%llu.img", (unsigned long long)pages_id);
	off_t have = fstatat(dirfd, pages_name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st.st_size : 0;
	if ((uint64_t)have != pages * 4096)
		return error_setx(err, EINVAL, "%s holds %lld bytes but %s accounts for %llu pages (%llu bytes)",
				  pages_name, (long long)have, name, (unsigned long long)pages,
				  (unsigned long long)pages * 4096);
	return 0;
}

static int images_verify_one(const char *dir, bool need_tree, struct error **err)
{
	_cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_free_ char *text = NULL, *meta = NULL;
	json_object *files, *v;
	int r;

	if (dirfd < 0)
		return error_set(err, errno, "image directory %s", dir);
	if (asprintf(&meta, "%s/" IMAGES_META, dir) < 0)
		return error_set(err, ENOMEM, "verify");
	r = read_file_bounded(meta, 16 << 20, &text, NULL, err);
	if (r == -ENOENT) {
		error_free(err);
		return error_setx(err, ENOENT, "%s is empty or not a cocoon checkpoint (no %s)", dir, IMAGES_META);
	}
	if (r < 0)
		return r;
	json_object *o = json_tokener_parse(text);
	if (!o)
		return error_setx(err, EINVAL, "%s/%s is corrupt", dir, IMAGES_META);
	int format = json_object_object_get_ex(o, "format", &v) ? json_object_get_int(v) : -1;
	const char *version = json_object_object_get_ex(o, "version", &v) ? json_object_get_string(v) : "?";
	if (format != IMAGES_FORMAT || strcmp(version, COCOON_VERSION) != 0) {
		r = error_setx(err, EPROTO,
			       "%s was made by cocoon %s (image format %d); this is cocoon %s (format %d): "
			       "restore it with the version that made it",
			       dir, version, format, COCOON_VERSION, IMAGES_FORMAT);
		json_object_put(o);
		return r;
	}
	if (!json_object_object_get_ex(o, "files", &files) || !json_object_is_type(files, json_type_object)) {
		json_object_put(o);
		return error_setx(err, EINVAL, "%s/%s lists no files", dir, IMAGES_META);
	}
	static const char *const required[] = {"inventory.img", "pstree.img"};
	for (size_t i = 0; i < ARRAY_SIZE(required) && r == 0 && need_tree; i++)
		if (!json_object_object_get_ex(files, required[i], &v))
			r = error_setx(err, ENOENT, "%s has no %s", dir, required[i]);
	json_object_object_foreach(files, name, entry)
	{
		if (r < 0)
			break;
		json_object *jsize, *jhash;
		uint64_t size, hash;
		char hex[17];
		if (!plain_name(name) || !json_object_object_get_ex(entry, "size", &jsize) ||
		    !json_object_object_get_ex(entry, "xxh3", &jhash)) {
			r = error_setx(err, EINVAL, "%s/%s: bad entry", dir, IMAGES_META);
			break;
		}
		r = hash_file(dirfd, name, &size, &hash, err);
		if (r < 0) {
			error_wrap(err, "%s: missing or unreadable", dir);
			break;
		}
		snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)hash);
		if (size != json_object_get_uint64(jsize))
			r = error_setx(err, EINVAL, "%s/%s is %llu bytes, expected %llu (truncated?)", dir, name,
				       (unsigned long long)size, (unsigned long long)json_object_get_uint64(jsize));
		else if (strcmp(hex, json_object_get_string(jhash)) != 0)
			r = error_setx(err, EINVAL, "%s/%s is corrupt (checksum mismatch)", dir, name);
	}
	json_object_put(o);
	if (r < 0)
		return r;
	return walk_files(dirfd, check_pages, err, err);
}

void images_copy_logs(const char *src, const char *work_path)
{
	static const char *const names[] = {"dump.log", "restore.log", "stats-dump", "stats-restore"};
	if (!work_path || mkdir_p(work_path, 0700, NULL) < 0)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		_cleanup_free_ char *from = NULL, *to = NULL;
		if (asprintf(&from, "%s/%s", src, names[i]) >= 0 && asprintf(&to, "%s/%s", work_path, names[i]) >= 0)
			copy_file_bounded(from, to, 256 << 20);
	}
}

void images_chain_free(struct images_chain *c)
{
	for (int i = 0; i < c->n; i++) {
		free(c->dirs[i]);
		free(c->names[i]);
	}
	c->n = 0;
}

int images_verify(const char *dir, struct images_chain *chain, struct error **err)
{
	char cur[PATH_MAX];
	snprintf(cur, sizeof(cur), "%s", dir);
	chain->n = 0;
	for (;;) {
		if (chain->n == IMAGES_MAX_CHAIN)
			return error_setx(err, E2BIG, "%s: more than %d pre-dumps in a chain", dir, IMAGES_MAX_CHAIN);
		int r = images_verify_one(cur, chain->n == 0, err);
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
			return error_setx(err, EINVAL, "%s: parent link points at '%.60s'", cur, target);
		char *slash = strrchr(cur, '/');
		if (!slash)
			return error_setx(err, EINVAL, "%s: parent outside", cur);
		*slash = 0;
		size_t len = strlen(cur);
		snprintf(cur + len, sizeof(cur) - len, "/%s", target + 3);
	}
}
