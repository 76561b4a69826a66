/* What the dump (checkpoint.c, dump-job.c) and the restore (restore.c,
 * restore-job.c) share: the files a dump leaves beside CRIU's images for its
 * restore, CRIU's log and stats readers, the options both pass to CRIU. */
#pragma once

#include "agent.h"

/* Files and --external keys a dump writes beside the images. */
#define DESCRIPTORS_FILE "cocoon-descriptors"
#define OOM_ADJ_FILE "cocoon-oom-score-adj"
#define NETNS_KEY "cocoon-netns"
#define DEV_KEY "cocoon-dev"
#define SHM_KEY "cocoon-shm"
/* How often a running CRIU is looked at, and how long it may go without
 * using CPU time or writing anything before it is taken as stalled. A dump
 * waiting on a task that died sleeps; a working one does neither. */
#define CRIU_WATCH_MS 200
#define CRIU_STALL_MS 6000
/* How often a running checkpoint tells the host it goes on (a
 * CheckpointProgress event): the host gives up after
 * limits.checkpoint_silence_ms without one (src/host/shim/shim.h). ms. */
#define CKPT_PROGRESS_MS 1000

/* Sends the host a CheckpointProgress event (id 0) of container CID: the
 * checkpoint or restore goes on, at STAGE, BYTES of images so far,
 * ELAPSED_MS in. */
void ckpt_send_progress(struct agent *a, const char *cid, const char *stage, uint64_t bytes,
			long long elapsed_ms);

/* Fills ST from CRIU's stats-dump or stats-restore file at PATH; fields it
 * cannot read stay as they were. */
void criu_read_stats(const char *path, Cocoon__CriuStats *st);
/* The first "Error" line of the CRIU log LOG into OUT (SIZE bytes), or a
 * sentence saying there was none: a message, cut at SIZE on purpose (a
 * CRIU line can be long; the reply quotes its start). */
void criu_log_first_error(const char *log, char *out, size_t size);
/* Appends the options of O that dump and restore both take to AV. */
struct argv;
void criu_common_args(struct argv *av, const Cocoon__CriuOptions *o);
/* CRIU's log level for a run: 2 (warnings, and the Error lines cocoon
 * reports), 4 with DEBUG, or higher when the user's CRIU config asks for
 * it ("verbosity", "verbosity=N"). The command line's -vN wins over the
 * config file in CRIU, so the user's level goes there; it never lowers
 * cocoon's. At most 4 (CRIU's LOG_DEBUG). */
int criu_log_level(const Cocoon__CriuOptions *o, bool debug);
/* Appends "-vN" for criu_log_level(O, DEBUG) to AV. */
void criu_log_level_arg(struct argv *av, const Cocoon__CriuOptions *o, bool debug);
/* A new network namespace with loopback up: an fd the caller owns, or -1
 * with errno set. */
int ckpt_new_loopback_netns(void);
/* The kernel's count of OOM kills so far (/proc/vmstat oom_kill), or -1. */
long ckpt_oom_kills(void);
/* The namespaces a pod member C shares with its pod, as task PID has them:
 * fds[0..2] for net, ipc, uts, or -1; closed with ckpt_pod_namespaces_close. */
void ckpt_pod_namespaces_open(const struct agent_container *c, pid_t pid, int fds[3]);
void ckpt_pod_namespaces_close(int fds[3]);
