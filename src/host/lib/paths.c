#include "paths.h"
#include "cleanup.h"
#include "safefs.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#ifndef COCOON_SOURCE_ROOT
#define COCOON_SOURCE_ROOT ""
#endif
#ifndef COCOON_DATADIR
#define COCOON_DATADIR "/usr/local/share/cocoon"
#endif
#ifndef COCOON_LIBEXECDIR
#define COCOON_LIBEXECDIR "/usr/local/libexec/cocoon"
#endif

int read_file_bounded(const char *path, size_t max, char **out, size_t *len, struct error **err)
{
	/* O_NONBLOCK: a FIFO put where a file belongs reads as empty instead
	 * of hanging the caller. */
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

	if (fd < 0)
		return error_set(err, errno, "open %s", path);
	int r = fd_read_bounded(fd, max, out, len);
	if (r == -EFBIG)
		return error_setx(err, EFBIG, "%s is larger than %zu bytes", path, max);
	if (r < 0)
		return error_set(err, -r, "read %s", path);
	return 0;
}

int write_file_atomic(const char *path, const char *data, size_t len, int mode, struct error **err)
{
	_cleanup_free_ char *tmp = NULL;

	if (asprintf(&tmp, "%s.tmp.%d", path, getpid()) < 0)
		return error_set(err, ENOMEM, "%s", path);
	unlink(tmp); /* our own leftover: the same pid */
	_cleanup_close_ int fd =
		open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return error_set(err, errno, "create %s", tmp);
	int r = fd_write_all(fd, data, len);
	if (r < 0) {
		unlink(tmp);
		return error_set(err, -r, "write %s", tmp);
	}
	if (rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return error_set(err, e, "rename %s", path);
	}
	return 0;
}

void copy_file_bounded(const char *from, const char *to, size_t max)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (read_file_bounded(from, max, &text, &len, NULL) == 0)
		(void)write_file_atomic(to, text, len, 0600, NULL); /* a copy: best effort */
}

/* Walks by fd (safefs_remove): a symlink planted inside the tree is removed,
 * never followed, whatever it is swapped for meanwhile. */
int remove_tree(const char *path, struct error **err)
{
	_cleanup_free_ char *parent = path_beside(path, ".");
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	if (!parent)
		return error_set(err, ENOMEM, "remove %s", path);
	if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return error_setx(err, EINVAL, "remove %s: not a removable name", path);
	_cleanup_close_ int dirfd =
		open(*parent ? parent : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return errno == ENOENT ? 0 : error_set(err, errno, "remove %s", path);
	int r = safefs_remove(dirfd, base, err);
	return r < 0 ? error_wrap(err, "remove %s", path) : 0;
}

bool xxh3_text_valid(const char *s)
{
	return strlen(s) == 16 && strspn(s, "0123456789abcdef") == 16;
}

int validate_id(const char *kind, const char *id, struct error **err)
{
	char bad = 0;

	switch (cocoon_id_check(id, &bad)) {
	case COCOON_ID_OK:
		return 0;
	case COCOON_ID_EMPTY:
		return error_setx(err, EINVAL, "%s ID is empty", kind);
	case COCOON_ID_TOO_LONG:
		return error_setx(err, EINVAL,
				  "%s ID '%.20s...' is %zu characters; the limit is %d", kind, id,
				  strlen(id), COCOON_ID_MAX);
	case COCOON_ID_BAD_START:
		return error_setx(err, EINVAL, "%s ID '%s' must start with a letter or digit", kind,
				  id);
	case COCOON_ID_BAD_CHAR:
		return error_setx(
			err, EINVAL,
			"%s ID '%s' contains '%c'; allowed are letters, digits, '_', '-' and '.'",
			kind, id, bad);
	case COCOON_ID_DOTDOT:
		return error_setx(err, EINVAL, "%s ID '%s' contains '..'", kind, id);
	}
	return error_setx(err, EINVAL, "%s ID '%s' is not valid", kind, id);
}

const char *cache_dir(void)
{
	const char *e = getenv(COCOON_CACHE_ENV);
	return e && *e ? e : COCOON_DEFAULT_CACHE;
}

static char *exe_dir(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);

	if (n <= 0)
		return NULL;
	buf[n] = 0;
	char *slash = strrchr(buf, '/');
	if (slash)
		*slash = 0;
	return strdup(buf);
}

char *path_beside(const char *path, const char *name)
{
	const char *slash = strrchr(path, '/');
	char *out = NULL;
	if (asprintf(&out, "%.*s/%s", slash ? (int)(slash - path) : 1, slash ? path : ".", name) <
	    0)
		return NULL;
	return out;
}

int find_helper(const char *name, char **out, struct error **err)
{
	_cleanup_free_ char *dir = exe_dir();
	const char *roots[] = {dir, COCOON_SOURCE_ROOT, COCOON_DATADIR, COCOON_LIBEXECDIR};
	/* Where each helper lives, relative to those roots. */
	const char *subdirs[] = {"", "guest/image/", "guest/kernel/"};

	for (size_t i = 0; i < ARRAY_SIZE(roots); i++) {
		if (!roots[i] || !*roots[i])
			continue;
		for (size_t j = 0; j < ARRAY_SIZE(subdirs); j++) {
			char *p = NULL;
			if (asprintf(&p, "%s/%s%s", roots[i], subdirs[j], name) < 0)
				return error_set(err, ENOMEM, "%s", name);
			if (access(p, R_OK) == 0) {
				*out = p;
				return 0;
			}
			free(p);
		}
	}
	return error_setx(err, ENOENT, "cannot find %s next to %s or under %s", name,
			  dir ? dir : "?", COCOON_DATADIR);
}
