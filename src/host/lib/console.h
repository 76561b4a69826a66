/* Host ptys for terminals (process.terminal): the engine gets the master
 * on --console-socket, as from runc, and the shim relays the slave to the
 * guest's pty. The engine resizes its terminal through that master
 * (runc's console.Resize: TIOCSWINSZ); a console_watch notices the change
 * on the slave and the shim sends the new size to the agent.
 *
 * Why a watch and not SIGWINCH: the kernel sends SIGWINCH to the
 * foreground process group of the pty's session only, and the shim is no
 * such group (an exec's pty could not be its controlling terminal anyway,
 * a process has one). So the shim reads the size every
 * CONSOLE_WATCH_INTERVAL_MS while it has a terminal. */
#pragma once

#include <stdbool.h>

#include "cocoon.pb-c.h"
#include "error.h"

#define CONSOLE_WATCH_INTERVAL_MS 200

/* A new pty whose slave is in raw mode (the guest's pty does the line
 * discipline) and of the given size (NULL: the kernel's 0x0). Both fds are
 * close-on-exec and the caller's. Returns 0 or a negative errno value. */
int console_openpty(const Cocoon__ConsoleSize *size, int *master, int *slave, struct error **err);

/* Hands master to the engine's unix socket at path (SCM_RIGHTS, one byte
 * of data), as runc does with --console-socket. The caller keeps master. */
int console_send_master(const char *path, int master, struct error **err);

/* The size last sent to the guest for one terminal. */
struct console_watch {
	int fd; /* the slave (or any fd of the pty), not owned; -1: none */
	unsigned rows, cols;
};

/* Starts watching fd; size is what the guest's pty was given (NULL:
 * nothing, 0x0), so that a resize made before the guest's pty existed is
 * still sent. */
void console_watch_init(struct console_watch *w, int fd, const Cocoon__ConsoleSize *size);

/* Sets the pty's size to one the guest reports (a restored pty's: the
 * size the container had), and takes it as the size the guest has. From
 * the guest, so bounded: both sides in 1..65535, else -ERANGE and nothing
 * changes. 0 on success, or a negative errno value. */
int console_watch_apply(struct console_watch *w, const Cocoon__ConsoleSize *size);

/* True when the pty's size changed to one with two non-zero sides since
 * the last call; *out is then that size, for a ResizeRequest. */
bool console_watch_changed(struct console_watch *w, Cocoon__ConsoleSize *out);
