/* The payload's file commands (payload-files.c); each takes main's argc
 * and argv and returns the exit status. */
#pragma once

int cmd_files(int argc, char **argv);

int cmd_unix_connect(int argc, char **argv);
