/* A container's processes as poll() sees them: the sync pipe that answers
 * create, start and exec, the output forwarded to the host, and the exit.
 */
#include "channel.h"
#include "container-events.h"
#include "execs.h"
#include "guard.h"
#include "agent.h"
#include "cleanup.h"
#include "cgroups.h"
#include "confine.h"
#include "container.h"
#include "mounts.h"
#include "network.h"

#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* Output read in one go, and the reply queue level above which the agent
 * stops reading container output until the host catches up. */
#define OUTPUT_CHUNK (32 * 1024)
#define OUTQ_HIGH_WATER (1024 * 1024)

static void send_exit_if_done(struct agent *a, struct agent_container *c, struct agent_proc *p)
{
	/* All output first, then the exit: the host must see every byte
	 * before it reports the exit status. */
	if (p->phase != PROC_EXITED || p->out_fd[0] >= 0 || p->out_fd[1] >= 0 || p->sync_fd >= 0)
		return;
	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	Cocoon__ExitEvent ev = COCOON__EXIT_EVENT__INIT;
	ev.id = c->id;
	ev.exec_id = p->exec_id;
	ev.wait_status = p->wait_status;
	if (p == &c->procs[0] && c->cgroup[0])
		ev.memory_oom_kill = cgroups_oom_kills(c->cgroup);
	resp.body_case = COCOON__RESPONSE__BODY_EXIT;
	resp.exit = &ev;
	agent_send_response(a, &resp);
	bool init = p == &c->procs[0];
	container_proc_release(p);
	if (init)
		container_free(c);
	execs_events_idle(a);
}

static void forward_output(struct agent *a, struct agent_container *c, struct agent_proc *p,
			   int which)
{
	char buf[OUTPUT_CHUNK];
	ssize_t n = read(p->out_fd[which], buf, sizeof(buf));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* EOF, or EIO on a pty whose slave side is gone. */
		container_close_fd(&p->out_fd[which]);
		if (p->terminal && which == 0)
			container_close_fd(&p->stdin_fd);
		send_exit_if_done(a, c, p);
		return;
	}
	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	Cocoon__OutputEvent ev = COCOON__OUTPUT_EVENT__INIT;
	ev.id = c->id;
	ev.exec_id = p->exec_id;
	ev.stream = which == 1 ? COCOON__OUTPUT_STREAM__OUTPUT_STDERR
			       : COCOON__OUTPUT_STREAM__OUTPUT_STDOUT;
	ev.data.data = (uint8_t *)buf;
	ev.data.len = (size_t)n;
	resp.body_case = COCOON__RESPONSE__BODY_OUTPUT;
	resp.output = &ev;
	agent_send_response(a, &resp);
}

static void sync_readable(struct agent *a, struct agent_container *c, struct agent_proc *p)
{
	char *at = p->sync_msg + p->sync_len;
	size_t room = sizeof(p->sync_msg) - 1 - p->sync_len;
	ssize_t n = p->sync_socket ? execs_sync_recv(p, at, room) : read(p->sync_fd, at, room);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0)
		p->sync_len += (size_t)n;
	p->sync_msg[p->sync_len] = 0;

	if (p->phase == PROC_SETUP && n > 0 && p->sync_msg[0] == '\0') {
		/* "\0": the container is built and waits for start. */
		Cocoon__CreateContainerReply reply = COCOON__CREATE_CONTAINER_REPLY__INIT;
		reply.pid = (uint32_t)p->pid;
		p->phase = PROC_CREATED;
		p->sync_len = 0;
		container_send_ok(a, p->pending_id, COCOON__RESPONSE__BODY_CREATE, &reply);
		p->pending_id = 0;
		return;
	}
	if (n > 0)
		return; /* more of an error text may follow */

	/* EOF: the exec happened, unless an error text came first. */
	container_close_fd(&p->sync_fd);
	uint64_t pending = p->pending_id;
	p->pending_id = 0;
	if (p->sync_len > 0) {
		agent_send_error(a, pending, EINVAL, "%s%s%s: %s", c->id,
				 *p->exec_id ? " exec " : "", p->exec_id, p->sync_msg);
	} else if (p->exec_awaited) {
		/* A short-lived process may have been reaped already: it still
		 * started, and its exit event follows this reply. */
		p->exec_awaited = false;
		if (p->phase == PROC_STARTING)
			p->phase = PROC_RUNNING;
		if (p == &c->procs[0]) {
			Cocoon__StartContainerReply reply = COCOON__START_CONTAINER_REPLY__INIT;
			container_send_ok(a, pending, COCOON__RESPONSE__BODY_START, &reply);
		} else {
			Cocoon__ExecReply reply = COCOON__EXEC_REPLY__INIT;
			reply.pid = (uint32_t)p->pid;
			container_send_ok(a, pending, COCOON__RESPONSE__BODY_EXEC, &reply);
		}
	} else if (pending) {
		agent_send_error(a, pending, ECHILD, "%s: process exited during setup", c->id);
	}
	if (p->sync_socket && p->pidfd < 0 && p->phase != PROC_EXITED) {
		/* It failed before it could send its pidfd: nothing to follow. */
		p->phase = PROC_EXITED;
		p->wait_status = W_EXITCODE(126, 0);
	}
	send_exit_if_done(a, c, p);
}

