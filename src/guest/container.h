/* Containers inside the guest: namespaces, pivot_root into the shared rootfs,
 * a cgroup for pause/resume, and stdio carried over the channel as pipes. */
#pragma once

#include "contract.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

#define AGENT_MAX_CONTAINERS 16
#define AGENT_MAX_PROCS 16 /* the init plus execs, per container */
#define AGENT_CONTAINER_DIR "/run/cocoon/c"
#define AGENT_ID_MAX COCOON_ID_MAX
#define AGENT_MAX_BINDS COCOON_MAX_BINDS
#define AGENT_POD_DIR COCOON_GUEST_POD_DIR

struct agent;

enum proc_phase {
	PROC_SETUP,    /* child is building the container; awaiting "ready" */
	PROC_CREATED,  /* waiting for start */
	PROC_STARTING, /* start sent; awaiting exec result */
	PROC_RUNNING,
	PROC_EXITED,
};

struct agent_proc {
	bool used;
	char exec_id[AGENT_ID_MAX + 1]; /* "" for the container's init */
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
	char id[AGENT_ID_MAX + 1];
	char cgroup[128];
	char rootfs[128];
	bool paused;
	bool checkpointing;
	/* Bind mounts of host paths, from the volumes share: CRIU sees them as
	 * external mounts, keyed by destination (as runc does). */
	char *bind_dests[AGENT_MAX_BINDS];
	char *bind_sources[AGENT_MAX_BINDS];
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
	 * at restore. CRIU runs inside it (see ckpt_dump in checkpoint.c). */
	bool own_netns;
	/* A copy of the spec it was made from: exec applies its seccomp
	 * filter, checkpoints read its masked paths. */
	Cocoon__ContainerSpec *spec;
	struct agent_proc procs[AGENT_MAX_PROCS]; /* [0] is the init */
};

struct agent_container *container_find(struct agent *a, const char *id);
struct agent_container *container_new(struct agent *a, const char *id,
				      const Cocoon__ContainerSpec *s, char *msg, size_t msg_size);
void container_free(struct agent_container *c);
int container_freeze(struct agent_container *c, bool freeze);
/* The init CRIU restored, with the agent's ends of its new stdio (in and out
 * are the pty master with a terminal, err is then -1); takes the fds. */
void container_proc_set_running(struct agent_container *c, pid_t pid, int in, int out, int err,
				bool terminal);

void container_handle_create(struct agent *a, uint64_t id,
			     const Cocoon__CreateContainerRequest *req);
void container_handle_start(struct agent *a, uint64_t id, const Cocoon__StartContainerRequest *req);
void container_handle_signal(struct agent *a, uint64_t id, const Cocoon__SignalRequest *req);
void container_handle_pause(struct agent *a, uint64_t id, const Cocoon__PauseRequest *req);
void container_handle_exec(struct agent *a, uint64_t id, const Cocoon__ExecRequest *req);
void container_handle_ps(struct agent *a, uint64_t id, const Cocoon__PsRequest *req);
/* runc update: the limits the request names, in the container's cgroup. */
void container_handle_update(struct agent *a, uint64_t id, const Cocoon__UpdateRequest *req);
/* runc events --stats: the container's cgroup figures (cgroups.h). */
void container_handle_stats(struct agent *a, uint64_t id, const Cocoon__StatsRequest *req);
void container_handle_stdin(struct agent *a, const Cocoon__StdinData *req);
/* ResizeRequest (one-way: no reply). An unknown container or exec, or one
 * without a terminal, is logged and ignored. */
void container_handle_resize(struct agent *a, const Cocoon__ResizeRequest *req);

/* poll() integration: fds to watch, and what to do when they fire. */
struct pollfd;
size_t container_poll_fds(struct agent *a, struct pollfd *fds, size_t max, void **tags,
			  bool want_output);
void container_poll_event(struct agent *a, void *tag, short revents);
/* True while the reply queue is too full to take more output. */
bool container_output_backlogged(struct agent *a);
/* A child exited (from the SIGCHLD reaper). Returns true if it was ours. */
bool container_child_exited(struct agent *a, pid_t pid, int status);

/* Pods (host/pod.h). The directory PATH (relative, no "..") of the share TAG,
 * which is mounted at /run/cocoon/<tag> first if it is not yet: into OUT.
 * Returns 0 or a negative errno. */
int container_share_dir(const char *tag, const char *path, char *out, size_t size);
/* The namespaces spec joins (s->join_container's network, IPC, UTS), opened:
 * fds[0..2] for net, ipc, uts, -1 where not joined; the caller closes them.
 * Returns 0, or a negative errno with MSG set. */
int container_open_join_namespaces(struct agent *a, const Cocoon__ContainerSpec *s, int fds[3],
				   char *msg, size_t msg_size);
