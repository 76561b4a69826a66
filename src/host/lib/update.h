/* runc update in the host library (update.c): new limits for the
 * container's cgroup inside its VM (src/guest/cgroups.c), built option by
 * option or from --resources' OCI JSON, then sent through its shim and kept
 * for a restore (resources-kept.h). */
#pragma once

#include "error.h"
#include "opts.h"
#include "proto.h"

#include <stdbool.h>
#include <stdint.h>

/* What the command line asks, as one request. update_init sets it up; the
 * request and its resources point into the struct, so it is not copied. */
struct update_request {
	Cocoon__UpdateRequest ur;
	Cocoon__Resources res;
	bool got_quota, got_period; /* --cpu-quota / --cpu-period given */
	const char *resources;	    /* --resources FILE ("-": stdin), or NULL */
	/* What the VM does not apply, comma-separated ("--memory-swap, swap");
	 * cut with "..." when longer. */
	char ignored[512];
};

/* The options with a value rule (update_set). */
enum update_field {
	UPDATE_MEMORY,	   /* --memory: bytes (update_parse_size), -1 none */
	UPDATE_PIDS,	   /* --pids-limit: a number, -1 none */
	UPDATE_CPU_QUOTA,  /* --cpu-quota: us, -1 none, else >= 1000 */
	UPDATE_CPU_PERIOD, /* --cpu-period: 1000 .. 1000000 us */
	UPDATE_CPU_SHARES, /* --cpu-share: 2 .. 262144 (runc's cgroup v2 range) */
};

void update_init(struct update_request *u);

/* runc's memory sizes: decimal bytes with an optional b, k, m or g
 * (1024-based), or -1 for no limit (*out -1). Returns 0, or -EINVAL for
 * anything else or a size over INT64_MAX bytes. */
int update_parse_size(const char *s, int64_t *out);

/* Option --NAME's value ARG into u, as runc update reads it: 0 leaves the
 * limit as it is, -1 lifts it. The kernel's 1000 us minimum for a quota is
 * kernel/sched/core.c's (min_cfs_quota_period), as for config.json
 * (resources_check_json). Returns 0, or -EINVAL with *err reading
 * "--NAME 'ARG': expected ..." (a usage error). */
int update_set(struct update_request *u, enum update_field f, const char *name, const char *arg,
	       struct error **err);

/* Notes option --NAME, which the VM does not apply, in u->ignored. */
void update_ignore(struct update_request *u, const char *name);

/* --resources PATH ("-": stdin), at most 1 MiB of OCI linux.resources JSON,
 * over what the options set (resources_update_from_json); what the VM does
 * not apply is added to u->ignored. Returns 0, or a negative errno with
 * *err naming the file or the field. */
int update_read_resources(struct update_request *u, const char *path, struct error **err);

/* runc update of container ID with u: reads u->resources when given
 * (update_read_resources), warns (log_warning) about what is ignored, refuses a stopped container,
 * sends what is set (nothing set: nothing sent) and keeps it for a checkpoint's restore (a failure
 * there is a warning). Returns 0, or a negative errno with *err set, naming the container. */
int update_container(struct global_opts *g, const char *id, struct update_request *u,
		     struct error **err);
