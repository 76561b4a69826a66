/* A hostile guest for the host's tests: a fake qemu-system-x86_64 that the
 * real cocoon runs (vm.qemu in a test config). Instead of a VM it plays an
 * agent that a container has taken over: it answers the protocol, and on
 * the request HOSTILE_MODE names it attacks the host through the shared
 * directory, the replies or the console. Test-only; never in the image.
 *
 * Environment:
 *   HOSTILE_MODE     what to do (see checkpoint() and the mode checks)
 *   HOSTILE_CANARY   a directory outside the state root to aim at
 *   HOSTILE_LOG      a file to append what happened to (pids, fds, requests)
 *
 * QEMU's 9p server can do no more to the host's files than this process,
 * which runs where QEMU would (the shim's mount namespace, as the same
 * user): a guest's power over a share is at most what these calls get.
 */
#include "cleanup.h"
#include "frame.h"
#include "hostile.h"
#include "proto.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

const char *mode = "good", *canary, *shared, *console, *volumes, *pod;
static int chan = -1;

bool is(const char *m)
{
	return strcmp(mode, m) == 0;
}

void note(const char *what, const char *arg)
{
	const char *path = getenv("HOSTILE_LOG");
	FILE *f = path ? fopen(path, "a") : NULL;
	if (!f)
		return;
	fprintf(f, "%s%s\n", what, arg);
	fclose(f);
}

static void send_bytes(const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(chan, p, len);
		if (n <= 0)
			exit(1);
		p += n;
		len -= (size_t)n;
	}
}

/* Framed replies, optionally held back so that several go in one write. */
static uint8_t pending[1 << 16];
static size_t npending;

void queue(const Cocoon__Response *r)
{
	uint8_t *buf;
	size_t len;
	if (proto_frame_response(r, &buf, &len, NULL) < 0)
		exit(1);
	if (npending + len > sizeof(pending))
		exit(1);
	memcpy(pending + npending, buf, len);
	npending += len;
	free(buf);
}

void flush(void)
{
	send_bytes(pending, npending);
	npending = 0;
}

static void reply_error(uint64_t id, int code, const char *msg)
{
	Cocoon__Response r = COCOON__RESPONSE__INIT;
	r.id = id;
	r.error = -code;
	r.message = (char *)msg;
	queue(&r);
	flush();
}

static void checkpoint(uint64_t id, const Cocoon__CheckpointRequest *cr)
{
	char named[4200];
	if (is("checkpoint-late") && quiet_hold(id, cr))
		return;
	if (is("checkpoint-progress"))
		slow_dump(cr->id);
	if (!plant(cr->checkpoint_id, named, sizeof(named))) {
		reply_error(id, EIO,
			    is("bad-text")
				    ? "criu dump failed: \x1b]0;pwned\x07\x1b[2J\x7f \xc2\x9b"
				      "31m \"quoted\" a=b\nlevel=info msg=forged"
				    : "criu dump failed: Error (criu/cr-dump.c): boom");
		return;
	}
	Cocoon__Response r = COCOON__RESPONSE__INIT;
	Cocoon__CheckpointReply rep = COCOON__CHECKPOINT_REPLY__INIT;
	r.id = id;
	r.body_case = COCOON__RESPONSE__BODY_CHECKPOINT;
	r.checkpoint = &rep;
	rep.shared_path = named;
	rep.files = 4;
	rep.bytes = 8192;
	rep.left_frozen = is("checkpoint-late") && !cr->leave_running;
	/* "bad-route": terminal controls where the route's name belongs
	 * (printed by checkpoint --print-stats). */
	if (is("bad-route"))
		rep.route = (char *)"tmpfs\x1b]0;pwned\x07\x1b[2J\x7f\xc2\x9b"
				    "31m\x9b";
	queue(&r);
	flush();
}

/* member-create-late: the member create whose reply is held back. */
static uint64_t late_create_id;
static char late_create_of[80];

static void exit_event(const char *id)
{
	Cocoon__Response r = COCOON__RESPONSE__INIT;
	Cocoon__ExitEvent x = COCOON__EXIT_EVENT__INIT;
	r.body_case = COCOON__RESPONSE__BODY_EXIT;
	r.exit = &x;
	x.id = (char *)id;
	x.wait_status = 9;
	queue(&r);
}

