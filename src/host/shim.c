/* The shim's event loop. It multiplexes one agent channel between:
 *   - the container's stdio (the stdio `create` was given, or a pty whose
 *     master went to --console-socket),
 *   - control clients: later `cocoon` invocations (start, kill, exec, ...)
 *     on a 0600 unix socket in the container's 0700 state directory,
 *   - signals sent to the shim, which it forwards to the container.
 */
#include "shim.h"
#include "agent-client.h"
#include "cgroup-mirror.h"
#include "console.h"
#include "cleanup.h"
#include "guard.h"
#include "log.h"
#include "network.h"
#include "paths.h"
#include "resources.h"
#include "pod.h"
#include "sandbox.h"
#include "state.h"
#include "qmp.h"
#include "vmsnap.h"

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

/* How long a new member waits for a killed member of the same id to end. */
#define MEMBER_GONE_WAIT_MS 5000

struct shim_client {
	int fd;
	struct frame_reader *reader;
	int fds[3];
	size_t nfds;
	char member[65]; /* a pod member's shim: the id of its container */
	int member_mib;	 /* that container's memory limit, MiB (0: none) */
};

/* A pod member's long request (checkpoint, create, restore) that the
 * sandbox's shim forwarded without waiting for its reply: it serves the
 * pod's other containers meanwhile, and hands the reply on when it comes. */
struct shim_forward {
	bool active;
	Cocoon__Request__BodyCase kind;
	uint64_t agent_id, client_req_id;
	int client_fd; /* -1 once that member's shim went away */
	long long deadline_ms;
};

struct shim_exec {
	bool used;
	char exec_id[65];
	int in, out, err;
	struct console_watch tty; /* fd -1: no terminal */
	int client_fd;		  /* who waits for the exit, -1 if nobody */
};

struct shim {
	struct shim_args *args;
	struct sandbox sb;
	struct container_state st;
	struct sandbox_guard guard;
	int listen_fd;
	int sig_fd;
	int in_fd, out_fd, err_fd; /* the container's stdio on the host */
	bool stdin_open;
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
	} ckpt;
	/* A pod's sandbox: what its containers may take together (memory
	 * limits, MiB; docs/pods.md "Pod sizing"), where that figure comes
	 * from, the sandbox's own limit, and the VM's vCPUs. */
	int pod_room_mib, own_mib, vcpus;
	char pod_room_source[200];
	struct shim_forward fwd[SHIM_MAX_CLIENTS];
	bool agent_gone; /* the channel closed: no reply will come */
	/* A whole-VM checkpoint without --leave-running left the VM stopped
	 * until its file is published: then a kill ends it, a thaw lets it
	 * run on (the checkpoint command's container_thaw_or_kill). */
	bool vm_stopped;
	bool exited;
	int exit_code;
	struct cgmirror mirror; /* the engines' stats (cgroup-mirror.h) */
	long long mirror_next_ms;
	struct console_watch tty; /* the container's terminal (fd -1: none) */
	long long tty_next_ms;
	/* Members whose shim went away and whose container was killed but has
	 * not yet sent its exit: their late events are dropped, never handed
	 * to a new member that took the same id (member_register waits). */
	char departing[SHIM_MAX_CLIENTS][65];
};

/* A reader that went away loses its output. */
static void write_all(int fd, const void *buf, size_t len)
{
	if (fd >= 0)
		(void)fd_write_all(fd, buf, len);
}

static int exit_code_of(int wait_status)
{
	if (WIFEXITED(wait_status))
		return WEXITSTATUS(wait_status);
	if (WIFSIGNALED(wait_status))
		return 128 + WTERMSIG(wait_status);
	return 255;
}

static struct shim_exec *find_exec(struct shim *s, const char *exec_id)
{
	for (int i = 0; i < SHIM_MAX_EXECS; i++)
		if (s->execs[i].used && strcmp(s->execs[i].exec_id, exec_id) == 0)
			return &s->execs[i];
	return NULL;
}

static void close_exec(struct shim_exec *e)
{
	if (e->in >= 0)
		close(e->in);
	if (e->out >= 0)
		close(e->out);
	if (e->err >= 0)
		close(e->err);
	memset(e, 0, sizeof(*e));
	e->in = e->out = e->err = e->client_fd = e->tty.fd = -1;
}

static void send_to_client(int fd, Cocoon__Response *resp)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	if (fd >= 0 && proto_frame_response(resp, &buf, &len, NULL) == 0)
		send(fd, buf, len, MSG_NOSIGNAL);
}

static struct shim_client *find_member(struct shim *s, const char *id)
{
	for (int i = 0; i < SHIM_MAX_CLIENTS; i++)
		if (s->clients[i].fd >= 0 && s->clients[i].member[0] &&
		    strcmp(s->clients[i].member, id) == 0)
			return &s->clients[i];
	return NULL;
}

/* The container's init ended: the OOM kills of its cgroup since the last
 * tick go to the engines before its exit does (conmon reads its OOM mark
 * when it writes the exit file). The guest removes the cgroup at that exit,
 * so the count comes with the exit event. */
static void mirror_exit(struct shim *s, uint64_t oom_kill)
{
	_cleanup_error_ struct error *err = NULL;
	if (s->mirror.n && cgmirror_oom_kill(&s->mirror, oom_kill, &err) < 0)
		log_warning("container %s: an OOM kill in the guest not shown to the engine: %s",
			    s->args->id, err->msg);
}

static char *find_departing(struct shim *s, const char *id)
{
	for (int i = 0; i < SHIM_MAX_CLIENTS; i++)
		if (s->departing[i][0] && strcmp(s->departing[i], id) == 0)
			return s->departing[i];
	return NULL;
}

static void on_agent_event(void *userdata, const Cocoon__Response *ev)
{
	struct shim *s = userdata;
	const char *cid =
		ev->body_case == COCOON__RESPONSE__BODY_OUTPUT ? ev->output->id : ev->exit->id;

	/* The last words of a member killed when its shim went away. The
	 * agent frees a container when it sends its init's exit, so after
	 * that event the id is free in the VM. */
	char *gone = *cid ? find_departing(s, cid) : NULL;
	if (gone) {
		if (ev->body_case == COCOON__RESPONSE__BODY_EXIT && !*ev->exit->exec_id)
			gone[0] = 0;
		return;
	}

	/* A pod sandbox's shim passes the events of a member's container
	 * on to that member's shim, and drops those of a member gone. */
	if (*cid && strcmp(cid, s->args->id) != 0) {
		struct shim_client *m = find_member(s, cid);
		if (m)
			send_to_client(m->fd, (Cocoon__Response *)ev);
		return;
	}

	if (ev->body_case == COCOON__RESPONSE__BODY_OUTPUT) {
		const Cocoon__OutputEvent *o = ev->output;
		if (!*o->exec_id) {
			write_all(o->stream == 2 ? s->err_fd : s->out_fd, o->data.data,
				  o->data.len);
		} else {
			struct shim_exec *e = find_exec(s, o->exec_id);
			if (e)
				write_all(o->stream == 2 ? e->err : e->out, o->data.data,
					  o->data.len);
		}
		return;
	}
	const Cocoon__ExitEvent *x = ev->exit;
	if (!*x->exec_id) {
		s->exited = true;
		s->exit_code = exit_code_of(x->wait_status);
		mirror_exit(s, x->memory_oom_kill);
		return;
	}
	struct shim_exec *e = find_exec(s, x->exec_id);
	if (!e)
		return;
	/* Tell the waiting `cocoon exec` how its process ended. */
	Cocoon__Response out = COCOON__RESPONSE__INIT;
	Cocoon__ExitEvent copy = *x;
	out.body_case = COCOON__RESPONSE__BODY_EXIT;
	out.exit = &copy;
	send_to_client(e->client_fd, &out);
	close_exec(e);
}

