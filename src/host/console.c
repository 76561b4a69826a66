#include "console.h"
#include "cleanup.h"
#include "paths.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define CONSOLE_KEEP_MAX (4 << 20)

void console_guard_check(struct console_guard *g)
{
	struct stat st;
	if (fstat(g->fd, &st) < 0 || (uint64_t)st.st_size <= g->cap)
		return;
	size_t keep = (size_t)(g->cap / 2 < CONSOLE_KEEP_MAX ? g->cap / 2 : CONSOLE_KEEP_MAX);
	_cleanup_free_ char *buf = malloc(keep ? keep : 1), *old = NULL;
	ssize_t n = buf ? pread(g->fd, buf, keep, st.st_size - (off_t)keep) : -1;
	if (n > 0 && asprintf(&old, "%s.1", g->path) >= 0)
		write_file_atomic(old, buf, (size_t)n, 0600, NULL);
	/* QEMU writes with O_APPEND: its next line lands at the new end. */
	if (ftruncate(g->fd, 0) < 0)
		return;
}

static void *guard_main(void *arg)
{
	struct console_guard *g = arg;
	while (!atomic_load(&g->stop)) {
		console_guard_check(g);
		nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
	}
	return NULL;
}

int console_guard_start(struct console_guard *g, const char *path, uint64_t cap, struct error **err)
{
	memset(g, 0, sizeof(*g));
	g->cap = cap;
	g->fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (g->fd < 0)
		return error_set(err, errno, "console log %s", path);
	if (!(g->path = strdup(path))) {
		close(g->fd);
		return error_set(err, ENOMEM, "console log");
	}
	int r = pthread_create(&g->thread, NULL, guard_main, g);
	if (r != 0) {
		close(g->fd);
		free(g->path);
		return error_set(err, r, "console log guard");
	}
	g->started = true;
	return 0;
}

void console_guard_stop(struct console_guard *g)
{
	if (!g->started)
		return;
	atomic_store(&g->stop, true);
	pthread_join(g->thread, NULL);
	close(g->fd);
	free(g->path);
	g->started = false;
}