static void output_event(const char *text)
{
	Cocoon__Response r = COCOON__RESPONSE__INIT;
	Cocoon__OutputEvent o = COCOON__OUTPUT_EVENT__INIT;
	r.body_case = COCOON__RESPONSE__BODY_OUTPUT;
	r.output = &o;
	o.stream = COCOON__OUTPUT_STREAM__OUTPUT_STDOUT;
	o.data.data = (uint8_t *)text;
	o.data.len = strlen(text);
	queue(&r);
}

static void handle(const Cocoon__Request *req);
static struct frame_reader rd;

/* Reads and handles what the host sent, without waiting when wait is false.
 * Returns false when the channel closed. */
static bool serve(bool wait)
{
	struct pollfd p = {.fd = chan, .events = POLLIN};
	if (!wait && poll(&p, 1, 0) <= 0)
		return true;
	ssize_t n = read(chan, rd.buf + rd.len, frame_reader_room(&rd));
	if (n <= 0)
		return false;
	rd.len += (size_t)n;
	const uint8_t *payload;
	size_t len;
	int r;
	while ((r = frame_reader_next(&rd, &payload, &len)) > 0) {
		Cocoon__Request *req = cocoon__request__unpack(NULL, len, payload);
		frame_reader_consume(&rd);
		if (req)
			handle(req);
		cocoon__request__free_unpacked(req, NULL);
	}
	if (r < 0)
		frame_reader_resync(&rd);
	return true;
}

/* "output-flood" ("stderr-flood": on stderr): once started, the
 * container's output as fast as the host takes it, for 20 s, answering requests in between; the
 * output of exec EXEC_ID ("": the container's init). */
static void output_flood(const char *exec_id)
{
	static bool flooding;
	static char chunk[32 * 1024];
	Cocoon__Response r = COCOON__RESPONSE__INIT;
	Cocoon__OutputEvent o = COCOON__OUTPUT_EVENT__INIT;
	uint8_t *buf;
	size_t len;
	if (flooding)
		return;
	flooding = true;
	memset(chunk, 'F', sizeof(chunk));
	r.body_case = COCOON__RESPONSE__BODY_OUTPUT;
	r.output = &o;
	o.id = (char *)"";
	o.exec_id = (char *)exec_id;
	o.stream = is("stderr-flood") ? COCOON__OUTPUT_STREAM__OUTPUT_STDERR
				      : COCOON__OUTPUT_STREAM__OUTPUT_STDOUT;
	o.data.data = (uint8_t *)chunk;
	o.data.len = sizeof(chunk);
	if (proto_frame_response(&r, &buf, &len, NULL) < 0)
		exit(1);
	note("output flood", "");
	for (time_t end = time(NULL) + 20; time(NULL) < end;) {
		send_bytes(buf, len);
		if (!serve(false))
			exit(0);
	}
	note("output flood done", "");
	free(buf);
	flooding = false;
}

/* The container a request names, or "". */
static const char *request_target(const Cocoon__Request *req)
{
	const char *id = req->body_case == COCOON__REQUEST__BODY_START	  ? req->start->id
			 : req->body_case == COCOON__REQUEST__BODY_SIGNAL ? req->signal->id
			 : req->body_case == COCOON__REQUEST__BODY_PAUSE  ? req->pause->id
			 : req->body_case == COCOON__REQUEST__BODY_PS	  ? req->ps->id
			 : req->body_case == COCOON__REQUEST__BODY_STATS  ? req->stats->id
			 : req->body_case == COCOON__REQUEST__BODY_EXEC	  ? req->exec->id
			 : req->body_case == COCOON__REQUEST__BODY_UPDATE ? req->update->id
									  : "";
	return id ? id : "";
}

