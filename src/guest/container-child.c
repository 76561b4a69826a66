/* The child side of a container's processes: what runs between the clone
 * or fork and the exec, for the init (container_child_init) and for each
 * exec (container_child_exec). Errors go to the agent as text on the sync
 * pipe; the child then exits with 126.
 */
#include "init.h"
#include "container-child.h"
#include "execs.h"
#include "agent.h"
#include "cleanup.h"
#include "cgroups.h"
#include "confine.h"
#include "error.h"
#include "mounts.h"
#include "network.h"
#include "sysctl.h"
#include "userns.h"

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

/* Reports a setup error to the agent and exits. Only for the child. */
void __attribute__((noreturn, format(printf, 2, 3)))
container_child_fail(int sync_fd, const char *fmt, ...)
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

int container_rlimits_apply(pid_t pid, const Cocoon__ProcessSpec *p, struct error **err)
{
	for (size_t i = 0; i < p->n_rlimits; i++) {
		int res = -1;
		for (size_t j = 0; j < ARRAY_SIZE(rlimit_names); j++)
			if (strcmp(rlimit_names[j].name, p->rlimits[i]->type) == 0)
				res = rlimit_names[j].resource;
		struct rlimit rl = {.rlim_cur = p->rlimits[i]->soft,
				    .rlim_max = p->rlimits[i]->hard};
		if (res < 0 || prlimit(pid, res, &rl, NULL) < 0) {
			int e = res < 0 ? EINVAL : errno;
			return error_setx(err, e, "process.rlimits: %s: %s", p->rlimits[i]->type,
					  res < 0 ? "unknown limit" : strerror(e));
		}
	}
	return 0;
}

/* process.oomScoreAdj, or for an exec without one the container's: runc
 * writes /proc/self/oom_score_adj first thing in nsexec.c
 * (update_oom_score_adj), for the init and for every exec alike, from the
 * container's config. First here too: lowering it needs CAP_SYS_RESOURCE,
 * which the process may be about to drop. The host checked the range. */
static void child_oom_score_adj(int sync_fd, const Cocoon__ProcessSpec *p,
				const Cocoon__ProcessSpec *container)
{
	const Cocoon__ProcessSpec *from = p->has_oom_score_adj ? p : container;
	char buf[16];
	if (!from || !from->has_oom_score_adj)
		return;
	int n = snprintf(buf, sizeof(buf), "%d", from->oom_score_adj);
	_cleanup_close_ int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, buf, (size_t)n) != n)
		container_child_fail(sync_fd,
				     "process.oomScoreAdj %d: /proc/self/oom_score_adj: %s",
				     from->oom_score_adj, strerror(errno));
}

/* Credentials, capabilities, limits, cwd and stdio: shared by the init and
 * by execs. The order is runc's (see confine.c). */
