/* The shim's event loop. It multiplexes one agent channel between:
 *   - the container's stdio (the stdio `create` was given, or a pty whose
 *     master went to --console-socket),
 *   - control clients: later `cocoon` invocations (start, kill, exec, ...)
 *     on a 0600 unix socket in the container's 0700 state directory,
 *   - signals sent to the shim, which it forwards to the container.
 */
#include "shim.h"
#include "shim-checkpoint.h"
#include "shim-control.h"
#include "shim-forward.h"
#include "shim-keeper.h"
#include "shim-mirror.h"
#include "shim-pod.h"
#include "shim-setup.h"
#include "shim-state.h"
#include "agent-client.h"
#include "cleanup.h"
#include "log.h"
#include "guard.h"
#include "network.h"
#include "paths.h"
#include "resources.h"
#include "pod.h"
#include "sandbox.h"
#include "state.h"

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>

static void forward_stdin(struct shim *s, int fd, const char *exec_id, bool *open_flag)
{
	char buf[32 * 1024];
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__StdinData data = COCOON__STDIN_DATA__INIT;
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	data.id = (char *)s->args->id;
	data.exec_id = (char *)exec_id;
	if (n <= 0) {
		data.eof = true;
		*open_flag = false;
	} else {
		data.data.data = (uint8_t *)buf;
		data.data.len = (size_t)n;
	}
	req.body_case = COCOON__REQUEST__BODY_STDIN;
	req.stdin = &data;
	/* A channel that failed ends the loop through its own poll event. */
	(void)agent_send_oneway(&s->sb.agent, &req, NULL);
}

/* Stdin is read only while the channel has room (rev hostile5 G5): a guest
 * that stopped reading held the shim in the first send for
 * limits.channel_send_timeout_ms, and every later chunk was read from the
 * engine's pipe and dropped, unsaid. Now the bytes wait in the pipe (the
 * shim holds none; the engine's writer blocks, as on a process that does
 * not read) and the stall is reported once, at that limit. Returns
 * whether stdin may be read now; *timeout is shortened to the report. The
 * room is that of a frame of 32 KiB: a quarter of the socket's buffer is
 * far more. */
static bool stdin_may_read(struct shim *s, int *timeout)
{
	bool room = shim_channel_has_room(s);
	long long limit = s->args->g->cfg.channel_send_timeout_ms;
	if (shim_stall_due(&s->stdin_stall, !room, limit, timeout))
		log_warning(
			"container %s: the agent has not read its channel for %lld ms "
			"(limits.channel_send_timeout_ms = %lld): its stdin waits unread in its "
			"pipe until the guest reads again (no byte of it is dropped)",
			s->args->id, now_ms() - s->stdin_stall.since, limit);
	return room;
}

static void handle_signals(struct shim *s)
{
	struct signalfd_siginfo si;
	while (read(s->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			if (!s->args->pod && vm_check_exited(&s->sb.vm) && !s->exited) {
				log_errorf("container %s: the VM exited unexpectedly", s->args->id);
				s->exited = true;
				s->exit_code = 128 + SIGKILL;
			}
			continue;
		}
		if (s->st.status == STATUS_RUNNING || s->st.status == STATUS_PAUSED)
			shim_forward_signal(s, (int)si.ssi_signo);
	}
}

/* ---- terminal sizes (console.h) --------------------------------------------- */

static void send_resize(struct shim *s, const char *exec_id, Cocoon__ConsoleSize *size)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__ResizeRequest rr = COCOON__RESIZE_REQUEST__INIT;
	rr.id = (char *)s->args->id;
	rr.exec_id = (char *)exec_id;
	rr.size = size;
	req.body_case = COCOON__REQUEST__BODY_RESIZE;
	req.resize = &rr;
	/* One-way; a channel that failed ends the loop by its own event. */
	(void)agent_send_oneway(&s->sb.agent, &req, NULL);
}

