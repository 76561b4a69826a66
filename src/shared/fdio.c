#include "fdio.h"
#include "cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
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

int fd_copy_stream(int in, int out, void *buf, size_t size)
{
	for (;;) {
		ssize_t n = fd_read(in, buf, size);
		if (n <= 0)
			return (int)n;
		int r = fd_write_all(out, buf, (size_t)n);
		if (r < 0)
			return r;
	}
}

ssize_t fd_send_fds(int sock, const void *data, size_t len, const int *fds, size_t nfds, int flags)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * FD_SEND_MAX)];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};

	if (nfds > FD_SEND_MAX)
		return -EINVAL;
	if (nfds) {
		memset(&u, 0, sizeof(u));
		msg.msg_control = u.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	ssize_t n = sendmsg(sock, &msg, flags | MSG_NOSIGNAL);
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

int stdio_pipes_open(int child[3], int parent[3])
{
	int p[3][2], made;
	for (made = 0; made < 3; made++)
		if (pipe2(p[made], O_CLOEXEC) < 0)
			break;
	if (made < 3) {
		int r = -errno;
		for (int i = 0; i < made; i++) {
			close(p[i][0]);
			close(p[i][1]);
		}
		return r;
	}
	child[0] = p[0][0];
	parent[0] = p[0][1];
	for (int i = 1; i < 3; i++) {
		child[i] = p[i][1];
		parent[i] = p[i][0];
	}
	for (int i = 0; i < 3; i++)
		(void)fcntl(parent[i], F_SETFL, O_NONBLOCK); /* cannot fail on a new pipe */
	return 0;
}

int path_fmt(char *out, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out, size, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < size)
		return 0;
	if (size)
		out[0] = 0;
	return -ENAMETOOLONG;
}

long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