static void child_enter_process(int sync_fd, const Cocoon__ProcessSpec *p,
				const Cocoon__Seccomp *seccomp, int in, int out, int err,
				bool terminal)
{
	_cleanup_error_ struct error *e = NULL;

	if (container_rlimits_apply(0, p, &e) < 0)
		container_child_fail(sync_fd, "%s", error_msg(e));
	/* Its own session, as with runc: CRIU refuses to dump a task whose
	 * session leader is outside the container's pid namespace. */
	(void)setsid(); /* a new pid namespace's task leads no group: cannot fail */
	if (terminal && ioctl(in, TIOCSCTTY, 0) < 0)
		container_child_fail(sync_fd, "terminal: TIOCSCTTY: %s", strerror(errno));
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		container_child_fail(sync_fd, "stdio: %s", strerror(errno));
	if (!p->no_new_privileges && confine_seccomp_load(seccomp, &e) < 0)
		container_child_fail(sync_fd, "%s", error_msg(e));
	if (confine_caps_bound(p->capabilities, &e) < 0)
		container_child_fail(sync_fd, "%s", error_msg(e));
	gid_t groups[64];
	size_t ng = p->n_additional_gids < 64 ? p->n_additional_gids : 64;
	for (size_t i = 0; i < ng; i++)
		groups[i] = p->additional_gids[i];
	if (setgroups(ng, groups) < 0)
		container_child_fail(sync_fd, "process.user.additionalGids: %s", strerror(errno));
	if (setgid(p->gid) < 0)
		container_child_fail(sync_fd, "process.user.gid %u: %s", p->gid, strerror(errno));
	if (setuid(p->uid) < 0)
		container_child_fail(sync_fd, "process.user.uid %u: %s", p->uid, strerror(errno));
	if (confine_caps_apply(p->capabilities, &e) < 0)
		container_child_fail(sync_fd, "%s", error_msg(e));
	if (p->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		container_child_fail(sync_fd, "process.noNewPrivileges: %s", strerror(errno));
	if (chdir(p->cwd && *p->cwd ? p->cwd : "/") < 0)
		container_child_fail(sync_fd, "process.cwd %s: %s", p->cwd, strerror(errno));
}

/* Waits for start, then execs. The environment becomes the process's own
 * first, so that execvp() searches the container's PATH. */
static void __attribute__((noreturn))
child_exec(int sync_fd, int start_fd, const Cocoon__ProcessSpec *p, const Cocoon__Seccomp *seccomp)
{
	_cleanup_error_ struct error *e = NULL;
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
	(void)prctl(PR_SET_PDEATHSIG, 0); /* a valid signal: cannot fail */
	clearenv();
	for (size_t i = 0; i < p->n_env; i++)
		putenv(p->env[i]);
	if (!getenv("PATH"))
		(void)setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			     1); /* without it, execvp's own default */
	/* protobuf-c arrays carry a count, not a NULL terminator. */
	char **argv = calloc(p->n_args + 1, sizeof(char *));
	if (!argv)
		container_child_fail(sync_fd, "exec: out of memory");
	memcpy(argv, p->args, p->n_args * sizeof(char *));
	if (p->no_new_privileges && confine_seccomp_load(seccomp, &e) < 0)
		container_child_fail(sync_fd, "%s", error_msg(e));
	execvp(argv[0], argv);
	container_child_fail(sync_fd, "exec %s: %s", p->args[0], strerror(errno));
}

bool container_has_ns(const Cocoon__ContainerSpec *s, const char *type)
{
	for (size_t i = 0; i < s->n_namespaces; i++)
		if (strcmp(s->namespaces[i], type) == 0)
			return true;
	return false;
}

void __attribute__((noreturn))
container_child_init(const Cocoon__ContainerSpec *s, const char *rootfs, const char *cgroup,
		     const int join_fds[3], int sync_fd, int start_fd, int in, int out, int err,
		     bool terminal)
{
	_cleanup_error_ struct error *e = NULL;

	(void)prctl(PR_SET_PDEATHSIG, SIGKILL); /* a valid signal: cannot fail */
	/* The agent wrote the maps before this child went on
	 * (container_clone). */
	if (userns_wanted(s) && userns_become_root(&e) < 0)
		container_child_fail(sync_fd, "%s", error_msg(e));
	child_oom_score_adj(sync_fd, s->process, NULL);
	for (int i = 0; i < 3; i++)
		if (join_fds[i] >= 0 && setns(join_fds[i], 0) < 0)
			container_child_fail(sync_fd, "joining the pod's namespaces: %s",
					     strerror(errno));
	/* runc writes linux.sysctl after the rootfs is ready and before the
	 * read-only and masked paths, with every capability still held
	 * (standard_init_linux.go). These are the IPC and UTS ones, which
	 * land in the namespaces this task is in now, through the guest's
	 * /proc (the container's may be missing or read-only); the agent
	 * writes the net.* ones once the interfaces are in (container.c). */
	if (sysctl_apply(s, false, &e) < 0)
		container_child_fail(sync_fd, "%s", error_msg(e));
	if (mounts_setup_rootfs(s, rootfs, cgroup, &e) < 0 || confine_paths(s, &e) < 0)
		container_child_fail(sync_fd, "%s", error_msg(e));
	if (container_has_ns(s, "uts") && s->hostname && *s->hostname &&
	    sethostname(s->hostname, strlen(s->hostname)) < 0)
		container_child_fail(sync_fd, "hostname %s: %s", s->hostname, strerror(errno));
	int lo;
	if (container_has_ns(s, "network") && (lo = agent_loopback_up()) < 0)
		container_child_fail(sync_fd, "network: bring lo up: %s", strerror(-lo));
	child_enter_process(sync_fd, s->process, s->seccomp, in, out, err, terminal);
	if (write(sync_fd, "", 1) != 1)
		_exit(126);
	child_exec(sync_fd, start_fd, s->process, s->seccomp);
}