static void handle(const Cocoon__Request *req)
{
	static char first_started[128];
	Cocoon__Response r = COCOON__RESPONSE__INIT;
	Cocoon__PauseReply pause = COCOON__PAUSE_REPLY__INIT;
	Cocoon__CreateContainerReply create = COCOON__CREATE_CONTAINER_REPLY__INIT;
	Cocoon__StartContainerReply start = COCOON__START_CONTAINER_REPLY__INIT;
	Cocoon__SignalReply sig = COCOON__SIGNAL_REPLY__INIT;
	Cocoon__ShutdownReply bye = COCOON__SHUTDOWN_REPLY__INIT;
	r.id = req->id;
	note("request ", proto_request_name(req->body_case));
	Cocoon__CheckpointRequest late = COCOON__CHECKPOINT_REQUEST__INIT;
	uint64_t late_id;
	if (quiet_wake(&late_id, &late))
		checkpoint(late_id, &late); /* awake: that answer comes first */
	/* "member-silent" ("sandbox-silent"): every request for container m1
	 * (sb) but its create and start is read and never answered (its stats
	 * asks, a pause, a kill). */
	const char *deaf_to = is("member-silent") ? "m1" : is("sandbox-silent") ? "sb" : NULL;
	if (deaf_to && !strcmp(request_target(req), deaf_to) &&
	    req->body_case != COCOON__REQUEST__BODY_START) {
		note(deaf_to[0] == 'm' ? "swallowed m1 " : "swallowed sb ",
		     req->body_case == COCOON__REQUEST__BODY_STATS
			     ? "stats"
			     : proto_request_name(req->body_case));
		return;
	}
	/* The modes that answer kills (or anything) their own way
	 * (hostile-kill.c). */
	if (kill_modes(req))
		return;
	switch (req->body_case) {
	case COCOON__REQUEST__BODY_PING: {
		Cocoon__Pong pong = COCOON__PONG__INIT;
		pong.nonce = req->ping->nonce;
		r.body_case = COCOON__RESPONSE__BODY_PONG;
		r.pong = &pong;
		queue(&r);
		flush();
		return;
	}
	case COCOON__REQUEST__BODY_CHECKPOINT:
		checkpoint(req->id, req->checkpoint);
		return;
	case COCOON__REQUEST__BODY_RESTORE:
		if (is("restore-hang")) {
			note("restore: hanging", "");
			return; /* never answered */
		}
		if (is("restore-logs")) {
			/* CRIU's restore log a symlink to the canary's secret,
			 * its stats a FIFO: the host copies both to
			 * --work-path. */
			char p[4400], secret[4300];
			const char *id = req->restore->spec ? req->restore->spec->id : "";
			snprintf(secret, sizeof(secret), "%s/secret", canary);
			snprintf(p, sizeof(p), "%s/restore-%s.restore.log", shared, id);
			symlink(secret, p);
			snprintf(p, sizeof(p), "%s/restore-%s.stats-restore", shared, id);
			mkfifo(p, 0644);
			note("restore: logs planted for ", id);
		}
		if (is("restore-ok")) {
			/* Restored, as far as the host can tell: the limits
			 * it sends the container are noted. */
			const Cocoon__Resources *lr =
				req->restore->spec ? req->restore->spec->resources : NULL;
			char v[96];
			snprintf(v, sizeof(v), "%llu %lld",
				 lr ? (unsigned long long)lr->memory_limit : 0ULL,
				 lr ? (long long)lr->pids_limit : 0LL);
			note("restore limits ", v);
			/* What a member's first image share is: its inode, in
			 * the pod share (the test knows which is whose). */
			struct stat img_st;
			char ip[4400];
			if (pod && req->restore->n_images && *req->restore->images[0]->path) {
				snprintf(ip, sizeof(ip), "%s/%s", pod,
					 req->restore->images[0]->path);
				snprintf(v, sizeof(v), "%llu",
					 stat(ip, &img_st) == 0 ? (unsigned long long)img_st.st_ino
								: 0ULL);
				note("restore images inode ", v);
			}
			static Cocoon__RestoreReply rr = COCOON__RESTORE_REPLY__INIT;
			rr.pid = 1;
			r.body_case = COCOON__RESPONSE__BODY_RESTORE;
			r.restore = &rr;
			break;
		}
		reply_error(req->id, EIO, "restore not supported by the hostile guest");
		return;
	case COCOON__REQUEST__BODY_UPDATE: {
		static Cocoon__UpdateReply ur = COCOON__UPDATE_REPLY__INIT;
		r.body_case = COCOON__RESPONSE__BODY_UPDATE;
		r.update = &ur;
		break;
	}
	case COCOON__REQUEST__BODY_PAUSE:
		note("pause resume=", req->pause->resume ? "1" : "0");
		r.body_case = COCOON__RESPONSE__BODY_PAUSE;
		r.pause = &pause;
		break;
	case COCOON__REQUEST__BODY_CREATE:
		if (is("pod") && req->create->spec && !strcmp(req->create->spec->rootfs_tag, "pod"))
			attack_pod(req->create->spec->rootfs_path);
		/* "member-create-late": a member's create completes only after
		 * the next request, as a create still setting up in the guest
		 * would (a kill of it meanwhile finds no container). */
		if (is("member-create-late") && req->create->spec &&
		    !strcmp(req->create->spec->rootfs_tag, "pod")) {
			late_create_id = req->id;
			snprintf(late_create_of, sizeof(late_create_of), "%s",
				 req->create->spec->id);
			note("create deferred ", late_create_of);
			return;
		}
		r.body_case = COCOON__RESPONSE__BODY_CREATE;
		r.create = &create;
		break;
	case COCOON__REQUEST__BODY_START:
		r.body_case = COCOON__RESPONSE__BODY_START;
		r.start = &start;
		queue(&r);
		/* The container's first line, in the same write as the reply. */
		if (is("event-same-read"))
			output_event("first line from the container\n");
		flush();
		/* Once started (the host's guard may stop the VM at once). */
		if (is("fill-shared") || is("fill-shared-deep") || is("fill-shared-inodes") ||
		    is("fill-shared-xattr") || is("fill-shared-unlinked"))
			fill_shared();
		/* "deaf": once started, the agent reads its channel no more
		 * (QEMU then stops draining the host's socket); the channel
		 * stays open. */
		if (is("member-flood") && first_started[0] &&
		    strcmp(first_started, req->start->id) != 0)
			member_flood(req->start->id);
		if (!first_started[0])
			snprintf(first_started, sizeof(first_started), "%s", req->start->id);
		if (is("output-flood") || is("stderr-flood"))
			output_flood("");
		if (is("deaf")) {
			note("deaf", "");
			for (;;)
				sleep(3600);
		}
		return;
	case COCOON__REQUEST__BODY_SIGNAL:
		note("signal ", req->signal->id);
		if (late_create_id && !strcmp(req->signal->id, late_create_of)) {
			reply_error(req->id, ESRCH, "no such container");
			r.body_case = COCOON__RESPONSE__BODY_CREATE;
			r.create = &create;
			r.id = late_create_id;
			late_create_id = 0;
			queue(&r);
			flush();
			note("create done ", late_create_of);
			return;
		}
		/* "output-flood": as the agent does, a container whose exit
		 * was sent is freed: a later kill finds no such container. */
		static bool flood_ended;
		if (is("output-flood") && flood_ended) {
			reply_error(req->id, ENOENT, "kill: no such container");
			return;
		}
		r.body_case = COCOON__RESPONSE__BODY_SIGNAL;
		r.signal = &sig;
		queue(&r);
		if (req->signal->signal == SIGKILL) {
			exit_event(req->signal->id);
			flood_ended = true;
		}
		flush();
		return;
	case COCOON__REQUEST__BODY_SHUTDOWN:
		r.body_case = COCOON__RESPONSE__BODY_SHUTDOWN;
		r.shutdown = &bye;
		queue(&r);
		flush();
		exit(0);
	case COCOON__REQUEST__BODY_STDIN:
		return;
	case COCOON__REQUEST__BODY_OUTPUT_FLOW: /* noted, and ignored: it floods on */
		note("output_flow hold=", req->output_flow->hold ? "1" : "0");
		return;
	case COCOON__REQUEST__BODY_EXEC:
		/* "flood-kill-deaf": started, never ended, its output floods. */
		exec_started(req, !is("flood-kill-deaf"));
		if (is("flood-kill-deaf")) {
			char exec_id[128];
			snprintf(exec_id, sizeof(exec_id), "%s", req->exec->exec_id);
			output_flood(exec_id);
		}
		return;
	case COCOON__REQUEST__BODY_LOOPBACK_HOLD: {
		static Cocoon__LoopbackHoldReply lh = COCOON__LOOPBACK_HOLD_REPLY__INIT;
		r.body_case = COCOON__RESPONSE__BODY_LOOPBACK_HOLD;
		r.loopback_hold = &lh;
		break;
	}
	case COCOON__REQUEST__BODY_STATS:
		/* "stats-silent": read, never answered. */
		if (is("stats-silent")) {
			note("stats unanswered", "");
			return;
		}
		reply_error(req->id, EOPNOTSUPP, "not supported by the hostile guest");
		return;
	case COCOON__REQUEST__BODY_VERSION: {
		/* "check-text": terminal controls in every string of `cocoon
		 * check`'s report: ESC [2J (clear), C1 CSI, BEL. */
		Cocoon__VersionReply v = COCOON__VERSION_REPLY__INIT;
		v.protocol = PROTOCOL_VERSION;
		v.agent_version = is("check-text") ? (char *)"0.1\x1b[2J\xc2\x9b"
							     "31m\x07"
						   : (char *)"hostile";
		r.body_case = COCOON__RESPONSE__BODY_VERSION;
		r.version = &v;
		queue(&r);
		flush();
		return;
	}
	case COCOON__REQUEST__BODY_GUEST_INFO: {
		static char *lines[] = {(char *)"Warn \x1b]0;owned\x07 title"};
		static char *mods[] = {(char *)"mod: \x1b[31mred"};
		Cocoon__GuestInfoReply gi = COCOON__GUEST_INFO_REPLY__INIT;
		bool bad = is("check-text");
		gi.kernel_release = bad ? (char *)"6.1\x1b[2J" : (char *)"6.1";
		gi.criu_version = bad ? (char *)"3.17\xc2\x9b"
						"2J"
				      : (char *)"3.17";
		gi.criu_path = bad ? (char *)"/criu\r\x1b[K" : (char *)"/criu";
		gi.criu_check_ran = true;
		gi.criu_check_ok = true;
		gi.n_criu_check_lines = bad ? 1 : 0;
		gi.criu_check_lines = lines;
		gi.n_module_failures = bad ? 1 : 0;
		gi.module_failures = mods;
		gi.criu_check_output = bad ? (char *)"line 1\x1b[2J\nline 2\x07\n" : (char *)"";
		r.body_case = COCOON__RESPONSE__BODY_GUEST_INFO;
		r.guest_info = &gi;
		queue(&r);
		flush();
		return;
	}
	default:
		reply_error(req->id, EOPNOTSUPP, "not supported by the hostile guest");
		return;
	}
	queue(&r);
	flush();
}