static void agent_reply(void *userdata, const Cocoon__Response *r);

/* ---- start-up ------------------------------------------------------------- */

/* With a terminal, the engine gets the master of a host pty and the shim
 * relays between its slave and the guest's pty. */
static int setup_stdio(struct shim *s, struct error **err)
{
	s->in_fd = 0;
	s->out_fd = 1;
	s->err_fd = 2;
	s->stdin_open = true;
	if (!s->args->bundle->spec->process->terminal)
		return 0;
	if (!s->args->console_socket)
		return error_setx(
			err, EINVAL,
			"process.terminal is true but no --console-socket was given: the container's terminal needs one to hand the pty master to (as with runc)");
	const Cocoon__ConsoleSize *size = s->args->bundle->spec->process->console_size;
	int master, slave;
	int r = console_openpty(size, &master, &slave, err);
	if (r < 0)
		return r;
	r = console_send_master(s->args->console_socket, master, err);
	close(master);
	if (r < 0) {
		close(slave);
		return r;
	}
	s->in_fd = s->out_fd = s->err_fd = slave;
	console_watch_init(&s->tty, slave, size);
	return 0;
}

static int listen_control(struct shim *s, struct error **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/" SHIM_SOCKET, s->args->dir) >=
	    (int)sizeof(sa.sun_path))
		return error_setx(err, ENAMETOOLONG,
				  "state directory %s is too long for a socket path", s->args->dir);
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	mode_t old = umask(0177); /* the socket is created 0600 */
	int r = s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
				listen(s->listen_fd, 8) < 0
			? -errno
			: 0;
	umask(old);
	return r < 0 ? error_set(err, -r, "control socket %s", sa.sun_path) : 0;
}

static int create_container(struct shim *s, struct error **err)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__CreateContainerRequest create = COCOON__CREATE_CONTAINER_REQUEST__INIT;
	Cocoon__Response *resp = NULL;

	create.spec = s->args->bundle->spec;
	req.body_case = COCOON__REQUEST__BODY_CREATE;
	req.create = &create;
	int r = agent_call(&s->sb.agent, &req, &resp, SHIM_CALL_TIMEOUT_MS, err);
	if (r < 0)
		return r;
	cocoon__response__free_unpacked(resp, NULL);
	return 0;
}

/* CRIU's restore log and stats, which the guest wrote into the shared
 * directory: read by fd, bounded, under host-chosen names. */
static void copy_restore_logs(struct shim *s)
{
	char log[128], stats[128];
	snprintf(log, sizeof(log), "restore-%s." COCOON_RESTORE_LOG, s->args->id);
	snprintf(stats, sizeof(stats), "restore-%s." COCOON_STATS_RESTORE, s->args->id);
	const char *const from[] = {log, stats}, *const to[] = {COCOON_RESTORE_LOG,
								COCOON_STATS_RESTORE};
	_cleanup_close_ int dirfd =
		open(s->sb.shared_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	images_copy_logs_at(dirfd, from, to, ARRAY_SIZE(from), s->args->work_path);
}

static int restore_container(struct shim *s, struct error **err)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__RestoreRequest rr = COCOON__RESTORE_REQUEST__INIT;
	Cocoon__Response *resp = NULL;

	const struct images_chain *ch = s->args->restore;
	Cocoon__ImageShare shares[IMAGES_MAX_CHAIN], *ptrs[IMAGES_MAX_CHAIN];
	char tags[IMAGES_MAX_CHAIN][16], paths[IMAGES_MAX_CHAIN][96];
	for (int i = 0; i < ch->n; i++) {
		cocoon__image_share__init(&shares[i]);
		snprintf(tags[i], sizeof(tags[i]), COCOON_TAG_IMAGES "%d", i);
		shares[i].tag = tags[i];
		shares[i].name = ch->names[i];
		/* A pod member's images are in the running VM's pod share. */
		if (s->args->pod) {
			snprintf(paths[i], sizeof(paths[i]), "%s/images%d", s->args->id, i);
			shares[i].tag = (char *)POD_TAG;
			shares[i].path = paths[i];
		}
		ptrs[i] = &shares[i];
	}
	rr.spec = s->args->bundle->spec;
	rr.images = ptrs;
	rr.n_images = (size_t)ch->n;
	rr.criu = (Cocoon__CriuOptions *)s->args->criu;
	req.body_case = COCOON__REQUEST__BODY_RESTORE;
	req.restore = &rr;
	rr.bench_from_tmpfs = s->args->bench_from_tmpfs;
	/* Fault injection for the e2e tests (docs/checkpoint.md). */
	rr.fault = getenv("COCOON_FAULT") ? getenv("COCOON_FAULT") : (char *)"";
	int r = agent_call(&s->sb.agent, &req, &resp, SHIM_CHECKPOINT_TIMEOUT_MS, err);
	copy_restore_logs(s);
	if (r < 0)
		return r;
	/* For restore --print-stats. */
	char path[4200], text[512];
	snprintf(path, sizeof(path), "%s/restore-stats.json", s->args->dir);
	int n = snprintf(
		text, sizeof(text),
		"{\"boot_ms\": %lld, \"template\": %s, \"criu_ms\": %llu, \"copy_ms\": %llu, \"restore_us\": %u}\n",
		s->sb.boot_ms, s->sb.from_template ? "true" : "false",
		(unsigned long long)resp->restore->restore_ms,
		(unsigned long long)resp->restore->copy_ms,
		resp->restore->stats ? resp->restore->stats->restore_us : 0);
	write_file_atomic(path, text, (size_t)n, 0600, NULL);
	/* The engine's new master shows the size the container has. */
	if (resp->restore->console_size && s->tty.fd >= 0 &&
	    console_watch_apply(&s->tty, resp->restore->console_size) == -ERANGE)
		fprintf(stderr,
			"cocoon: restore %s: the guest reported a terminal size of %ux%u: out of range, ignored\n",
			s->args->id, resp->restore->console_size->rows,
			resp->restore->console_size->cols);
	cocoon__response__free_unpacked(resp, NULL);
	return 0;
}

/* A pod member's start-up: its rootfs into the sandbox's pod share, then
 * the sandbox's shim as its agent. */
static int member_setup(struct shim *s, struct error **err)
{
	struct shim_args *a = s->args;
	memset(&s->sb, 0, sizeof(s->sb));
	s->sb.agent.fd = -1;
	int r = pod_member_share(a->pod, a->id, a->bundle,
				 a->restore ? (const char *const *)a->restore->dirs : NULL,
				 a->restore ? a->restore->n : 0, err);
	if (r < 0)
		return r;
	if (shim_connect(a->pod->dir, a->pod->id, &s->sb.agent, err) < 0)
		return error_wrap(err, "pod sandbox %s", a->pod->id);
	return 0;
}

/* The console log and the shared directory stay within their limits while
 * the guest writes them (guard.c). A dump is at most the guest's memory
 * (CRIU writes it into guest tmpfs first), so twice that is room enough. */
static int start_guard(struct shim *s, struct error **err)
{
	const struct cocoon_config *cfg = &s->args->g->cfg;
	struct guard_opts o = {
		.console_path = s->sb.console_log,
		.console_cap = (uint64_t)cfg->console_log_max_bytes,
		.shared_dir = s->sb.shared_dir,
		.shared_cap = cfg->shared_max_bytes ? (uint64_t)cfg->shared_max_bytes
						    : ((uint64_t)s->sb.memory_mib * 2 + 256) << 20,
		.vmm = s->sb.vm.pid,
		.id = s->args->id,
	};
	return guard_start(&s->guard, &o, err);
}

static int mib_of(uint64_t bytes)
{
	return (int)((bytes + (1 << 20) - 1) >> 20);
}