/* An exec's pidfd is readable: the process ended (execs.h). */
static void exec_ended(struct agent *a, struct agent_container *c, struct agent_proc *p)
{
	execs_events_drain(a);
	/* The kernel wakes pidfd pollers (exit_notify) before it sends the
	 * exit event (proc_exit_connector, kernel/exit.c), and the container's
	 * init may reap the process in between: wait for the event, at most
	 * 500 ms, unless the zombie is still there to tell the status. */
	for (int i = 0; i < 50 && !p->end_known && guard_zombie_status(p->pid) < 0; i++) {
		struct pollfd pfd = {.fd = execs_events_fd(), .events = POLLIN};
		if (pfd.fd < 0 || poll(&pfd, 1, 10) < 0)
			break;
		execs_events_drain(a);
	}
	p->wait_status = execs_end_status(p);
	p->phase = PROC_EXITED;
	container_close_fd(&p->pidfd);
	send_exit_if_done(a, c, p);
}

size_t container_poll_fds(struct agent *a, struct pollfd *fds, size_t max, void **tags,
			  bool want_output)
{
	size_t n = 0;
	if (execs_events_fd() >= 0 && n < max) {
		tags[n] = NULL; /* the kernel's process events */
		fds[n++] = (struct pollfd){.fd = execs_events_fd(), .events = POLLIN};
	}
	for (int i = 0; i < AGENT_MAX_CONTAINERS; i++) {
		struct agent_container *c = &a->containers[i];
		for (int j = 0; c->used && j < AGENT_MAX_PROCS; j++) {
			struct agent_proc *p = &c->procs[j];
			if (!p->used)
				continue;
			if (p->sync_fd >= 0 && n < max) {
				tags[n] = &p->sync_fd;
				fds[n++] = (struct pollfd){.fd = p->sync_fd, .events = POLLIN};
			}
			if (p->pidfd >= 0 && p->phase != PROC_EXITED && n < max) {
				tags[n] = &p->pidfd;
				fds[n++] = (struct pollfd){.fd = p->pidfd, .events = POLLIN};
			}
			for (int k = 0; k < 2 && want_output; k++) {
				/* An ended process is read to its end, held
				 * or not: what its pipe still holds is
				 * bounded, and its exit follows the last byte. */
				bool held = p->out_held[k] && p->phase != PROC_EXITED;
				if (p->out_fd[k] >= 0 && !held && n < max) {
					tags[n] = &p->out_fd[k];
					fds[n++] = (struct pollfd){.fd = p->out_fd[k],
								   .events = POLLIN};
				}
			}
		}
	}
	return n;
}

void container_poll_event(struct agent *a, void *tag, short revents)
{
	(void)revents;
	if (tag == NULL) {
		execs_events_drain(a);
		return;
	}
	for (int i = 0; i < AGENT_MAX_CONTAINERS; i++) {
		struct agent_container *c = &a->containers[i];
		for (int j = 0; c->used && j < AGENT_MAX_PROCS; j++) {
			struct agent_proc *p = &c->procs[j];
			if (tag == &p->sync_fd)
				sync_readable(a, c, p);
			else if (tag == &p->out_fd[0])
				forward_output(a, c, p, 0);
			else if (tag == &p->out_fd[1])
				forward_output(a, c, p, 1);
			else if (tag == &p->pidfd)
				exec_ended(a, c, p);
			else
				continue;
			return;
		}
	}
}

bool container_child_exited(struct agent *a, pid_t pid, int status)
{
	for (int i = 0; i < AGENT_MAX_CONTAINERS; i++) {
		struct agent_container *c = &a->containers[i];
		for (int j = 0; c->used && j < AGENT_MAX_PROCS; j++) {
			struct agent_proc *p = &c->procs[j];
			if (!p->used || p->pid != pid)
				continue;
			p->phase = PROC_EXITED;
			p->wait_status = status;
			if (j == 0)
				c->paused = false;
			send_exit_if_done(a, c, p);
			return true;
		}
	}
	return false;
}

bool container_output_backlogged(struct agent *a)
{
	return a->outq_len > OUTQ_HIGH_WATER;
}

void container_handle_output_flow(struct agent *a, const Cocoon__OutputFlowRequest *req)
{
	struct agent_container *c = req ? container_find(a, req->id) : NULL;
	struct agent_proc *p = c ? container_find_proc(c, req->exec_id) : NULL;
	if (p)
		p->out_held[req->stream == COCOON__OUTPUT_STREAM__OUTPUT_STDERR] = req->hold;
}
