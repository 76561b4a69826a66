/* Small I/O helpers both sides of the VM boundary use: whole writes,
 * bounded reads, mkdir -p and a monotonic clock. Errors follow error.h:
 * a negative errno value. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include "error.h"

/* Writes all len bytes to fd, retrying on EINTR and short writes.
 * Returns 0, or -errno; a write that makes no progress is -ENOSPC. */
int fd_write_all(int fd, const void *data, size_t len);

/* read(), retried on EINTR: the bytes read (0 at the end) or -errno. */
ssize_t fd_read(int fd, void *buf, size_t len);

/* Reads fd to its end into a new NUL-terminated buffer (*out, owned by the
 * caller; set only on success). More than max bytes is -EFBIG; otherwise
 * -ENOMEM or the -errno of read(). *len (when not NULL) gets the length. */
int fd_read_bounded(int fd, size_t max, char **out, size_t *len);

/* Copies in to its end into out through buf[size] (the caller's scratch),
 * with fd_read and fd_write_all. Returns 0, or the -errno of the read or
 * write that failed. */
int fd_copy_stream(int in, int out, void *buf, size_t size);

/* At most this many descriptors go with one fd_send_fds. */
#define FD_SEND_MAX 4

/* One sendmsg() of data[len] on the unix socket sock with fds[nfds] attached
 * (SCM_RIGHTS; none when nfds is 0), flags | MSG_NOSIGNAL (a peer gone is
 * -EPIPE, never SIGPIPE). The fds stay the caller's. Not retried: returns
 * the bytes sent (a stream socket may take fewer than len; the fds went
 * with the first of them), or -errno (-EINVAL for nfds over FD_SEND_MAX). */
ssize_t fd_send_fds(int sock, const void *data, size_t len, const int *fds, size_t nfds, int flags);

/* mkdir -p: creates path and its missing parents with mode. An existing
 * directory is not an error. Names the directory it could not make. */
int mkdir_p(const char *path, int mode, struct error **err);
/* Three pipes for a child's stdio, every end close-on-exec: child[] gets the
 * child's ends (stdin's read end, stdout's and stderr's write ends),
 * parent[] the other three, non-blocking. Returns 0, or a negative errno
 * with nothing left open. */
int stdio_pipes_open(int child[3], int parent[3]);
/* snprintf into out (size bytes) for a path or a name that must never be cut:
 * 0, or -ENAMETOOLONG when it does not fit, and then out is "" (an empty
 * path opens nothing). */
int path_fmt(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* CLOCK_MONOTONIC in milliseconds. */
long long now_ms(void);
