/* Processes started with `exec` belong to the container's process tree,
 * so that a checkpoint takes them with the rest.
 *
 * CRIU dumps the tree under the container's init (`criu dump -t INIT`,
 * children lists in /proc), so an exec'd process must be a descendant of
 * the init. The agent forks a helper in the container's pid namespace,
 * the helper forks the process and exits, and the kernel hands the orphan
 * to the namespace's reaper: the container's init. The agent is no longer
 * its parent, so it learns of its end through a pidfd (which the process
 * sends itself over its sync socket, before anything else) and of its
 * wait status through the kernel's exit events (proc connector), or its
 * zombie when the events were lost.
 *
 * At a checkpoint the agent's ends of each exec's stdio pipes are written
 * beside the images; a restore hands CRIU new ones in their place
 * (--inherit-fd), as it does for the init's. Nobody waits for a restored
 * exec on the host (the `cocoon exec` that started it ended with the old
 * VM): its stdin is at EOF and its output goes to the container's own
 * stdout and stderr. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "container.h"
#include "error.h"

/* Pipes handed over per restore: stdin, stdout and stderr of every exec. */
#define EXECS_PIPES_MAX (3 * (AGENT_MAX_PROCS - 1))
#define EXECS_PIPES_FILE "cocoon-exec-pipes"

/* ---- the process side, between fork and exec ---- */

/* Sends a pidfd of the calling process on SOCK (the exec's sync socket, a
 * SOCK_SEQPACKET pair) as a message "P" with SCM_RIGHTS. Returns 0 or a
 * negative errno. */
int execs_send_self(int sock);

/* ---- the agent side ---- */

/* Subscribes to the kernel's exit events, once (before the first exec is
 * forked, so that no exit can be missed). Returns 0 or a negative errno. */
int execs_events_subscribe(void);
/* The events socket for poll(), or -1. */
int execs_events_fd(void);
/* Reads the queued events and records the wait status of every exit of a
 * tracked exec (a proc with a pidfd) of the agent's containers. */
void execs_events_drain(struct agent *a);
/* Unsubscribes when no exec is tracked any more. */
void execs_events_idle(struct agent *a);

/* A message on P's sync socket: when it is the process's "P" with a pidfd,
 * takes the pidfd and the pid (in the agent's namespace) into P and
 * returns 0. Otherwise copies the message's bytes to BUF (at most SIZE)
 * and returns their number (0 at EOF), or -1 with errno set. */
ssize_t execs_sync_recv(struct agent_proc *p, char *buf, size_t size);
/* The wait status of P, whose pidfd said it ended: the exit event's, else
 * its zombie's; W_EXITCODE(255, 0) when neither is known (events lost and
 * already reaped by the init). Call after execs_events_drain(). */
int execs_end_status(const struct agent_proc *p);

/* ---- checkpoint and restore ---- */

/* At a dump: writes DIR/cocoon-exec-pipes, one line per pipe whose other
 * end the agent holds for an exec of C and that a process of C holds:
 * "in|out|err pipe:[INODE]". Returns 0 or a negative errno. */
int execs_save_pipes(const struct agent_container *c, const char *dir);

struct execs_restore {
	size_t n;
	int fds[EXECS_PIPES_MAX];	/* what CRIU gets, in order, from fd first */
	char args[EXECS_PIPES_MAX][48]; /* "fd[N]:pipe:[INODE]" */
};
/* At a restore: for each line of IMAGES/cocoon-exec-pipes, an fd for CRIU
 * to put in the dumped pipe's place: the read end of a new pipe whose
 * write end is closed (stdin: EOF), or a duplicate of OUT or ERR_FD (the
 * container's new stdout and stderr). They become fds FIRST, FIRST+1, ...
 * in CRIU; R->args are the --inherit-fd values. A file from before has no
 * lines; a malformed line is refused. Returns 0 or a negative errno with
 * *ERR set; on failure the fds made are closed. */
int execs_restore_pipes(const char *images, int out, int err_fd, int first, struct execs_restore *r,
			struct error **err);
void execs_restore_close(struct execs_restore *r);