static bool has_terminal(const struct shim *s)
{
	bool any = s->tty.fd >= 0;
	for (int i = 0; i < SHIM_MAX_EXECS && !any; i++)
		any = s->execs[i].used && s->execs[i].tty.fd >= 0;
	return any;
}

/* Every CONSOLE_WATCH_INTERVAL_MS while there is a terminal: a size the
 * engine set on a host pty goes to the guest's. */
static void terminals_tick(struct shim *s)
{
	Cocoon__ConsoleSize size = COCOON__CONSOLE_SIZE__INIT;
	s->tty_next_ms = now_ms() + CONSOLE_WATCH_INTERVAL_MS;
	if (s->st.status != STATUS_CREATED && s->st.status != STATUS_RUNNING &&
	    s->st.status != STATUS_PAUSED)
		return;
	if (console_watch_changed(&s->tty, &size))
		send_resize(s, "", &size);
	for (int i = 0; i < SHIM_MAX_EXECS; i++)
		if (s->execs[i].used && console_watch_changed(&s->execs[i].tty, &size))
			send_resize(s, s->execs[i].exec_id, &size);
}

static void signals_mask(sigset_t *mask)
{
	sigemptyset(mask);
	int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaddset(mask, sigs[i]);
}

/* Blocked from the shim's first moment, before the keeper's fork (both
 * inherit the mask): a signal the engine sends meanwhile waits for the
 * signalfd, rather than killing the shim or the keeper by its default
 * action (rev16b L2). */
static void signals_block(void)
{
	sigset_t mask;
	signals_mask(&mask);
	(void)sigprocmask(SIG_BLOCK, &mask, NULL); /* cannot fail: a valid set */
	signal(SIGPIPE, SIG_IGN);
}

