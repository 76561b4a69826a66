/* The payload's file commands, every kind of file CRIU meets (issue 17,
 * case 2): files, unix-connect (payload.c lists what each does). */
#include "payload.h"
#include "payload-files.h"

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
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void fill_random(int fd, size_t bytes, uint32_t seed)
{
	char buf[4096];
	for (size_t done = 0; done < bytes; done += sizeof(buf)) {
		for (size_t i = 0; i < sizeof(buf); i++) {
			seed = seed * 1103515245u + 12345u;
			buf[i] = (char)(seed >> 16);
		}
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			return;
	}
}

static bool read_line_is(int fd, const char *want)
{
	char buf[32] = "";
	size_t n = 0, len = strlen(want);
	while (n < len) {
		ssize_t r = read(fd, buf + n, len - n);
		if (r <= 0)
			return false;
		n += (size_t)r;
	}
	return memcmp(buf, want, len) == 0;
}

static int unix_listen_on(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path) >= (int)sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0)
		return -1;
	return fd;
}

static int unix_connect_to(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path) >= (int)sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	return fd;
}

/* Puts FD at number WANT (the test reads /proc/1/fd/WANT). */
static bool place(int fd, int want, const char *what)
{
	if (fd < 0 || dup2(fd, want) < 0) {
		printf("files: %s: %s\n", what, strerror(errno));
		return false;
	}
	if (fd != want)
		close(fd);
	return true;
}

int cmd_files(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	const char *dir = argv[2];
	char path[256], gone[256], check[256];
	bool ok = true;
	for (int fd = 3; fd < 9; fd++)
		close(fd);
	snprintf(path, sizeof(path), "%s/fifo", dir);
	unlink(path);
	if (mkfifo(path, 0600) < 0)
		printf("files: fifo: %s\n", strerror(errno)), ok = false;
	else if (place(open(path, O_RDWR), 3, "fifo") && write(3, "fifo-data\n", 10) != 10)
		ok = false;
	int memfd = memfd_create("cocoon-memfd", 0);
	if (place(memfd, 4, "memfd")) {
		fill_random(4, 65536, 4);
		lseek(4, 1234, SEEK_SET);
	}
	if (place(open(dir, O_TMPFILE | O_RDWR, 0600), 5, "tmpfile")) {
		fill_random(5, 65536, 5);
		lseek(5, 1234, SEEK_SET);
	} else {
		ok = false;
	}
	snprintf(path, sizeof(path), "%s/sock", dir);
	unlink(path);
	if (!place(unix_listen_on(path), 6, "unix listen") ||
	    !place(unix_connect_to(path), 7, "unix connect") ||
	    !place(accept(6, NULL, NULL), 8, "accept") || write(7, "ping\n", 5) != 5 ||
	    write(8, "ping\n", 5) != 5)
		ok = false;
	snprintf(gone, sizeof(gone), "%s/gone", dir);
	if (argc < 4 && (mkdir(gone, 0700) < 0 || chdir(gone) < 0 || rmdir(gone) < 0))
		printf("files: cwd: %s\n", strerror(errno)), ok = false;
	printf("files: ready%s\n", ok ? "" : " (with the errors above)");
	fflush(stdout);
	snprintf(check, sizeof(check), "%s/check", dir);
	bool checked = false;
	for (;;) {
		struct pollfd p = {.fd = 6, .events = POLLIN};
		if (poll(&p, 1, 200) > 0) {
			int c = accept(6, NULL, NULL);
			if (c >= 0 && read_line_is(c, "ping\n") && write(c, "pong\n", 5) == 5)
				printf("unix: answered\n");
			if (c >= 0)
				close(c);
			fflush(stdout);
		}
		if (!checked && access(check, F_OK) == 0) {
			bool a = read_line_is(7, "ping\n"), b = read_line_is(8, "ping\n");
			printf("pair: %s\n", a && b ? "ok" : "BAD");
			fflush(stdout);
			checked = true;
		}
	}
}

int cmd_unix_connect(int argc, char **argv)
{
	char buf[64];
	int fd = argc > 2 ? unix_connect_to(argv[2]) : -1;
	if (fd < 0 || write(fd, "ping\n", 5) != 5) {
		printf("unix-connect: %s\n", strerror(errno));
		return 1;
	}
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = 0;
	printf("%s", buf);
	return 0;
}

int cmd_lock(int argc, char **argv, bool hold)
{
	if (argc < 3)
		return 2;
	int fd = open(argv[2], O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		printf("%s: %s\n", hold ? "lock" : "trylock", strerror(errno));
		return 1;
	}
	if (!hold) {
		int r = flock(fd, LOCK_EX | LOCK_NB);
		printf("trylock: %s\n", r == 0		       ? "free"
					: errno == EWOULDBLOCK ? "busy"
							       : strerror(errno));
		return 0;
	}
	if (flock(fd, LOCK_EX) < 0) {
		printf("lock: %s\n", strerror(errno));
		return 1;
	}
	printf("lock: held\n");
	fflush(stdout);
	for (;;)
		payload_sleep_ms(1000);
}
