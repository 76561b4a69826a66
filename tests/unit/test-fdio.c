/* fdio.h's stream copy and descriptor passing, which both sides use. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "fdio.h"

/* More than the buffer holds, through a buffer of 7 bytes: all of it,
 * in order; a write end that is closed is the write's -errno. */
static void test_copy_stream(void **st)
{
	(void)st;
	char data[1000], back[1100], buf[7];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)(i * 31 + 7);
	FILE *in = tmpfile(), *out = tmpfile();
	assert_non_null(in);
	assert_non_null(out);
	assert_int_equal(fd_write_all(fileno(in), data, sizeof(data)), 0);
	assert_int_equal(lseek(fileno(in), 0, SEEK_SET), 0);
	assert_int_equal(fd_copy_stream(fileno(in), fileno(out), buf, sizeof(buf)), 0);
	assert_int_equal(lseek(fileno(out), 0, SEEK_SET), 0);
	assert_int_equal(fd_read(fileno(out), back, sizeof(back)), sizeof(data));
	assert_memory_equal(back, data, sizeof(data));

	int p[2];
	assert_int_equal(pipe(p), 0);
	close(p[0]);
	assert_int_equal(lseek(fileno(in), 0, SEEK_SET), 0);
	(void)signal(SIGPIPE, SIG_IGN); /* fd_write_all is a plain write() */
	assert_int_equal(fd_copy_stream(fileno(in), p[1], buf, sizeof(buf)), -EPIPE);
	close(p[1]);
	/* A read end that cannot be read: the read's -errno. */
	assert_int_equal(fd_copy_stream(-1, fileno(out), buf, sizeof(buf)), -EBADF);
	fclose(in);
	fclose(out);
}

/* Receives one message of up to 16 bytes and its descriptors. */
static ssize_t recv_fds(int sock, char *data, int *fds, size_t *nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = data, .iov_len = 16};
	struct msghdr m = {.msg_iov = &iov,
			   .msg_iovlen = 1,
			   .msg_control = u.buf,
			   .msg_controllen = sizeof(u.buf)};
	ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
	*nfds = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			*nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			memcpy(fds, CMSG_DATA(cm), *nfds * sizeof(int));
		}
	}
	return n;
}

/* Two pipes' write ends go across and work there; no fds is a plain
 * message; more than FD_SEND_MAX is refused before anything is sent; a
 * peer gone is -EPIPE, not SIGPIPE. */
static void test_send_fds(void **st)
{
	(void)st;
	int sv[2], a[2], b[2], got[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
	char data[16] = "";
	size_t nfds;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(pipe(a), 0);
	assert_int_equal(pipe(b), 0);
	int fds[2] = {a[1], b[1]};
	assert_int_equal(fd_send_fds(sv[0], "hi", 2, fds, 2, 0), 2);
	assert_int_equal(recv_fds(sv[1], data, got, &nfds), 2);
	assert_memory_equal(data, "hi", 2);
	assert_int_equal(nfds, 2);
	assert_int_equal(write(got[1], "x", 1), 1); /* the copy of b's write end */
	char c = 0;
	assert_int_equal(read(b[0], &c, 1), 1);
	assert_int_equal(c, 'x');
	close(got[0]);
	close(got[1]);

	assert_int_equal(fd_send_fds(sv[0], "P", 1, NULL, 0, 0), 1);
	assert_int_equal(recv_fds(sv[1], data, got, &nfds), 1);
	assert_int_equal(nfds, 0);

	int many[FD_SEND_MAX + 1];
	for (size_t i = 0; i < FD_SEND_MAX + 1; i++)
		many[i] = a[1];
	assert_int_equal(fd_send_fds(sv[0], "m", 1, many, FD_SEND_MAX + 1, 0), -EINVAL);
	assert_int_equal(fd_send_fds(sv[0], "m", 1, many, FD_SEND_MAX, MSG_DONTWAIT), 1);
	assert_int_equal(recv_fds(sv[1], data, got, &nfds), 1);
	assert_int_equal(nfds, FD_SEND_MAX);
	for (size_t i = 0; i < nfds; i++)
		close(got[i]);

	close(sv[1]);
	assert_int_equal(fd_send_fds(sv[0], "z", 1, fds, 1, 0), -EPIPE);
	close(sv[0]);
	for (int i = 0; i < 2; i++) {
		close(a[i]);
		close(b[i]);
	}
}

/* The lowest free descriptor: what a leak would move. */
static int lowest_free_fd(void)
{
	int fd = dup(0);
	assert_true(fd >= 0);
	close(fd);
	return fd;
}

static void test_stdio_pipes(void **state)
{
	(void)state;
	int child[3], parent[3];
	char c;
	assert_int_equal(stdio_pipes_open(child, parent), 0);
	for (int i = 0; i < 3; i++) {
		assert_true(fcntl(child[i], F_GETFD) & FD_CLOEXEC);
		assert_true(fcntl(parent[i], F_GETFD) & FD_CLOEXEC);
		assert_true(fcntl(parent[i], F_GETFL) & O_NONBLOCK);
		assert_false(fcntl(child[i], F_GETFL) & O_NONBLOCK);
	}
	/* stdin flows parent -> child, stdout and stderr child -> parent. */
	assert_int_equal(write(parent[0], "i", 1), 1);
	assert_int_equal(read(child[0], &c, 1), 1);
	assert_int_equal(c, 'i');
	for (int i = 1; i < 3; i++) {
		assert_int_equal(write(child[i], "o", 1), 1);
		assert_int_equal(read(parent[i], &c, 1), 1);
		assert_int_equal(c, 'o');
		assert_int_equal(read(parent[i], &c, 1), -1); /* empty: non-blocking */
		assert_int_equal(errno, EAGAIN);
	}
	for (int i = 0; i < 3; i++) {
		close(child[i]);
		close(parent[i]);
	}

	/* A pipe2 that fails after the first pipes leaves nothing open: room
	 * for two descriptors above the lowest free one, so the second pipe
	 * fails. */
	int low = lowest_free_fd();
	struct rlimit old, lim;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)low + 3;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
	int r = stdio_pipes_open(child, parent);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_int_equal(r, -EMFILE);
	assert_int_equal(lowest_free_fd(), low); /* the first pipe was closed */
}

/* A path that does not fit is refused, never cut. */
static void test_path_fmt(void **state)
{
	(void)state;
	char out[8];
	assert_int_equal(path_fmt(out, sizeof(out), "/%s/%d", "ab", 12), 0);
	assert_string_equal(out, "/ab/12");
	assert_int_equal(path_fmt(out, sizeof(out), "/%s", "abcdef"), 0); /* 7 + NUL */
	assert_string_equal(out, "/abcdef");
	assert_int_equal(path_fmt(out, sizeof(out), "/%s", "abcdefg"), -ENAMETOOLONG);
	assert_string_equal(out, "");
	assert_int_equal(path_fmt(out, 0, "%s", ""), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_copy_stream),
		cmocka_unit_test(test_send_fds),
		cmocka_unit_test(test_stdio_pipes),
		cmocka_unit_test(test_path_fmt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
