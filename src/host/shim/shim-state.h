/* The shim's state (struct shim) and the helpers every shim*.c uses. Only
 * the shim's own files include this. */
#pragma once

#include "agent-client.h"
#include "cgroup-mirror.h"
#include "cgroup-overhead.h"
#include "console.h"
#include "guard.h"
#include "network.h"
#include "sandbox.h"
#include "shim.h"
#include "shim-output.h"
#include "state.h"

struct shim_client {
	int fd;
	struct frame_reader *reader;
	int fds[3];
	size_t nfds;
	char member[65]; /* a pod member's shim: the id of its container */
	int member_mib;	 /* that container's memory limit, MiB (0: none) */
};

/* A request sent to the agent without waiting for its reply
 * (shim-forward.c): a pod member's, which the keeper sends on, or one of
 * the container's own. A guest that swallowed one (a member's stats ask,
 * the sandbox's pause) held the shim in a wait, and with it every
 * container of the pod. The shim serves everything meanwhile, and hands
 * the reply on when it comes, or an error at deadline_ms. */
struct shim_forward {
	bool active;
	bool own; /* for the shim's own container, not a member's */
	Cocoon__Request__BodyCase kind;
	uint64_t agent_id, client_req_id;
	int client_fd; /* -1 once the client went away (or none asked) */
	int timeout_ms;
	long long deadline_ms;
	char member[65]; /* the container it is for */
	int update_mib;	 /* UPDATE of a member's memory limit: the new one, MiB (-1: none) */
	bool gone_kill;	 /* the SIGKILL of a member whose shim went (shim_member_gone) */
	bool sigkill;	 /* an own SIGNAL that is a SIGKILL (shim_kill_unanswered) */
	bool all;	 /* an own SIGNAL of every process (kill --all) */
	bool resume;	 /* an own PAUSE that resumes */
	/* An own EXEC: its stdio from the client (-1: none held) and what it
	 * becomes once started (struct shim_exec). */
	int exec_fds[3];
	char exec_id[65];
	bool exec_terminal, exec_has_size;
	uint32_t exec_rows, exec_cols;
	/* A checkpoint or restore: the agent's word of its progress, and the
	 * checkpoint's ID (its images' directory in the shared one). */
	struct agent_progress progress;
	char ckid[65];
};

/* A checkpoint or restore the VM's owner gave up on (its silence bound or
 * its deadline) whose reply may still come: that reply is undone, not
 * passed on (shim_checkpoint_undo, shim_forward_undo). */
struct shim_abandoned {
	bool pending;
	Cocoon__Request__BodyCase kind;
	uint64_t agent_id;
	char container[65];
	char ckid[65];	    /* a checkpoint's ID */
	long long until_ms; /* forgotten after this: the guest has given up too */
};

struct shim_exec {
	bool used;
	char exec_id[65];
	int in, out, err;
	struct console_watch tty;	     /* fd -1: no terminal */
	int client_fd;			     /* who waits for the exit, -1 if nobody */
	struct shim_sink out_sink, err_sink; /* out and err, for its output */
	/* It ended: its exit goes to the client once its output has gone
	 * to the engine (shim_execs_finish), as the agent sends it after
	 * the last byte. */
	bool ended;
	Cocoon__ExitEvent exit;
};