/* The VM's size: from the container's limits (resources.h), or, for a
 * container that may be a pod's sandbox, from the pod's limits when the
 * engine says them (pod_limits_of); then what the pod's containers may
 * take together (member_fits). */
static int vm_size(struct shim *s, struct sandbox_options *opts, struct error **err)
{
	struct shim_args *a = s->args;
	const Cocoon__Resources *own = a->bundle->spec->resources;
	Cocoon__Resources pod_r = COCOON__RESOURCES__INIT;
	const Cocoon__Resources *size_from = own;
	struct pod_limits pl = {0};
	int r;

	if (pod_may_host_members(a->bundle) &&
	    (r = pod_limits_of(a->bundle, "/sys/fs/cgroup", &pl, err)) < 0)
		return r;
	if (pl.memory || pl.cpu_quota) {
		if (own)
			pod_r = *own;
		if (pl.memory)
			pod_r.memory_limit = pl.memory;
		if (pl.cpu_quota) {
			pod_r.cpu_quota = pl.cpu_quota;
			pod_r.cpu_period = pl.cpu_period;
		}
		size_from = &pod_r;
	}
	if ((r = resources_vm_size(&a->g->cfg, size_from, a->bundle->cpuset_cpus, &opts->memory_mib,
				   &opts->vcpus, err)) < 0)
		return pl.memory ? error_wrap(err, "pod limits from %s", pl.source) : r;
	s->vcpus = opts->vcpus;
	s->own_mib = own ? mib_of(own->memory_limit) : 0;
	if (pl.memory) {
		s->pod_room_mib = mib_of(pl.memory);
		snprintf(s->pod_room_source, sizeof(s->pod_room_source), "%s", pl.source);
	} else {
		s->pod_room_mib = opts->memory_mib - RESOURCES_GUEST_OVERHEAD_MIB;
		snprintf(s->pod_room_source, sizeof(s->pod_room_source),
			 "its VM of %d MiB less the guest's %d MiB", opts->memory_mib,
			 RESOURCES_GUEST_OVERHEAD_MIB);
	}
	return 0;
}

/* A VM of its own: the engine's network carried in, and the pod share for
 * members to come (pod.h). */
static int sandbox_setup(struct shim *s, struct sandbox_options *opts, struct error **err)
{
	struct shim_args *a = s->args;
	_cleanup_free_ char *pod_dir = NULL, *volumes = NULL;
	int net_fds[NET_MAX_INTERFACES];
	const char *net_macs[NET_MAX_INTERFACES];
	int r;

	if ((r = vm_size(s, opts, err)) < 0)
		return r;
	if (a->bundle->n_volumes > 0) {
		if (asprintf(&volumes, "%s/" VOLUMES_DIR, a->dir) < 0)
			return error_set(err, ENOMEM, "volumes");
		if ((r = volumes_setup(volumes, a->bundle->volumes, a->bundle->n_volumes, err)) < 0)
			return r;
		opts->volumes_dir = volumes;
	}
	/* Whole-VM mode has no 9p share, so no pod share for members. */
	if (pod_may_host_members(a->bundle) && !a->vmsnap) {
		if (asprintf(&pod_dir, "%s/" POD_SHARE, a->dir) < 0)
			return error_set(err, ENOMEM, "pod share");
		if ((r = pod_share_prepare(a->dir, err)) < 0)
			return r;
		opts->pod_dir = pod_dir;
	}
	if (a->bundle->netns_path) {
		/* A restore with established TCP connections holds the
		 * container's addresses until CRIU has restored them. */
		bool hold = (a->restore || a->vmsnap_state) && a->criu && a->criu->tcp_established;
		if ((r = network_open(&s->net, a->bundle->netns_path, hold, err)) < 0)
			return r;
		for (int i = 0; i < s->net.n_ifs; i++) {
			net_fds[i] = s->net.ifs[i].tap_fd;
			net_macs[i] = s->net.ifs[i].mac;
		}
		opts->net_fds = net_fds;
		opts->net_macs = net_macs;
		opts->n_nets = s->net.n_ifs;
		a->bundle->spec->network = s->net.spec;
	}
	r = sandbox_boot(&s->sb, &a->g->cfg, a->dir, opts, err);
	/* QEMU has the taps now: they go when it does. */
	for (int i = 0; i < s->net.n_ifs; i++) {
		close(s->net.ifs[i].tap_fd);
		s->net.ifs[i].tap_fd = -1;
	}
	opts->pod_dir = NULL;
	opts->volumes_dir = NULL;
	opts->net_fds = NULL;
	opts->net_macs = NULL;
	if (r < 0)
		return error_wrap(err, "boot VM");
	return start_guard(s, err);
}

/* The engines' stats (cgroup-mirror.h): made in the host's mount namespace,
 * before volumes_setup gives the shim its own. Without it the container
 * runs all the same; the engines' stats then show the host's figures. */
static void mirror_setup(struct shim *s)
{
	_cleanup_error_ struct error *err = NULL;
	const char *path = s->args->bundle->cgroup;
	if (!path)
		return;
	/* Recorded first: a shim that dies half-way still has it removed. */
	snprintf(s->st.cgroup, sizeof(s->st.cgroup), "%s", path);
	state_write(s->args->dir, &s->st, NULL);
	if (cgmirror_setup(&s->mirror, path, &err) < 0) {
		log_warning(
			"container %s: linux.cgroupsPath %s: %s; podman stats and ctr task metrics do not show its figures",
			s->args->id, path, err->msg);
		if (err->code == EEXIST) {
			/* Not ours: delete must leave it alone. */
			s->st.cgroup[0] = 0;
			state_write(s->args->dir, &s->st, NULL);
		}
		return;
	}
	s->mirror_next_ms = now_ms();
	if (cgmirror_oom_setup(&s->mirror, path, &err) < 0)
		log_warning(
			"container %s: linux.cgroupsPath %s: %s; the engines do not learn of its OOM kills",
			s->args->id, path, err->msg);
}

/* The shim into the container's host cgroup, once QEMU is running outside
 * it (cgroup-mirror.h). */
static void mirror_join(struct shim *s)
{
	_cleanup_error_ struct error *err = NULL;
	if (s->mirror.n_leaves && cgmirror_join(&s->mirror, &err) < 0)
		log_warning(
			"container %s: %s; podman stats and ctr task metrics do not show its figures",
			s->args->id, err->msg);
}

/* Every CGMIRROR_INTERVAL_MS: the container's figures from the guest into
 * the mirror. Skipped while a checkpoint runs (the agent is busy with it)
 * and once the container is gone. */
static void mirror_tick(struct shim *s)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__StatsRequest sr = COCOON__STATS_REQUEST__INIT;
	Cocoon__Response *resp = NULL;
	_cleanup_error_ struct error *err = NULL;

	s->mirror_next_ms = now_ms() + CGMIRROR_INTERVAL_MS;
	if (s->ckpt.active || s->exited)
		return;
	sr.id = (char *)s->args->id;
	req.body_case = COCOON__REQUEST__BODY_STATS;
	req.stats = &sr;
	if (agent_call(&s->sb.agent, &req, &resp, 2000, NULL) < 0)
		return;
	if (resp->stats && cgmirror_update(&s->mirror, resp->stats, &err) < 0)
		log_warning("container %s: an OOM kill in the guest not shown to the engine: %s",
			    s->args->id, err->msg);
	cocoon__response__free_unpacked(resp, NULL);
}

