/* The payload's file commands (payload-files.c); each takes main's argc
 * and argv and returns the exit status. */
#pragma once

#include <stdbool.h>

int cmd_files(int argc, char **argv);

int cmd_unix_connect(int argc, char **argv);

/* lock (hold) or trylock (!hold) PATH. */
int cmd_lock(int argc, char **argv, bool hold);
