/* cocoon-agent: PID 1 in the guest VM.
 *
 * It sets the guest up (mounts, modules, loopback), then serves requests from
 * the host on one virtio-serial port. Like bubblewrap's do_init(), it never
 * blocks and runs no threads: one poll() loop over the channel, a SIGCHLD
 * signalfd and the output pipes of the children it runs.
 *
 * This file is the only one that routes: a request to its handler, a
 * child's exit to its job or its container, the late modules' arrival to
 * the requests held for them. The layers below never call up: channel.c at
 * the bottom, then jobs.c, init.c and modules.c, then the handlers
 * (container*.c, checkpoint.c, restore.c, template.c, info.c).
 *
 * Outside a VM (tests) it runs as an ordinary process: --channel PATH connects
 * to a unix socket instead, and nothing in the system is touched.
 */
#include "container-events.h"
#include "agent.h"
#include "channel.h"
#include "checkpoint.h"
#include "container-ops.h"
#include "info.h"
#include "init.h"
#include "jobs.h"
#include "modules.h"
#include "pod.h"
#include "restore.h"
#include "template.h"
#include "copy-tree.h"
#include "execs.h"
#include "criu-conf.h"
#include "cleanup.h"

#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>

#ifndef COCOON_VERSION
#define COCOON_VERSION "unknown"
#endif

/* ---- routing: requests to their handlers, children to their owners ------ */

static void dispatch(struct agent *a, const Cocoon__Request *req)
{
	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	Cocoon__Pong pong = COCOON__PONG__INIT;
	Cocoon__VersionReply version = COCOON__VERSION_REPLY__INIT;
	Cocoon__ShutdownReply bye = COCOON__SHUTDOWN_REPLY__INIT;

	resp.id = req->id;
	switch (req->body_case) {
	case COCOON__REQUEST__BODY_PING:
		pong.nonce = req->ping->nonce;
		resp.body_case = COCOON__RESPONSE__BODY_PONG;
		resp.pong = &pong;
		break;
	case COCOON__REQUEST__BODY_VERSION:
		version.protocol = PROTOCOL_VERSION;
		version.agent_version = (char *)COCOON_VERSION;
		resp.body_case = COCOON__RESPONSE__BODY_VERSION;
		resp.version = &version;
		break;
	case COCOON__REQUEST__BODY_GUEST_INFO:
		guest_info_handle(a, req->id, req->guest_info);
		return;
	case COCOON__REQUEST__BODY_SHARED_CHECK:
		shared_check_handle(a, req->id, req->shared_check);
		return;
	case COCOON__REQUEST__BODY_SHUTDOWN:
		a->shutdown_requested = true;
		resp.body_case = COCOON__RESPONSE__BODY_SHUTDOWN;
		resp.shutdown = &bye;
		break;
	case COCOON__REQUEST__BODY_CREATE:
		container_handle_create(a, req->id, req->create);
		return;
	case COCOON__REQUEST__BODY_START:
		container_handle_start(a, req->id, req->start);
		return;
	case COCOON__REQUEST__BODY_SIGNAL:
		container_handle_signal(a, req->id, req->signal);
		return;
	case COCOON__REQUEST__BODY_PAUSE:
		container_handle_pause(a, req->id, req->pause);
		return;
	case COCOON__REQUEST__BODY_EXEC:
		container_handle_exec(a, req->id, req->exec);
		return;
	case COCOON__REQUEST__BODY_PS:
		container_handle_ps(a, req->id, req->ps);
		return;
	case COCOON__REQUEST__BODY_UPDATE:
		container_handle_update(a, req->id, req->update);
		return;
	case COCOON__REQUEST__BODY_STATS:
		container_handle_stats(a, req->id, req->stats);
		return;
	case COCOON__REQUEST__BODY_CHECKPOINT:
		checkpoint_handle(a, req->id, req->checkpoint);
		return;
	case COCOON__REQUEST__BODY_RESTORE:
		restore_handle(a, req->id, req->restore);
		return;
	case COCOON__REQUEST__BODY_STDIN:
		container_handle_stdin(a, req->stdin);
		return;
	case COCOON__REQUEST__BODY_RESIZE:
		container_handle_resize(a, req->resize);
		return;
	case COCOON__REQUEST__BODY_OUTPUT_FLOW:
		container_handle_output_flow(a, req->output_flow);
		return;
	case COCOON__REQUEST__BODY_LOOPBACK_HOLD:
		pod_handle_loopback_hold(a, req->id, req->loopback_hold);
		return;
	case COCOON__REQUEST__BODY_TEMPLATE_RESUME:
		template_resume_handle(a, req->id, req->template_resume);
		return;
	default:
		agent_send_error(a, req->id, EOPNOTSUPP, "request type %d is not supported",
				 (int)req->body_case);
		return;
	}
	agent_send_response(a, &resp);
}

