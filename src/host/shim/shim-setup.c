/* The shim's start-up: stdio or the console, the control socket, the VM
 * (or the pod's sandbox), then create or restore the container in it. */
#include "shim-setup.h"
#include "shim-checkpoint.h"
#include "shim-control.h"
#include "console.h"
#include "shim-mirror.h"
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
#include "spec.h"
#include "state.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <pty.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>

static void open_sinks(struct shim *s)
{
	shim_sink_open(&s->out_sink, s->out_fd, "", COCOON__OUTPUT_STREAM__OUTPUT_STDOUT);
	shim_sink_open(&s->err_sink, s->err_fd, "", COCOON__OUTPUT_STREAM__OUTPUT_STDERR);
}

/* With a terminal, the engine gets the master of a host pty and the shim
 * relays between its slave and the guest's pty. */
static int setup_stdio(struct shim *s, struct error **err)
{
	s->in_fd = 0;
	s->out_fd = 1;
	s->err_fd = 2;
	s->stdin_open = true;
	if (!s->args->bundle->spec->process->terminal) {
		open_sinks(s);
		/* With a terminal the shim's log goes to --log only, as its
		 * stdio becomes /dev/null (shim.c drop_caller_stdio). */
		shim_output_take_log(s);
		return 0;
	}
	/* A restore's refusal names what the engine's user can change: ctr
	 * 1.6's `containers restore` gives a task plain stdio, so containerd's
	 * runc shim passes no socket (docs/containerd.md). */
	if (!s->args->console_socket && (s->args->restore || s->args->vmsnap_state))
		return error_setx(
			err, EINVAL,
			"process.terminal is true and no --console-socket was given for the restored container's new pty: a container with a terminal is restored onto a new one (as with runc; ctr gives one from 1.7 on, docs/containerd.md)");
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
	open_sinks(s);
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

/* A whole-VM restore: the container came back as it was saved, paused
 * too when it was (containerd pauses a container around every checkpoint,
 * DESIGN.md). A restore yields a running container, as runc's and CRIU's
 * route do, so it is thawed; a running one is left as it is. */
static int thaw_restored(struct shim *s, struct error **err)
{
	if (agent_pause(&s->sb.agent, s->args->id, true, SHIM_CALL_TIMEOUT_MS, err) < 0)
		return error_wrap(err, "thaw the restored container");
	/* Holds of its output saved with the VM are let go. */
	shim_sink_hold_unknown(&s->out_sink);
	shim_sink_hold_unknown(&s->err_sink);
	return 0;
}

/* CRIU's restore log and stats, which the guest wrote into the shared
 * directory: read by fd, bounded, under host-chosen names. */
static void copy_restore_logs(struct shim *s)
{
	char log[128], stats[128];
	if (cocoon_restore_file(log, sizeof(log), s->args->id, COCOON_RESTORE_LOG) < 0 ||
	    cocoon_restore_file(stats, sizeof(stats), s->args->id, COCOON_STATS_RESTORE) < 0)
		return; /* not reached: the ID is checked, at most COCOON_ID_MAX */
	const char *const from[] = {log, stats}, *const to[] = {COCOON_RESTORE_LOG,
								COCOON_STATS_RESTORE};
	/* A pod member has no VM of its own: the guest wrote them into its
	 * pod's (the sandbox's) shared directory. */
	_cleanup_free_ char *pod_shared = NULL;
	const char *shared = s->sb.shared_dir;
	if (!shared && s->args->pod && asprintf(&pod_shared, "%s/shared", s->args->pod->dir) >= 0)
		shared = pod_shared;
	if (!shared)
		return;
	_cleanup_close_ int dirfd = open(shared, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	images_copy_logs_at(dirfd, from, to, ARRAY_SIZE(from), s->args->work_path);
}

static int restore_container(struct shim *s, struct error **err)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__RestoreRequest rr = COCOON__RESTORE_REQUEST__INIT;
	Cocoon__Response *resp = NULL;

	const struct images_chain *ch = s->args->restore;
	Cocoon__ImageShare shares[COCOON_MAX_CHAIN], *ptrs[COCOON_MAX_CHAIN];
	char tags[COCOON_MAX_CHAIN][COCOON_TAG_IMAGES_SIZE], paths[COCOON_MAX_CHAIN][96];
	for (int i = 0; i < ch->n; i++) {
		cocoon__image_share__init(&shares[i]);
		cocoon_images_tag(tags[i], i);
		shares[i].tag = tags[i];
		shares[i].name = ch->names[i];
		/* A pod member's images are in the running VM's pod share. */
		if (s->args->pod) {
			snprintf(paths[i], sizeof(paths[i]), "%s/images%d", s->args->id, i);
			shares[i].tag = (char *)COCOON_TAG_POD;
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
	rr.fault = getenv(COCOON_FAULT_ENV) ? getenv(COCOON_FAULT_ENV) : (char *)"";
	/* A guest that goes quiet fails the restore within the silence bound
	 * (limits.checkpoint_silence_ms), and the VM goes with the shim. A
	 * member's keeper watches its restore (shim_forward_check_deadlines). */
	int silence = shim_silence_ms(s);
	int r = silence > 0
			? agent_call_watched(&s->sb.agent, &req, s->args->id, silence, &resp,
					     SHIM_CHECKPOINT_TIMEOUT_MS, err)
			: agent_call(&s->sb.agent, &req, &resp, SHIM_CHECKPOINT_TIMEOUT_MS, err);
	char *more = NULL;
	if (r == -ETIMEDOUT && err && *err &&
	    asprintf(&more, "%s; the restore failed and its VM is stopped", (*err)->msg) >= 0) {
		free((*err)->msg);
		(*err)->msg = more;
	}
	copy_restore_logs(s);
	if (r < 0)
		return r;
	/* For restore --print-stats. */
	char path[4200], text[512];
	snprintf(path, sizeof(path), "%s/" RESTORE_STATS_FILE, s->args->dir);
	int n = snprintf(
		text, sizeof(text),
		"{\"boot_ms\": %lld, \"template\": %s, \"criu_ms\": %llu, \"copy_ms\": %llu, \"restore_us\": %u}\n",
		s->sb.boot_ms, s->sb.from_template ? "true" : "false",
		(unsigned long long)resp->restore->restore_ms,
		(unsigned long long)resp->restore->copy_ms,
		resp->restore->stats ? resp->restore->stats->restore_us : 0);
	(void)write_file_atomic(path, text, (size_t)n, 0600, NULL); /* stats: best effort */
	/* The engine's new master shows the size the container has. */
	if (resp->restore->console_size && s->tty.fd >= 0 &&
	    console_watch_apply(&s->tty, resp->restore->console_size) == -ERANGE)
		log_warning(
			"restore %s: the guest reported a terminal size of %ux%u: out of range, ignored",
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
				 a->restore ? images_chain_paths(a->restore) : NULL,
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
		.vmm_log_path = s->sb.vmm_log,
		.vfs_log_dir = s->sb.dir,
		.shared_dir = s->sb.shared_dir,
		.shared_cap = cfg->shared_max_bytes ? (uint64_t)cfg->shared_max_bytes
						    : ((uint64_t)s->sb.memory_mib * 2 + 256) << 20,
		.vmm = s->sb.vm.pid,
		.aux = s->sb.vm.aux,
		.n_aux = VM_MAX_AUX,
		.id = s->args->id,
	};
	return guard_start(&s->guard, &o, err);
}

/* The pod's limits, for the pod's cgroup in the guest
 * (ContainerSpec.pod_resources, docs/pods.md "The pod's limits in the
 * guest"): only what the engine said for the whole pod, and only for a VM
 * that takes members (a pod share; a whole-VM one has none). Limits that
 * the guest would refuse fail the container here, naming their source. */
static int pod_resources_set(struct shim *s, const struct pod_limits *pl, struct error **err)
{
	struct shim_args *a = s->args;
	if (!pod_may_host_members(a->bundle) || a->vmsnap ||
	    !(pl->memory || pl->cpu_quota || pl->pids))
		return 0;
	uint64_t period = pl->cpu_quota ? pl->cpu_period : 0;
	const char *bad = cocoon_pod_limits_check(pl->memory, pl->pids, pl->cpu_quota, period, 0);
	if (bad)
		return error_set(err, EINVAL, "pod limits from %s: %s", pl->source, bad);
	Cocoon__Resources *r = malloc(sizeof(*r));
	if (!r)
		return error_set(err, ENOMEM, "pod limits");
	cocoon__resources__init(r);
	r->memory_limit = pl->memory;
	r->pids_limit = pl->pids;
	r->cpu_quota = pl->cpu_quota;
	r->cpu_period = period;
	free(a->bundle->spec->pod_resources);
	a->bundle->spec->pod_resources = r; /* spec_free's */
	return 0;
}

/* The VM's size: from the container's limits (resources.h), or, for a
 * container that may be a pod's sandbox, from the pod's limits when the
 * engine says them (pod_limits_of); then what the pod's containers may
 * take together (member_fits, shim-pod.c). */
static int vm_size(struct shim *s, struct sandbox_options *opts, struct error **err)
{
	struct shim_args *a = s->args;
	const Cocoon__Resources *own = a->bundle->spec->resources;
	struct pod_limits pl;
	int r = pod_vm_size(&a->g->cfg, a->bundle, "/sys/fs/cgroup", &opts->memory_mib,
			    &opts->vcpus, &pl, err);
	if (r < 0 || (r = pod_resources_set(s, &pl, err)) < 0)
		return r;
	s->vcpus = opts->vcpus;
	s->own_mib = own ? shim_mib_of(own->memory_limit) : 0;
	if (pl.memory) {
		s->pod_room_mib = shim_mib_of(pl.memory);
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
	/* QEMU and virtiofsd are the sandbox's overhead: out of a pod's host
	 * limits that the VM would exceed (podman's conmon sits in the pod's
	 * cgroup), so the host does not OOM-kill the pod's VM (rev16c F1). */
	_cleanup_error_ struct error *oh_err = NULL;
	if (cgoverhead_enter(&s->overhead, "/sys/fs/cgroup", "/proc/self/cgroup", a->id,
			     opts->memory_mib, opts->vcpus, &oh_err) < 0)
		log_warning(
			"container %s: %s; its VM stays in the engine's cgroup, under its limits",
			a->id, oh_err->msg);

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
	} else if (spec_wants_late_network(a->bundle) && (!a->restore || a->vmsnap_state)) {
		/* The engine configures the shim's own namespace after
		 * create (podman --uidmap): a NIC for it from boot. Not for
		 * CRIU's restore, which has no start to carry it at; a saved
		 * VM has the NIC it was saved with. */
		if ((r = network_reserve(&s->net, a->id, err)) < 0)
			return r;
		net_fds[0] = s->net.reserved.tap_fd;
		net_macs[0] = NET_RESERVED_MAC;
		opts->net_fds = net_fds;
		opts->net_macs = net_macs;
		opts->n_nets = 1;
	}
	r = sandbox_boot(&s->sb, &a->g->cfg, a->dir, opts, err);
	/* A VM from a template has its NICs with placeholder MACs: the agent
	 * finds each by its placeholder and gives it the engine's MAC. A
	 * reserved NIC gets its own at start (network_adopt). */
	if (r == 0 && s->sb.from_template)
		r = network_placeholders(&s->net, err);
	/* A whole-VM restore: QEMU has loaded the state (or failed to). The
	 * shim lives as long as the container, and this descriptor kept the
	 * checkpoint's vm.state, or the unnamed file vm.state.zst was
	 * decompressed into, and so its disk space, taken until then. */
	if (a->vmsnap_state_fd > 2) {
		close(a->vmsnap_state_fd);
		a->vmsnap_state_fd = -1;
		opts->vmsnap_state_fd = -1;
	}
	/* QEMU has the taps now: they go when it does. */
	for (int i = 0; i < s->net.n_ifs; i++) {
		close(s->net.ifs[i].tap_fd);
		s->net.ifs[i].tap_fd = -1;
	}
	if (s->net.has_reserved) {
		close(s->net.reserved.tap_fd);
		s->net.reserved.tap_fd = -1;
	}
	opts->n_nets = 0;
	opts->pod_dir = NULL;
	opts->volumes_dir = NULL;
	opts->net_fds = NULL;
	opts->net_macs = NULL;
	if (r < 0)
		return error_wrap(err, "boot VM");
	return start_guard(s, err);
}

int shim_setup(struct shim *s, struct error **err)
{
	struct shim_args *a = s->args;
	struct sandbox_options opts = {.rootfs_dir = a->bundle->rootfs,
				       .keep_dir_on_failure = true,
				       .vmsnap = a->vmsnap,
				       .vmsnap_state = a->vmsnap_state,
				       .vmsnap_state_fd = a->vmsnap_state_fd,
				       .vmsnap_key = a->vmsnap_key};
	if (a->restore) {
		opts.images_dirs = images_chain_paths(a->restore);
		opts.n_images_dirs = a->restore->n;
	}
	int r;

	s->listen_fd = -1;
	if ((r = setup_stdio(s, err)) < 0)
		return r;
	shim_mirror_setup(s);
	if (a->pod) {
		if ((r = member_setup(s, err)) < 0)
			return r;
	} else if ((r = sandbox_setup(s, &opts, err)) < 0) {
		return r;
	}
	s->sb.agent.on_event = shim_on_agent_event;
	s->sb.agent.on_progress = shim_on_agent_progress;
	s->sb.agent.on_reply = shim_agent_reply;
	s->sb.agent.event_userdata = s;
	/* Every send to the guest (or, for a member, to its pod's keeper) has
	 * a deadline, and its error names the container (agent-client.h). */
	s->sb.agent.send_timeout_ms = (int)a->g->cfg.channel_send_timeout_ms;
	snprintf(s->sb.agent.what, sizeof(s->sb.agent.what), "container %s", a->id);
	/* A whole-VM restore: the container came back with its VM. */
	if ((r = a->vmsnap_state ? thaw_restored(s, err)
		 : a->restore	 ? restore_container(s, err)
				 : create_container(s, err)) < 0 ||
	    (r = listen_control(s, err)) < 0)
		return r;
	/* A hold left by a checkpoint with --tcp-established ends once the
	 * container runs again with its connections (network.h). */
	_cleanup_error_ struct error *rel_err = NULL;
	if (s->net.sk && network_release(&s->net, &rel_err) < 0)
		log_warning("container %s: %s", a->id, rel_err->msg);
	shim_mirror_join(s);
	if (a->vmsnap_state) {
		/* For restore --print-stats: the VM's start is the whole restore. */
		char path[4200], text[256];
		snprintf(path, sizeof(path), "%s/" RESTORE_STATS_FILE, a->dir);
		int n = snprintf(
			text, sizeof(text),
			"{\"boot_ms\": %lld, \"template\": false, \"whole_vm\": true, \"criu_ms\": 0, \"copy_ms\": 0, \"restore_us\": 0}\n",
			s->sb.boot_ms);
		(void)write_file_atomic(path, text, (size_t)n, 0600, NULL); /* stats: best effort */
	}
	s->st.status = a->restore || a->vmsnap_state ? STATUS_RUNNING : STATUS_CREATED;
	return state_write(a->dir, &s->st, err);
}
