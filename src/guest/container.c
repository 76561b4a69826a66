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
#include "agent.h"
#include "cleanup.h"
#include "cgroups.h"
#include "confine.h"
#include "container.h"
#include "execs.h"
#include "guard.h"
#include "mounts.h"
#include "network.h"
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

/* Output read in one go, and the reply queue level above which the agent
 * stops reading container output until the host catches up. */
#define OUTPUT_CHUNK (32 * 1024)
#define OUTQ_HIGH_WATER (1024 * 1024)

struct agent_container *container_find(struct agent *a, const char *id)
{
	for (int i = 0; i < AGENT_MAX_CONTAINERS; i++)
		if (a->containers[i].used && strcmp(a->containers[i].id, id) == 0)
			return &a->containers[i];
	return NULL;
}

static struct agent_proc *find_proc(struct agent_container *c, const char *exec_id)
{
	for (int i = 0; i < AGENT_MAX_PROCS; i++)
		if (c->procs[i].used && strcmp(c->procs[i].exec_id, exec_id ? exec_id : "") == 0)
			return &c->procs[i];
	return NULL;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void proc_reset(struct agent_proc *p)
{
	memset(p, 0, sizeof(*p));
	p->sync_fd = p->start_fd = p->stdin_fd = p->out_fd[0] = p->out_fd[1] = -1;
	p->pidfd = -1;
}

static void proc_release(struct agent_proc *p)
{
	close_fd(&p->sync_fd);
	close_fd(&p->start_fd);
	close_fd(&p->stdin_fd);
	close_fd(&p->out_fd[0]);
	close_fd(&p->out_fd[1]);
	close_fd(&p->pidfd);
	proc_reset(p);
}

void container_free(struct agent_container *c)
{
	for (int i = 0; i < AGENT_MAX_PROCS; i++)
		proc_release(&c->procs[i]);
	if (c->rootfs[0])
		umount2(c->rootfs, MNT_DETACH);
	if (c->cgroup[0])
		rmdir(c->cgroup);
	for (size_t i = 0; i < c->n_binds; i++) {
		free(c->bind_dests[i]);
		free(c->bind_sources[i]);
	}
	if (c->spec)
		cocoon__container_spec__free_unpacked(c->spec, NULL);
	memset(c, 0, sizeof(*c));
}

/* ---- the child side ------------------------------------------------------ */

/* Reports a setup error to the agent and exits. Only for the child. */
static void __attribute__((noreturn, format(printf, 2, 3)))
child_fail(int sync_fd, const char *fmt, ...)
{
	char msg[480];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n > 0 && write(sync_fd, msg, strnlen(msg, sizeof(msg))) < 0)
		_exit(126);
	_exit(126);
}

