/* Containers inside the guest: namespaces, pivot_root into the shared rootfs,
 * a cgroup for pause/resume, and stdio carried over the channel as pipes. */
#pragma once

#include "contract.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent.h"
#include "error.h"
#include "proto.h"

struct agent_container *container_find(struct agent *a, const char *id);
/* The container ID of A from spec S, without a process yet: its cgroup, its
 * rootfs mounted, its bind mounts noted. NULL, with *ERR saying why, when
 * it exists, the table is full, or a step fails (nothing is left made). */
struct agent_container *container_new(struct agent *a, const char *id,
				      const Cocoon__ContainerSpec *s, struct error **err);
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
 * Returns 0, or a negative errno with *ERR set. */
int container_open_join_namespaces(struct agent *a, const Cocoon__ContainerSpec *s, int fds[3],
				   struct error **err);

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
