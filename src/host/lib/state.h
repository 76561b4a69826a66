/* A container's state on the host: <root>/<id>/state.json, written
 * atomically by whoever changes it (the shim, mostly). */
#pragma once

/* Files of a container's state directory (<root>/<id>): the state the
 * commands read, and restore --print-stats' figures, written by the shim. */
#define STATE_FILE "state.json"
#define RESTORE_STATS_FILE "restore-stats.json"

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

enum container_status {
	STATUS_CREATING,
	STATUS_CREATED,
	STATUS_RUNNING,
	STATUS_PAUSED,
	STATUS_STOPPED
};

struct container_state {
	char id[65];
	char bundle[4096];
	char rootfs[4096];
	char created[40]; /* RFC 3339 */
	enum container_status status;
	pid_t shim_pid;
	unsigned long long shim_start; /* /proc/<pid>/stat starttime, against pid reuse */
	int exit_status;	       /* valid when stopped: the shim's exit code */
	/* The host cgroup the shim made, joined and shows the engines' stats
	 * in (cgroup-mirror.h), "" when none: delete removes it. */
	char cgroup[1024];
};

const char *state_status_name(enum container_status s);

/* <root>/<id> */
int state_dir(const char *root, const char *id, char **out, struct error **err);
int state_write(const char *dir, const struct container_state *st, struct error **err);
/* Reads the state and checks the shim: a dead shim means "stopped". */
int state_read(const char *dir, struct container_state *st, struct error **err);
/* Whether the shim recorded in st still runs. */
bool state_shim_alive(const struct container_state *st);
unsigned long long proc_start_time(pid_t pid);

/* The keeper: the process that owns a container's VM (QEMU and the agent
 * channel) apart from the shim whose pid the engine waits on, so that a
 * pod's VM outlives its sandbox container while members run
 * (docs/pods.md "Lifetimes"). It writes <dir>/keeper ("<pid> <start>")
 * when it starts and removes it when it ends; a crash leaves it naming a
 * dead process. */
#define STATE_KEEPER_FILE "keeper"
/* pod: the container has ended and the keeper serves its pod's members
 * ("<pid> <start> pod"); it removes the directory when it ends. */
int state_keeper_write(const char *dir, pid_t pid, unsigned long long start, bool pod,
		       struct error **err);
/* 0 and pid/start/pod when the keeper of dir runs, -ESRCH when the file
 * names a process that is gone (or is not a keeper's), -ENOENT when there
 * is none; another negative errno when it cannot be read (then nothing is
 * known: callers must not take the keeper for dead). */
int state_keeper_read(const char *dir, pid_t *pid, unsigned long long *start, bool *pod);
/* Takes an exclusive flock on dir (an fd to close, or -errno): delete and
 * the keeper's end decide under it which of them removes the directory. */
int state_lock_dir(const char *dir);
void state_now_rfc3339(char out[40]);