static const char *option_value(const char *opt, const char *key)
{
	static char out[4096];
	const char *p = strstr(opt, key);
	if (!p)
		return NULL;
	p += strlen(key);
	snprintf(out, sizeof(out), "%.*s", (int)strcspn(p, ","), p);
	return strdup(out);
}

static void parse_args(int argc, char **argv, char **channel)
{
	for (int i = 1; i + 1 < argc; i++) {
		const char *v = argv[i + 1];
		if (strcmp(argv[i], "-chardev") == 0 && strstr(v, "id=agent"))
			*channel = (char *)option_value(v, "path=");
		else if (strcmp(argv[i], "-chardev") == 0 && strstr(v, "id=console"))
			console = option_value(v, "path=");
		else if (strcmp(argv[i], "-fsdev") == 0 && strstr(v, "id=cocoon,"))
			shared = option_value(v, "path=");
		else if (strcmp(argv[i], "-fsdev") == 0 && strstr(v, "id=volumes,"))
			volumes = option_value(v, "path=");
		else if (strcmp(argv[i], "-fsdev") == 0 && strstr(v, "id=pod,"))
			pod = option_value(v, "path=");
		else if (strcmp(argv[i], "-m") == 0)
			note("vmm memory ", v);
		else if (strcmp(argv[i], "-smp") == 0)
			note("vmm smp ", v);
	}
}

