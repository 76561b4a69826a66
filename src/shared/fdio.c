#include "fdio.h"
#include "cleanup.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int fd_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -ENOSPC;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

ssize_t fd_read(int fd, void *buf, size_t len)
{
	ssize_t n;
	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

int fd_read_bounded(int fd, size_t max, char **out, size_t *len)
{
	_cleanup_free_ char *buf = malloc(max + 1);
	size_t n = 0;

	if (!buf)
		return -ENOMEM;
	/* One byte more than max is asked for, so that a larger file shows. */
	for (;;) {
		ssize_t r = fd_read(fd, buf + n, max + 1 - n);
		if (r < 0)
			return (int)r;
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max)
			return -EFBIG;
	}
	buf[n] = 0;
	if (len)
		*len = n;
	*out = TAKE_PTR(buf);
	return 0;
}

int mkdir_p(const char *path, int mode, struct error **err)
{
	_cleanup_free_ char *buf = strdup(path);

	if (!buf)
		return error_set(err, ENOMEM, "mkdir %s", path);
	for (char *p = buf + (*buf != 0); *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, (mode_t)mode) < 0 && errno != EEXIST)
			return error_set(err, errno, "mkdir %s", buf);
		*p = '/';
	}
	if (mkdir(buf, (mode_t)mode) < 0 && errno != EEXIST)
		return error_set(err, errno, "mkdir %s", buf);
	return 0;
}

long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