struct shim {
	struct shim_args *args;
	struct sandbox sb;
	struct container_state st;
	struct sandbox_guard guard;
	int listen_fd;
	int sig_fd;
	int in_fd, out_fd, err_fd;	     /* the container's stdio on the host */
	struct shim_sink out_sink, err_sink; /* out_fd and err_fd, for output */
	bool stdin_open;
	/* Stdin waiting for room in the channel (shim.c stdin_may_read). */
	struct shim_stall stdin_stall;
	struct shim_client clients[SHIM_MAX_CLIENTS];
	struct shim_exec execs[SHIM_MAX_EXECS];
	struct network net; /* the engine's network, when the spec names one */
	bool net_held;	    /* a checkpoint holds the container's traffic */
	/* A checkpoint runs for seconds to minutes: the shim forwards it and
	 * keeps serving (a `kill` in the middle of a dump must get through),
	 * then hands the agent's reply to the client that asked. */
	struct {
		bool active;
		uint64_t agent_id, client_req_id;
		int client_fd; /* -1 once that client went away */
		long long deadline_ms;
		struct agent_progress progress; /* the agent's word of it */
		char ckid[65];
	} ckpt;
	/* Given up on, their replies still due (a guest that went quiet and
	 * may wake): one checkpoint of the container's own, and a checkpoint
	 * and a restore per member at most. */
	struct shim_abandoned abandoned[2 * SHIM_MAX_CLIENTS + 1];
	/* A pod's sandbox: what its containers may take together (memory
	 * limits, MiB; docs/pods.md "Pod sizing"), where that figure comes
	 * from, the sandbox's own limit, and the VM's vCPUs. */
	int pod_room_mib, own_mib, vcpus;
	char pod_room_source[200];
	struct shim_forward fwd[SHIM_MAX_FORWARDS];
	bool agent_gone;      /* the channel closed: no reply will come */
	bool kill_unanswered; /* the agent ignored a SIGKILL: end QEMU, ask nothing */
	/* A whole-VM checkpoint without --leave-running left the VM stopped
	 * until its file is published: then a kill ends it, a thaw lets it
	 * run on (the checkpoint command's container_thaw_or_kill). */
	bool vm_stopped;
	bool exited;
	int exit_code;
	struct cgmirror mirror; /* the engines' stats (cgroup-mirror.h) */
	/* The VM's owner moved out of the pod's limits (cgroup-overhead.h). */
	struct cgoverhead overhead;
	long long mirror_next_ms;
	/* The figures asked for and not answered yet (0: none), and until
	 * when the answer is waited for: the shim never blocks on them. */
	uint64_t mirror_agent_id;
	long long mirror_until_ms;
	struct console_watch tty; /* the container's terminal (fd -1: none) */
	long long tty_next_ms;
	/* Members whose shim went away and whose container was killed but has
	 * not yet sent its exit: their late events are dropped, never handed
	 * to a new member that took the same id (member_register waits). */
	char departing[SHIM_MAX_CLIENTS][65];
	/* The keeper (shim-keeper.h): this process owns the VM, and the
	 * shim, the engine's pid, waits on waiter_fd for the exit status.
	 * keeping: the container has ended, members of its pod run on. */
	bool keeper, keeping;
	int waiter_fd;
	int host_mnt_fd; /* the mount namespace the keeper started in */
	/* The keeper's state directory, by fd: a delete of the container
	 * while its pod's members run moves it out of the id's way (pod.h
	 * pod_kept_dir), and a new container may take the id's path. */
	int dir_fd;
	bool own_exit_seen; /* the container's exit event came */
};

/* All of BUF to FD, blocking (create's report on its ready pipe, which
 * create reads); a reader that went away loses it. Output goes through
 * shim-output.h, which never blocks. */
void shim_write_all(int fd, const void *buf, size_t len);

/* What the shim exits with for a wait status: the code, or 128+signal. */
int shim_exit_code_of(int wait_status);

/* The exec with this id, or NULL. */
struct shim_exec *shim_find_exec(struct shim *s, const char *exec_id);

/* Closes an exec's stdio and frees its slot. */
void shim_close_exec(struct shim_exec *e);

/* Every exec still served goes, its output with it: its `cocoon exec` is
 * told its exit (the one the agent sent, or killed by SIGKILL: it went
 * with its container), and its stdio is closed. */
void shim_execs_abandon(struct shim *s);

/* One response frame to a control client; errors ignored (it may be gone).
 * A frame is sent whole or the connection is shut down (both ways): a pod
 * member's socket waits at most limits.channel_send_timeout_ms for room
 * (member_register), and a send that timed out part-way left a cut frame
 * that desynchronised the member's stream, while the next frames held the
 * keeper, and so the whole pod, that long each (rev11b F5). The member's
 * shim then reads the end of its connection, never a cut frame, and the
 * keeper takes the member as gone (its container is killed in the VM). */
void shim_send_to_client(int fd, Cocoon__Response *resp);

/* The connected shim of pod member ID, or NULL. */
struct shim_client *shim_find_member(struct shim *s, const char *id);

/* The departing[] slot of a killed member ID whose exit has not come yet,
 * or NULL. */
char *shim_find_departing(struct shim *s, const char *id);

/* Answers request ID on FD with the error E. */
void shim_reply_error(int fd, uint64_t id, const struct error *e);

/* The silence after which the VM's owner gives up on a checkpoint or a
 * restore (limits.checkpoint_silence_ms), or 0 in a pod member's shim:
 * its agent is the pod's keeper, which watches. */
int shim_silence_ms(const struct shim *s);

/* Records request AGENT_ID of KIND for CONTAINER (a checkpoint's CKID, or
 * "") as given up on: its reply, should it come within the guest's own
 * last-resort deadline, goes to shim_abandoned_take(). */
void shim_abandon(struct shim *s, Cocoon__Request__BodyCase kind, uint64_t agent_id,
		  const char *container, const char *ckid);

/* When reply id AGENT_ID is to a request given up on: true, and *OUT is
 * that request (no longer recorded). */
bool shim_abandoned_take(struct shim *s, uint64_t agent_id, struct shim_abandoned *out);

/* The number of members whose shims are connected. */
int shim_members_left(const struct shim *s);

/* Bytes to MiB, rounded up. */
static inline int shim_mib_of(uint64_t bytes)
{
	return (int)((bytes + (1 << 20) - 1) >> 20);
}
