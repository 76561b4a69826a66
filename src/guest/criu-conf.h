#pragma once
#include <stdbool.h>
#include <sys/types.h>

struct agent_container;

/* Writes CRIU's --config file for a dump (of the tree of pid) or a restore
 * of container c at path. Returns 0 or a negative errno. */
int criu_conf_write(const char *path, const struct agent_container *c, pid_t pid, bool dump);