static int signals_setup(void)
{
	sigset_t mask;
	signals_mask(&mask);
	return signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* The container ended during a checkpoint (a task killed mid-dump): the
 * agent's answer to the checkpoint follows within moments, and is what the
 * client should see, not a closed connection. Bounded. */
static bool checkpoint_reply_due(struct shim *s)
{
	static long long until;
	if (!s->ckpt.active || s->agent_gone)
		return false;
	if (until == 0)
		until = now_ms() + 5000;
	return now_ms() < until;
}

/* Serving: the container, or once it ended, its pod's members (keeping).
 * An ended container's last output still goes to the engine, while it
 * reads (shim-output.h bounds the wait): the engine sees every byte before
 * the shim's exit, as the agent sends the exit after the last one. */
static bool serving(struct shim *s)
{
	if (s->keeping)
		return !s->agent_gone && shim_members_left(s) > 0;
	return !s->exited || checkpoint_reply_due(s) || shim_output_pending(s);
}

/* The agent's channel closed, failed, or broke: no reply or event will
 * come, the container is gone with its VM. A channel broken by the guest's
 * protocol violation (a reply of the wrong type, a frame cut short) fails
 * every send and read from then on, but only a frame that came later said
 * so: a guest that then went quiet left the shim serving a VM it could no
 * longer talk to, and a kill was answered "delivered" while it ran on
 * (review10 1). It is taken as gone at once, and the VM is stopped. */
static void agent_ended(struct shim *s)
{
	if (s->sb.agent.broken && !s->agent_gone)
		log_warning("container %s: the agent's channel is broken (a reply against the "
			    "protocol, or a request cut short by a guest that stopped reading): "
			    "the container is taken as ended, and its VM is stopped",
			    s->args->id);
	s->agent_gone = true;
	if (!s->exited)
		s->exit_code = 128 + SIGKILL;
	s->exited = true;
}

static void shim_loop(struct shim *s)
{
	while (serving(s)) {
		struct pollfd fds[5 + SHIM_MAX_CLIENTS + 3 * SHIM_MAX_EXECS + 2];
		log_flush_deferred(); /* the guard's lines (log.h) */
		/* Events that came in the same read as a reply are already
		 * here: no new bytes will wake poll for them. */
		if (agent_client_drain(&s->sb.agent, NULL) < 0 || s->sb.agent.broken) {
			agent_ended(s);
			break;
		}
		void *tag[ARRAY_SIZE(fds)];
		nfds_t n = 0;

		/* A channel at its end would wake poll at once, every round,
		 * while the last output drains. */
		fds[n] = (struct pollfd){.fd = s->agent_gone ? -1 : s->sb.agent.fd,
					 .events = POLLIN};
		int agent_slot = (int)n;
		tag[n++] = &s->sb;
		fds[n] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
		tag[n++] = &s->listen_fd;
		fds[n] = (struct pollfd){.fd = s->sig_fd, .events = POLLIN};
		tag[n++] = &s->sig_fd;
		if (s->waiter_fd >= 0) {
			fds[n] = (struct pollfd){.fd = s->waiter_fd, .events = POLLIN};
			tag[n++] = &s->waiter_fd;
		}
		bool want_stdin = s->stdin_open && s->st.status != STATUS_CREATED;
		for (int i = 0; i < SHIM_MAX_EXECS && !want_stdin; i++)
			want_stdin = s->execs[i].used && s->execs[i].in >= 0;
		int timeout = -1;
		bool read_stdin = want_stdin && stdin_may_read(s, &timeout), tell_flow;
		shim_output_poll(s, fds, tag, &n, &timeout, &tell_flow);
		if ((want_stdin && !read_stdin) || tell_flow)
			fds[agent_slot].events |= POLLOUT; /* wake when it has room */
		if (read_stdin && s->stdin_open && s->st.status != STATUS_CREATED) {
			fds[n] = (struct pollfd){.fd = s->in_fd, .events = POLLIN};
			tag[n++] = &s->in_fd;
		}
		for (int i = 0; i < SHIM_MAX_CLIENTS; i++) {
			if (s->clients[i].fd >= 0) {
				fds[n] = (struct pollfd){.fd = s->clients[i].fd, .events = POLLIN};
				tag[n++] = &s->clients[i];
			}
		}
		for (int i = 0; i < SHIM_MAX_EXECS && read_stdin; i++) {
			if (s->execs[i].used && s->execs[i].in >= 0) {
				fds[n] = (struct pollfd){.fd = s->execs[i].in, .events = POLLIN};
				tag[n++] = &s->execs[i];
			}
		}
		int ckpt_left = shim_checkpoint_check_deadline(s),
		    fwd_left = shim_forward_check_deadlines(s);
		if (ckpt_left >= 0 && (timeout < 0 || ckpt_left < timeout))
			timeout = ckpt_left;
		if (fwd_left >= 0 && (timeout < 0 || fwd_left < timeout))
			timeout = fwd_left;
		/* Only waiting for checkpoint_reply_due(); a keeper serving
		 * members waits on them (no wake-ups for a kept pod's life). */
		if (s->exited && !s->keeping && (timeout < 0 || timeout > 200))
			timeout = 200;
		if (has_terminal(s) && !s->exited) {
			long long left = s->tty_next_ms - now_ms();
			if (left <= 0) {
				terminals_tick(s);
				continue;
			}
			if (timeout < 0 || timeout > left)
				timeout = (int)left;
		}
		if (s->mirror.n && !s->exited) {
			long long left = s->mirror_next_ms - now_ms();
			if (left <= 0) {
				shim_mirror_tick(s);
				continue;
			}
			if (timeout < 0 || timeout > left)
				timeout = (int)left;
		}
		if (poll(fds, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (nfds_t i = 0; i < n && (s->keeping || !s->exited || s->ckpt.active ||
					     shim_output_pending(s));
		     i++) {
			if (!fds[i].revents)
				continue;
			if (tag[i] == &s->sb) {
				if (!(fds[i].revents & ~POLLOUT))
					continue; /* room again: stdin is read next round */
				if (agent_client_pump(&s->sb.agent, NULL) < 0 || s->sb.agent.broken)
					agent_ended(s);
			} else if (tag[i] == &s->listen_fd) {
				shim_accept_client(s);
			} else if (tag[i] == &s->sig_fd) {
				handle_signals(s);
			} else if (tag[i] == &s->waiter_fd) {
				shim_keeper_lost_shim(s); /* it only ever writes */
			} else if (tag[i] == &s->in_fd) {
				forward_stdin(s, s->in_fd, "", &s->stdin_open);
			} else if (shim_output_ready(s, tag[i])) {
				shim_execs_finish(s); /* an exec's last bytes may have gone */
			} else if ((char *)tag[i] >= (char *)s->clients &&
				   (char *)tag[i] < (char *)(s->clients + SHIM_MAX_CLIENTS)) {
				shim_client_readable(s, tag[i]);
			} else {
				struct shim_exec *e = tag[i];
				bool open_flag = true;
				forward_stdin(s, e->in, e->exec_id, &open_flag);
				if (!open_flag) {
					close(e->in);
					e->in = -1;
				}
			}
		}
	}
}

/* With a terminal the container's stdio is the pty, not the stdio `create`
 * (or `restore`) was run with: the shim lets go of that once it reports, as
 * runc's own process exits once create is done. An engine that reads
 * create's output until EOF (containerd's runc shim: go-runc's Create with no
 * IO) would otherwise wait until the container ends, and never take the
 * master. Warnings after this go to --log only. */
static void drop_caller_stdio(int slave)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0)
		log_warning("shim: /dev/null: %s; the stdio create was run with stays open",
			    strerror(errno));
	for (int fd = 0; null >= 0 && fd < 3; fd++)
		if (fd != null && fd != slave && dup2(null, fd) < 0)
			log_warning("shim: /dev/null over fd %d: %s; that fd stays open", fd,
				    strerror(errno));
	if (null > 2)
		close(null);
}

static void report(int fd, const char *msg)
{
	if (fd >= 0) {
		shim_write_all(fd, msg, strlen(msg));
		close(fd);
	}
}

/* A member's shim leaves: it closes its half of the connection and waits
 * until the keeper has closed the other, which the keeper does after the
 * VM is down when this was the pod's last container. So a `delete` of the
 * last container returns with the VM gone. Bounded. */
static void member_leave_pod(struct shim *s)
{
	char buf[4096];
	long long until = now_ms() + 15000;
	if (s->sb.agent.fd >= 0 && shutdown(s->sb.agent.fd, SHUT_WR) == 0) {
		/* The connection is a blocking socket: poll bounds the wait,
		 * and the read never blocks (rev16b M2: a keeper that did not
		 * answer held the shim, and its engine's wait, for ever). */
		for (;;) {
			struct pollfd p = {.fd = s->sb.agent.fd, .events = POLLIN};
			long long left = until - now_ms();
			int k = poll(&p, 1, left > 0 ? (int)left : 0);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				break; /* the keeper did not close within the bound */
			ssize_t n = recv(s->sb.agent.fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
				break;
		}
	}
	agent_client_close(&s->sb.agent);
}

/* The VM goes with the keeper that booted it; a pod member leaves the pod. */
static void shim_teardown(struct shim *s)
{
	if (s->args->pod) {
		member_leave_pod(s);
		pod_member_unshare(s->args->pod, s->args->id);
	} else if (s->kill_unanswered) {
		vm_stop(&s->sb.vm, 0); /* a deaf agent: no shutdown to ask for */
	} else {
		sandbox_shutdown(&s->sb);
	}
	guard_stop(&s->guard);
	sandbox_destroy(&s->sb, false);
	network_close(&s->net);
	cgmirror_close(&s->mirror);
	cgoverhead_leave(&s->overhead); /* the VM is down */
}

void shim_main(struct shim_args *a)
{
	struct shim s = {.args = a,
			 .listen_fd = -1,
			 .sb.agent.fd = -1,
			 .tty.fd = -1,
			 .waiter_fd = -1,
			 .host_mnt_fd = -1,
			 .dir_fd = -1};
	_cleanup_error_ struct error *err = NULL;

	(void)setsid(); /* the shim was forked for this: cannot fail */
	for (int i = 0; i < SHIM_MAX_CLIENTS; i++)
		s.clients[i].fd = -1;
	/* Not shim_close_exec(): the slots are zeroed, and fd 0 is the
	 * container's stdin (rev11b: closing it left a container without a
	 * terminal no input). */
	for (int i = 0; i < SHIM_MAX_EXECS; i++) {
		struct shim_exec *e = &s.execs[i];
		e->in = e->out = e->err = e->client_fd = e->tty.fd = -1;
		shim_sink_open(&e->out_sink, -1, "", COCOON__OUTPUT_STREAM__OUTPUT_STDOUT);
		shim_sink_open(&e->err_sink, -1, "", COCOON__OUTPUT_STREAM__OUTPUT_STDERR);
	}
	shim_sink_open(&s.out_sink, -1, "", COCOON__OUTPUT_STREAM__OUTPUT_STDOUT);
	shim_sink_open(&s.err_sink, -1, "", COCOON__OUTPUT_STREAM__OUTPUT_STDERR);
	/* From the first moment the shim, and through its process group QEMU
	 * and virtiofsd (and the keeper), can be found and killed from the
	 * state root. */
	snprintf(s.st.id, sizeof(s.st.id), "%s", a->id);
	snprintf(s.st.bundle, sizeof(s.st.bundle), "%s", a->bundle->bundle);
	snprintf(s.st.rootfs, sizeof(s.st.rootfs), "%s", a->bundle->rootfs);
	state_now_rfc3339(s.st.created);
	s.st.status = STATUS_CREATING;
	s.st.shim_pid = getpid();
	s.st.shim_start = proc_start_time(getpid());
	signals_block();
	/* Before anything is forked: the keeper, QEMU and virtiofsd share it. */
	if (spec_wants_new_netns(a->bundle) && network_unshare(a->id, &err) < 0) {
		report(a->ready_fd, err->msg);
		_exit(1);
	}
	/* Only the keeper comes back; without one the shim is its own. */
	int r = shim_wants_keeper(a) ? shim_keeper_fork(&s) : 0;
	if (r < 0)
		log_warning("container %s: fork of its VM's keeper: %s; the shim keeps the VM",
			    a->id, strerror(-r));
	s.sig_fd = signals_setup();
	if (state_write(a->dir, &s.st, &err) < 0 || shim_setup(&s, &err) < 0) {
		report(a->ready_fd, err->msg);
		shim_teardown(&s);
		if (s.keeper)
			shim_keeper_end(&s);
		_exit(1);
	}
	if (s.tty.fd >= 0)
		drop_caller_stdio(s.tty.fd);
	report(a->ready_fd, "OK");
	shim_loop(&s);
	log_flush_deferred(); /* the guard's last lines: the VM it stopped ended the loop */
	shim_forward_end_own(&s);
	/* Members of its pod still run: the VM stays until they are gone. */
	if (s.keeper && !s.agent_gone && shim_members_left(&s) > 0) {
		shim_keeper_hand_off(&s);
		shim_loop(&s);
	}

	/* The container is gone: take the VM down, then record it, so that
	 * "stopped" never describes a VM that still runs. */
	char path[4200];
	snprintf(path, sizeof(path), "%s/" SHIM_SOCKET, a->dir);
	if (s.dir_fd >= 0)
		(void)unlinkat(s.dir_fd, SHIM_SOCKET, 0); /* the directory may have moved */
	else
		unlink(path);
	shim_teardown(&s);
	log_flush_deferred(); /* what the guard logged before it was stopped */
	if (!s.keeping) {
		s.st.status = STATUS_STOPPED;
		s.st.exit_status = s.exit_code;
		if (state_write(a->dir, &s.st, &err) < 0)
			log_warning("container %s: %s", a->id, err->msg);
	}
	if (s.keeper)
		shim_keeper_end(&s);
	_exit(s.exit_code);
}
