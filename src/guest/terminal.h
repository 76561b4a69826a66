/* Terminal sizes: the container's pty and each exec's take the
 * size the spec gives (process.consoleSize) when they are made, follow the
 * host pty when the engine resizes it (ResizeRequest from the shim), and
 * keep their size across a checkpoint: the dump writes it beside the images
 * (a "winsize ROWS COLS" line of cocoon-descriptors) and the restore puts it
 * on the new pty.
 *
 * The size is set on the agent's master: TIOCSWINSZ on either end of a pty
 * changes the pair's size, and the kernel sends SIGWINCH to the slave's
 * foreground process group, as a resize of a host terminal does. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "cocoon.pb-c.h"

/* Largest rows or columns taken: struct winsize holds unsigned shorts. */
#define TERMINAL_SIZE_MAX 65535u

/* Sets the size of the pty whose master is fd. A NULL size, or one with a
 * zero side, leaves it as it is (0 on success, as for a size set). Returns
 * 0 or a negative errno value: -EINVAL for a side over TERMINAL_SIZE_MAX. */
int terminal_set_size(int master, const Cocoon__ConsoleSize *size);

/* The line cocoon-descriptors keeps for a pty, "winsize ROWS COLS" (no
 * newline), written into buf; false if the size cannot be read. */
bool terminal_size_line(int master, char *buf, size_t size);

/* Parses such a line (untrusted: it comes back from a checkpoint
 * directory). True and *out filled when the line is one, with both sides
 * within TERMINAL_SIZE_MAX. */
bool terminal_parse_size_line(const char *line, Cocoon__ConsoleSize *out);