/* What this process inherited beyond stdio: none, says the host. */
static void note_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (atoi(de->d_name) > 2 && atoi(de->d_name) != dirfd(d))
			note("inherited fd ", de->d_name);
	if (d)
		closedir(d);
}

/* As QEMU's 9p server does (its local backend opens the export's root
 * once and reaches everything relative to that fd): the export follows
 * its directory when the host renames a directory above it. */
static const char *by_fd(const char *path)
{
	char *p;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || asprintf(&p, "/proc/self/fd/%d", fd) < 0)
		return path;
	return p;
}

int main(int argc, char **argv)
{
	char *channel = NULL;
	char pid[32];
	const char *m = getenv("HOSTILE_MODE");
	mode = m ? m : "good";
	canary = getenv("HOSTILE_CANARY");
	parse_args(argc, argv, &channel);
	snprintf(pid, sizeof(pid), "%d", getpid());
	note("vmm pid ", pid);
	note_fds();
	if (!channel || !shared || !canary)
		return 2;
	shared = by_fd(shared);
	if (pod)
		pod = by_fd(pod);
	if (console)
		close(open(console, O_WRONLY | O_CREAT | O_APPEND, 0600));
	if (is("console-flood"))
		flood_console();
	if (is("vmm-log-flood"))
		flood_stderr();
	if (is("volumes"))
		attack_volumes();

	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", channel);
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0)
		return 3;
	chan = accept(l, NULL, NULL);
	if (chan < 0)
		return 3;
	while (serve(true))
		;
	return 0;
}