int container_open_ns(pid_t pid, const char *ns)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/%s", pid, ns);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* INIT's user namespace as an fd, or -1 when it is this process's own
 * (the guest's); opened before the other namespaces are joined, while
 * /proc is the guest's. */
static int open_user_ns(pid_t init, int *fd)
{
	struct stat theirs, ours;
	*fd = container_open_ns(init, "user");
	if (*fd < 0 || fstat(*fd, &theirs) < 0 || stat("/proc/self/ns/user", &ours) < 0)
		return -errno;
	if (theirs.st_ino == ours.st_ino && theirs.st_dev == ours.st_dev) {
		close(*fd);
		*fd = -1;
	}
	return 0;
}

void __attribute__((noreturn))
container_child_exec(pid_t init, const Cocoon__ProcessSpec *p, const Cocoon__ContainerSpec *s,
		     int sync_fd, int in, int out, int err, bool terminal)
{
	const Cocoon__Seccomp *seccomp = s ? s->seccomp : NULL;
	_cleanup_error_ struct error *e = NULL;
	/* Every namespace of the init, time included: after a restore CRIU
	 * has put the init in a new time namespace, and a process outside it
	 * sees another clock (and cannot be restored with it). The cgroup one
	 * once this process is in the container's cgroup (container-ops.c),
	 * as runc's exec joins it: inside, it is the namespace's root. */
	static const char *const nss[] = {"ipc", "uts", "net", "time", "cgroup", "mnt"};
	_cleanup_close_ int root = -1, user = -1;
	char path[64];

	/* No parent-death signal: its parent is the helper that exits now. */
	int r = execs_send_self(sync_fd);
	if (r < 0)
		container_child_fail(sync_fd, "pidfd: %s", strerror(-r));
	child_oom_score_adj(sync_fd, p, s ? s->process : NULL);
	snprintf(path, sizeof(path), "/proc/%d/root", init);
	root = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		container_child_fail(sync_fd, "open container root: %s", strerror(errno));
	if ((r = open_user_ns(init, &user)) < 0)
		container_child_fail(sync_fd, "user namespace: %s", strerror(-r));
	for (size_t i = 0; i < ARRAY_SIZE(nss); i++) {
		int fd = container_open_ns(init, nss[i]);
		if (fd < 0 && errno == ENOENT && strcmp(nss[i], "time") == 0)
			continue; /* a kernel without time namespaces */
		if (fd < 0 || setns(fd, 0) < 0)
			container_child_fail(sync_fd, "join %s namespace: %s", nss[i],
					     strerror(errno));
		close(fd);
	}
	/* Raising a hard limit takes CAP_SYS_RESOURCE in the guest's user
	 * namespace: set before the container's is joined (and again, to
	 * the same values, by child_enter_process). */
	if (user >= 0 && container_rlimits_apply(0, p, &e) < 0)
		container_child_fail(sync_fd, "%s", error_msg(e));
	/* The user namespace last: joined from the guest's, where this
	 * process may enter every other namespace of the init (setns(2) wants
	 * CAP_SYS_ADMIN over each one's owner, and the time namespace is the
	 * guest's). child_enter_process then takes the process's ids, which
	 * are the namespace's. */
	if (user >= 0 && setns(user, CLONE_NEWUSER) < 0)
		container_child_fail(sync_fd, "join user namespace: %s", strerror(errno));
	if (fchdir(root) < 0 || chroot(".") < 0)
		container_child_fail(sync_fd, "enter container root: %s", strerror(errno));
	child_enter_process(sync_fd, p, seccomp, in, out, err, terminal);
	child_exec(sync_fd, -1, p, seccomp);
}