/* CRIU and containers need the late modules (netfilter, *_diag, veth). */
static bool needs_late_modules(Cocoon__Request__BodyCase body)
{
	return body == COCOON__REQUEST__BODY_GUEST_INFO || body == COCOON__REQUEST__BODY_CREATE ||
	       body == COCOON__REQUEST__BODY_CHECKPOINT || body == COCOON__REQUEST__BODY_RESTORE;
}

static void handle_frame(struct agent *a, const uint8_t *payload, size_t len);

/* The late modules are in: the requests held for them, in order. */
static void replay_deferred(struct agent *a)
{
	size_t n = a->n_deferred;
	a->n_deferred = 0;
	for (size_t i = 0; i < n; i++) {
		handle_frame(a, a->deferred[i], a->deferred_len[i]);
		free(a->deferred[i]);
	}
}

static void handle_frame(struct agent *a, const uint8_t *payload, size_t len)
{
	Cocoon__Request *req = cocoon__request__unpack(NULL, len, payload);

	if (req && a->late_modules_pending && needs_late_modules(req->body_case)) {
		uint8_t *copy =
			a->n_deferred < ARRAY_SIZE(a->deferred) ? malloc(len ? len : 1) : NULL;
		if (copy) {
			memcpy(copy, payload, len);
			a->deferred[a->n_deferred] = copy;
			a->deferred_len[a->n_deferred++] = len;
		} else {
			agent_send_error(a, req->id, EAGAIN,
					 "the agent is still starting; try again");
		}
		cocoon__request__free_unpacked(req, NULL);
		return;
	}

	if (!req) {
		agent_send_error(a, 0, EBADMSG, "undecodable request of %zu bytes", len);
		return;
	}
	if (req->protocol != PROTOCOL_VERSION)
		agent_send_error(a, req->id, EPROTO, "protocol version %u, agent speaks %u",
				 req->protocol, PROTOCOL_VERSION);
	else
		dispatch(a, req);
	cocoon__request__free_unpacked(req, NULL);
}

/* SIGCHLD: each child that ended goes to its owner, a job or a container. */
static void reap_children(struct agent *a)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		if (!agent_job_exited(a, pid, status))
			/* Neither: an orphan that PID 1 inherited, reaped. */
			(void)container_child_exited(a, pid, status);
}

static void process_input(struct agent *a)
{
	const uint8_t *payload;
	size_t len;
	int r;

	while ((r = frame_reader_next(a->reader, &payload, &len)) != 0) {
		if (r > 0) {
			handle_frame(a, payload, len);
			frame_reader_consume(a->reader);
			continue;
		}
		/* Garbage or an oversized header: say so once, then resync on
		 * the next magic. The channel stays open; the agent stays up. */
		agent_send_error(a, 0, -r,
				 r == -EMSGSIZE ? "frame exceeds %d bytes"
						: "bad frame header (limit %d bytes)",
				 FRAME_MAX_PAYLOAD);
		size_t dropped = frame_reader_resync(a->reader);
		while (frame_reader_next(a->reader, &payload, &len) < 0)
			dropped += frame_reader_resync(a->reader);
		if (a->debug)
			agent_log(a, "dropped %zu bytes of garbage", dropped);
	}
}

/* Returns false when the peer went away. */
static bool channel_read(struct agent *a)
{
	for (;;) {
		ssize_t n = read(a->channel_fd, a->reader->buf + a->reader->len,
				 frame_reader_room(a->reader));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		if (n <= 0)
			return false;
		a->reader->len += (size_t)n;
		process_input(a);
	}
}

static void handle_signals(struct agent *a)
{
	struct signalfd_siginfo si;

	while (read(a->signal_fd, &si, sizeof(si)) == sizeof(si))
		;
	reap_children(a);
}

