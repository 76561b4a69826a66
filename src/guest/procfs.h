/* Small readers of /proc/PID files (proc(5)) shared by the agent's parts. */
#pragma once

#include <sys/types.h>

/* The integer after "KEY:" on its line of /proc/PID/status, e.g.
 * proc_status_long(pid, "PPid", 0). Returns `fallback` when the task is
 * gone, the line is missing or its value is not a number. */
long proc_status_long(pid_t pid, const char *key, long fallback);