static int shim_setup(struct shim *s, struct error **err)
{
	struct shim_args *a = s->args;
	struct sandbox_options opts = {.rootfs_dir = a->bundle->rootfs,
				       .keep_dir_on_failure = true,
				       .vmsnap = a->vmsnap,
				       .vmsnap_state = a->vmsnap_state,
				       .vmsnap_key = a->vmsnap_key};
	if (a->restore) {
		opts.images_dirs = (const char *const *)a->restore->dirs;
		opts.n_images_dirs = a->restore->n;
	}
	int r;

	s->listen_fd = -1;
	if ((r = setup_stdio(s, err)) < 0)
		return r;
	mirror_setup(s);
	if (a->pod) {
		if ((r = member_setup(s, err)) < 0)
			return r;
	} else if ((r = sandbox_setup(s, &opts, err)) < 0) {
		return r;
	}
	s->sb.agent.on_event = on_agent_event;
	s->sb.agent.on_reply = agent_reply;
	s->sb.agent.event_userdata = s;
	/* A whole-VM restore: the container came back running with its VM. */
	if ((r = a->vmsnap_state ? 0
		 : a->restore	 ? restore_container(s, err)
				 : create_container(s, err)) < 0 ||
	    (r = listen_control(s, err)) < 0)
		return r;
	/* A hold left by a checkpoint with --tcp-established ends once the
	 * container runs again with its connections (network.h). */
	if (s->net.sk)
		network_release(&s->net, NULL);
	mirror_join(s);
	if (a->vmsnap_state) {
		/* For restore --print-stats: the VM's start is the whole restore. */
		char path[4200], text[256];
		snprintf(path, sizeof(path), "%s/restore-stats.json", a->dir);
		int n = snprintf(
			text, sizeof(text),
			"{\"boot_ms\": %lld, \"template\": false, \"whole_vm\": true, \"criu_ms\": 0, \"copy_ms\": 0, \"restore_us\": 0}\n",
			s->sb.boot_ms);
		write_file_atomic(path, text, (size_t)n, 0600, NULL);
	}
	s->st.status = a->restore || a->vmsnap_state ? STATUS_RUNNING : STATUS_CREATED;
	return state_write(a->dir, &s->st, err);
}

/* ---- control requests -------------------------------------------------------- */

static void reply_error(int fd, uint64_t id, const struct error *e)
{
	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	resp.id = id;
	resp.error = -(e ? e->code : EIO);
	resp.message = e ? e->msg : (char *)"error";
	send_to_client(fd, &resp);
}

static void set_status(struct shim *s, enum container_status st)
{
	s->st.status = st;
	state_write(s->args->dir, &s->st, NULL);
}

static void handle_exec(struct shim *s, struct shim_client *c, Cocoon__Request *req)
{
	_cleanup_error_ struct error *err = NULL;
	struct shim_exec *e = NULL;
	Cocoon__Response *resp = NULL;
	uint64_t cid = req->id;

	for (int i = 0; i < SHIM_MAX_EXECS && !e; i++)
		if (!s->execs[i].used)
			e = &s->execs[i];
	if (!e || c->nfds != 3 || !req->exec || find_exec(s, req->exec->exec_id)) {
		error_setx(&err, e ? EINVAL : EAGAIN, "exec: %s",
			   !e		  ? "too many execs"
			   : c->nfds != 3 ? "stdio descriptors missing"
					  : "exec id in use");
		reply_error(c->fd, cid, err);
		return;
	}
	char *client_id = req->exec->id;
	req->exec->id = (char *)s->args->id;
	int r = agent_call(&s->sb.agent, req, &resp, SHIM_CALL_TIMEOUT_MS, &err);
	req->exec->id = client_id;
	if (r < 0) {
		reply_error(c->fd, cid, err);
		return;
	}
	e->used = true;
	snprintf(e->exec_id, sizeof(e->exec_id), "%s", req->exec->exec_id);
	e->in = c->fds[0];
	e->out = c->fds[1];
	e->err = c->fds[2];
	e->client_fd = c->fd;
	c->nfds = 0;
	/* The exec's pty on the host: the engine's (its master went to the
	 * engine's --console-socket) or the terminal of `cocoon exec` itself. */
	if (req->exec->process && req->exec->process->terminal)
		console_watch_init(&e->tty, e->out, req->exec->process->console_size);
	fcntl(e->in, F_SETFL, fcntl(e->in, F_GETFL) | O_NONBLOCK);
	resp->id = cid;
	send_to_client(c->fd, resp);
	cocoon__response__free_unpacked(resp, NULL);
}

/* ---- pods: the requests of member shims ---------------------------------------- */

/* Where a request names its container. */
static char **request_id_slot(Cocoon__Request *req)
{
	switch (req->body_case) {
	case COCOON__REQUEST__BODY_CREATE:
		return req->create->spec ? &req->create->spec->id : NULL;
	case COCOON__REQUEST__BODY_RESTORE:
		return req->restore->spec ? &req->restore->spec->id : NULL;
	case COCOON__REQUEST__BODY_START:
		return &req->start->id;
	case COCOON__REQUEST__BODY_SIGNAL:
		return &req->signal->id;
	case COCOON__REQUEST__BODY_PAUSE:
		return &req->pause->id;
	case COCOON__REQUEST__BODY_PS:
		return &req->ps->id;
	case COCOON__REQUEST__BODY_UPDATE:
		return &req->update->id;
	case COCOON__REQUEST__BODY_STATS:
		return &req->stats->id;
	case COCOON__REQUEST__BODY_EXEC:
		return &req->exec->id;
	case COCOON__REQUEST__BODY_STDIN:
		return &req->stdin->id;
	case COCOON__REQUEST__BODY_RESIZE:
		return &req->resize->id;
	case COCOON__REQUEST__BODY_CHECKPOINT:
		return &req->checkpoint->id;
	default:
		return NULL;
	}
}

/* The first request of a member's shim creates (or restores) its container
 * in this VM; from then on the connection speaks for that container only,
 * and gets its events. */
static int member_register(struct shim *s, struct shim_client *c, const char *id,
			   struct error **err)
{
	if (c->member[0])
		return error_setx(err, EINVAL, "this connection already speaks for container %s",
				  c->member);
	if (validate_id("container", id, err) < 0)
		return -EINVAL;
	if (strcmp(id, s->args->id) == 0 || find_member(s, id))
		return error_setx(err, EEXIST, "container %s is in this pod already", id);
	/* A container of the same id was just killed (delete --force, as a
	 * runtime's delete is synchronous for runc's callers): wait for its
	 * exit, so that neither the agent ("exists in this VM") nor its late
	 * events get in the new container's way. */
	long long until = now_ms() + MEMBER_GONE_WAIT_MS;
	while (find_departing(s, id) && now_ms() < until) {
		struct pollfd pfd = {.fd = s->sb.agent.fd, .events = POLLIN};
		int left = (int)(until - now_ms());
		if (poll(&pfd, 1, left > 0 ? left : 0) < 0 && errno != EINTR)
			break;
		if (agent_client_pump(&s->sb.agent, NULL) < 0)
			break;
	}
	if (find_departing(s, id))
		return error_setx(err, EBUSY,
				  "container %s of this pod is still stopping after %d ms", id,
				  MEMBER_GONE_WAIT_MS);
	snprintf(c->member, sizeof(c->member), "%s", id);
	/* Its output must not be dropped: a member that does not read stalls
	 * the pod's events for at most this long, then loses them. */
	struct timeval tv = {.tv_sec = 10};
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK);
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return 0;
}

/* A member's memory and CPU limits must fit the pod's VM, which cannot
 * grow: the memory limits of all its containers together in the pod's room
 * (vm_size), a CPU limit in its vCPUs. mib is the member's new memory limit;
 * c, when given, is the member itself (its old limit does not count). */