static int agent_loop(struct agent *a)
{
	for (;;) {
		enum { MAX_CFDS = AGENT_MAX_CONTAINERS * AGENT_MAX_PROCS * 4 + 1 };
		struct pollfd fds[2 + AGENT_MAX_JOBS + MAX_CFDS];
		struct agent_job *polled[AGENT_MAX_JOBS];
		void *ctags[MAX_CFDS];
		nfds_t n = 0, njobs = 0;

		if (a->shutdown_requested && a->outq_len == 0)
			agent_power_off(a);
		/* First: it may finish jobs, which then are not polled. */
		int timeout = agent_jobs_check_deadlines(a);
		fds[n++] = (struct pollfd){.fd = a->signal_fd, .events = POLLIN};
		fds[n++] = (struct pollfd){.fd = a->channel_fd,
					   .events = POLLIN | (a->outq_len ? POLLOUT : 0)};
		for (int i = 0; i < AGENT_MAX_JOBS; i++) {
			if (a->jobs[i] && a->jobs[i]->out_fd >= 0) {
				polled[njobs++] = a->jobs[i];
				fds[n++] =
					(struct pollfd){.fd = a->jobs[i]->out_fd, .events = POLLIN};
			}
		}
		nfds_t cstart = n;
		n += container_poll_fds(a, fds + n, MAX_CFDS, ctags,
					!container_output_backlogged(a));
		if (poll(fds, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			agent_log(a, "poll: %s", strerror(errno));
			return 1;
		}
		if (fds[0].revents)
			handle_signals(a);
		if (fds[1].revents & POLLOUT)
			agent_flush(a);
		if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			bool alive = channel_read(a);
			if (!alive && !a->is_init)
				return 0;
			/* A virtio-serial port reports POLLHUP while no host is
			 * connected; wait for one without spinning. */
			if (!alive || (fds[1].revents & POLLHUP))
				nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);
		}
		for (nfds_t j = 0; j < njobs; j++)
			if (fds[2 + j].revents)
				agent_job_read(a, polled[j]);
		for (nfds_t j = cstart; j < n; j++)
			if (fds[j].revents)
				container_poll_event(a, ctags[j - cstart], fds[j].revents);
	}
}

static void usage(void)
{
	printf("Usage: cocoon-agent [--channel SOCKET | --channel-fd N] [--criu PATH] [--debug]\n"
	       "\n"
	       "The cocoon guest agent. As PID 1 in a cocoon VM it sets up the guest and\n"
	       "serves the host on the virtio-serial port \"%s\". Run by hand, --channel\n"
	       "connects to a unix socket instead, for tests.\n",
	       COCOON_CHANNEL_NAME);
}

/* The value of WORD when it starts with KEY ("cocoon.criu="), else NULL. */
static const char *cmdline_value(const char *word, const char *key)
{
	size_t n = strlen(key);
	return strncmp(word, key, n) == 0 ? word + n : NULL;
}

/* A path setting from the kernel command line into out (size bytes), whole:
 * one too long keeps the default and says so on the console (the host
 * refuses such settings, contract.h), rather than cut it. */
static void cmdline_path(struct agent *a, char *out, size_t size, const char *key,
			 const char *value)
{
	char path[4096];
	if (path_fmt(path, size, "%s", value) < 0) {
		agent_log(a, "%s: %zu bytes, over %zu: ignored, %s kept", key, strlen(value),
			  size - 1, out);
		return;
	}
	memcpy(out, path, strlen(path) + 1);
}

