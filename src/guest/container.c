/* Containers in the guest.
 *
 * Creating one: the agent clones a child into new namespaces. The child
 * builds the container (mounts, pivot_root, hostname, credentials) and then
 * reports on its sync pipe: "\0" when it is ready, or an error text. It then
 * waits for one byte on its start pipe (runc's create/start split), and
 * execs. The sync pipe is close-on-exec, so EOF there means the exec
 * succeeded; an error text means it did not.
 *
 * Nothing here blocks the agent: every step's answer arrives through poll().
 */
#include "channel.h"
#include "init.h"
#include "agent.h"
#include "cleanup.h"
#include "cgroups.h"
#include "confine.h"
#include "container.h"
#include "container-child.h"
#include "container-clone.h"
#include "devcg.h"
#include "mounts.h"
#include "network.h"
#include "sysctl.h"
#include "terminal.h"

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

struct agent_container *container_find(struct agent *a, const char *id)
{
	for (int i = 0; i < AGENT_MAX_CONTAINERS; i++)
		if (a->containers[i].used && strcmp(a->containers[i].id, id) == 0)
			return &a->containers[i];
	return NULL;
}

struct agent_proc *container_find_proc(struct agent_container *c, const char *exec_id)
{
	for (int i = 0; i < AGENT_MAX_PROCS; i++)
		if (c->procs[i].used && strcmp(c->procs[i].exec_id, exec_id ? exec_id : "") == 0)
			return &c->procs[i];
	return NULL;
}

void container_close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void container_proc_reset(struct agent_proc *p)
{
	memset(p, 0, sizeof(*p));
	p->sync_fd = p->start_fd = p->stdin_fd = p->out_fd[0] = p->out_fd[1] = -1;
	p->pidfd = -1;
}

void container_proc_release(struct agent_proc *p)
{
	container_close_fd(&p->sync_fd);
	container_close_fd(&p->start_fd);
	container_close_fd(&p->stdin_fd);
	container_close_fd(&p->out_fd[0]);
	container_close_fd(&p->out_fd[1]);
	container_close_fd(&p->pidfd);
	container_proc_reset(p);
}

void container_free(struct agent_container *c)
{
	for (int i = 0; i < AGENT_MAX_PROCS; i++)
		container_proc_release(&c->procs[i]);
	if (c->rootfs[0])
		(void)umount2(c->rootfs, MNT_DETACH); /* its VM goes on; nothing to report */
	if (c->cgroup[0])
		rmdir(c->cgroup);
	/* Busy while another container of the pod is in it: the last one
	 * removes it. */
	if (c->pod_cgroup[0])
		rmdir(c->pod_cgroup);
	for (size_t i = 0; i < c->n_binds; i++) {
		free(c->bind_dests[i]);
		free(c->bind_sources[i]);
	}
	if (c->spec)
		cocoon__container_spec__free_unpacked(c->spec, NULL);
	memset(c, 0, sizeof(*c));
}

/* Takes a forked process into the table: its pipes, and the request its
 * sync pipe will answer. */
void container_proc_register(struct agent_proc *p, pid_t pid, enum proc_phase phase,
			     const struct container_stdio *io, int sync_fd, bool terminal,
			     uint64_t pending_id)
{
	container_proc_reset(p);
	p->used = true;
	p->pid = pid;
	p->phase = phase;
	p->sync_fd = sync_fd;
	p->stdin_fd = io->agent_in;
	p->out_fd[0] = io->agent_out;
	p->out_fd[1] = io->agent_err;
	p->terminal = terminal;
	p->pending_id = pending_id;
	p->exec_awaited = phase == PROC_STARTING;
	(void)fcntl(p->sync_fd, F_SETFL, O_NONBLOCK); /* cannot fail on an open fd */
}

void container_stdio_close_child(struct container_stdio *p)
{
	for (int i = 0; i < 3; i++)
		if (p->child[i] >= 0 && (i == 0 || p->child[i] != p->child[0]))
			close(p->child[i]);
}