static int member_fits(struct shim *s, const struct shim_client *c, const char *id, int mib,
		       const Cocoon__Resources *r, struct error **err)
{
	int taken = s->own_mib;
	for (int i = 0; i < SHIM_MAX_CLIENTS; i++)
		if (s->clients[i].fd >= 0 && s->clients[i].member[0] && &s->clients[i] != c)
			taken += s->clients[i].member_mib;
	if (mib && mib + taken > s->pod_room_mib)
		return error_setx(
			err, E2BIG,
			"container %s: its memory limit of %d MiB does not fit in pod "
			"%s: the pod's containers have %d MiB (%s), %d MiB of it taken by "
			"the others; the pod's VM cannot grow: size the pod for all its "
			"containers (docs/pods.md)",
			id, mib, s->args->id, s->pod_room_mib, s->pod_room_source, taken);
	if (r && r->cpu_quota > 0 && r->cpu_period > 0 &&
	    (r->cpu_quota + (int64_t)r->cpu_period - 1) / (int64_t)r->cpu_period > s->vcpus)
		return error_setx(
			err, E2BIG,
			"container %s: its CPU limit of %.2f CPUs does not fit in pod %s, "
			"whose VM has %d vCPUs and cannot grow: size the pod for all its "
			"containers (docs/pods.md)",
			id, (double)r->cpu_quota / (double)r->cpu_period, s->args->id, s->vcpus);
	return 0;
}

/* update: memory up to what this VM can give (resources.h). A member's own
 * shim has no VM (memory_mib 0): the pod's shim checks. */
static int update_check(struct shim *s, struct shim_client *c, const Cocoon__Request *req,
			struct error **err)
{
	if (req->body_case != COCOON__REQUEST__BODY_UPDATE || !req->update->set_memory ||
	    !req->update->resources)
		return 0;
	uint64_t limit = req->update->resources->memory_limit;
	if (resources_update_fits(s->sb.memory_mib, limit, err) < 0 ||
	    (c && member_fits(s, c, c->member, mib_of(limit), NULL, err) < 0))
		return error_wrap(err, "update %s", c ? c->member : req->update->id);
	return 0;
}

/* The spec of a member's create or restore. */
static const Cocoon__ContainerSpec *joining_spec(const Cocoon__Request *req)
{
	if (req->body_case == COCOON__REQUEST__BODY_CREATE)
		return req->create->spec;
	if (req->body_case == COCOON__REQUEST__BODY_RESTORE)
		return req->restore->spec;
	return NULL;
}

static struct shim_client *client_of_fd(struct shim *s, int fd)
{
	for (int i = 0; i < SHIM_MAX_CLIENTS; i++)
		if (fd >= 0 && s->clients[i].fd == fd)
			return &s->clients[i];
	return NULL;
}

/* A member's create or restore that failed: the connection speaks for no
 * container again. */
static void member_unregister(struct shim_client *c)
{
	c->member[0] = 0;
	c->member_mib = 0;
}

/* Sends a member's long request on and returns: CRIU runs for seconds to
 * minutes, and the pod's other containers must be served meanwhile (their
 * exec, kill, state). forward_reply() answers it. */
static void forward_start(struct shim *s, struct shim_client *c, Cocoon__Request *req, uint64_t cid)
{
	_cleanup_error_ struct error *err = NULL;
	struct shim_forward *f = NULL;
	bool joining = req->body_case != COCOON__REQUEST__BODY_CHECKPOINT;
	bool busy = false; /* one of a kind at a time per member */
	for (int i = 0; i < SHIM_MAX_CLIENTS; i++) {
		if (!s->fwd[i].active && !f)
			f = &s->fwd[i];
		busy |= s->fwd[i].active && s->fwd[i].client_fd == c->fd &&
			s->fwd[i].kind == req->body_case;
	}
	if (!f || busy) {
		error_setx(&err, EBUSY, "%s %s: another one is in progress",
			   proto_request_name(req->body_case), c->member);
		if (joining)
			member_unregister(c);
		reply_error(c->fd, cid, err);
		return;
	}
	int64_t id = agent_send_request(&s->sb.agent, req, &err);
	if (id < 0) {
		if (joining)
			member_unregister(c);
		reply_error(c->fd, cid, err);
		return;
	}
	*f = (struct shim_forward){.active = true,
				   .kind = req->body_case,
				   .agent_id = (uint64_t)id,
				   .client_req_id = cid,
				   .client_fd = c->fd,
				   .deadline_ms = now_ms() + SHIM_CHECKPOINT_TIMEOUT_MS};
}

static void forward_reply(struct shim *s, struct shim_forward *f, const Cocoon__Response *r)
{
	_cleanup_error_ struct error *err = NULL;
	struct shim_client *c = client_of_fd(s, f->client_fd);
	f->active = false;
	if (agent_check_reply(&s->sb.agent, f->kind, r, &err) < 0) {
		if (c && f->kind != COCOON__REQUEST__BODY_CHECKPOINT)
			member_unregister(c);
		reply_error(f->client_fd, f->client_req_id, err);
		return;
	}
	Cocoon__Response out = *r;
	out.id = f->client_req_id;
	send_to_client(f->client_fd, &out);
}

/* Forwards past their time limit are answered; returns ms until the next
 * limit, or -1. */
static int forward_check_deadlines(struct shim *s)
{
	int next = -1;
	for (int i = 0; i < SHIM_MAX_CLIENTS; i++) {
		struct shim_forward *f = &s->fwd[i];
		if (!f->active)
			continue;
		long long left = f->deadline_ms - now_ms();
		if (left > 0) {
			next = next < 0 || left < next ? (int)left : next;
			continue;
		}
		_cleanup_error_ struct error *err = NULL;
		struct shim_client *c = client_of_fd(s, f->client_fd);
		if (c && f->kind != COCOON__REQUEST__BODY_CHECKPOINT)
			member_unregister(c);
		error_setx(&err, ETIMEDOUT, "%s: the agent did not answer in time",
			   proto_request_name(f->kind));
		reply_error(f->client_fd, f->client_req_id, err);
		f->active = false;
	}
	return next;
}

static void handle_member_request(struct shim *s, struct shim_client *c, Cocoon__Request *req)
{
	_cleanup_error_ struct error *err = NULL;
	Cocoon__Response *resp = NULL;
	char **slot = request_id_slot(req);
	uint64_t cid = req->id; /* agent_call gives req an id of its own */
	bool joining = req->body_case == COCOON__REQUEST__BODY_CREATE ||
		       req->body_case == COCOON__REQUEST__BODY_RESTORE;

	if (!slot || !*slot) {
		error_setx(&err, EOPNOTSUPP, "request not supported from a pod member");
		reply_error(c->fd, cid, err);
		return;
	}
	if (joining && member_register(s, c, *slot, &err) < 0) {
		reply_error(c->fd, cid, err);
		return;
	}
	if (joining) {
		const Cocoon__Resources *r = joining_spec(req)->resources;
		int mib = r ? mib_of(r->memory_limit) : 0;
		if (member_fits(s, c, c->member, mib, r, &err) < 0) {
			c->member[0] = 0;
			reply_error(c->fd, cid, err);
			return;
		}
		c->member_mib = mib;
	}
	char *client_id = *slot;
	*slot = c->member;
	if (req->body_case == COCOON__REQUEST__BODY_STDIN ||
	    req->body_case == COCOON__REQUEST__BODY_RESIZE) {
		agent_send_oneway(&s->sb.agent, req, NULL);
		*slot = client_id;
		return;
	}
	if (update_check(s, c, req, &err) < 0) {
		*slot = client_id;
		reply_error(c->fd, cid, err);
		return;
	}
	if (joining || req->body_case == COCOON__REQUEST__BODY_CHECKPOINT) {
		forward_start(s, c, req, cid);
		*slot = client_id;
		return;
	}
	int r = agent_call(&s->sb.agent, req, &resp, SHIM_CALL_TIMEOUT_MS, &err);
	*slot = client_id;
	if (r < 0) {
		reply_error(c->fd, cid, err);
		return;
	}
	if (req->body_case == COCOON__REQUEST__BODY_UPDATE && req->update->set_memory &&
	    req->update->resources)
		c->member_mib = mib_of(req->update->resources->memory_limit);
	resp->id = cid;
	send_to_client(c->fd, resp);
	cocoon__response__free_unpacked(resp, NULL);
}

