/* The payload's network commands: tcp, tcp-connect, echo-server, sink
 * (payload.c lists what each does). */
#include "payload.h"
#include "payload-net.h"

#include <errno.h>
#include <sys/shm.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int tcp_to(int port, bool listening)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	if (listening) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0)
			return -1;
	} else if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One round trip on a connection: sends v, returns the answer or -1. */
static long tcp_round(int fd, unsigned long v)
{
	if (write(fd, &v, sizeof(v)) != sizeof(v) || read(fd, &v, sizeof(v)) != sizeof(v))
		return -1;
	return (long)v;
}

/* Accepts a connection on p[0] into the first free slot of p[1..n-1]
 * (closed when there is none). Returns the slot, or 0 when none was taken. */
static size_t accept_into(struct pollfd *p, size_t n)
{
	int c = accept(p[0].fd, NULL, NULL);
	for (size_t i = 1; i < n && c >= 0; i++)
		if (p[i].fd < 0) {
			p[i] = (struct pollfd){.fd = c, .events = POLLIN};
			return i;
		}
	if (c >= 0)
		close(c);
	return 0;
}

/* One round trip on FD every 200 ms, each printed, until the connection
 * breaks (or FD is -1, none): the client half of `tcp PORT pair`. Returns 1. */
static int tcp_rounds(int fd)
{
	for (unsigned long v = 0; fd >= 0; v += 2) {
		long w = tcp_round(fd, v);
		printf("tcp %lu -> %ld %s\n", v, w, w == (long)v + 1 ? "ok" : "BAD");
		fflush(stdout);
		if (w < 0)
			break;
		payload_sleep_ms(200);
	}
	printf("tcp broken\n");
	return 1;
}

int cmd_tcp(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	int port = atoi(argv[2]);
	struct pollfd p[9] = {{.fd = tcp_to(port, true), .events = POLLIN}};
	if (p[0].fd < 0) {
		perror("listen");
		return 1;
	}
	printf("listening %d\n", port);
	fflush(stdout);
	if (argc > 3 && strcmp(argv[3], "pair") == 0 && fork() == 0)
		_exit(tcp_rounds(tcp_to(port, false)));
	for (size_t i = 1; i < 9; i++)
		p[i].fd = -1;
	for (;;) {
		if (poll(p, 9, -1) < 0)
			continue;
		for (size_t i = 1; i < 9; i++) {
			unsigned long v;
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (read(p[i].fd, &v, sizeof(v)) != sizeof(v)) {
				close(p[i].fd);
				p[i].fd = -1;
				continue;
			}
			v++;
			if (write(p[i].fd, &v, sizeof(v)) != sizeof(v)) {
				close(p[i].fd);
				p[i].fd = -1;
			}
		}
		if (p[0].revents & POLLIN)
			accept_into(p, 9);
	}
}

int cmd_echo_server(int argc, char **argv)
{
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
	struct pollfd p[9];
	unsigned long long bytes[9] = {0};
	char buf[65536];
	int one = 1, zero = 0;

	if (argc < 3)
		return 2;
	sa.sin6_port = htons((uint16_t)atoi(argv[2]));
	p[0] = (struct pollfd){.fd = socket(AF_INET6, SOCK_STREAM, 0), .events = POLLIN};
	setsockopt(p[0].fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(p[0].fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (p[0].fd < 0 || bind(p[0].fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(p[0].fd, 8) < 0) {
		perror("listen");
		return 1;
	}
	printf("listening %s\n", argv[2]);
	fflush(stdout);
	for (size_t i = 1; i < 9; i++)
		p[i] = (struct pollfd){.fd = -1, .events = POLLIN};
	for (;;) {
		if (poll(p, 9, -1) < 0)
			continue;
		for (size_t i = 1; i < 9; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t n = read(p[i].fd, buf, sizeof(buf));
			if (n > 0 && write(p[i].fd, buf, (size_t)n) == n) {
				bytes[i] += (unsigned long long)n;
				continue;
			}
			printf("closed %llu\n", bytes[i]);
			fflush(stdout);
			close(p[i].fd);
			p[i].fd = -1;
		}
		size_t i;
		if ((p[0].revents & POLLIN) && (i = accept_into(p, 9)) > 0) {
			bytes[i] = 0;
			printf("accepted\n");
			fflush(stdout);
		}
	}
}

int cmd_sink(int argc, char **argv)
{
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
	static char buf[1 << 18];
	int one = 1, zero = 0;

	if (argc < 3)
		return 2;
	sa.sin6_port = htons((uint16_t)atoi(argv[2]));
	int l = socket(AF_INET6, SOCK_STREAM, 0);
	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0 ||
	    bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 8) < 0) {
		perror("listen");
		return 1;
	}
	printf("listening %s\n", argv[2]);
	fflush(stdout);
	for (;;) {
		int c = accept(l, NULL, NULL);
		if (c < 0)
			continue;
		unsigned long long total = 0;
		ssize_t n;
		while ((n = read(c, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
			total += n > 0 ? (unsigned long long)n : 0;
		char line[32];
		int len = snprintf(line, sizeof(line), "%llu\n", total);
		if (write(c, line, (size_t)len) != len)
			perror("sink: write");
		close(c);
	}
}

/* tcp-client PORT: the client half of `tcp PORT pair`, in a container of
 * its own (a pod's other member serves): connects (retrying for 10 s), then
 * one round trip every 200 ms, each printed, until the connection breaks. */
int cmd_tcp_client(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	int fd = -1;
	for (int i = 0; i < 100 && fd < 0; i++)
		if ((fd = tcp_to(atoi(argv[2]), false)) < 0)
			payload_sleep_ms(100);
	return tcp_rounds(fd);
}

int cmd_tcp_connect(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	int fd = tcp_to(atoi(argv[2]), false);
	long w = fd < 0 ? -1 : tcp_round(fd, 41);
	printf("tcp-connect %ld\n", w);
	return w == 42 ? 0 : 1;
}
