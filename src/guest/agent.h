/* cocoon-agent: PID 1 in the guest. Single-threaded, poll()-driven. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "fdio.h"
#include "frame.h"
#include "proto.h"
#include "container.h"
#include "contract.h"

#define AGENT_SHARED_DIR "/run/cocoon/shared"
#define AGENT_MODULES_LIST "/lib/cocoon/modules.list"
#define AGENT_TOOLS_DIR "/tools"
#define AGENT_DEFAULT_CRIU "/usr/sbin/criu"
/* A peer that stops reading cannot make us queue more than this. */
#define AGENT_OUTQ_MAX (8 * 1024 * 1024)
#define AGENT_MAX_JOBS 64
/* Moved above fd 100 first, then down to 3, 4, ... */
#define AGENT_JOB_MAX_PASS_FDS 64

struct agent_job;
typedef void (*agent_job_done_fn)(struct agent_job *job, int status);
/* Called every watch_ms while the job runs; it may kill the job. */
typedef void (*agent_job_watch_fn)(struct agent_job *job);

/* A child process whose merged stdout/stderr is collected, bounded. */
struct agent_job {
	pid_t pid;
	int out_fd; /* read end, -1 once at EOF */
	bool exited;
	int status;
	char *out;
	size_t out_len;
	agent_job_done_fn done;
	void *userdata;
	long long deadline_ms; /* 0: none; past it the job is killed */
	bool timed_out;
	agent_job_watch_fn watch;
	int watch_ms;
	long long next_watch_ms;
};

/* How to start a job beyond its argv. */
struct agent_job_options {
	const int
		*pass_fds; /* become fds 3, 4, ... in the child (at most AGENT_JOB_MAX_PASS_FDS) */
	size_t n_pass_fds;
	const char *cgroup; /* the child joins this cgroup before exec */
	const char *netns;  /* and enters this network namespace (a path) */
	/* and these namespaces (open fds, kept by the caller): a pod member's
	 * CRIU runs in the pod's network, IPC and UTS namespaces */
	const int *ns_fds;
	size_t n_ns_fds;
	int timeout_ms; /* 0: none */
	/* The guest's OOM killer takes this job before anything else
	 * (oom_score_adj 1000): CRIU and the copier, never the container. */
	bool oom_victim;
	/* The child sets no_new_privs before exec, and every process it
	 * forks inherits it: CRIU 3.17 does not restore the flag, so the
	 * tasks a restore forks get it from their CRIU (checkpoint.c). */
	bool no_new_privs;
	agent_job_watch_fn watch; /* with watch_ms > 0 */
	int watch_ms;
};

struct agent {
	bool is_init;
	bool debug;
	int channel_fd;
	int signal_fd;
	struct frame_reader *reader;
	uint8_t *outq;
	size_t outq_len;
	struct agent_job *jobs[AGENT_MAX_JOBS];
	bool shutdown_requested;
	/* Boot facts reported by GuestInfo. */
	char **module_failures;
	size_t n_module_failures;
	bool shared_mounted;
	bool volumes_mounted; /* the volumes share, mounted by the first container that has binds */
	bool virtiofs;	      /* shares are virtiofs (cocoon.fs=virtiofs), else 9p */
	/* Booted for whole-VM checkpoints (cocoon.vmsnap=1): the rootfs and
	 * tools are virtiofs too, nothing is 9p. */
	bool vmsnap;
	/* Booted to become a VM template (cocoon.template=1): no share is
	 * mounted until TemplateResume (template.c). */
	bool template_mode;
	char criu_path[256];
	char self_path[256]; /* this binary, for its --copy-tree mode */
	/* Where CRIU dumps in the guest (runtime.guest_checkpoint_dir): must
	 * be memory-backed for the frozen time to be a dump into memory. */
	char ckpt_dir[128];
	bool late_modules_pending;
	/* Requests held until the late modules are in (bounded). */
	uint8_t *deferred[8];
	size_t deferred_len[8];
	size_t n_deferred;
	struct agent_container containers[AGENT_MAX_CONTAINERS];
};

/* init.c */
void agent_init_system(struct agent *a);
void agent_power_off(struct agent *a);
int agent_loopback_up(void);
int agent_open_channel(const char *path_override, struct error **err);
void agent_log(struct agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* modules.c */
void agent_load_modules(struct agent *a, const char *list_path);
void agent_load_late_modules(struct agent *a);
int load_late_modules_main(const char *list_path);
/* Loads the late modules in this process, before answering. */
void agent_load_late_modules_now(struct agent *a);

/* template.c */
void agent_template_prepare(struct agent *a);
void template_resume_handle(struct agent *a, uint64_t id, const Cocoon__TemplateResumeRequest *req);

/* rpc.c: requests that need the late modules wait for them. */
void agent_replay_deferred(struct agent *a);

/* jobs.c */
int agent_job_start(struct agent *a, char *const argv[], agent_job_done_fn done, void *userdata,
		    struct error **err);
/* Both return the child's pid, or a negative errno. */
int agent_job_start_ex(struct agent *a, char *const argv[], const struct agent_job_options *o,
		       agent_job_done_fn done, void *userdata, struct error **err);
/* Kills jobs past their deadline and runs the watches that are due;
 * returns ms until the next deadline or watch, or -1. */
int agent_jobs_check_deadlines(struct agent *a);
/* Monotonic milliseconds (fdio.h). */
static inline long long agent_now_ms(void)
{
	return now_ms();
}
/* Mounts the host's virtio-9p share TAG on DIR with the given cache mode. */
int agent_mount_9p(const char *tag, const char *dir, unsigned long flags, const char *cache);
/* Mounts the host's share TAG on DIR: 9p, or virtiofs when the host said so. */
int agent_mount_share(const struct agent *a, const char *tag, const char *dir, unsigned long flags);

/* checkpoint.c */
void checkpoint_handle(struct agent *a, uint64_t id, const Cocoon__CheckpointRequest *req);
void restore_handle(struct agent *a, uint64_t id, const Cocoon__RestoreRequest *req);
/* --copy-tree SRC DST: copies a directory of regular files with large
 * writes (the agent binary runs itself for this, as a job). With done_fd
 * >= 0 it copies the page images while they grow, until done_fd ends; with
 * writer > 0 as well (the streaming route) it punches what it copied out of
 * SRC and stops the writer while too much waits. */
int copy_tree_main(const char *src, const char *dst, int done_fd, pid_t writer, bool like_cp);
void agent_jobs_reap(struct agent *a);
void agent_job_read(struct agent *a, struct agent_job *job);

/* main.c: writes what is queued for the host now, as far as the channel
 * takes it without blocking (the main loop writes the rest). */
void agent_flush(struct agent *a);

/* pod.c: LoopbackHoldRequest, the pod's loopback during restore --pod. */
void pod_handle_loopback_hold(struct agent *a, uint64_t id, const Cocoon__LoopbackHoldRequest *req);

/* rpc.c */
void agent_handle_frame(struct agent *a, const uint8_t *payload, size_t len);
void agent_send_response(struct agent *a, Cocoon__Response *resp);
void agent_send_error(struct agent *a, uint64_t id, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
