/* The guest's serial console log, bounded (limits.console_log_max_bytes).
 * The guest writes it at will, and the state directory is often tmpfs, so
 * host memory. QEMU appends to it (append=on), and a thread of the shim
 * checks it ten times a second: past the cap, its last half-cap (at most
 * 4 MiB) moves to console.log.1 and console.log starts again, empty. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

struct console_guard {
	pthread_t thread;
	bool started;
	atomic_bool stop;
	int fd;
	char *path;
	uint64_t cap;
};

int console_guard_start(struct console_guard *g, const char *path, uint64_t cap, struct error **err);
void console_guard_stop(struct console_guard *g);
/* One check, as the thread makes it (for tests). */
void console_guard_check(struct console_guard *g);
