/* Containers inside the guest: namespaces, pivot_root into the shared rootfs,
 * a cgroup for pause/resume, and stdio carried over the channel as pipes. */
#pragma once

#include "contract.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cgroups.h"
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
	 * at restore. CRIU runs inside it (see checkpoint_handle in checkpoint.c). */
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
/* The init CRIU restored, with the agent's ends of its new stdio (in and out
 * are the pty master with a terminal, err is then -1); takes the fds. */
void container_proc_set_running(struct agent_container *c, pid_t pid, int in, int out, int err,
				bool terminal);

void container_handle_create(struct agent *a, uint64_t id,
			     const Cocoon__CreateContainerRequest *req);
void container_handle_start(struct agent *a, uint64_t id, const Cocoon__StartContainerRequest *req);

/* Pods (host/pod.h). The directory PATH (relative, no "..") of the share TAG,
 * which is mounted at /run/cocoon/<tag> first if it is not yet: into OUT.
 * Returns 0 or a negative errno. */
int container_share_dir(const char *tag, const char *path, char *out, size_t size);
/* The namespaces spec joins (s->join_container's network, IPC, UTS), opened:
 * fds[0..2] for net, ipc, uts, -1 where not joined; the caller closes them.
 * Returns 0, or a negative errno with MSG set. */
int container_open_join_namespaces(struct agent *a, const Cocoon__ContainerSpec *s, int fds[3],
				   char *msg, size_t msg_size);

/* For container-ops.c and container-events.c: the process table and its
 * stdio, shared by the init and by execs. */
struct container_stdio {
	int child[3]; /* what the child gets as 0, 1, 2 */
	int agent_in, agent_out, agent_err;
};

struct agent_proc *container_find_proc(struct agent_container *c, const char *exec_id);

void container_close_fd(int *fd);

void container_proc_release(struct agent_proc *p);

/* Takes a forked process into the table: its pipes, and the request its
 * sync pipe will answer. */
void container_proc_register(struct agent_proc *p, pid_t pid, enum proc_phase phase,
			     const struct container_stdio *io, int sync_fd, bool terminal,
			     uint64_t pending_id);

void container_stdio_close_child(struct container_stdio *p);

int container_stdio_open(struct container_stdio *p, const Cocoon__ProcessSpec *proc);

void container_send_ok(struct agent *a, uint64_t id, int body_case, void *body);
