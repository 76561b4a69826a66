/* The images walk, budget and hashes (images-walk.h). */
#include "images-walk.h"
#include "cleanup.h"
#include "config.h"
#include "fdio.h"
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
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <xxhash.h>

bool images_plain_name(const char *n)
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

void images_limits_from_config(const struct cocoon_config *cfg, struct images_limits *lim)
{
	lim->max_bytes = (uint64_t)cfg->checkpoint_max_bytes;
	lim->max_files = (uint64_t)cfg->checkpoint_max_files;
	lim->verify_ms = (uint64_t)cfg->verify_timeout_ms;
}

void images_budget_init(struct images_budget *b, const struct images_limits *lim)
{
	*b = (struct images_budget){.lim = lim, .deadline = now_ms() + (long long)lim->verify_ms};
}

int images_budget_file(struct images_budget *b, const char *name, uint64_t size, struct error **err)
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

int images_budget_time(const struct images_budget *b, struct error **err)
{
	/* Strictly before: a budget of 0 ms has run out at once. */
	if (now_ms() < b->deadline)
		return 0;
	return error_setx(err, ETIMEDOUT,
			  "checking the images took longer than %llu ms (limits.verify_timeout_ms)",
			  (unsigned long long)b->lim->verify_ms);
}

/* Walks a directory; calls fn for each regular file. Anything else (a
 * symlink, a FIFO, a device, a subdirectory, an odd name) is refused, but
 * for CRIU's "parent" link when allow_parent is set. */
int images_walk_files(int dirfd, bool allow_parent,
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
		if (!images_plain_name(de->d_name))
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

/* Hashes exactly size bytes of in (and writes them to out, unless out is
 * -1): a file that grows or shrinks meanwhile is refused. */
int images_hash_copy(int in, int out, const char *name, uint64_t size,
		     const struct images_budget *b, uint64_t *hash, struct error **err)
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
		ssize_t n = fd_read(in, buf, 1 << 20);
		if (n < 0)
			r = error_set(err, (int)-n, "read %s", name);
		else if (n == 0)
			break;
		else if ((done += (uint64_t)n) > size)
			r = error_setx(err, EFBIG, "%s grew while it was read", name);
		else if (out >= 0 && (r = fd_write_all(out, buf, (size_t)n)) < 0)
			r = error_set(err, -r, "write %s", name);
		else
			XXH3_64bits_update(st, buf, (size_t)n);
		if (r == 0)
			r = images_budget_time(b, err);
	}
	if (r == 0 && done != size)
		r = error_setx(err, EIO, "%s shrank while it was read", name);
	*hash = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return r;
}

int images_read_budgeted(int dirfd, const char *name, size_t max, const struct images_budget *b,
			 char **out, size_t *len, struct error **err)
{
	struct stat st;
	enum { STEP = 1 << 20 };
	*out = NULL;
	*len = 0;
	int r = images_budget_time(b, err);
	if (r < 0)
		return error_wrap(err, "%s", name);
	_cleanup_close_ int fd = safefs_open_regular(dirfd, name, max, &st, err);
	if (fd < 0)
		return fd;
	size_t size = (size_t)st.st_size, done = 0;
	_cleanup_free_ char *buf = malloc(size + 1);
	if (!buf)
		return error_set(err, ENOMEM, "read %s", name);
	while (done < size) {
		size_t want = size - done < STEP ? size - done : STEP;
		ssize_t n = read(fd, buf + done, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return error_set(err, errno, "read %s", name);
		if (n == 0)
			return error_setx(err, EIO, "%s shrank while it was read", name);
		done += (size_t)n;
		if (images_budget_time(b, err) < 0)
			return error_wrap(err, "%s", name);
	}
	buf[size] = 0;
	*out = TAKE_PTR(buf);
	*len = size;
	return 0;
}

int images_hash_fd(int fd, const char *name, uint64_t size, const struct images_budget *b,
		   uint64_t *hash, struct error **err)
{
	return images_hash_copy(fd, -1, name, size, b, hash, err);
}
