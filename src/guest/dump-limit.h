/* The memory a dump's CRIU may take (dump-limit.c): CRIU runs in a cgroup of
 * its own whose memory.max is what the guest had available when the dump
 * began, less a reserve kept for the rest of the guest. What CRIU writes into
 * guest tmpfs (the page images) is charged to that cgroup, as is CRIU's own
 * memory.
 *
 * Why: when a dump did not fit (the fit check switched off, or the container
 * grew after it), the whole guest ran short. The kernel then reclaimed every
 * page it could, the agent and CRIU faulting their own code back in, before
 * its OOM killer chose; on a slow or busy host that took minutes, and the
 * dump ran into its 10-minute deadline. With the limit the
 * shortage stays inside CRIU's cgroup: the kernel's OOM killer there has only
 * CRIU (and what CRIU forked) to choose from, at once, and the guest keeps
 * the reserve meanwhile. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Kept out of CRIU's reach for the agent, the kernel and the container (a
 * running container goes on between the dump and the copy). A dump that
 * passes the fit check (checkpoint.c: the container's memory plus 32 MiB
 * plus 1/16 must be available) has at least this much plus 1/16 of the
 * container's memory as room for CRIU's own use under the limit. KiB. */
#define DUMP_LIMIT_RESERVE_KIB (16 * 1024)
/* The limit is never below this (a guest with almost nothing available:
 * CRIU itself needs a few MiB). KiB. */
#define DUMP_LIMIT_MIN_KIB (16 * 1024)

struct dump_limit {
	char path[192]; /* the cgroup, "" when there is none (no limit) */
	long max_kib;	/* its memory.max */
};

/* Makes the cgroup for the dump CKID (under /sys/fs/cgroup, as
 * ".dump-CKID", a name no container id can take) with memory.max set from
 * AVAIL_KIB (MemAvailable, KiB; < 0 when unknown: no limit). Also removes
 * the empty cgroups earlier dumps could not remove. Returns 0, or a
 * negative errno with L->path empty: the dump then runs unlimited, as
 * before. */
int dump_limit_open(struct dump_limit *l, const char *ckid, long avail_kib);
/* The OOM kills in the cgroup so far (memory.events oom_kill). */
uint64_t dump_limit_oom_kills(const struct dump_limit *l);
/* Ends whatever is left in the cgroup (cgroup.kill: what CRIU forked and
 * left behind) and removes it; a cgroup whose tasks have not been reaped yet
 * stays until the next dump_limit_open. L->path is empty afterwards. */
void dump_limit_close(struct dump_limit *l);