/* A member's shim went away (its container ended, or delete --force): its
 * container must not outlive it in the VM. */
static void member_gone(struct shim *s, const char *id)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__SignalRequest sr = COCOON__SIGNAL_REQUEST__INIT;
	Cocoon__Response *resp = NULL;
	sr.id = (char *)id;
	sr.signal = SIGKILL;
	sr.all = true;
	req.body_case = COCOON__REQUEST__BODY_SIGNAL;
	req.signal = &sr;
	if (agent_call(&s->sb.agent, &req, &resp, 5000, NULL) < 0)
		return; /* no such container: it has ended (and been freed) already */
	cocoon__response__free_unpacked(resp, NULL);
	for (int i = 0; i < SHIM_MAX_CLIENTS; i++) {
		if (!s->departing[i][0]) {
			snprintf(s->departing[i], sizeof(s->departing[i]), "%s", id);
			break;
		}
	}
}

/* A checkpoint that ends the container and carries its established TCP
 * connections: from before the dump until the restore, nothing may answer
 * their peers, neither the frozen guest nor, once it is gone, anything on
 * the engine's side (docs/networking.md). */
static int checkpoint_hold(struct shim *s, const Cocoon__Request *req, struct error **err)
{
	const Cocoon__CheckpointRequest *cr = req->checkpoint;
	if (req->body_case != COCOON__REQUEST__BODY_CHECKPOINT || !s->net.sk || !cr->criu ||
	    !cr->criu->tcp_established || cr->leave_running || cr->pre_dump || s->net_held)
		return 0;
	int r = network_hold(&s->net, true, err);
	if (r < 0)
		return error_wrap(err, "checkpoint");
	s->net_held = true;
	return 0;
}

static void checkpoint_unhold(struct shim *s)
{
	if (!s->net_held)
		return;
	network_release(&s->net, NULL);
	s->net_held = false;
}

static void checkpoint_reply(struct shim *s, const Cocoon__Response *r)
{
	_cleanup_error_ struct error *err = NULL;
	if (!s->ckpt.active || r->id != s->ckpt.agent_id)
		return; /* a late reply to a call that timed out */
	s->ckpt.active = false;
	if (agent_check_reply(&s->sb.agent, COCOON__REQUEST__BODY_CHECKPOINT, r, &err) < 0) {
		checkpoint_unhold(s); /* the container runs on */
		reply_error(s->ckpt.client_fd, s->ckpt.client_req_id, err);
		return;
	}
	Cocoon__Response out = *r;
	out.id = s->ckpt.client_req_id;
	send_to_client(s->ckpt.client_fd, &out);
}

/* The replies to requests sent with agent_send_request(): a member's
 * forwarded one, or the sandbox's own checkpoint. */
static void agent_reply(void *userdata, const Cocoon__Response *r)
{
	struct shim *s = userdata;
	for (int i = 0; i < SHIM_MAX_CLIENTS; i++)
		if (s->fwd[i].active && s->fwd[i].agent_id == r->id) {
			forward_reply(s, &s->fwd[i], r);
			return;
		}
	checkpoint_reply(s, r);
}

/* A checkpoint that outlived its time limit is answered, so that the next
 * one is not refused for ever. Returns ms until that limit, or -1. */
static int checkpoint_check_deadline(struct shim *s)
{
	if (!s->ckpt.active)
		return -1;
	long long left = s->ckpt.deadline_ms - now_ms();
	if (left > 0)
		return (int)left;
	_cleanup_error_ struct error *err = NULL;
	checkpoint_unhold(s);
	error_setx(&err, ETIMEDOUT, "checkpoint: the agent did not answer in time");
	reply_error(s->ckpt.client_fd, s->ckpt.client_req_id, err);
	s->ckpt.active = false;
	return -1;
}

static void handle_checkpoint(struct shim *s, struct shim_client *c, Cocoon__Request *req)
{
	_cleanup_error_ struct error *err = NULL;
	uint64_t cid = req->id;
	if (s->ckpt.active) {
		error_setx(&err, EBUSY, "checkpoint %s: another checkpoint is in progress",
			   s->args->id);
		reply_error(c->fd, cid, err);
		return;
	}
	if (checkpoint_hold(s, req, &err) < 0) {
		reply_error(c->fd, cid, err);
		return;
	}
	char *client_id = req->checkpoint->id;
	req->checkpoint->id = (char *)s->args->id;
	int64_t id = agent_send_request(&s->sb.agent, req, &err);
	req->checkpoint->id = client_id;
	if (id < 0) {
		checkpoint_unhold(s);
		reply_error(c->fd, cid, err);
		return;
	}
	s->ckpt.active = true;
	s->ckpt.agent_id = (uint64_t)id;
	s->ckpt.client_req_id = cid;
	s->ckpt.client_fd = c->fd;
	s->ckpt.deadline_ms = now_ms() + SHIM_CHECKPOINT_TIMEOUT_MS;
}

/* A whole-VM checkpoint (vmsnap.h): QEMU saves the VM into the state
 * directory, where the checkpoint command picks the file up and publishes
 * it. Without --leave-running the VM is not let go on: it is killed, and the
 * shim exits as for a killed container. */
static void handle_vm_checkpoint(struct shim *s, struct shim_client *c, Cocoon__Request *req)
{
	_cleanup_error_ struct error *err = NULL;
	_cleanup_free_ char *key = NULL, *mark = NULL, *state = NULL, *qmp = NULL;
	const Cocoon__CheckpointRequest *cr = req->checkpoint;
	struct vmsnap_save_stats st;

	if (!s->sb.vmsnap || s->args->pod) {
		error_setx(
			&err, EOPNOTSUPP,
			"checkpoint %s: its VM was not booted for whole-VM checkpoints (checkpoint_mode \"vm\" when it was created)",
			s->args->id);
		reply_error(c->fd, req->id, err);
		return;
	}
	if (s->ckpt.active) {
		error_setx(&err, EBUSY, "checkpoint %s: another checkpoint is in progress",
			   s->args->id);
		reply_error(c->fd, req->id, err);
		return;
	}
	if (asprintf(&mark, "%s/" VMSNAP_MARK, s->args->dir) < 0 ||
	    asprintf(&state, "%s/" VMSNAP_WORK, s->args->dir) < 0 ||
	    asprintf(&qmp, "%s/" SANDBOX_QMP, s->args->dir) < 0 ||
	    read_file_bounded(mark, VMSNAP_KEY_MAX, &key, NULL, &err) < 0) {
		if (!err)
			error_set(&err, ENOMEM, "checkpoint");
		reply_error(c->fd, req->id, err);
		return;
	}
	/* --tcp-established: the connections are in the saved VM; nothing
	 * may answer their peers until the restore (as for CRIU's route). */
	if (checkpoint_hold(s, req, &err) < 0) {
		reply_error(c->fd, req->id, err);
		return;
	}
	/* Without --leave-running the VM stays stopped (save with no cont). */
	if (vmsnap_save(&s->sb.vm, qmp, state, vmsnap_key_mapped_ram(key), cr->leave_running, &st,
			&err) < 0) {
		checkpoint_unhold(s); /* the container runs on */
		error_wrap(&err, "checkpoint %s: save the VM", s->args->id);
		reply_error(c->fd, req->id, err);
		return;
	}
	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	Cocoon__CheckpointReply rep = COCOON__CHECKPOINT_REPLY__INIT;
	Cocoon__CriuStats stats = COCOON__CRIU_STATS__INIT;
	stats.frozen_us = (uint32_t)(st.frozen_ms * 1000);
	rep.stats = &stats;
	rep.dump_ms = (uint64_t)st.save_ms;
	rep.bytes = st.bytes;
	rep.files = 1;
	rep.route = (char *)"vm";
	resp.id = req->id;
	resp.body_case = COCOON__RESPONSE__BODY_CHECKPOINT;
	resp.checkpoint = &rep;
	send_to_client(c->fd, &resp);
	s->vm_stopped = !cr->leave_running;
}

