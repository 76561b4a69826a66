/* QMP, QEMU's machine protocol: just enough to save and load a VM
 * (template.c, vmsnap.c). One JSON message per line; events are skipped. */
#pragma once

#include <stddef.h>

#include "error.h"
#include "vm.h"

#define QMP_TIMEOUT_MS 30000

struct qmp {
	int fd;
	char buf[16384];
	size_t len;
};

/* Connects to the QMP socket at path while vm lives (up to 10 s), reads the
 * greeting and leaves capabilities negotiation. q->fd is the caller's to
 * close. */
int qmp_connect(struct qmp *q, struct vm *vm, const char *path, struct error **err);
/* Runs one command (a JSON line), with fd attached when fd >= 0 (getfd).
 * An error reply is an error (EIO) quoting it; otherwise the reply line is
 * returned in *reply when asked for (the caller frees it). Up to
 * QMP_TIMEOUT_MS. */
int qmp_call(struct qmp *q, const char *cmd, int fd, char **reply, struct error **err);
/* The "status" of a query-migrate or query-status reply ("completed",
 * "postmigrate", "running"...) into status; -EINVAL when it has none
 * (query-migrate before any migration) or it does not fit. Pure. */
int qmp_status(const char *reply, char *status, size_t size);
