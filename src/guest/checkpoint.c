/* Checkpoint with CRIU, inside the guest.
 *
 * Dump: CRIU writes into guest memory (tmpfs), which measured ~9x faster than
 * a dump straight into 9p (CRIU writes in small pieces and 9p pays a round
 * trip for each). The container is frozen only during that dump. The images
 * then go to the shared directory with large writes, in a child process
 * (`cocoon-agent --copy-tree`, copy-tree.c), while the agent keeps serving
 * and, with --leave-running, the container already runs again.
 *
 * This file checks the request and starts the dump; dump-job.c follows it.
 */
#include "channel.h"
#include "jobs.h"
#include "container-ops.h"
#include "checkpoint.h"
#include "argv.h"
#include "cleanup.h"
#include "ckpt-common.h"
#include "userns.h"
#include "container.h"
#include "copy-tree.h"
#include "criu-conf.h"
#include "dump-argv.h"
#include "dump-job.h"
#include "execs.h"
#include "guard.h"
#include "mount-flags.h"
#include "terminal.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <poll.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* Last resort only: the watch stops a stalled CRIU within seconds. */
#define CRIU_DUMP_TIMEOUT_MS (10 * 60 * 1000)
/* The guest-memory route needs the container's memory free in the guest,
 * plus room for CRIU itself and what the container may touch meanwhile. */
#define TMPFS_ROUTE_RESERVE_KIB (32 * 1024)
/* The streaming route holds no image pages in the guest: CRIU, the page
 * server, their socket buffers and the small images (docs/checkpoint.md
 * has the measured peak). Below this much free memory nothing is tried. */
#define STREAM_ROUTE_NEED_KIB (32 * 1024)

/* A connected pair of TCP sockets over the guest's loopback: CRIU splices
 * the pages into one (zero-copy to a TCP socket, where a unix socket would
 * copy them) and the page server splices them out of the other. */
