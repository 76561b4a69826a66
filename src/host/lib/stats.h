/* runc events --stats in the host library (stats.c): the container's
 * figures, read inside its VM from its cgroup (src/guest/cgroups.c), as
 * runc's stats event. */
#pragma once

#include "error.h"
#include "opts.h"
#include "proto.h"

#include <json-c/json.h>

/* runc's stats event (libcontainer's types.Stats) for container ID from the
 * guest's figures s: {"type": "stats", "id", "data": {cpu, memory, pids}},
 * CPU times in ns (the guest's us * 1000), memory in bytes (no memory.max:
 * the VM's memory is the limit). s comes from the guest: a memory.stat key
 * that is not a plain name ([a-z0-9_], under 64 bytes) is dropped, and at
 * most 64 keys are read. Returns a new object (the caller's, json_object_put),
 * or NULL when out of memory. */
json_object *stats_json(const char *id, const Cocoon__StatsReply *s);

/* Asks container ID's guest for its figures and returns the stats event in
 * *out (the caller's, json_object_put). Returns 0; -ESRCH with *err set
 * when the container is stopped (container_load_live); another negative errno with *err set,
 * naming the container. */
int stats_container(struct global_opts *g, const char *id, json_object **out, struct error **err);