int container_stdio_open(struct container_stdio *p, const Cocoon__ProcessSpec *proc)
{

	if (proc->terminal) {
		int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0)
			return -errno;
		int slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (slave < 0)
			return -errno;
		p->child[0] = p->child[1] = p->child[2] = slave;
		p->agent_in = master;
		p->agent_out = dup(master);
		p->agent_err = -1;
		(void)fcntl(p->agent_out, F_SETFD, FD_CLOEXEC); /* cannot fail on an open fd */
		(void)fcntl(master, F_SETFL, O_NONBLOCK);	/* cannot fail on an open fd */
		/* The host bounded the size (spec.c): nothing here can fail
		 * but the ioctl on a pty just made. */
		(void)terminal_set_size(master, proc->console_size);
		return 0;
	}
	/* Pipes, never files: CRIU cannot restore a task holding a regular
	 * file whose size changed since the dump. */
	int agent[3];
	int r = stdio_pipes_open(p->child, agent);
	if (r < 0)
		return r;
	p->agent_in = agent[0];
	p->agent_out = agent[1];
	p->agent_err = agent[2];
	return 0;
}

static struct agent_container *container_alloc(struct agent *a, const char *id)
{
	for (int i = 0; i < AGENT_MAX_CONTAINERS; i++) {
		struct agent_container *c = &a->containers[i];
		if (c->used)
			continue;
		memset(c, 0, sizeof(*c));
		for (int j = 0; j < AGENT_MAX_PROCS; j++)
			container_proc_reset(&c->procs[j]);
		c->used = true;
		snprintf(c->id, sizeof(c->id), "%s", id);
		return c;
	}
	return NULL;
}

/* A directory of a share, relative and without "..": the host names it. */
static bool valid_share_path(const char *p)
{
	if (!*p || p[0] == '/' || strlen(p) > 200)
		return false;
	for (const char *s = p; s; s = strchr(s, '/')) {
		s += *s == '/';
		if (strncmp(s, "..", 2) == 0 && (s[2] == '/' || !s[2]))
			return false;
	}
	return true;
}

/* A share that stays mounted at /run/cocoon/<tag> once mounted (the pod
 * share): OUT gets the path of its directory PATH. */
int container_share_dir(const char *tag, const char *path, char *out, size_t size)
{
	char share[64];
	struct stat here, parent;
	if (strchr(tag, '/') || strlen(tag) > 32 || !valid_share_path(path))
		return -EINVAL;
	snprintf(share, sizeof(share), COCOON_GUEST_RUN_DIR "/%s", tag);
	mkdir(COCOON_GUEST_RUN_DIR, 0711);
	mkdir(share, 0700);
	if ((stat(share, &here) < 0 || stat(COCOON_GUEST_RUN_DIR, &parent) < 0 ||
	     here.st_dev == parent.st_dev) &&
	    agent_mount_9p(tag, share, 0, "mmap") < 0)
		return -errno;
	if ((size_t)snprintf(out, size, "%s/%s", share, path) >= size)
		return -ENAMETOOLONG;
	return 0;
}

/* A pod member's rootfs is one directory of the pod share, which stays
 * mounted at /run/cocoon/<tag> once mounted: the sources of the member's
 * bind mounts are there too. */
