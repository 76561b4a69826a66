#pragma once
#include <stddef.h>
#include "proto.h"

/* Writes memory.max, pids.max, cpu.max and cpu.weight for what r sets. On
 * failure fills msg, naming the file and the value. */
int cgroups_apply(const char *cgroup, const Cocoon__Resources *r, char *msg, size_t msg_size);
