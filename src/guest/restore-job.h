/* A running restore (restore-job.c): CRIU's restore as an agent job, its
 * watch, and the reply when it ends. restore.c starts it. */
#pragma once

#include "agent.h"
#include "guard.h"

struct restore_ctx {
	struct agent *a;
	uint64_t req_id;
	char cid[COCOON_ID_MAX + 1];
	char work[256];
	char images[300];
	char share0[300];		 /* the first image share's mount, when shared by tag */
	char shares[200];		 /* where the image shares are mounted, or empty */
	char staged[200];		 /* where they are staged, or empty */
	char fresh_args[2][340];	 /* --external for a fresh /dev and /dev/shm, or empty */
	char fault[64];			 /* fault injection for the e2e tests, or empty */
	int host_in, host_out, host_err; /* the agent's ends of the new pipes (or pty master) */
	bool terminal;			 /* the spec's process.terminal */
	bool pages_staged;		 /* page images copied into guest tmpfs */
	Cocoon__ConsoleSize size;	 /* the checkpoint's, else the spec's (0x0: none) */
	int child_fds[4];		 /* stdin, stdout, stderr, netns */
	long long t0, copy_ms;
	Cocoon__CriuOptions criu;
	pid_t criu_pid;
	struct guard progress;
	long oom_kills0;	 /* the kernel's OOM kill count when the restore began */
	char *stop_reason;	 /* why the agent stopped CRIU */
	struct guard_death lost; /* a restored task that died under CRIU (pid 0: none) */
};

/* Closes what X holds for the child and frees X. */
void restore_ctx_free(struct restore_ctx *x);
/* Answers the request with CODE and MSG, drops the half-made container,
 * unmounts the image shares and removes their staging, and frees X. */
void restore_fail(struct restore_ctx *x, int code, const char *msg);
/* The watch of the restore's CRIU (every CRIU_WATCH_MS). */
void restore_watch(struct agent_job *job);
/* The restore's CRIU job ended: the container runs, or the request fails. */
void restore_done(struct agent_job *job, int status);

/* The restore's work directory, <ckpt_dir>/restore-<id>, always fits. */
_Static_assert(sizeof(((struct restore_ctx *)0)->work) >=
		       COCOON_GUEST_CKPT_DIR_MAX + sizeof("/" COCOON_RESTORE_PREFIX) +
			       COCOON_ID_MAX,
	       "struct restore_ctx: work too short for a checkpoint directory and an ID");