static int mount_rootfs_from(struct agent_container *c, const char *tag, const char *path)
{
	char from[400];
	int r = container_share_dir(tag, path, from, sizeof(from));
	if (r < 0)
		return r;
	return mount(from, c->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0 ? -errno : 0;
}

/* virtiofs: rootfs_fs "virtiofs", or a VM booted for whole-VM checkpoints
 * (no 9p share at all). */
_Static_assert(sizeof(((struct agent_container *)0)->rootfs) >=
		       sizeof(AGENT_CONTAINER_DIR) + COCOON_ID_MAX + sizeof("/rootfs"),
	       "struct agent_container: rootfs too short for its path");
static int mount_rootfs(struct agent_container *c, const Cocoon__ContainerSpec *s, bool virtiofs,
			struct error **err)
{
	const char *tag = s->rootfs_tag, *path = s->rootfs_path;
	char dir[sizeof(AGENT_CONTAINER_DIR) + COCOON_ID_MAX + 1];
	snprintf(dir, sizeof(dir), AGENT_CONTAINER_DIR "/%s", c->id);
	/* Passable for a container in a user namespace (init.c). */
	mkdir(AGENT_CONTAINER_DIR, 0711);
	mkdir(dir, 0711);
	snprintf(c->rootfs, sizeof(c->rootfs), "%s/rootfs", dir);
	mkdir(c->rootfs, 0755);
	if (path && *path && !valid_share_path(path)) {
		c->rootfs[0] = 0;
		return error_setx(err, EINVAL,
				  "rootfs path '%s' is not a relative path without '..'", path);
	}
	/* cache=mmap: executables are mmapped; 9p's cache=none cannot share
	 * writable mappings. */
	int r = path && *path ? mount_rootfs_from(c, tag, path)
		: virtiofs    ? (mount(tag, c->rootfs, "virtiofs", 0, NULL) < 0 ? -errno : 0)
		: agent_mount_9p(tag, c->rootfs, 0, "mmap") < 0 ? -errno
								: 0;
	if (r < 0) {
		c->rootfs[0] = 0;
		return error_set(err, -r, "mount rootfs (%s tag %s%s%s)",
				 virtiofs ? "virtiofs" : "9p", tag, path && *path ? ", " : "",
				 path ? path : "");
	}
	return 0;
}

/* Pods: the namespaces a container shares with another container of the
 * VM, opened by the agent before the clone and entered by the child. */
int container_open_join_namespaces(struct agent *a, const Cocoon__ContainerSpec *s, int fds[3],
				   struct error **err)
{
	static const char *const types[] = {"network", "ipc", "uts"}, *const files[] = {
									      "net", "ipc", "uts"};
	for (int i = 0; i < 3; i++)
		fds[i] = -1;
	if (!s->join_container || !*s->join_container)
		return 0;
	struct agent_container *owner = container_find(a, s->join_container);
	if (!owner || !owner->procs[0].used || owner->procs[0].phase == PROC_EXITED)
		return error_setx(err, ESRCH, "pod container %s is not running in this VM",
				  s->join_container);
	for (size_t j = 0; j < s->n_join_namespaces; j++) {
		int i = 0;
		while (i < 3 && strcmp(s->join_namespaces[j], types[i]) != 0)
			i++;
		if (i == 3)
			return error_setx(err, EINVAL, "joining a %s namespace is not supported",
					  s->join_namespaces[j]);
		if (fds[i] >= 0)
			continue;
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", owner->procs[0].pid, files[i]);
		if ((fds[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			return error_set(err, errno, "%s of pod container %s", path, owner->id);
	}
	return 0;
}

/* The volumes share holds every bind mount source of the sandbox: mounted
 * once, by the first container that needs it. 9p with cache=mmap, as the
 * rootfs: reads and writes go straight to the host, so either side sees the
 * other's writes, and shared writable mappings work. */
static int mount_volumes(struct agent *a)
{
	if (a->volumes_mounted)
		return 0;
	mkdir(COCOON_GUEST_RUN_DIR, 0711);
	mkdir(COCOON_GUEST_VOLUMES_DIR, 0700); /* under the share's root (volumes.c) */
	int r = a->virtiofs
			? mount(COCOON_TAG_VOLUMES, COCOON_GUEST_VOLUMES_DIR, "virtiofs", 0, NULL)
			: agent_mount_9p(COCOON_TAG_VOLUMES, COCOON_GUEST_VOLUMES_DIR, 0, "mmap");
	if (r < 0)
		return -errno;
	a->volumes_mounted = true;
	return 0;
}

/* The spec's bind mounts: their sources must come from the volumes share,
 * and CRIU will need them by name. */
static int container_note_binds(struct agent *a, struct agent_container *c,
				const Cocoon__ContainerSpec *s, struct error **err)
{
	/* A pod member's volumes are in its own directory of the pod share,
	 * which mount_rootfs mounted (host/pod.h). */
	char pod_volumes[sizeof(COCOON_GUEST_POD_DIR) + COCOON_ID_MAX + sizeof("/volumes/")] = "";
	if (s->join_container && *s->join_container)
		snprintf(pod_volumes, sizeof(pod_volumes), COCOON_GUEST_POD_DIR "/%s/volumes/",
			 c->id);
	for (size_t i = 0; i < s->n_mounts; i++) {
		const Cocoon__Mount *m = s->mounts[i];
		if (strcmp(m->type, "bind") != 0)
			continue;
		size_t n = strlen(COCOON_GUEST_VOLUMES_DIR);
		bool in_pod = m->source && *pod_volumes &&
			      strncmp(m->source, pod_volumes, strlen(pod_volumes)) == 0;
		if (!m->source ||
		    (!in_pod && strncmp(m->source, COCOON_GUEST_VOLUMES_DIR "/", n + 1) != 0) ||
		    strstr(m->source, ".."))
			return error_setx(err, EINVAL,
					  "mount %s: bind source %s is not in the volumes share",
					  m->destination, m->source ? m->source : "(none)");
		if (c->n_binds == COCOON_MAX_BINDS)
			return error_setx(err, E2BIG, "at most %d bind mounts", COCOON_MAX_BINDS);
		int r = in_pod ? 0 : mount_volumes(a);
		if (r < 0)
			return error_set(err, -r, "mount the volumes share (%s tag %s)",
					 a->virtiofs ? "virtiofs" : "9p", COCOON_TAG_VOLUMES);
		c->bind_dests[c->n_binds] = strdup(m->destination);
		c->bind_sources[c->n_binds] = strdup(m->source);
		if (!c->bind_dests[c->n_binds] || !c->bind_sources[c->n_binds]) {
			free(c->bind_dests[c->n_binds]);
			free(c->bind_sources[c->n_binds]);
			return error_setx(err, ENOMEM, "out of memory");
		}
		c->n_binds++;
	}
	return 0;
}

static Cocoon__ContainerSpec *container_spec_dup(const Cocoon__ContainerSpec *s)
{
	size_t len = cocoon__container_spec__get_packed_size(s);
	_cleanup_free_ uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return NULL;
	cocoon__container_spec__pack(s, buf);
	return cocoon__container_spec__unpack(NULL, len, buf);
}

struct agent_container *container_new(struct agent *a, const char *id,
				      const Cocoon__ContainerSpec *s, struct error **err)
{
	if (container_find(a, id)) {
		(void)error_setx(err, EEXIST, "container %s exists in this VM", id);
		return NULL;
	}
	struct agent_container *c = container_alloc(a, id);
	if (!c) {
		(void)error_setx(err, EMFILE, "at most %d containers per VM", AGENT_MAX_CONTAINERS);
		return NULL;
	}
	const char *joins = s->join_container && *s->join_container ? s->join_container : NULL;
	struct agent_container *owner = joins ? container_find(a, joins) : NULL;
	if (cgroups_container_make(id, joins, s->pod_resources, owner ? owner->pod_cgroup : NULL,
				   c->cgroup, c->pod_cgroup, err) < 0) {
		container_free(c);
		return NULL;
	}
	if (mount_rootfs(c, s, a->rootfs_virtiofs, err) < 0) {
		container_free(c);
		return NULL;
	}
	/* Kept for exec (the seccomp filter) and checkpoints (masked paths). */
	c->spec = container_spec_dup(s);
	if (!c->spec) {
		(void)error_setx(err, ENOMEM, "out of memory");
		container_free(c);
		return NULL;
	}
	c->dev_tmpfs = mounts_tmpfs_at(s, "/dev") != NULL;
	c->shm_tmpfs = mounts_tmpfs_at(s, "/dev/shm") != NULL;
	c->own_netns = container_has_ns(s, "network");
	if (container_note_binds(a, c, s, err) < 0) {
		container_free(c);
		return NULL;
	}
	if (s->resources) {
		c->limits = *s->resources;
		c->has_limits = true;
	}
	return c;
}

void container_proc_set_running(struct agent_container *c, pid_t pid, int in, int out, int err,
				bool terminal)
{
	struct agent_proc *p = &c->procs[0];
	container_proc_reset(p);
	p->used = true;
	p->pid = pid;
	p->phase = PROC_RUNNING;
	p->stdin_fd = in;
	p->out_fd[0] = out;
	p->out_fd[1] = err;
	p->terminal = terminal;
}

/* The engine's network, into the new container's namespace; the agent
 * does it before it answers create, while the child sets up its mounts. */
static int join_network(pid_t pid, const Cocoon__NetworkSpec *net, struct error **err)
{
	if (!net || net->n_interfaces == 0)
		return 0;
	_cleanup_close_ int ns = container_open_ns(pid, "net");
	if (ns < 0)
		return error_set(err, errno, "network: the container's namespace");
	return net_configure(net, ns, err);
}

void container_handle_create(struct agent *a, uint64_t id,
			     const Cocoon__CreateContainerRequest *req)
{
	const Cocoon__ContainerSpec *s = req ? req->spec : NULL;
	_cleanup_error_ struct error *e = NULL;
	int sync[2] = {-1, -1}, start[2] = {-1, -1}, join[3] = {-1, -1, -1};
	struct container_stdio io = {
		.child = {-1, -1, -1}, .agent_in = -1, .agent_out = -1, .agent_err = -1};

	if (!s || !s->process || s->process->n_args == 0 || !cocoon_id_valid(s->id) ||
	    !s->rootfs_tag) {
		agent_send_error(a, id, EINVAL, "create: incomplete container spec");
		return;
	}
	struct agent_container *c = container_new(a, s->id, s, &e);
	if (!c) {
		agent_send_error(a, id, EINVAL, "create %s: %s", s->id, error_msg(e));
		return;
	}
	if ((c->has_limits && cgroups_apply(c->cgroup, &c->limits, 0, &e) < 0) ||
	    cgroups_apply_unified(c->cgroup, s->unified, s->n_unified, &e) < 0 ||
	    devcg_apply(c->cgroup, s->device_rules, s->n_device_rules, &e) < 0)
		goto fail;
	if (container_open_join_namespaces(a, s, join, &e) < 0)
		goto fail;
	if (container_stdio_open(&io, s->process) < 0 || pipe2(sync, O_CLOEXEC) < 0 ||
	    pipe2(start, O_CLOEXEC) < 0) {
		(void)error_set(&e, errno, "pipes");
		goto fail;
	}
	pid_t pid = container_clone(s, c->cgroup, &e);
	if (pid < 0)
		goto fail;
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		(void)sigprocmask(SIG_SETMASK, &none, NULL); /* cannot fail: a valid set */
		close(sync[0]);
		close(start[1]);
		container_child_init(s, c->rootfs, c->cgroup, join, sync[1], start[0], io.child[0],
				     io.child[1], io.child[2], s->process->terminal);
	}
	close(sync[1]);
	close(start[0]);
	container_stdio_close_child(&io);
	/* Outside its cgroup the container would run without its limits. */
	if (cgroups_join(c->cgroup, pid) < 0) {
		(void)error_set(&e, errno, "join the container's cgroup %s", c->cgroup);
		kill(pid, SIGKILL);
		sync[1] = start[0] = -1;
		io.child[0] = io.child[1] = io.child[2] = -1;
		goto fail;
	}
	/* The net.* sysctls once the interfaces are in (per-interface keys). */
	if ((c->own_netns && join_network(pid, s->network, &e) < 0) ||
	    sysctl_apply_net_of(s, pid, c->own_netns ? -1 : join[0], &e) < 0) {
		kill(pid, SIGKILL);
		sync[1] = start[0] = -1;
		io.child[0] = io.child[1] = io.child[2] = -1;
		goto fail;
	}

	for (int i = 0; i < 3; i++)
		container_close_fd(&join[i]);
	struct agent_proc *p = &c->procs[0];
	container_proc_register(p, pid, PROC_SETUP, &io, sync[0], s->process->terminal, id);
	p->start_fd = start[1];
	return;
fail:
	for (int i = 0; i < 3; i++)
		container_close_fd(&join[i]);
	for (int i = 0; i < 2; i++) {
		if (sync[i] >= 0)
			close(sync[i]);
		if (start[i] >= 0)
			close(start[i]);
	}
	container_stdio_close_child(&io);
	if (io.agent_in >= 0)
		close(io.agent_in);
	if (io.agent_out >= 0)
		close(io.agent_out);
	if (io.agent_err >= 0)
		close(io.agent_err);
	container_free(c);
	agent_send_error(a, id, EINVAL, "create %s: %s", s->id, error_msg(e));
}

void container_handle_start(struct agent *a, uint64_t id, const Cocoon__StartContainerRequest *req)
{
	struct agent_container *c = req ? container_find(a, req->id) : NULL;
	struct agent_proc *p = c ? &c->procs[0] : NULL;

	if (!c) {
		agent_send_error(a, id, ENOENT, "start: no such container");
		return;
	}
	if (p->phase != PROC_CREATED) {
		agent_send_error(a, id, EBUSY, "start %s: container is not in the created state",
				 c->id);
		return;
	}
	/* What the engine configured in the namespace after create, on the
	 * VM's reserved NIC, before the container's process runs
	 * (docs/networking.md, "configured after create"). */
	_cleanup_error_ struct error *e = NULL;
	if (req->network && req->network->n_interfaces > 0 &&
	    (!c->own_netns || join_network(p->pid, req->network, &e) < 0)) {
		agent_send_error(
			a, id, EINVAL, "start %s: %s", c->id,
			c->own_netns
				? error_msg(e)
				: "network: the container has no network namespace of its own");
		return;
	}
	if (write(p->start_fd, "s", 1) != 1) {
		agent_send_error(a, id, errno, "start %s: %s", c->id, strerror(errno));
		return;
	}
	container_close_fd(&p->start_fd);
	p->phase = PROC_STARTING;
	p->exec_awaited = true;
	p->pending_id = id;
}

void container_send_ok(struct agent *a, uint64_t id, int body_case, void *body)
{
	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	resp.id = id;
	resp.body_case = body_case;
	/* Every body is a pointer in the same union. */
	resp.pong = body;
	agent_send_response(a, &resp);
}
