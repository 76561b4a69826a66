#include "guard.h"
#include "cleanup.h"
#include "paths.h"
#include "safefs.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define CONSOLE_KEEP_MAX (4 << 20)
#define GUARD_MAX_DEPTH 16

void guard_check_console(struct sandbox_guard *g)
{
	struct stat st;
	if (g->console_fd < 0 || fstat(g->console_fd, &st) < 0 ||
	    (uint64_t)st.st_size <= g->o.console_cap)
		return;
	uint64_t half = g->o.console_cap / 2;
	size_t keep = (size_t)(half < CONSOLE_KEEP_MAX ? half : CONSOLE_KEEP_MAX);
	_cleanup_free_ char *buf = malloc(keep ? keep : 1), *old = NULL;
	ssize_t n = buf ? pread(g->console_fd, buf, keep, st.st_size - (off_t)keep) : -1;
	if (n > 0 && asprintf(&old, "%s.1", g->console_path) >= 0)
		(void)write_file_atomic(old, buf, (size_t)n, 0600, NULL); /* keep what we can */
	/* QEMU writes with O_APPEND: its next line lands at the new end. */
	if (ftruncate(g->console_fd, 0) < 0)
		return;
}

uint64_t guard_usage(int dirfd, int depth)
{
	_cleanup_closedir_ DIR *d = safefs_opendir(dirfd);
	struct dirent *de;
	uint64_t sum = 0;
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		sum += (uint64_t)st.st_blocks * 512;
		if (!S_ISDIR(st.st_mode) || depth >= GUARD_MAX_DEPTH)
			continue;
		_cleanup_close_ int sub =
			openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0)
			sum += guard_usage(sub, depth + 1);
	}
	return sum;
}

void guard_check_shared(struct sandbox_guard *g)
{
	if (g->shared_fd < 0 || atomic_load(&g->tripped))
		return;
	uint64_t used = guard_usage(g->shared_fd, 0);
	if (used <= g->o.shared_cap)
		return;
	atomic_store(&g->tripped, true);
	fprintf(stderr,
		"cocoon: container %s: the guest stored %llu bytes in its shared directory, over %llu (limits.shared_max_bytes); its VM is stopped\n",
		g->o.id ? g->o.id : "?", (unsigned long long)used,
		(unsigned long long)g->o.shared_cap);
	if (g->o.vmm > 0)
		kill(g->o.vmm, SIGKILL);
}

static void *guard_main(void *arg)
{
	struct sandbox_guard *g = arg;
	while (!atomic_load(&g->stop)) {
		guard_check_console(g);
		if (g->ticks++ % 5 == 0)
			guard_check_shared(g);
		nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
	}
	return NULL;
}

int guard_start(struct sandbox_guard *g, const struct guard_opts *o, struct error **err)
{
	memset(g, 0, sizeof(*g));
	g->o = *o;
	g->console_fd = g->shared_fd = -1;
	g->console_fd = open(o->console_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (g->console_fd < 0)
		return error_set(err, errno, "console log %s", o->console_path);
	if (o->shared_dir)
		g->shared_fd = open(o->shared_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int r = !(g->console_path = strdup(o->console_path)) ? ENOMEM
		: o->shared_dir && g->shared_fd < 0
			? errno
			: pthread_create(&g->thread, NULL, guard_main, g);
	if (r != 0) {
		closep(&g->console_fd);
		closep(&g->shared_fd);
		free(g->console_path);
		return error_set(err, r, "guard of %s", o->console_path);
	}
	g->started = true;
	return 0;
}

void guard_stop(struct sandbox_guard *g)
{
	if (!g->started)
		return;
	atomic_store(&g->stop, true);
	pthread_join(g->thread, NULL);
	closep(&g->console_fd);
	closep(&g->shared_fd);
	free(g->console_path);
	g->started = false;
}