static int tcp_pair(int sv[2])
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	_cleanup_close_ int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sv[0] = sv[1] = -1;
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&sa, &len) < 0)
		return -errno;
	sv[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sv[0] < 0 || connect(sv[0], (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    (sv[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0) {
		int saved = errno;
		if (sv[0] >= 0)
			close(sv[0]);
		sv[0] = -1;
		return -saved;
	}
	return 0;
}

/* The pipes behind the container's stdio, e.g. "pipe:[12345]": restore hands
 * new pipes in their place with --inherit-fd. With a terminal, the lines
 * after those three are CRIU's keys of the pty slave and of each /dev/tty
 * held open, "tty[rdev:dev]" (criu/tty.c): the dump names them external,
 * and a restore hands a new slave in their place, as runc does with a new
 * --console-socket. */
static int save_descriptors(pid_t pid, const char *dir, char tty_keys[][CKPT_TTY_KEY_MAX],
			    size_t n_tty, int master)
{
	char size_line[64];
	char path[300], link[64], target[128];
	snprintf(path, sizeof(path), "%s/" DESCRIPTORS_FILE, dir);
	_cleanup_fclose_ FILE *f = fopen(path, "we");
	if (!f)
		return -errno;
	for (int fd = 0; fd < 3; fd++) {
		snprintf(link, sizeof(link), "/proc/%d/fd/%d", pid, fd);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = 0;
		fprintf(f, "%s\n", target);
	}
	for (size_t i = 0; i < n_tty; i++)
		fprintf(f, "%s\n", tty_keys[i]);
	/* Then the terminal's size (terminal.h), which the new pty takes. */
	if (n_tty && terminal_size_line(master, size_line, sizeof(size_line)))
		fprintf(f, "%s\n", size_line);
	return 0;
}

/* CRIU's key for the pty slave the init holds as stdin: the agent's pty,
 * whose master stays with the agent, so CRIU cannot dump the pair. */
static int terminal_key(pid_t pid, char *key, size_t size)
{
	char link[64];
	struct stat st;
	snprintf(link, sizeof(link), "/proc/%d/fd/0", pid);
	if (stat(link, &st) < 0)
		return -errno;
	if (!S_ISCHR(st.st_mode))
		return -ENOTTY;
	snprintf(key, size, "tty[%llx:%llx]", (unsigned long long)st.st_rdev,
		 (unsigned long long)st.st_dev);
	return 0;
}

/* Picks where CRIU writes the pages, from what the dump will need and what
 * the guest has; refuses up front, touching nothing, when it cannot fit. */
static bool ckpt_choose_route(struct ckpt_ctx *x, struct agent_container *c,
			      const Cocoon__CheckpointRequest *req)
{
	x->need_kib = guard_container_memory_kib(c->cgroup);
	x->avail_kib = guard_mem_available_kib();
	bool checked = x->route != ROUTE_TMPFS_UNCHECKED,
	     may_stream = x->route == ROUTE_COCOON || x->route == ROUTE_STREAM;
	x->stream = x->route == ROUTE_STREAM;
	if (x->route == ROUTE_TMPFS || x->route == ROUTE_TMPFS_UNCHECKED ||
	    x->route == ROUTE_STREAM)
		x->route = ROUTE_COCOON; /* cocoon's route, with one of its two ways forced */
	x->route_name = x->route == ROUTE_DIRECT9P ? "direct9p" : "tmpfs";
	/* Fault injection (tests): the guest-memory route, unchecked. */
	if (!checked || x->route == ROUTE_DIRECT9P)
		return true;
	/* An incremental dump writes only what changed since its parent,
	 * which is not known before, and a pre-dump is kept in guest memory
	 * as the next dump's parent: both take the guest-memory route. */
	bool incremental = *req->parent_id || req->pre_dump;
	if (incremental)
		may_stream = x->stream = false;
	long want = x->need_kib + TMPFS_ROUTE_RESERVE_KIB + x->need_kib / 16;
	if (!x->stream && (*req->parent_id || x->avail_kib < 0 || want <= x->avail_kib))
		return true;
	if (may_stream) {
		x->stream = true;
		if (x->avail_kib < 0 || STREAM_ROUTE_NEED_KIB <= x->avail_kib)
			return true;
		agent_send_error(
			x->a, x->req_id, ENOMEM,
			"checkpoint %s: not enough guest memory for the dump: even streamed to the host it needs about %d MiB free, and the guest has %ld MiB available. Raise vm.memory_mib by at least %ld. The container was not touched",
			c->id, STREAM_ROUTE_NEED_KIB / 1024, x->avail_kib / 1024,
			(STREAM_ROUTE_NEED_KIB - x->avail_kib) / 1024 + 1);
		return false;
	}
	agent_send_error(
		x->a, x->req_id, ENOMEM,
		"checkpoint %s: not enough guest memory for the dump: CRIU writes the container's memory (about %ld MiB) into guest memory first and needs about %ld MiB free, but the guest has %ld MiB available. Raise vm.memory_mib by at least %ld. The container was not touched",
		c->id, x->need_kib / 1024, want / 1024, x->avail_kib / 1024,
		(want - x->avail_kib) / 1024 + 1);
	return false;
}

/* Refuses, answering request ID, a checkpoint that cannot start: no such
 * container, a bad ID, route or fault, a container not running or already
 * being checkpointed, or one ckpt_precheck finds CRIU cannot dump. */
static bool checkpoint_request_ok(struct agent *a, uint64_t id, struct agent_container *c,
				  const Cocoon__CheckpointRequest *req)
{
	if (!c) {
		agent_send_error(a, id, ENOENT, "checkpoint: no such container");
		return false;
	}
	if (!cocoon_id_valid(req->checkpoint_id) ||
	    (*req->parent_id && !cocoon_id_valid(req->parent_id))) {
		agent_send_error(a, id, EINVAL, "checkpoint %s: invalid checkpoint id", c->id);
		return false;
	}
	if (!protobuf_c_enum_descriptor_get_value(&cocoon__checkpoint_route__descriptor,
						  (int)req->bench_route)) {
		agent_send_error(a, id, EINVAL, "checkpoint %s: unknown route %d", c->id,
				 (int)req->bench_route);
		return false;
	}
	if (c->procs[0].phase != PROC_RUNNING) {
		agent_send_error(a, id, EINVAL, "checkpoint %s: container is not running", c->id);
		return false;
	}
	if (!criu_fault_valid(req->fault, true)) {
		agent_send_error(a, id, EINVAL, "checkpoint %s: unknown fault to inject: %s", c->id,
				 req->fault);
		return false;
	}
	/* One at a time: a second checkpoint of the same container is refused. */
	if (c->checkpointing) {
		agent_send_error(a, id, EBUSY, "checkpoint %s: another checkpoint is in progress",
				 c->id);
		return false;
	}
	_cleanup_error_ struct error *why = NULL;
	int bad = ckpt_precheck(c, &why);
	if (bad < 0) {
		agent_send_error(a, id, -bad, "%s", error_msg(why));
		return false;
	}
	return true;
}

/* The dump's context, its route chosen and its paths set; NULL once the
 * refusal is answered. */
static struct ckpt_ctx *ckpt_ctx_new(struct agent *a, uint64_t id, struct agent_container *c,
				     const Cocoon__CheckpointRequest *req)
{
	struct ckpt_ctx *x = calloc(1, sizeof(*x));
	if (!x) {
		agent_send_error(a, id, ENOMEM, "checkpoint: out of memory");
		return NULL;
	}
	x->a = a;
	x->req_id = id;
	x->follow_wr = -1;
	x->shm_watch = -1;
	x->oom_kills0 = ckpt_oom_kills();
	cocoon__criu_stats__init(&x->stats);
	x->leave_running = req->leave_running || req->pre_dump;
	x->keep = req->keep_in_guest || req->pre_dump;
	snprintf(x->cid, sizeof(x->cid), "%s", c->id);
	snprintf(x->ckid, sizeof(x->ckid), "%s", req->checkpoint_id);
	x->route = req->bench_route;
	ckpt_ghost_limit(req->criu, x->ghost_limit, sizeof(x->ghost_limit));
	if (!ckpt_choose_route(x, c, req)) {
		ckpt_free(x);
		return NULL;
	}
	snprintf(x->shared, sizeof(x->shared), COCOON_CHECKPOINTS_DIR "/%s", req->checkpoint_id);
	if (x->stream)
		x->route_name = "stream";
	if (x->route == ROUTE_DIRECT9P)
		snprintf(x->img, sizeof(x->img), AGENT_SHARED_DIR "/%s", x->shared);
	else if (x->route == ROUTE_SEED)
		snprintf(x->img, sizeof(x->img), "/tmp/criu-checkpoint-%s", req->checkpoint_id);
	else
		snprintf(x->img, sizeof(x->img), "%s/%s", x->a->ckpt_dir, req->checkpoint_id);
	return x;
}

/* Makes the directory CRIU writes into (x->img), clearing what a first try
 * left in the shared one; false once the failure is answered. */
static bool ckpt_make_image_dir(struct ckpt_ctx *x, const struct agent_container *c)
{
	(void)mkdir_p(x->a->ckpt_dir, 0700, NULL); /* a failure shows in the next step's */
	mkdir(AGENT_SHARED_DIR "/" COCOON_CHECKPOINTS_DIR, 0700);
	/* What a first try left there (the host asks again after ESTALE). The
	 * directory itself may be the host's mount point: it stays then. */
	char dst[300];
	snprintf(dst, sizeof(dst), AGENT_SHARED_DIR "/%s", x->shared);
	if (x->route != ROUTE_FLOOR)
		copy_tree_remove(dst);
	if (mkdir(x->img, 0700) < 0 && !(errno == EEXIST && x->route == ROUTE_DIRECT9P)) {
		agent_send_error(x->a, x->req_id, errno, "checkpoint %s: %s: %s", c->id, x->img,
				 strerror(errno));
		return false;
	}
	return true;
}

/* The terminal's keys into x->tty_args: its pty slave, then each /dev/tty
 * the container holds; false once the failure is answered. */
static bool ckpt_terminal_keys(struct ckpt_ctx *x, struct agent_container *c)
{
	int r = terminal_key(c->procs[0].pid, x->tty_args[0], sizeof(x->tty_args[0]));
	int ctty = r < 0 ? 0 : ckpt_ctty_keys(c, x->tty_args + 1, ARRAY_SIZE(x->tty_args) - 1);
	if (r < 0 || ctty < 0) {
		agent_send_error(x->a, x->req_id, r < 0 ? -r : -ctty,
				 "checkpoint %s: the container's terminal (%s): %s", c->id,
				 r < 0 ? "its stdin" : "the /dev/tty its processes hold",
				 strerror(r < 0 ? -r : -ctty));
		return false;
	}
	if (ctty >= (int)ARRAY_SIZE(x->tty_args)) {
		agent_send_error(
			x->a, x->req_id, EOPNOTSUPP,
			"checkpoint %s: the container's processes hold /dev/tty open from %d different /dev mounts; at most %zu can be handed a new terminal",
			c->id, ctty, ARRAY_SIZE(x->tty_args) - 1);
		return false;
	}
	x->n_tty = 1 + (size_t)ctty;
	return true;
}

/* What a restore needs beside CRIU's images, written into x->img: the
 * terminal's keys and the stdio pipes (descriptors), the mounts and the
 * exec pipes; false once the failure is answered. */
static bool ckpt_save_for_restore(struct ckpt_ctx *x, struct agent_container *c,
				  const Cocoon__CheckpointRequest *req)
{
	if (c->procs[0].terminal && !ckpt_terminal_keys(x, c))
		return false;
	const struct agent_proc *init = &c->procs[0];
	save_descriptors(init->pid, x->img, x->tty_args, x->n_tty,
			 init->out_fd[0] >= 0 ? init->out_fd[0] : init->stdin_fd);
	/* A restore without them would get the mounts' flags (ro, nosuid...)
	 * or the exec pipes wrong: no checkpoint then. */
	int saved = req->pre_dump ? 0 : mount_flags_save(c->procs[0].pid, x->img);
	if (saved == 0 && !req->pre_dump)
		saved = execs_save_pipes(c, x->img);
	if (saved < 0) {
		agent_send_error(x->a, x->req_id, -saved,
				 "checkpoint %s: saving its mounts and pipes: %s", c->id,
				 strerror(-saved));
		return false;
	}
	return true;
}

/* CRIU always leaves the tasks alive (the dump's --leave-running). Without
 * the request's --leave-running the container stays frozen instead, and the
 * host kills it only once the images are safely published; if publishing
 * fails (a full disk, say) the host thaws it and nothing is lost. A paused
 * container is already frozen. False once the failure is answered. */
static bool ckpt_freeze(struct ckpt_ctx *x, struct agent_container *c)
{
	if (x->leave_running || c->paused)
		return true;
	int fr = container_freeze(c, true);
	if (fr < 0) {
		agent_send_error(x->a, x->req_id, -fr, "freeze %s for the checkpoint: %s", c->id,
				 strerror(-fr));
		return false;
	}
	x->froze = true;
	return true;
}

/* While CRIU runs: CRIU may take what the guest had available less a
 * reserve: a dump that does not fit ends at once by an OOM kill inside
 * CRIU's own cgroup, and the rest of the guest never runs short
 * (dump-limit.h). If the guest still runs out of memory, CRIU or the copier
 * is the OOM killer's choice, never the container. */
static void ckpt_guard_dump(struct ckpt_ctx *x, struct agent_container *c)
{
	int limited = dump_limit_open(&x->limit, x->ckid, x->avail_kib);
	if (limited < 0)
		agent_log(x->a, "checkpoint %s: CRIU runs without a memory limit: %s", c->id,
			  strerror(-limited));
	guard_protect(&x->guard, c->cgroup);
	x->guarded = true;
	guard_sample_memory(&x->guard);
	char adj_path[300];
	snprintf(adj_path, sizeof(adj_path), "%s/" OOM_ADJ_FILE, x->img);
	/* Without it the restored tasks keep the protected value. */
	int adj_saved = guard_save_adj(&x->guard, adj_path);
	if (adj_saved < 0)
		agent_log(x->a, "checkpoint %s: %s: %s", c->id, adj_path, strerror(-adj_saved));
}

/* Once CRIU runs: on the streaming route its page server and the copier
 * beside it; on cocoon's route with a spare vCPU, the copier beside CRIU.
 * PS_SERVER is the page server's end of CRIU's socket pair. */
static void ckpt_start_transfer(struct ckpt_ctx *x, int ps_server)
{
	_cleanup_error_ struct error *e = NULL;
	if (x->stream && ckpt_start_page_server(x, ps_server, &e) < 0) {
		if (asprintf(&x->stop_reason, "CRIU's page server did not start: %s", e->msg) < 0)
			x->stop_reason = NULL;
		kill(x->criu, SIGKILL);
	}
	/* The streaming route copies as the pages come, whatever the vCPUs. */
	if (x->stream && x->pserver > 0)
		ckpt_start_copier(x, true);
	/* With a spare vCPU the transfer overlaps the dump. With one vCPU it
	 * only steals CRIU's time (measured under TCG at 256 MiB: frozen time
	 * up by about the copy's 0.5 s, the total no shorter), so the copy
	 * follows the dump. The seed's baseline and the "serial" bench route
	 * (4) always copy after it. */
	else if (x->route == ROUTE_COCOON && !x->stream && sysconf(_SC_NPROCESSORS_ONLN) > 1)
		ckpt_start_copier(x, true);
}

/* Starts CRIU with AV as the dump's job (ckpt_dump_done follows it), then
 * the transfer; false once a failure to start is answered. */
static bool ckpt_start_dump(struct ckpt_ctx *x, struct agent_container *c,
			    const Cocoon__CheckpointRequest *req, struct argv *av)
{
	_cleanup_error_ struct error *e = NULL;
	/* CRIU runs inside the container's network namespace. It holds
	 * loopback and nothing else, and every task that can send into it is
	 * frozen, so there is nothing to lock or dump: a restore gets a fresh
	 * one. Not with a user namespace: a namespace the agent makes for the
	 * restore would be the guest's user namespace's, where the restored
	 * root has no rights (no sysfs mount, no network set-up: CRIU's own
	 * /sys mount fails). CRIU then dumps the namespace (loopback only, see
	 * ckpt_precheck) and makes it again inside the restored user
	 * namespace, as under runc. */
	bool in_netns = c->own_netns && !userns_wanted(c->spec);
	char netns[64];
	snprintf(netns, sizeof(netns), "/proc/%d/ns/net", c->procs[0].pid);
	int ps[2] = {-1, -1};
	if (x->stream && tcp_pair(ps) < 0) {
		agent_send_error(x->a, x->req_id, errno,
				 "checkpoint %s: a socket pair for CRIU's page server: %s", c->id,
				 strerror(errno));
		return false;
	}
	_cleanup_close_ int ps_dump = ps[0], ps_server = ps[1];
	/* A pod member: CRIU runs in the namespaces it shares with the pod,
	 * which are then its own and not dumped (they are the sandbox's). */
	int pod_ns[3];
	ckpt_pod_namespaces_open(c, c->procs[0].pid, pod_ns);
	struct agent_job_options o = {.netns = in_netns ? netns : NULL,
				      .timeout_ms = CRIU_DUMP_TIMEOUT_MS,
				      .oom_victim = true,
				      .watch = ckpt_watch,
				      .watch_ms = CRIU_WATCH_MS,
				      .pass_fds = &ps_dump,
				      .n_pass_fds = x->stream ? 1 : 0,
				      .ns_fds = pod_ns,
				      .n_ns_fds = 3};
	ckpt_guard_dump(x, c);
	o.cgroup = x->limit.path[0] ? x->limit.path : NULL;
	x->t0 = now_ms();
	x->next_progress_ms = x->t0 + CKPT_PROGRESS_MS;
	if (req->fault && *req->fault)
		(void)setenv(COCOON_FAULT_ENV, req->fault, 1); /* for CRIU; unset: no fault */
	x->criu = agent_job_start_ex(x->a, av->args, &o, ckpt_dump_done, x, &e);
	ckpt_pod_namespaces_close(pod_ns);
	(void)unsetenv(COCOON_FAULT_ENV); /* cannot fail: a valid name */
	if (x->criu < 0) {
		agent_send_error(x->a, x->req_id, e->code, "checkpoint %s: %s", c->id, e->msg);
		return false;
	}
	c->checkpointing = true;
	/* The host hears of CRIU's start at once, not at the first watch: a
	 * small or frozen container can be dumped before it, and a guest
	 * wedged then must be reported as wedged mid-dump. */
	ckpt_send_progress(x->a, c->id, "dump", 0, 0);
	ckpt_start_transfer(x, ps_server);
	return true;
}

void checkpoint_handle(struct agent *a, uint64_t id, const Cocoon__CheckpointRequest *req)
{
	struct agent_container *c = req ? container_find(a, req->id) : NULL;
	if (!checkpoint_request_ok(a, id, c, req))
		return;
	struct ckpt_ctx *x = ckpt_ctx_new(a, id, c, req);
	if (!x)
		return;
	if (!ckpt_make_image_dir(x, c)) {
		ckpt_free(x);
		return;
	}
	if (!ckpt_save_for_restore(x, c, req) || !ckpt_freeze(x, c)) {
		copy_tree_remove(x->img);
		ckpt_free(x);
		return;
	}
	_cleanup_(argv_free) struct argv av = ARGV_EMPTY;
	int bad_argv = dump_criu_argv(&av, x, c, req);
	if (bad_argv < 0)
		agent_send_error(a, id, -bad_argv, "checkpoint %s: CRIU's command line: %s", c->id,
				 strerror(-bad_argv));
	if (bad_argv < 0 || !ckpt_start_dump(x, c, req, &av)) {
		/* Not guarded yet unless the job failed to start. */
		ckpt_unguard(x);
		ckpt_thaw_on_failure(x);
		copy_tree_remove(x->img);
		ckpt_free(x);
	}
}