static void parse_criu_from_cmdline(struct agent *a)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/cmdline", "re");
	char line[4096], *save = NULL;
	const char *v;

	if (!f || !fgets(line, sizeof(line), f))
		return;
	for (char *t = strtok_r(line, " \n", &save); t; t = strtok_r(NULL, " \n", &save))
		if ((v = cmdline_value(t, COCOON_CMDLINE_CRIU)) && v[0] == '/')
			cmdline_path(a, a->criu_path, sizeof(a->criu_path), COCOON_CMDLINE_CRIU, v);
		else if ((v = cmdline_value(t, COCOON_CMDLINE_CKPTDIR)) && v[0] == '/' &&
			 !strstr(v, ".."))
			cmdline_path(a, a->ckpt_dir, sizeof(a->ckpt_dir), COCOON_CMDLINE_CKPTDIR,
				     v);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"channel", required_argument, NULL, 'c'},
					     {"channel-fd", required_argument, NULL, 'f'},
					     {"criu", required_argument, NULL, 'C'},
					     {"debug", no_argument, NULL, 'd'},
					     {"help", no_argument, NULL, 'h'},
					     {}};
	struct agent a = {.channel_fd = -1, .signal_fd = -1, .late_modules_done = replay_deferred};
	_cleanup_error_ struct error *err = NULL;
	const char *channel = NULL;
	int channel_fd = -1, c;

	/* CRIU's action script at restore (criu-conf.c). */
	const char *base = argc > 0 ? strrchr(argv[0], '/') : NULL;
	if (argc > 0 && strcmp(base ? base + 1 : argv[0], CRIU_ACTION_NAME) == 0)
		return criu_action_main();
	/* The copy helper mode: `cocoon-agent --copy-tree SRC DST [--follow | --follow-punch PID]`;
	 * with --follow, fd 3 ends when the writer of SRC has finished.
	 * --copy-tree-like-cp SRC DST: make bench's seed baseline. */
	if (argc == 4 && strcmp(argv[1], "--copy-tree") == 0)
		return copy_tree_main(argv[2], argv[3], -1, 0, false);
	if (argc == 4 && strcmp(argv[1], "--copy-tree-like-cp") == 0)
		return copy_tree_main(argv[2], argv[3], -1, 0, true);
	/* --follow-punch PID: the streaming route, PID the page server. */
	bool punch = argc == 6 && strcmp(argv[1], "--copy-tree") == 0 &&
		     strcmp(argv[4], "--follow-punch") == 0;
	if (punch || (argc == 5 && strcmp(argv[1], "--copy-tree") == 0 &&
		      strcmp(argv[4], "--follow") == 0)) {
		/* Checked before anything else can take the number. */
		if (fcntl(3, F_GETFD) < 0) {
			fprintf(stderr, "--copy-tree %s: fd 3 is not open\n", argv[4]);
			return 1;
		}
		return copy_tree_main(argv[2], argv[3], 3, punch ? (pid_t)atoi(argv[5]) : 0, false);
	}
	if (argc == 3 && strcmp(argv[1], "--load-late-modules") == 0)
		return load_late_modules_main(argv[2]);
	a.is_init = getpid() == 1;
	ssize_t sl = readlink("/proc/self/exe", a.self_path, sizeof(a.self_path) - 1);
	if (sl > 0)
		a.self_path[sl] = 0;
	snprintf(a.criu_path, sizeof(a.criu_path), "%s", COCOON_GUEST_CRIU);
	snprintf(a.ckpt_dir, sizeof(a.ckpt_dir), "%s", COCOON_GUEST_CKPT_DIR);
	while (!a.is_init && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			channel = optarg;
			break;
		case 'f':
			channel_fd = atoi(optarg);
			break;
		case 'C':
			if (path_fmt(a.criu_path, sizeof(a.criu_path), "%s", optarg) < 0) {
				fprintf(stderr, "cocoon-agent: --criu: over %d bytes\n",
					COCOON_GUEST_CRIU_MAX);
				return 2;
			}
			break;
		case 'd':
			a.debug = true;
			break;
		case 'h':
			usage();
			return 0;
		default:
			return 2;
		}
	}
	if (!a.is_init && !channel && channel_fd < 0) {
		fprintf(stderr,
			"cocoon-agent: not PID 1; use --channel SOCKET or --channel-fd N to run outside a VM\n");
		return 2;
	}

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	(void)sigprocmask(SIG_BLOCK, &mask, NULL); /* cannot fail: a valid set */
	signal(SIGPIPE, SIG_IGN);
	a.signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

	if (a.is_init) {
		agent_init_system(&a);
		parse_criu_from_cmdline(&a);
		/* /proc was not mounted when we first looked. */
		sl = readlink("/proc/self/exe", a.self_path, sizeof(a.self_path) - 1);
		if (sl > 0)
			a.self_path[sl] = 0;
	}
	a.reader = calloc(1, sizeof(*a.reader));
	/* Exit events for exec'd processes (execs.h), subscribed while the
	 * agent is still in the guest's first network namespace. */
	if (execs_events_subscribe() < 0)
		agent_log(&a, "the kernel's process events: %s", strerror(errno));
	if (channel_fd >= 0) {
		a.channel_fd = channel_fd;
		(void)fcntl(channel_fd, F_SETFD, FD_CLOEXEC); /* cannot fail on an open fd */
		(void)fcntl(channel_fd, F_SETFL, O_NONBLOCK); /* cannot fail on an open fd */
	} else {
		a.channel_fd = agent_open_channel(channel, &err);
	}
	if (a.channel_fd < 0 || !a.reader || a.signal_fd < 0) {
		agent_log(&a, "%s", err ? err->msg : "out of memory");
		if (a.is_init)
			agent_power_off(&a);
		return 1;
	}
	if (a.is_init && a.template_mode) {
		agent_template_prepare(&a);
		agent_log(&a, "template ready on %s", COCOON_CHANNEL_NAME);
	} else if (a.is_init) {
		agent_load_late_modules(&a);
		agent_log(&a, "ready on %s", COCOON_CHANNEL_NAME);
	}
	return agent_loop(&a);
}
