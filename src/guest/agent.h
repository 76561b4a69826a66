/* cocoon-agent: PID 1 in the guest. Single-threaded, poll()-driven.
 * The agent's state and its jobs' types; each .c declares its functions in
 * its own header (channel.h, jobs.h, init.h, ...). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "fdio.h"
#include "frame.h"
#include "cgroups.h"
#include "proto.h"
#include "contract.h"

#define AGENT_SHARED_DIR COCOON_GUEST_RUN_DIR "/shared"
#define AGENT_MODULES_LIST "/lib/cocoon/modules.list"
#define AGENT_TOOLS_DIR "/tools"
/* A peer that stops reading cannot make us queue more than this. */
#define AGENT_OUTQ_MAX (8 * 1024 * 1024)
#define AGENT_MAX_JOBS 64
/* Moved above fd 100 first, then down to 3, 4, ... */
#define AGENT_JOB_MAX_PASS_FDS 64

/* ---- Containers (container.c and the files beside it act on them) ---- */
#define AGENT_MAX_CONTAINERS 16
#define AGENT_MAX_PROCS 16 /* the init plus execs, per container */
#define AGENT_CONTAINER_DIR COCOON_GUEST_RUN_DIR "/c"

enum proc_phase {
	PROC_SETUP,    /* child is building the container; awaiting "ready" */
	PROC_CREATED,  /* waiting for start */
	PROC_STARTING, /* start sent; awaiting exec result */
	PROC_RUNNING,
	PROC_EXITED,
};

struct agent_proc {
	bool used;
	char exec_id[COCOON_ID_MAX + 1]; /* "" for the container's init */
	pid_t pid;
	enum proc_phase phase;
	/* Start or exec was sent. An EOF on sync_fd then means the exec
	 * happened, even when the process already exited and was reaped
	 * (phase PROC_EXITED) before the agent read that EOF. */
	bool exec_awaited;
	int sync_fd;  /* child -> agent: "\0" ready, error text, EOF = exec'd */
	int start_fd; /* agent -> child: one byte = start */
	int stdin_fd;
	int out_fd[2]; /* stdout, stderr (or the pty master in out_fd[0]) */
	/* The host asked to hold that stream (OutputFlowRequest): its fd is
	 * not polled, so the process's writes block once the pipe is full,
	 * until the host lets go or the process ends. */
	bool out_held[2];
	bool terminal;
	int wait_status;
	/* An exec: a child of the container's init, not of the agent
	 * (execs.h). Its sync fd is a socket on which it sends its pidfd
	 * first; the pidfd says when it ended, the kernel's exit event (or
	 * its zombie) how. */
	bool sync_socket;
	int pidfd; /* -1 until received */
	bool end_known;
	int end_status;
	uint64_t pending_id; /* request waiting on this process, 0 if none */
	char sync_msg[512];
	size_t sync_len;
};

struct agent_container {
	bool used;
	char id[COCOON_ID_MAX + 1];
	/* CGROUPS_ROOT/<id>, or beneath its pod's cgroup: pod-<sandbox>/<id>
	 * (cgroups_container_make). */
	char cgroup[CGROUPS_PATH_MAX];
	/* The pod's cgroup it is in, "" for none: the sandbox's, whose create
	 * made it, and each member's, which joined it. The last of them to go
	 * removes it. */
	char pod_cgroup[CGROUPS_POD_PATH_MAX];
	char rootfs[128];
	bool paused;
	bool checkpointing;
	/* Bind mounts of host paths, from the volumes share: CRIU sees them as
	 * external mounts, keyed by destination (as runc does). */
	char *bind_dests[COCOON_MAX_BINDS];
	char *bind_sources[COCOON_MAX_BINDS];
	size_t n_binds;
	/* linux.resources, for the cgroup: at create, and once a restore has
	 * put the tasks back (CRIU itself runs in the cgroup meanwhile). */
	Cocoon__Resources limits;
	bool has_limits;
	/* The spec mounts a tmpfs on /dev: CRIU treats it as external, and a
	 * restore gets a fresh one (docs/checkpoint.md). */
	bool dev_tmpfs;
	/* The spec mounts a tmpfs on /dev/shm: left out of a dump while it is
	 * empty (see shm_watch in checkpoint.c). */
	bool shm_tmpfs;
	/* The spec asks for a network namespace: loopback only, made afresh
	 * at restore. CRIU runs inside it (see checkpoint_handle in checkpoint.c). */
	bool own_netns;
	/* A copy of the spec it was made from: exec applies its seccomp
	 * filter, checkpoints read its masked paths. */
	Cocoon__ContainerSpec *spec;
	struct agent_proc procs[AGENT_MAX_PROCS]; /* [0] is the init */
};

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
	long long drain_until_ms; /* once exited: its output is read until then */
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
	/* and then makes a cgroup namespace rooted there, which the tasks it
	 * forks inherit: CRIU 3.17 run with --manage-cgroups=ignore restores
	 * no cgroup namespace, so a container that had its own gets it so. */
	bool cgroupns;
	const char *netns; /* and enters this network namespace (a path) */
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
	 * tasks a restore forks get it from their CRIU (restore.c). */
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
	/* The container's rootfs share is virtiofs (cocoon.rootfs=virtiofs, or
	 * vmsnap), else 9p. */
	bool rootfs_virtiofs;
	/* Booted to become a VM template (cocoon.template=1): no share is
	 * mounted until TemplateResume (template.c). */
	bool template_mode;
	char criu_path[COCOON_GUEST_CRIU_MAX + 1];
	char self_path[256]; /* this binary, for its --copy-tree mode */
	/* Where CRIU dumps in the guest (runtime.guest_checkpoint_dir): must
	 * be memory-backed for the frozen time to be a dump into memory. */
	char ckpt_dir[COCOON_GUEST_CKPT_DIR_MAX + 1];
	bool late_modules_pending;
	/* Called once they are in (main.c replays the requests held meanwhile). */
	void (*late_modules_done)(struct agent *a);
	/* Requests held until the late modules are in (bounded). */
	uint8_t *deferred[8];
	size_t deferred_len[8];
	size_t n_deferred;
	struct agent_container containers[AGENT_MAX_CONTAINERS];
};