/* The kill or thaw that ends a whole-VM checkpoint (vm_stopped): the agent
 * cannot answer while the VM is stopped. */
static void vm_stopped_request(struct shim *s, struct shim_client *c, Cocoon__Request *req)
{
	_cleanup_error_ struct error *err = NULL;
	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	Cocoon__SignalReply sig = COCOON__SIGNAL_REPLY__INIT;
	Cocoon__PauseReply pause = COCOON__PAUSE_REPLY__INIT;
	resp.id = req->id;
	if (req->body_case == COCOON__REQUEST__BODY_SIGNAL) {
		if (s->sb.vm.backend)
			s->sb.vm.backend->kill(&s->sb.vm);
		resp.body_case = COCOON__RESPONSE__BODY_SIGNAL;
		resp.signal = &sig;
	} else {
		_cleanup_free_ char *qmp = NULL;
		struct qmp q = {.fd = -1};
		int r = asprintf(&qmp, "%s/" SANDBOX_QMP, s->args->dir) < 0
				? error_set(&err, ENOMEM, "qmp")
				: qmp_connect(&q, &s->sb.vm, qmp, &err);
		if (r == 0)
			r = qmp_call(&q, "{\"execute\":\"cont\"}\n", -1, NULL, &err);
		if (q.fd >= 0)
			close(q.fd);
		if (r < 0) {
			reply_error(c->fd, req->id, err);
			return;
		}
		checkpoint_unhold(s); /* the publish failed: it runs on */
		resp.body_case = COCOON__RESPONSE__BODY_PAUSE;
		resp.pause = &pause;
	}
	s->vm_stopped = false;
	send_to_client(c->fd, &resp);
}

static void handle_request(struct shim *s, struct shim_client *c, Cocoon__Request *req)
{
	_cleanup_error_ struct error *err = NULL;
	Cocoon__Response *resp = NULL;
	uint64_t cid = req->id;
	char **id_slot = NULL;

	if (s->vm_stopped && (req->body_case == COCOON__REQUEST__BODY_SIGNAL ||
			      req->body_case == COCOON__REQUEST__BODY_PAUSE)) {
		vm_stopped_request(s, c, req);
		return;
	}
	if (c->member[0] || req->body_case == COCOON__REQUEST__BODY_CREATE ||
	    req->body_case == COCOON__REQUEST__BODY_RESTORE) {
		handle_member_request(s, c, req);
		return;
	}
	switch (req->body_case) {
	case COCOON__REQUEST__BODY_EXEC:
		handle_exec(s, c, req);
		return;
	case COCOON__REQUEST__BODY_SHUTDOWN: {
		/* delete --force: the container goes, the shim follows. */
		Cocoon__Response ok = COCOON__RESPONSE__INIT;
		Cocoon__ShutdownReply bye = COCOON__SHUTDOWN_REPLY__INIT;
		ok.id = cid;
		ok.body_case = COCOON__RESPONSE__BODY_SHUTDOWN;
		ok.shutdown = &bye;
		send_to_client(c->fd, &ok);
		s->exited = true;
		s->exit_code = 128 + SIGKILL;
		return;
	}
	case COCOON__REQUEST__BODY_START:
		id_slot = &req->start->id;
		break;
	case COCOON__REQUEST__BODY_SIGNAL:
		id_slot = &req->signal->id;
		break;
	case COCOON__REQUEST__BODY_PAUSE:
		id_slot = &req->pause->id;
		break;
	case COCOON__REQUEST__BODY_PS:
		id_slot = &req->ps->id;
		break;
	case COCOON__REQUEST__BODY_STATS:
		id_slot = &req->stats->id;
		break;
	case COCOON__REQUEST__BODY_LOOPBACK_HOLD: /* restore --pod, to a sandbox */
		id_slot = &req->loopback_hold->id;
		break;
	case COCOON__REQUEST__BODY_UPDATE:
		id_slot = &req->update->id;
		if (update_check(s, NULL, req, &err) < 0) {
			reply_error(c->fd, cid, err);
			return;
		}
		break;
	case COCOON__REQUEST__BODY_CHECKPOINT:
		if (req->checkpoint->whole_vm)
			handle_vm_checkpoint(s, c, req);
		else
			handle_checkpoint(s, c, req);
		return;
	default:
		error_setx(&err, EOPNOTSUPP, "request not supported by the shim");
		reply_error(c->fd, cid, err);
		return;
	}
	/* The shim, not the client, says which container: clients only
	 * reach the shim of their own container anyway. */
	char *client_id = *id_slot;
	*id_slot = (char *)s->args->id;
	int r = agent_call(&s->sb.agent, req, &resp, SHIM_CALL_TIMEOUT_MS, &err);
	*id_slot = client_id;
	/* The thaw after a checkpoint whose images could not be published:
	 * the container runs on. */
	if (req->body_case == COCOON__REQUEST__BODY_PAUSE)
		checkpoint_unhold(s);
	if (r < 0) {
		reply_error(c->fd, cid, err);
		return;
	}
	if (req->body_case == COCOON__REQUEST__BODY_START)
		set_status(s, STATUS_RUNNING);
	else if (req->body_case == COCOON__REQUEST__BODY_PAUSE)
		set_status(s, req->pause->resume ? STATUS_RUNNING : STATUS_PAUSED);
	resp->id = cid;
	send_to_client(c->fd, resp);
	cocoon__response__free_unpacked(resp, NULL);
}

static void client_close(struct shim *s, struct shim_client *c)
{
	if (s->ckpt.active && s->ckpt.client_fd == c->fd)
		s->ckpt.client_fd = -1;
	for (int i = 0; i < SHIM_MAX_CLIENTS; i++)
		if (s->fwd[i].active && s->fwd[i].client_fd == c->fd)
			s->fwd[i].client_fd = -1;
	for (size_t i = 0; i < c->nfds; i++)
		close(c->fds[i]);
	close(c->fd);
	free(c->reader);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static void client_readable(struct shim *s, struct shim_client *c)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = c->reader->buf + c->reader->len,
			    .iov_len = frame_reader_room(c->reader)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf)};
	ssize_t n = recvmsg(c->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* A `cocoon exec` that went away no longer waits for its exit. */
		for (int i = 0; i < SHIM_MAX_EXECS; i++)
			if (s->execs[i].used && s->execs[i].client_fd == c->fd)
				s->execs[i].client_fd = -1;
		char member[sizeof(c->member)];
		snprintf(member, sizeof(member), "%s", c->member);
		client_close(s, c);
		if (*member)
			member_gone(s, member);
		return;
	}
	c->reader->len += (size_t)n;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *fds = (int *)CMSG_DATA(cm);
		for (size_t i = 0; i < k; i++) {
			if (c->nfds < 3)
				c->fds[c->nfds++] = fds[i];
			else
				close(fds[i]);
		}
	}
	const uint8_t *payload;
	size_t len;
	int r;
	while ((r = frame_reader_next(c->reader, &payload, &len)) > 0) {
		Cocoon__Request *req = cocoon__request__unpack(NULL, len, payload);
		frame_reader_consume(c->reader);
		if (!req) {
			client_close(s, c);
			return;
		}
		handle_request(s, c, req);
		cocoon__request__free_unpacked(req, NULL);
	}
	if (r < 0)
		client_close(s, c);
}

