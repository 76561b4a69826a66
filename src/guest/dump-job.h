/* A running dump (dump-job.c): CRIU, the copier of its images and, on the
 * streaming route, CRIU's page server, as agent jobs; one reply once all of
 * them have ended. checkpoint.c starts it. */
#pragma once

#include "agent.h"
#include "ckpt-check.h"
#include "dump-limit.h"
#include "guard.h"

/* The schema's CheckpointRoute values (proto/cocoon.proto), by short name. */
#define ROUTE_COCOON COCOON__CHECKPOINT_ROUTE__ROUTE_COCOON
#define ROUTE_FLOOR COCOON__CHECKPOINT_ROUTE__ROUTE_FLOOR
#define ROUTE_SEED COCOON__CHECKPOINT_ROUTE__ROUTE_SEED
#define ROUTE_DIRECT9P COCOON__CHECKPOINT_ROUTE__ROUTE_DIRECT9P
#define ROUTE_TMPFS COCOON__CHECKPOINT_ROUTE__ROUTE_TMPFS
#define ROUTE_TMPFS_UNCHECKED COCOON__CHECKPOINT_ROUTE__ROUTE_TMPFS_UNCHECKED
#define ROUTE_STREAM COCOON__CHECKPOINT_ROUTE__ROUTE_STREAM

struct ckpt_ctx {
	struct agent *a;
	uint64_t req_id;
	char cid[COCOON_ID_MAX + 1];
	char ckid[COCOON_ID_MAX + 1];
	char img[256]; /* guest tmpfs */
	/* "checkpoints/<checkpoint id>", relative to the shared dir */
	char shared[sizeof(COCOON_CHECKPOINTS_DIR) + COCOON_ID_MAX + 1];
	bool leave_running;
	bool keep;
	bool froze;		       /* we froze it for an exit-mode checkpoint */
	Cocoon__CheckpointRoute route; /* bench_route of the request */
	char parent[COCOON_ID_MAX + 1];
	long long t0, dump_ms;
	Cocoon__CriuStats stats;
	/* The copy to the shared directory runs beside CRIU (--follow). */
	pid_t copier;  /* > 0 while it runs */
	int follow_wr; /* closed when CRIU has finished: the copier's last pass */
	bool followed; /* the copier was started beside CRIU */
	bool dump_finished;
	long oom_kills0;    /* /proc/vmstat oom_kill when the dump began */
	struct guard guard; /* the container's tasks, protected while CRIU runs */
	bool guarded;
	struct dump_limit limit;    /* CRIU's cgroup and its memory.max */
	long long next_progress_ms; /* when the host hears from the dump next */
	pid_t criu;		    /* the dump's CRIU, while it runs */
	char *stop_reason;	    /* why the agent stopped CRIU */
	long need_kib, avail_kib;   /* the fit check's two figures */
	const char *route_name;
	/* The streaming route: CRIU sends the pages to its page server, and
	 * the copier sends them on as they come, punching them out of tmpfs
	 * (docs/checkpoint.md). */
	bool stream;
	pid_t pserver; /* > 0 while the page server runs */
	bool pserver_failed;
	char pserver_msg[256];
	int shm_watch; /* inotify on an empty /dev/shm left out of the dump */
	char *err;     /* the first failure, answered once both have ended */
	int err_code;
	/* The terminal's keys, "tty[rdev:dev]", external to the dump: its pty
	 * slave, then each /dev/tty the container holds (ckpt-check.h). */
	char tty_args[3][CKPT_TTY_KEY_MAX];
	size_t n_tty;
	char ghost_limit[96]; /* the run's ghost-file limit, for a refusal */
};

/* Frees X and what it holds (not its jobs). */
void ckpt_free(struct ckpt_ctx *x);
/* Puts the container back as it was before a failed checkpoint. */
void ckpt_thaw_on_failure(struct ckpt_ctx *x);
/* Gives the container's tasks their own oom_score_adj back. */
void ckpt_unguard(struct ckpt_ctx *x);
/* The watch of CRIU, the copier and the page server (every CRIU_WATCH_MS). */
void ckpt_watch(struct agent_job *job);
/* Starts the copier to the shared directory: beside CRIU (FOLLOW) or after
 * it. Without FOLLOW, a failure to start fails the checkpoint. */
void ckpt_start_copier(struct ckpt_ctx *x, bool follow);
/* The dump's CRIU job ended. */
void ckpt_dump_done(struct agent_job *job, int status);
/* Starts CRIU's page server on SOCK: its pid, or a negative errno and *ERR. */
int ckpt_start_page_server(struct ckpt_ctx *x, int sock, struct error **err);