static const struct {
	const char *name;
	int resource;
} rlimit_names[] = {
	{"RLIMIT_AS", RLIMIT_AS},
	{"RLIMIT_CORE", RLIMIT_CORE},
	{"RLIMIT_CPU", RLIMIT_CPU},
	{"RLIMIT_DATA", RLIMIT_DATA},
	{"RLIMIT_FSIZE", RLIMIT_FSIZE},
	{"RLIMIT_LOCKS", RLIMIT_LOCKS},
	{"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
	{"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
	{"RLIMIT_NICE", RLIMIT_NICE},
	{"RLIMIT_NOFILE", RLIMIT_NOFILE},
	{"RLIMIT_NPROC", RLIMIT_NPROC},
	{"RLIMIT_RSS", RLIMIT_RSS},
	{"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
	{"RLIMIT_RTTIME", RLIMIT_RTTIME},
	{"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
	{"RLIMIT_STACK", RLIMIT_STACK},
};

/* Credentials, capabilities, limits, cwd and stdio: shared by the init and
 * by execs. The order is runc's (see confine.c). */
static void child_enter_process(int sync_fd, const Cocoon__ProcessSpec *p,
				const Cocoon__Seccomp *seccomp, int in, int out, int err,
				bool terminal)
{
	char msg[400];

	for (size_t i = 0; i < p->n_rlimits; i++) {
		int res = -1;
		for (size_t j = 0; j < ARRAY_SIZE(rlimit_names); j++)
			if (strcmp(rlimit_names[j].name, p->rlimits[i]->type) == 0)
				res = rlimit_names[j].resource;
		struct rlimit rl = {.rlim_cur = p->rlimits[i]->soft,
				    .rlim_max = p->rlimits[i]->hard};
		if (res < 0 || setrlimit(res, &rl) < 0)
			child_fail(sync_fd, "process.rlimits: %s: %s", p->rlimits[i]->type,
				   res < 0 ? "unknown limit" : strerror(errno));
	}
	/* Its own session, as with runc: CRIU refuses to dump a task whose
	 * session leader is outside the container's pid namespace. */
	setsid();
	if (terminal && ioctl(in, TIOCSCTTY, 0) < 0)
		child_fail(sync_fd, "terminal: TIOCSCTTY: %s", strerror(errno));
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		child_fail(sync_fd, "stdio: %s", strerror(errno));
	if (!p->no_new_privileges && confine_seccomp_load(seccomp, msg, sizeof(msg)) < 0)
		child_fail(sync_fd, "%s", msg);
	if (confine_caps_bound(p->capabilities, msg, sizeof(msg)) < 0)
		child_fail(sync_fd, "%s", msg);
	gid_t groups[64];
	size_t ng = p->n_additional_gids < 64 ? p->n_additional_gids : 64;
	for (size_t i = 0; i < ng; i++)
		groups[i] = p->additional_gids[i];
	if (setgroups(ng, groups) < 0)
		child_fail(sync_fd, "process.user.additionalGids: %s", strerror(errno));
	if (setgid(p->gid) < 0)
		child_fail(sync_fd, "process.user.gid %u: %s", p->gid, strerror(errno));
	if (setuid(p->uid) < 0)
		child_fail(sync_fd, "process.user.uid %u: %s", p->uid, strerror(errno));
	if (confine_caps_apply(p->capabilities, msg, sizeof(msg)) < 0)
		child_fail(sync_fd, "%s", msg);
	if (p->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(sync_fd, "process.noNewPrivileges: %s", strerror(errno));
	if (chdir(p->cwd && *p->cwd ? p->cwd : "/") < 0)
		child_fail(sync_fd, "process.cwd %s: %s", p->cwd, strerror(errno));
}

/* Waits for start, then execs. The environment becomes the process's own
 * first, so that execvp() searches the container's PATH. */
static void __attribute__((noreturn))
child_exec(int sync_fd, int start_fd, const Cocoon__ProcessSpec *p, const Cocoon__Seccomp *seccomp)
{
	char msg[400];
	char go;
	if (start_fd >= 0) {
		ssize_t n;
		do
			n = read(start_fd, &go, 1);
		while (n < 0 && errno == EINTR);
		if (n != 1)
			_exit(0); /* deleted before it was started */
		close(start_fd);
	}
	/* The death signal guarded the set-up only. Left in place it would
	 * be checkpointed too, and CRIU would deliver it to the restored task
	 * the moment CRIU exits. */
	prctl(PR_SET_PDEATHSIG, 0);
	clearenv();
	for (size_t i = 0; i < p->n_env; i++)
		putenv(p->env[i]);
	if (!getenv("PATH"))
		setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
	/* protobuf-c arrays carry a count, not a NULL terminator. */
	char **argv = calloc(p->n_args + 1, sizeof(char *));
	if (!argv)
		child_fail(sync_fd, "exec: out of memory");
	memcpy(argv, p->args, p->n_args * sizeof(char *));
	if (p->no_new_privileges && confine_seccomp_load(seccomp, msg, sizeof(msg)) < 0)
		child_fail(sync_fd, "%s", msg);
	execvp(argv[0], argv);
	child_fail(sync_fd, "exec %s: %s", p->args[0], strerror(errno));
}

static bool has_ns(const Cocoon__ContainerSpec *s, const char *type)
{
	for (size_t i = 0; i < s->n_namespaces; i++)
		if (strcmp(s->namespaces[i], type) == 0)
			return true;
	return false;
}

static void __attribute__((noreturn))
child_init(const Cocoon__ContainerSpec *s, const char *rootfs, const int join_fds[3], int sync_fd,
	   int start_fd, int in, int out, int err, bool terminal)
{
	char msg[400];

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (int i = 0; i < 3; i++)
		if (join_fds[i] >= 0 && setns(join_fds[i], 0) < 0)
			child_fail(sync_fd, "joining the pod's namespaces: %s", strerror(errno));
	if (mounts_setup_rootfs(s, rootfs, msg, sizeof(msg)) < 0 ||
	    confine_paths(s, msg, sizeof(msg)) < 0)
		child_fail(sync_fd, "%s", msg);
	if (has_ns(s, "uts") && s->hostname && *s->hostname &&
	    sethostname(s->hostname, strlen(s->hostname)) < 0)
		child_fail(sync_fd, "hostname %s: %s", s->hostname, strerror(errno));
	if (has_ns(s, "network"))
		agent_loopback_up();
	child_enter_process(sync_fd, s->process, s->seccomp, in, out, err, terminal);
	if (write(sync_fd, "", 1) != 1)
		_exit(126);
	child_exec(sync_fd, start_fd, s->process, s->seccomp);
}

/* ---- the agent side ------------------------------------------------------ */

struct stdio_pipes {
	int child[3]; /* what the child gets as 0, 1, 2 */
	int agent_in, agent_out, agent_err;
};

/* Takes a forked process into the table: its pipes, and the request its
 * sync pipe will answer. */
static void proc_register(struct agent_proc *p, pid_t pid, enum proc_phase phase,
			  const struct stdio_pipes *io, int sync_fd, bool terminal,
			  uint64_t pending_id)
{
	proc_reset(p);
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
	fcntl(p->sync_fd, F_SETFL, O_NONBLOCK);
}

static void stdio_close_child(struct stdio_pipes *p)
{
	for (int i = 0; i < 3; i++)
		if (p->child[i] >= 0 && (i == 0 || p->child[i] != p->child[0]))
			close(p->child[i]);
}

static int stdio_open(struct stdio_pipes *p, const Cocoon__ProcessSpec *proc)
{
	int in[2], o[2], e[2];

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
		fcntl(p->agent_out, F_SETFD, FD_CLOEXEC);
		fcntl(master, F_SETFL, O_NONBLOCK);
		/* The host bounded the size (spec.c): nothing here can fail
		 * but the ioctl on a pty just made. */
		terminal_set_size(master, proc->console_size);
		return 0;
	}
	/* Pipes, never files: CRIU cannot restore a task holding a regular
	 * file whose size changed since the dump. */
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(o, O_CLOEXEC) < 0 || pipe2(e, O_CLOEXEC) < 0)
		return -errno;
	p->child[0] = in[0];
	p->child[1] = o[1];
	p->child[2] = e[1];
	p->agent_in = in[1];
	p->agent_out = o[0];
	p->agent_err = e[0];
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(o[0], F_SETFL, O_NONBLOCK);
	fcntl(e[0], F_SETFL, O_NONBLOCK);
	return 0;
}

/* A container never shares the guest's own pid, mount, IPC or UTS
 * namespace, whatever its spec says (Kata's agent does the same with pid):
 * in the guest's pid namespace a container with CAP_KILL could kill CRIU,
 * the copier and every other container of the VM (kill -1 spares only
 * init), and in its mount namespace the rootfs setup would move the
 * container's root over the guest's. A spec that leaves one out gets a
 * new one, and a warning from the host (spec.c). The network namespace is
 * the spec's: the host refuses a spec without one. */
static int ns_flags(const Cocoon__ContainerSpec *s)
{
	int f = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC;
	f |= has_ns(s, "network") ? CLONE_NEWNET : 0;
	return f;
}

static int join_cgroup(const char *cgroup, pid_t pid)
{
	char path[192], buf[32];
	snprintf(path, sizeof(path), "%s/cgroup.procs", cgroup);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	int n = snprintf(buf, sizeof(buf), "%d", pid);
	if (fd < 0 || write(fd, buf, (size_t)n) != n)
		return -errno;
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
			proc_reset(&c->procs[j]);
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
	snprintf(share, sizeof(share), "/run/cocoon/%s", tag);
	mkdir("/run/cocoon", 0700);
	mkdir(share, 0700);
	if ((stat(share, &here) < 0 || stat("/run/cocoon", &parent) < 0 ||
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

/* virtiofs: a VM booted for whole-VM checkpoints has no 9p share. */
static int mount_rootfs(struct agent_container *c, const Cocoon__ContainerSpec *s, bool virtiofs,
			char *msg, size_t msg_size)
{
	const char *tag = s->rootfs_tag, *path = s->rootfs_path;
	char dir[128];
	snprintf(dir, sizeof(dir), AGENT_CONTAINER_DIR "/%s", c->id);
	mkdir(AGENT_CONTAINER_DIR, 0700);
	mkdir(dir, 0700);
	snprintf(c->rootfs, sizeof(c->rootfs), "%s/rootfs", dir);
	mkdir(c->rootfs, 0755);
	if (path && *path && !valid_share_path(path)) {
		snprintf(msg, msg_size, "rootfs path '%s' is not a relative path without '..'",
			 path);
		c->rootfs[0] = 0;
		return -EINVAL;
	}
	/* cache=mmap: executables are mmapped; 9p's cache=none cannot share
	 * writable mappings. */
	int r = path && *path ? mount_rootfs_from(c, tag, path)
		: virtiofs    ? (mount(tag, c->rootfs, "virtiofs", 0, NULL) < 0 ? -errno : 0)
		: agent_mount_9p(tag, c->rootfs, 0, "mmap") < 0 ? -errno
								: 0;
	if (r < 0) {
		snprintf(msg, msg_size, "mount rootfs (%s tag %s%s%s): %s",
			 virtiofs ? "virtiofs" : "9p", tag, path && *path ? ", " : "",
			 path ? path : "", strerror(-r));
		c->rootfs[0] = 0;
		return r;
	}
	return 0;
}

/* Pods: the namespaces a container shares with another container of the
 * VM, opened by the agent before the clone and entered by the child. */
int container_open_join_namespaces(struct agent *a, const Cocoon__ContainerSpec *s, int fds[3],
				   char *msg, size_t msg_size)
{
	static const char *const types[] = {"network", "ipc", "uts"}, *const files[] = {
									      "net", "ipc", "uts"};
	for (int i = 0; i < 3; i++)
		fds[i] = -1;
	if (!s->join_container || !*s->join_container)
		return 0;
	struct agent_container *owner = container_find(a, s->join_container);
	if (!owner || !owner->procs[0].used || owner->procs[0].phase == PROC_EXITED) {
		snprintf(msg, msg_size, "pod container %s is not running in this VM",
			 s->join_container);
		return -ESRCH;
	}
	for (size_t j = 0; j < s->n_join_namespaces; j++) {
		int i = 0;
		while (i < 3 && strcmp(s->join_namespaces[j], types[i]) != 0)
			i++;
		if (i == 3) {
			snprintf(msg, msg_size, "joining a %s namespace is not supported",
				 s->join_namespaces[j]);
			return -EINVAL;
		}
		if (fds[i] >= 0)
			continue;
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", owner->procs[0].pid, files[i]);
		if ((fds[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
			snprintf(msg, msg_size, "%s of pod container %s: %s", path, owner->id,
				 strerror(errno));
			return -errno;
		}
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
	mkdir("/run/cocoon", 0700);
	mkdir(COCOON_GUEST_VOLUMES_DIR, 0700);
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
				const Cocoon__ContainerSpec *s, char *msg, size_t msg_size)
{
	/* A pod member's volumes are in its own directory of the pod share,
	 * which mount_rootfs mounted (host/pod.h). */
	char pod_volumes[128] = "";
	if (s->join_container && *s->join_container)
		snprintf(pod_volumes, sizeof(pod_volumes), AGENT_POD_DIR "/%s/volumes/", c->id);
	for (size_t i = 0; i < s->n_mounts; i++) {
		const Cocoon__Mount *m = s->mounts[i];
		if (strcmp(m->type, "bind") != 0)
			continue;
		size_t n = strlen(COCOON_GUEST_VOLUMES_DIR);
		bool in_pod = m->source && *pod_volumes &&
			      strncmp(m->source, pod_volumes, strlen(pod_volumes)) == 0;
		if (!m->source ||
		    (!in_pod && strncmp(m->source, COCOON_GUEST_VOLUMES_DIR "/", n + 1) != 0) ||
		    strstr(m->source, "..")) {
			snprintf(msg, msg_size,
				 "mount %s: bind source %s is not in the volumes share",
				 m->destination, m->source ? m->source : "(none)");
			return -EINVAL;
		}
		if (c->n_binds == AGENT_MAX_BINDS) {
			snprintf(msg, msg_size, "at most %d bind mounts", AGENT_MAX_BINDS);
			return -E2BIG;
		}
		int r = in_pod ? 0 : mount_volumes(a);
		if (r < 0) {
			snprintf(msg, msg_size, "mount the volumes share (%s tag %s): %s",
				 a->virtiofs ? "virtiofs" : "9p", COCOON_TAG_VOLUMES, strerror(-r));
			return r;
		}
		c->bind_dests[c->n_binds] = strdup(m->destination);
		c->bind_sources[c->n_binds] = strdup(m->source);
		if (!c->bind_dests[c->n_binds] || !c->bind_sources[c->n_binds]) {
			free(c->bind_dests[c->n_binds]);
			free(c->bind_sources[c->n_binds]);
			snprintf(msg, msg_size, "out of memory");
			return -ENOMEM;
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
				      const Cocoon__ContainerSpec *s, char *msg, size_t msg_size)
{
	if (container_find(a, id)) {
		snprintf(msg, msg_size, "container %s exists in this VM", id);
		return NULL;
	}
	struct agent_container *c = container_alloc(a, id);
	if (!c) {
		snprintf(msg, msg_size, "at most %d containers per VM", AGENT_MAX_CONTAINERS);
		return NULL;
	}
	cgroups_enable_accounting();
	snprintf(c->cgroup, sizeof(c->cgroup), "/sys/fs/cgroup/%s", id);
	if (mkdir(c->cgroup, 0755) < 0 && errno != EEXIST) {
		snprintf(msg, msg_size, "cgroup %s: %s", c->cgroup, strerror(errno));
		c->cgroup[0] = 0;
		container_free(c);
		return NULL;
	}
	if (mount_rootfs(c, s, a->vmsnap, msg, msg_size) < 0) {
		container_free(c);
		return NULL;
	}
	/* Kept for exec (the seccomp filter) and checkpoints (masked paths). */
	c->spec = container_spec_dup(s);
	if (!c->spec) {
		snprintf(msg, msg_size, "out of memory");
		container_free(c);
		return NULL;
	}
	c->dev_tmpfs = mounts_tmpfs_at(s, "/dev") != NULL;
	c->shm_tmpfs = mounts_tmpfs_at(s, "/dev/shm") != NULL;
	c->own_netns = has_ns(s, "network");
	if (container_note_binds(a, c, s, msg, msg_size) < 0) {
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
	proc_reset(p);
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
static int open_ns(pid_t pid, const char *ns);

static int join_network(pid_t pid, const Cocoon__NetworkSpec *net, char *msg, size_t msg_size)
{
	if (!net || net->n_interfaces == 0)
		return 0;
	_cleanup_close_ int ns = open_ns(pid, "net");
	if (ns < 0) {
		snprintf(msg, msg_size, "network: the container's namespace: %s", strerror(errno));
		return -errno;
	}
	return net_configure(net, ns, msg, msg_size);
}

void container_handle_create(struct agent *a, uint64_t id,
			     const Cocoon__CreateContainerRequest *req)
{
	const Cocoon__ContainerSpec *s = req ? req->spec : NULL;
	char msg[400] = "";
	int sync[2] = {-1, -1}, start[2] = {-1, -1}, join[3] = {-1, -1, -1};
	struct stdio_pipes io = {
		.child = {-1, -1, -1}, .agent_in = -1, .agent_out = -1, .agent_err = -1};

	if (!s || !s->process || s->process->n_args == 0 || !cocoon_id_valid(s->id) ||
	    !s->rootfs_tag) {
		agent_send_error(a, id, EINVAL, "create: incomplete container spec");
		return;
	}
	struct agent_container *c = container_new(a, s->id, s, msg, sizeof(msg));
	if (!c) {
		agent_send_error(a, id, EINVAL, "create %s: %s", s->id, msg);
		return;
	}
	if (c->has_limits && cgroups_apply(c->cgroup, &c->limits, 0, msg, sizeof(msg)) < 0)
		goto fail;
	if (container_open_join_namespaces(a, s, join, msg, sizeof(msg)) < 0)
		goto fail;
	if (stdio_open(&io, s->process) < 0 || pipe2(sync, O_CLOEXEC) < 0 ||
	    pipe2(start, O_CLOEXEC) < 0) {
		snprintf(msg, sizeof(msg), "pipes: %s", strerror(errno));
		goto fail;
	}
	/* A raw clone() behaves like fork() here: the agent has no threads. */
	pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD | ns_flags(s), NULL, NULL, NULL, NULL);
	if (pid < 0) {
		snprintf(msg, sizeof(msg), "clone: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		close(sync[0]);
		close(start[1]);
		child_init(s, c->rootfs, join, sync[1], start[0], io.child[0], io.child[1],
			   io.child[2], s->process->terminal);
	}
	for (int i = 0; i < 3; i++)
		close_fd(&join[i]);
	close(sync[1]);
	close(start[0]);
	stdio_close_child(&io);
	join_cgroup(c->cgroup, pid);
	if (c->own_netns && join_network(pid, s->network, msg, sizeof(msg)) < 0) {
		kill(pid, SIGKILL);
		sync[1] = start[0] = -1;
		io.child[0] = io.child[1] = io.child[2] = -1;
		goto fail;
	}

	struct agent_proc *p = &c->procs[0];
	proc_register(p, pid, PROC_SETUP, &io, sync[0], s->process->terminal, id);
	p->start_fd = start[1];
	return;
fail:
	for (int i = 0; i < 3; i++)
		close_fd(&join[i]);
	for (int i = 0; i < 2; i++) {
		if (sync[i] >= 0)
			close(sync[i]);
		if (start[i] >= 0)
			close(start[i]);
	}
	stdio_close_child(&io);
	if (io.agent_in >= 0)
		close(io.agent_in);
	if (io.agent_out >= 0)
		close(io.agent_out);
	if (io.agent_err >= 0)
		close(io.agent_err);
	container_free(c);
	agent_send_error(a, id, EINVAL, "create %s: %s", s->id, msg);
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
	if (write(p->start_fd, "s", 1) != 1) {
		agent_send_error(a, id, errno, "start %s: %s", c->id, strerror(errno));
		return;
	}
	close_fd(&p->start_fd);
	p->phase = PROC_STARTING;
	p->exec_awaited = true;
	p->pending_id = id;
}

static void send_simple_ok(struct agent *a, uint64_t id, int body_case, void *body)
{
	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	resp.id = id;
	resp.body_case = body_case;
	/* Every body is a pointer in the same union. */
	resp.pong = body;
	agent_send_response(a, &resp);
}

static int read_cgroup_pids(const char *cgroup, uint32_t *pids, size_t max, size_t *n)
{
	char path[192];
	snprintf(path, sizeof(path), "%s/cgroup.procs", cgroup);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	unsigned v;
	*n = 0;
	if (!f)
		return -errno;
	while (*n < max && fscanf(f, "%u", &v) == 1)
		pids[(*n)++] = v;
	return 0;
}

void container_handle_signal(struct agent *a, uint64_t id, const Cocoon__SignalRequest *req)
{
	struct agent_container *c = req ? container_find(a, req->id) : NULL;
	Cocoon__SignalReply reply = COCOON__SIGNAL_REPLY__INIT;

	if (!c) {
		agent_send_error(a, id, ENOENT, "kill: no such container");
		return;
	}
	if (req->signal <= 0 || req->signal >= 65) {
		agent_send_error(a, id, EINVAL, "kill %s: invalid signal %d", c->id, req->signal);
		return;
	}
	if (req->all) {
		uint32_t pids[1024];
		size_t n;
		read_cgroup_pids(c->cgroup, pids, ARRAY_SIZE(pids), &n);
		for (size_t i = 0; i < n; i++)
			kill((pid_t)pids[i], req->signal);
	} else {
		struct agent_proc *p = find_proc(c, req->exec_id);
		if (!p || p->phase == PROC_EXITED || p->pid <= 0) {
			agent_send_error(a, id, ESRCH, "kill %s: process is not running", c->id);
			return;
		}
		int k = p->pidfd >= 0 ? (int)syscall(SYS_pidfd_send_signal, p->pidfd, req->signal,
						     NULL, 0)
				      : kill(p->pid, req->signal);
		if (k < 0) {
			agent_send_error(a, id, errno, "kill %s: %s", c->id, strerror(errno));
			return;
		}
	}
	send_simple_ok(a, id, COCOON__RESPONSE__BODY_SIGNAL, &reply);
}

/* cgroup v2 freezer: write cgroup.freeze, then wait for cgroup.events to say
 * "frozen 1". The kernel usually gets there at once; the wait is bounded. */
static int cgroup_freeze(const char *cgroup, bool freeze)
{
	char path[192], events[256];
	snprintf(path, sizeof(path), "%s/cgroup.freeze", cgroup);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, freeze ? "1" : "0", 1) != 1)
		return -errno;
	snprintf(path, sizeof(path), "%s/cgroup.events", cgroup);
	for (int i = 0; i < 200; i++) {
		_cleanup_close_ int ev = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = ev >= 0 ? read(ev, events, sizeof(events) - 1) : -1;
		if (n > 0) {
			events[n] = 0;
			if (strstr(events, freeze ? "frozen 1" : "frozen 0"))
				return 0;
		}
		usleep(5000);
	}
	return -ETIMEDOUT;
}

int container_freeze(struct agent_container *c, bool freeze)
{
	return cgroup_freeze(c->cgroup, freeze);
}

void container_handle_pause(struct agent *a, uint64_t id, const Cocoon__PauseRequest *req)
{
	struct agent_container *c = req ? container_find(a, req->id) : NULL;
	Cocoon__PauseReply reply = COCOON__PAUSE_REPLY__INIT;
	const char *what = req && req->resume ? "resume" : "pause";

	if (!c) {
		agent_send_error(a, id, ENOENT, "%s: no such container", what);
		return;
	}
	if (c->procs[0].phase != PROC_RUNNING) {
		agent_send_error(a, id, EINVAL, "%s %s: container is not running", what, c->id);
		return;
	}
	int r = cgroup_freeze(c->cgroup, !req->resume);
	if (r < 0) {
		agent_send_error(a, id, -r, "%s %s: cgroup freezer: %s", what, c->id, strerror(-r));
		return;
	}
	c->paused = !req->resume;
	send_simple_ok(a, id, COCOON__RESPONSE__BODY_PAUSE, &reply);
}

void container_handle_update(struct agent *a, uint64_t id, const Cocoon__UpdateRequest *req)
{
	struct agent_container *c = req ? container_find(a, req->id) : NULL;
	Cocoon__UpdateReply reply = COCOON__UPDATE_REPLY__INIT;
	char msg[256];

	if (!c) {
		agent_send_error(a, id, ENOENT, "update: no such container");
		return;
	}
	if (c->procs[0].phase == PROC_EXITED) {
		agent_send_error(a, id, EINVAL, "update %s: container is stopped", c->id);
		return;
	}
	Cocoon__Resources none = COCOON__RESOURCES__INIT, merged;
	const Cocoon__Resources *r = req->resources ? req->resources : &none;
	if (req->set_cpu_max && (req->keep_cpu_quota || req->keep_cpu_period)) {
		/* runc update: the half of cpu.max not given keeps its value. */
		int64_t quota = 0;
		uint64_t period = 0;
		int e = cgroups_read_cpu_max(c->cgroup, &quota, &period);
		if (e < 0 && e != -ENOENT) {
			agent_send_error(a, id, -e, "update %s: read cpu.max: %s", c->id,
					 strerror(-e));
			return;
		}
		merged = *r;
		if (req->keep_cpu_quota)
			merged.cpu_quota = quota;
		if (req->keep_cpu_period)
			merged.cpu_period = period;
		r = &merged;
	}
	unsigned mask = (req->set_memory ? CGROUPS_MEMORY : 0) |
			(req->set_pids ? CGROUPS_PIDS : 0) |
			(req->set_cpu_max ? CGROUPS_CPU_MAX : 0) |
			(req->set_cpu_weight ? CGROUPS_CPU_WEIGHT : 0);
	if (mask && cgroups_apply(c->cgroup, r, mask, msg, sizeof(msg)) < 0) {
		agent_send_error(a, id, EINVAL, "update %s: %s", c->id, msg);
		return;
	}
	/* What a restore of this container in this VM would set again. */
	if (req->set_memory)
		c->limits.memory_limit = r->memory_limit;
	if (req->set_pids)
		c->limits.pids_limit = r->pids_limit;
	if (req->set_cpu_max) {
		c->limits.cpu_quota = r->cpu_quota;
		c->limits.cpu_period = r->cpu_period;
	}
	if (req->set_cpu_weight)
		c->limits.cpu_shares = r->cpu_shares;
	c->has_limits = c->has_limits || mask;
	send_simple_ok(a, id, COCOON__RESPONSE__BODY_UPDATE, &reply);
}

void container_handle_stats(struct agent *a, uint64_t id, const Cocoon__StatsRequest *req)
{
	struct agent_container *c = req ? container_find(a, req->id) : NULL;
	Cocoon__StatsReply reply = COCOON__STATS_REPLY__INIT;
	static struct cgroups_stat_buf buf;

	if (!c) {
		agent_send_error(a, id, ENOENT, "stats: no such container");
		return;
	}
	cgroups_stats(c->cgroup, &reply, &buf);
	send_simple_ok(a, id, COCOON__RESPONSE__BODY_STATS, &reply);
}

void container_handle_ps(struct agent *a, uint64_t id, const Cocoon__PsRequest *req)
{
	struct agent_container *c = req ? container_find(a, req->id) : NULL;
	Cocoon__PsReply reply = COCOON__PS_REPLY__INIT;
	uint32_t pids[1024];
	size_t n = 0;

	if (!c) {
		agent_send_error(a, id, ENOENT, "ps: no such container");
		return;
	}
	read_cgroup_pids(c->cgroup, pids, ARRAY_SIZE(pids), &n);
	reply.pids = pids;
	reply.n_pids = n;
	send_simple_ok(a, id, COCOON__RESPONSE__BODY_PS, &reply);
}

static int open_ns(pid_t pid, const char *ns)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/%s", pid, ns);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* A child of the agent in the container's pid namespace: the agent
 * switches its pid_for_children namespace around the fork, then switches
 * back. That child forks the exec'd process and exits (execs.h). */
static pid_t fork_into_pidns(pid_t target)
{
	_cleanup_close_ int mine = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int theirs = open_ns(target, "pid");
	if (mine < 0 || theirs < 0 || setns(theirs, CLONE_NEWPID) < 0)
		return -1;
	pid_t pid = fork();
	if (pid != 0 && setns(mine, CLONE_NEWPID) < 0)
		agent_log(NULL, "cannot return to the agent's pid namespace: %s", strerror(errno));
	return pid;
}

static void __attribute__((noreturn))
exec_child(pid_t init, const Cocoon__ProcessSpec *p, const Cocoon__Seccomp *seccomp, int sync_fd,
	   int in, int out, int err, bool terminal)
{
	/* Every namespace of the init, time included: after a restore CRIU
	 * has put the init in a new time namespace, and a process outside it
	 * sees another clock (and cannot be restored with it). */
	static const char *const nss[] = {"ipc", "uts", "net", "time", "mnt"};
	_cleanup_close_ int root = -1;
	char path[64];

	/* No parent-death signal: its parent is the helper that exits now. */
	int r = execs_send_self(sync_fd);
	if (r < 0)
		child_fail(sync_fd, "pidfd: %s", strerror(-r));
	snprintf(path, sizeof(path), "/proc/%d/root", init);
	root = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		child_fail(sync_fd, "open container root: %s", strerror(errno));
	for (size_t i = 0; i < ARRAY_SIZE(nss); i++) {
		int fd = open_ns(init, nss[i]);
		if (fd < 0 && errno == ENOENT && strcmp(nss[i], "time") == 0)
			continue; /* a kernel without time namespaces */
		if (fd < 0 || setns(fd, 0) < 0)
			child_fail(sync_fd, "join %s namespace: %s", nss[i], strerror(errno));
		close(fd);
	}
	if (fchdir(root) < 0 || chroot(".") < 0)
		child_fail(sync_fd, "enter container root: %s", strerror(errno));
	child_enter_process(sync_fd, p, seccomp, in, out, err, terminal);
	child_exec(sync_fd, -1, p, seccomp);
}

void container_handle_exec(struct agent *a, uint64_t id, const Cocoon__ExecRequest *req)
{
	struct agent_container *c = req ? container_find(a, req->id) : NULL;
	struct stdio_pipes io = {
		.child = {-1, -1, -1}, .agent_in = -1, .agent_out = -1, .agent_err = -1};
	struct agent_proc *p = NULL;
	int sync[2];

	if (!c || !req->process || req->process->n_args == 0 || !cocoon_id_valid(req->exec_id)) {
		agent_send_error(a, id, c ? EINVAL : ENOENT, "exec: %s",
				 c ? "invalid request" : "no such container");
		return;
	}
	if (c->procs[0].phase != PROC_RUNNING || c->paused) {
		agent_send_error(a, id, EINVAL, "exec %s: container is not running", c->id);
		return;
	}
	if (find_proc(c, req->exec_id)) {
		agent_send_error(a, id, EEXIST, "exec %s: exec id %s is in use", c->id,
				 req->exec_id);
		return;
	}
	for (int i = 1; i < AGENT_MAX_PROCS && !p; i++)
		if (!c->procs[i].used)
			p = &c->procs[i];
	if (!p) {
		agent_send_error(a, id, EAGAIN, "exec %s: at most %d processes", c->id,
				 AGENT_MAX_PROCS - 1);
		return;
	}
	/* Subscribed before the fork: no exit can come before it. */
	int r = execs_events_subscribe();
	if (r < 0) {
		agent_send_error(a, id, -r, "exec %s: the kernel's process events: %s", c->id,
				 strerror(-r));
		return;
	}
	if (stdio_open(&io, req->process) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sync) < 0) {
		agent_send_error(a, id, errno, "exec %s: pipes: %s", c->id, strerror(errno));
		return;
	}
	pid_t pid = fork_into_pidns(c->procs[0].pid);
	if (pid < 0) {
		agent_send_error(a, id, errno, "exec %s: %s", c->id, strerror(errno));
		return;
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		close(sync[0]);
		pid_t e = fork();
		if (e < 0)
			child_fail(sync[1], "fork: %s", strerror(errno));
		if (e > 0)
			_exit(0); /* the process is the container's init's now */
		/* Into the cgroup after the fork, before anything runs: a fork
		 * inside a cgroup at pids.max fails, a move into it does not
		 * (cgroup-v2.rst, "PID": organisational operations are not
		 * blocked), so exec works at the limit, as with runc. */
		if (join_cgroup(c->cgroup, getpid()) < 0)
			child_fail(sync[1], "join the container's cgroup: %s", strerror(errno));
		exec_child(c->procs[0].pid, req->process, c->spec ? c->spec->seccomp : NULL,
			   sync[1], io.child[0], io.child[1], io.child[2], req->process->terminal);
	}
	close(sync[1]);
	stdio_close_child(&io);
	/* The helper is reaped like any child, unknown to the table; the
	 * process's pid arrives with its pidfd. */
	proc_register(p, 0, PROC_STARTING, &io, sync[0], req->process->terminal, id);
	p->sync_socket = true;
	snprintf(p->exec_id, sizeof(p->exec_id), "%s", req->exec_id);
}

void container_handle_stdin(struct agent *a, const Cocoon__StdinData *req)
{
	struct agent_container *c = req ? container_find(a, req->id) : NULL;
	struct agent_proc *p = c ? find_proc(c, req->exec_id) : NULL;

	if (!p || p->stdin_fd < 0)
		return;
	if (req->data.len > 0) {
		/* The host sends at most a pipe's worth at a time; anything the
		 * pipe cannot take now is dropped and logged. */
		ssize_t n = write(p->stdin_fd, req->data.data, req->data.len);
		if (n < (ssize_t)req->data.len)
			agent_log(a, "stdin of %s: dropped %zd bytes", c->id,
				  (ssize_t)req->data.len - (n > 0 ? n : 0));
	}
	if (req->eof && !p->terminal)
		close_fd(&p->stdin_fd);
}

/* The size is set on the master (terminal.h). */
void container_handle_resize(struct agent *a, const Cocoon__ResizeRequest *req)
{
	struct agent_container *c = req ? container_find(a, req->id) : NULL;
	struct agent_proc *p = c ? find_proc(c, req->exec_id) : NULL;

	/* The master is stdin_fd and out_fd[0] (a dup); either may be closed
	 * already as the process ends. */
	int master = !p || !p->terminal ? -1 : p->out_fd[0] >= 0 ? p->out_fd[0] : p->stdin_fd;
	if (master < 0) {
		agent_log(a, "resize: %s%s%s has no terminal; ignored", c ? c->id : "no container",
			  c && *req->exec_id ? " exec " : "", c ? req->exec_id : "");
		return;
	}
	int r = terminal_set_size(master, req->size);
	if (r < 0)
		agent_log(a, "resize %s: %s", c->id, strerror(-r));
}

/* ---- events ---------------------------------------------------------------- */

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
	proc_release(p);
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
		close_fd(&p->out_fd[which]);
		if (p->terminal && which == 0)
			close_fd(&p->stdin_fd);
		send_exit_if_done(a, c, p);
		return;
	}
	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	Cocoon__OutputEvent ev = COCOON__OUTPUT_EVENT__INIT;
	ev.id = c->id;
	ev.exec_id = p->exec_id;
	ev.stream = (uint32_t)which + 1;
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
		send_simple_ok(a, p->pending_id, COCOON__RESPONSE__BODY_CREATE, &reply);
		p->pending_id = 0;
		return;
	}
	if (n > 0)
		return; /* more of an error text may follow */

	/* EOF: the exec happened, unless an error text came first. */
	close_fd(&p->sync_fd);
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
			send_simple_ok(a, pending, COCOON__RESPONSE__BODY_START, &reply);
		} else {
			Cocoon__ExecReply reply = COCOON__EXEC_REPLY__INIT;
			reply.pid = (uint32_t)p->pid;
			send_simple_ok(a, pending, COCOON__RESPONSE__BODY_EXEC, &reply);
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
	close_fd(&p->pidfd);
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
				if (p->out_fd[k] >= 0 && n < max) {
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