static void accept_client(struct shim *s)
{
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	for (int i = 0; i < SHIM_MAX_CLIENTS; i++) {
		if (s->clients[i].fd < 0) {
			s->clients[i].fd = fd;
			s->clients[i].reader = calloc(1, sizeof(*s->clients[i].reader));
			if (!s->clients[i].reader)
				client_close(s, &s->clients[i]);
			return;
		}
	}
	close(fd); /* bounded: at most SHIM_MAX_CLIENTS at once */
}

/* ---- stdio and signals ------------------------------------------------------- */

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
	agent_send_oneway(&s->sb.agent, &req, NULL);
}

static void forward_signal(struct shim *s, int sig)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__SignalRequest sr = COCOON__SIGNAL_REQUEST__INIT;
	Cocoon__Response *resp = NULL;
	sr.id = (char *)s->args->id;
	sr.signal = sig;
	req.body_case = COCOON__REQUEST__BODY_SIGNAL;
	req.signal = &sr;
	if (agent_call(&s->sb.agent, &req, &resp, 5000, NULL) == 0)
		cocoon__response__free_unpacked(resp, NULL);
}

static void handle_signals(struct shim *s)
{
	struct signalfd_siginfo si;
	while (read(s->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			if (!s->args->pod && vm_check_exited(&s->sb.vm) && !s->exited) {
				fprintf(stderr,
					"cocoon: container %s: the VM exited unexpectedly\n",
					s->args->id);
				s->exited = true;
				s->exit_code = 128 + SIGKILL;
			}
			continue;
		}
		if (s->st.status == STATUS_RUNNING || s->st.status == STATUS_PAUSED)
			forward_signal(s, (int)si.ssi_signo);
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
	agent_send_oneway(&s->sb.agent, &req, NULL);
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

static int signals_setup(void)
{
	sigset_t mask;
	sigemptyset(&mask);
	int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaddset(&mask, sigs[i]);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
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

static void shim_loop(struct shim *s)
{
	while (!s->exited || checkpoint_reply_due(s)) {
		struct pollfd fds[4 + SHIM_MAX_CLIENTS + SHIM_MAX_EXECS];
		/* Events that came in the same read as a reply are already
		 * here: no new bytes will wake poll for them. */
		if (agent_client_drain(&s->sb.agent, NULL) < 0) {
			s->exited = true;
			s->exit_code = 128 + SIGKILL;
			break;
		}
		void *tag[ARRAY_SIZE(fds)];
		nfds_t n = 0;

		fds[n] = (struct pollfd){.fd = s->sb.agent.fd, .events = POLLIN};
		tag[n++] = &s->sb;
		fds[n] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
		tag[n++] = &s->listen_fd;
		fds[n] = (struct pollfd){.fd = s->sig_fd, .events = POLLIN};
		tag[n++] = &s->sig_fd;
		if (s->stdin_open && s->st.status != STATUS_CREATED) {
			fds[n] = (struct pollfd){.fd = s->in_fd, .events = POLLIN};
			tag[n++] = &s->in_fd;
		}
		for (int i = 0; i < SHIM_MAX_CLIENTS; i++) {
			if (s->clients[i].fd >= 0) {
				fds[n] = (struct pollfd){.fd = s->clients[i].fd, .events = POLLIN};
				tag[n++] = &s->clients[i];
			}
		}
		for (int i = 0; i < SHIM_MAX_EXECS; i++) {
			if (s->execs[i].used && s->execs[i].in >= 0) {
				fds[n] = (struct pollfd){.fd = s->execs[i].in, .events = POLLIN};
				tag[n++] = &s->execs[i];
			}
		}
		int timeout = checkpoint_check_deadline(s), fwd_left = forward_check_deadlines(s);
		if (fwd_left >= 0 && (timeout < 0 || fwd_left < timeout))
			timeout = fwd_left;
		if (s->exited && (timeout < 0 || timeout > 200))
			timeout = 200; /* only waiting for checkpoint_reply_due() */
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
				mirror_tick(s);
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
		for (nfds_t i = 0; i < n && (!s->exited || s->ckpt.active); i++) {
			if (!fds[i].revents)
				continue;
			if (tag[i] == &s->sb) {
				if (agent_client_pump(&s->sb.agent, NULL) < 0) {
					s->agent_gone = true;
					if (!s->exited)
						s->exit_code = 128 + SIGKILL;
					s->exited = true;
				}
			} else if (tag[i] == &s->listen_fd) {
				accept_client(s);
			} else if (tag[i] == &s->sig_fd) {
				handle_signals(s);
			} else if (tag[i] == &s->in_fd) {
				forward_stdin(s, s->in_fd, "", &s->stdin_open);
			} else if ((char *)tag[i] >= (char *)s->clients &&
				   (char *)tag[i] < (char *)(s->clients + SHIM_MAX_CLIENTS)) {
				client_readable(s, tag[i]);
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

static void report(int fd, const char *msg)
{
	if (fd >= 0) {
		write_all(fd, msg, strlen(msg));
		close(fd);
	}
}

/* The VM goes with the shim that booted it; a pod member leaves the pod. */
static void shim_teardown(struct shim *s)
{
	if (s->args->pod) {
		agent_client_close(&s->sb.agent);
		pod_member_unshare(s->args->pod, s->args->id);
	} else {
		sandbox_shutdown(&s->sb);
	}
	guard_stop(&s->guard);
	sandbox_destroy(&s->sb, false);
	network_close(&s->net);
	cgmirror_close(&s->mirror);
}

void shim_main(struct shim_args *a)
{
	struct shim s = {.args = a, .listen_fd = -1, .sb.agent.fd = -1, .tty.fd = -1};
	_cleanup_error_ struct error *err = NULL;

	setsid();
	for (int i = 0; i < SHIM_MAX_CLIENTS; i++)
		s.clients[i].fd = -1;
	for (int i = 0; i < SHIM_MAX_EXECS; i++)
		close_exec(&s.execs[i]);
	s.sig_fd = signals_setup();
	/* From the first moment the shim, and through its process group QEMU
	 * and virtiofsd, can be found and killed from the state root. */
	snprintf(s.st.id, sizeof(s.st.id), "%s", a->id);
	snprintf(s.st.bundle, sizeof(s.st.bundle), "%s", a->bundle->bundle);
	snprintf(s.st.rootfs, sizeof(s.st.rootfs), "%s", a->bundle->rootfs);
	state_now_rfc3339(s.st.created);
	s.st.status = STATUS_CREATING;
	s.st.shim_pid = getpid();
	s.st.shim_start = proc_start_time(getpid());
	if (state_write(a->dir, &s.st, &err) < 0 || shim_setup(&s, &err) < 0) {
		report(a->ready_fd, err->msg);
		shim_teardown(&s);
		_exit(1);
	}
	report(a->ready_fd, "OK");
	shim_loop(&s);

	/* The container is gone: take the VM down, then record it, so that
	 * "stopped" never describes a VM that still runs. */
	char path[4200];
	snprintf(path, sizeof(path), "%s/" SHIM_SOCKET, a->dir);
	unlink(path);
	shim_teardown(&s);
	s.st.status = STATUS_STOPPED;
	s.st.exit_status = s.exit_code;
	state_write(a->dir, &s.st, NULL);
	_exit(s.exit_code);
}

int shim_connect(const char *dir, const char *id, struct agent_client *c, struct error **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/" SHIM_SOCKET, dir);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return error_set(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return error_setx(err, e == ENOENT || e == ECONNREFUSED ? ESRCH : e,
				  "container %s is not running", id);
	}
	int r = agent_client_init(c, fd, err);
	if (r < 0)
		close(fd);
	return r;
}
