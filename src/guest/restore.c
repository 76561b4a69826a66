/* Restore with CRIU, inside the guest.
 *
 * CRIU reads the images from the shared directory and restores the tree
 * detached; its root task is reparented to us, PID 1. The container's stdio
 * pipes are new ones, handed over with --inherit-fd, as runc does; a
 * terminal's pty slave is external to the dump, and a restore hands a new
 * one in its place (the engine gets its master on a new --console-socket).
 */
#include "channel.h"
#include "init.h"
#include "jobs.h"
#include "restore.h"
#include "argv.h"
#include "cleanup.h"
#include "ckpt-common.h"
#include "ckpt-check.h"
#include "container.h"
#include "container-child.h"
#include "copy-tree.h"
#include "criu-conf.h"
#include "error.h"
#include "fdio.h"
#include "mounts.h"
#include "userns.h"
#include "network.h"
#include "sysctl.h"
#include "restore-images.h"
#include "restore-job.h"
#include "restore-argv.h"
#include "execs.h"
#include "terminal.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <net/if.h>
#include <sched.h>
#include <sys/inotify.h>
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
#define CRIU_RESTORE_TIMEOUT_MS (5 * 60 * 1000)

/* A checkpoint's terminal key, "tty[rdev:dev]" in hex, rewritten from the
 * numbers so that nothing else from the images reaches CRIU's argv. */
static bool parse_tty_key(const char *line, char *key, size_t size)
{
	unsigned long long rdev, dev;
	char end;
	if (sscanf(line, "tty[%llx:%llx%c", &rdev, &dev, &end) != 3 || end != ']' ||
	    line[strcspn(line, "]") + 1] != 0)
		return false;
	snprintf(key, size, "tty[%llx:%llx]", rdev, dev);
	return true;
}

/* A new pty: its slave goes to CRIU as fds 3-5, and takes the dumped
 * slave's place (--inherit-fd under its key); the agent keeps the master,
 * which the host relays to the engine's new --console-socket. */
static int restore_terminal(struct restore_ctx *x, char keys[][CKPT_TTY_KEY_MAX], size_t n_keys,
			    const Cocoon__ConsoleSize *size, struct argv *av)
{
	int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		return -errno;
	x->host_in = master;
	if (grantpt(master) < 0 || unlockpt(master) < 0)
		return -errno;
	int slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		return -errno;
	x->child_fds[0] = slave;
	x->child_fds[1] = fcntl(slave, F_DUPFD_CLOEXEC, 0);
	x->child_fds[2] = fcntl(slave, F_DUPFD_CLOEXEC, 0);
	x->host_out = fcntl(master, F_DUPFD_CLOEXEC, 0);
	if (x->child_fds[1] < 0 || x->child_fds[2] < 0 || x->host_out < 0)
		return -errno;
	(void)fcntl(master, F_SETFL, O_NONBLOCK); /* cannot fail on an open fd */
	int r = terminal_set_size(master, size);
	if (r < 0)
		return r;
	/* One fd per key: CRIU moves each inherited fd into its store and
	 * closes it (files.c, inherit_fd_move_to_fdstore). */
	for (size_t i = 0; i < n_keys && i < 3; i++) {
		argv_add(av, "--inherit-fd");
		argv_addf(av, "fd[%zu]:%s", 3 + i, keys[i]);
	}
	return 0;
}

/* New stdio for the restored init: new pipes with --inherit-fd for each
 * original pipe, or a new terminal for a checkpoint taken with one. The
 * spec must agree with the checkpoint: the engine's side (a console socket
 * or pipes) was set up from the spec. */
static int restore_stdio(struct restore_ctx *x, struct argv *av, struct error **err)
{
	char path[sizeof(x->images) + 64], line[7][128] = {"", "", "", "", "", "", ""},
					   keys[3][CKPT_TTY_KEY_MAX];

	snprintf(path, sizeof(path), "%s/" DESCRIPTORS_FILE, x->images);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	for (int i = 0; f && i < 7 && fgets(line[i], sizeof(line[i]), f); i++)
		line[i][strcspn(line[i], "\n")] = 0;
	size_t n_keys = 0;
	while (n_keys < 3 && parse_tty_key(line[3 + n_keys], keys[n_keys], sizeof(keys[n_keys])))
		n_keys++;
	bool had_tty = n_keys > 0;
	if (had_tty != x->terminal) {
		return error_setx(
			err, EINVAL,
			had_tty ? "restore %s: the checkpoint was taken with a terminal: restore it with process.terminal true in the bundle's config.json and a new --console-socket"
				: "restore %s: process.terminal is true, but the checkpoint was taken without a terminal: restore it with process.terminal false",
			x->cid);
	}
	if (had_tty) {
		/* The size the container had when it was dumped; the spec's
		 * for a checkpoint that did not record one. */
		Cocoon__ConsoleSize saved = COCOON__CONSOLE_SIZE__INIT;
		if (terminal_parse_size_line(line[3 + n_keys], &saved))
			x->size = saved;
		int r = restore_terminal(x, keys, n_keys, &x->size, av);
		if (r < 0)
			return error_set(err, -r, "restore %s: a new terminal", x->cid);
		return 0;
	}
	int host[3];
	int r = stdio_pipes_open(x->child_fds, host);
	if (r < 0)
		return error_set(err, -r, "restore %s: stdio pipes", x->cid);
	x->host_in = host[0];
	x->host_out = host[1];
	x->host_err = host[2];
	for (int i = 0; i < 3; i++) {
		if (strncmp(line[i], "pipe:", 5) != 0)
			continue;
		bool dup_of_earlier = false;
		for (int j = 0; j < i; j++)
			dup_of_earlier |= strcmp(line[j], line[i]) == 0;
		if (dup_of_earlier)
			continue;
		argv_add(av, "--inherit-fd");
		argv_addf(av, "fd[%d]:%s", 3 + i, line[i]);
	}
	return 0;
}

/* CRIU restores the tasks into its own network namespace: a fresh one with
 * loopback up, as the container had (see the dump). Images from before,
 * which name the namespace as external, get the same one. The namespace
 * goes in x->child_fds[3] (made here unless restore_handle made it for the
 * engine's interfaces), passed as fd 6, its path in netns[size]. Returns 0,
 * or a negative errno with *ERR saying why. */
static int restore_criu_netns(struct restore_ctx *x, struct agent_container *c, struct argv *av,
			      char *netns, size_t size, struct error **err)
{
	if (x->child_fds[3] < 0)
		x->child_fds[3] = ckpt_new_loopback_netns();
	if (x->child_fds[3] < 0)
		return error_setx(err, errno ? errno : EIO,
				  "a network namespace for the container");
	/* CRIU takes the namespace as external and restores none of its
	 * sysctls: the spec's net.* ones, as at create. The IPC and UTS ones
	 * are in CRIU's images (ipcns-var, utsns). */
	int r = sysctl_apply_net_in(x->child_fds[3], c->spec, err);
	if (r < 0)
		return r;
	argv_add(av, "--inherit-fd");
	argv_add(av, "fd[6]:" NETNS_KEY);
	if (path_fmt(netns, size, "/proc/self/fd/%d", x->child_fds[3]) < 0)
		return error_setx(err, ENAMETOOLONG, "the network namespace's path");
	return 0;
}

/* Starts CRIU's restore job with av, the npass fds of pass, in the
 * container's cgroup and the namespaces a pod member joins. Returns the
 * job's pid, or a negative errno with *e set. */
static int restore_criu_start(struct restore_ctx *x, struct agent_container *c, struct argv *av,
			      const int *pass, size_t npass, const char *netns, struct error **e)
{
	struct agent *a = x->a;
	/* A pod member is restored into the pod's namespaces (its sandbox's
	 * init's): CRIU runs in them, and the tasks it makes inherit them. */
	int pod_ns[3];
	if (container_open_join_namespaces(a, c->spec, pod_ns, e) < 0) {
		if (e && *e)
			(*e)->code = ESRCH;
		return -ESRCH;
	}
	/* CRIU 3.17 neither dumps nor restores no_new_privs (3.19 does,
	 * checkpoint-restore/criu#2228). The flag is inherited by every
	 * child and never cleared, and CRIU forks each task it restores from
	 * itself or from a restored parent: set on CRIU, it is back on every
	 * task of a container whose process.noNewPrivileges says so. CRIU runs
	 * as root, so the flag takes nothing from it (execve gains nothing it
	 * does not hold already). */
	bool nnp = c->spec && c->spec->process && c->spec->process->no_new_privileges;
	struct agent_job_options o = {.pass_fds = pass,
				      .n_pass_fds = npass,
				      .cgroup = c->cgroup,
				      .cgroupns = container_has_ns(c->spec, "cgroup"),
				      .netns = netns,
				      .no_new_privs = nnp,
				      .timeout_ms = CRIU_RESTORE_TIMEOUT_MS,
				      .watch = restore_watch,
				      .watch_ms = CRIU_WATCH_MS,
				      .ns_fds = pod_ns,
				      .n_ns_fds = 3};
	x->t0 = now_ms();
	x->next_progress_ms = 0; /* the host hears of CRIU's start at once */
	restore_progress(x, "restore");
	if (*x->fault)
		(void)setenv(COCOON_FAULT_ENV, x->fault, 1); /* for CRIU; unset: no fault */
	guard_tree_open(&x->progress);
	int started = agent_job_start_ex(a, av->args, &o, restore_done, x, e);
	ckpt_pod_namespaces_close(pod_ns);
	(void)unsetenv(COCOON_FAULT_ENV); /* cannot fail: a valid name */
	guard_tree_root(&x->progress, started);
	return started;
}

/* CRIU's restore of x, once its images are in place: its command line, the
 * stdio, the network namespace and the execs' pipes passed in, then the
 * job (restore-job.c follows it). A failure answers the request and frees
 * x (restore_fail). */
static void restore_start_criu(struct restore_ctx *x)
{
	struct agent_container *c = container_find(x->a, x->cid);
	_cleanup_error_ struct error *e = NULL;
	_cleanup_(argv_free) struct argv av = ARGV_EMPTY;
	char netns[64];
	size_t npass = 3;

	if (!c) {
		restore_fail(x, ENOENT, "container vanished");
		return;
	}
	restore_criu_argv(x, c, &av);
	int r = restore_stdio(x, &av, &e);
	if (r == 0 && c->own_netns && !userns_wanted(c->spec)) {
		r = restore_criu_netns(x, c, &av, netns, sizeof(netns), &e);
		npass = 4;
	}
	if (r < 0) {
		restore_fail(x, -r, error_msg(e));
		return;
	}
	/* The stdio of the execs the dump took (execs.h), after those. */
	struct execs_restore ex;
	int pass[4 + EXECS_PIPES_MAX];
	if (execs_restore_pipes(x->images, x->child_fds[1], x->child_fds[2], 3 + (int)npass, &ex,
				&e) < 0) {
		restore_fail(x, EINVAL, error_msg(e));
		return;
	}
	memcpy(pass, x->child_fds, npass * sizeof(int));
	for (size_t i = 0; i < ex.n; i++) {
		pass[npass + i] = ex.fds[i];
		argv_add_pair(&av, "--inherit-fd", ex.args[i]);
	}
	int bad = argv_finish(&av);
	if (bad < 0) {
		(void)error_set(&e, -bad, "restore %s: CRIU's command line", x->cid);
		execs_restore_close(&ex);
		restore_fail(x, -bad, error_msg(e));
		return;
	}
	int started =
		restore_criu_start(x, c, &av, pass, npass + ex.n, npass == 4 ? netns : NULL, &e);
	execs_restore_close(&ex);
	if (started < 0) {
		restore_fail(x, e ? e->code : -started, error_msg(e));
		return;
	}
	/* The child has its copies of the pipe ends now. */
	for (int i = 0; i < 4; i++) {
		close(x->child_fds[i]);
		x->child_fds[i] = -1;
	}
}

static void restore_copied(struct agent_job *job, int status)
{
	struct restore_ctx *x = job->userdata;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		restore_fail(x, EIO, "copying the images into guest memory failed");
		return;
	}
	x->copy_ms = now_ms() - x->t0;
	restore_start_criu(x);
}

/* Whether req can be acted on: a spec with a valid ID, at most
 * COCOON_MAX_CHAIN image shares or else a relative shared path without
 * "..", a known fault. If not, the request is answered here. */
static bool restore_request_valid(struct agent *a, uint64_t id, const Cocoon__RestoreRequest *req)
{
	const Cocoon__ContainerSpec *s = req ? req->spec : NULL;
	bool by_tag = req && req->n_images > 0;
	if (!s || !cocoon_id_valid(s->id) || req->n_images > COCOON_MAX_CHAIN ||
	    (!by_tag &&
	     (!req->shared_path || strstr(req->shared_path, "..") || req->shared_path[0] == '/'))) {
		agent_send_error(a, id, EINVAL, "restore: invalid request");
		return false;
	}
	if (!criu_fault_valid(req->fault, false) ||
	    strlen(req->fault) >= sizeof(((struct restore_ctx *)0)->fault)) {
		agent_send_error(a, id, EINVAL, "restore %s: unknown fault to inject: %s", s->id,
				 req->fault);
		return false;
	}
	return true;
}

/* A new restore of container ID for request req_id, holding nothing yet
 * (every fd -1). NULL when out of memory. */
static struct restore_ctx *restore_ctx_new(struct agent *a, uint64_t req_id, const char *id,
					   const char *fault)
{
	struct restore_ctx *x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	snprintf(x->fault, sizeof(x->fault), "%s", fault ? fault : "");
	x->progress.exits_fd = -1;
	x->oom_kills0 = ckpt_oom_kills();
	x->a = a;
	x->req_id = req_id;
	x->host_in = x->host_out = x->host_err = -1;
	x->child_fds[0] = x->child_fds[1] = x->child_fds[2] = x->child_fds[3] = -1;
	cocoon__criu_options__init(&x->criu);
	snprintf(x->cid, sizeof(x->cid), "%s", id);
	snprintf(x->work, sizeof(x->work), "%s/" COCOON_RESTORE_PREFIX "%s", a->ckpt_dir, id);
	return x;
}

/* A fresh /dev (always left out of dumps) and /dev/shm (left out while
 * empty), made from the spec s under the agent's checkpoint directory;
 * CRIU gets them as external mounts (x->fresh_args) and ignores a key the
 * images do not use. Returns 0, or a negative errno with *ERR saying why.
 * The paths fit: the checkpoint directory, a short name and an ID. */
_Static_assert(sizeof(((struct restore_ctx *)0)->fresh_args[0]) >=
		       sizeof("mnt[]:") + 16 + COCOON_GUEST_CKPT_DIR_MAX + sizeof("/shm-") +
			       COCOON_ID_MAX + sizeof("/dev/shm"),
	       "struct restore_ctx: fresh_args too short");
static int restore_fresh_mounts(struct restore_ctx *x, struct agent_container *c,
				const Cocoon__ContainerSpec *s, struct error **err)
{
	static const struct {
		const char *destination, *key, *dir;
	} fresh[] = {{"/dev", DEV_KEY, "dev"}, {"/dev/shm", SHM_KEY, "shm"}};
	const bool wanted[] = {c->dev_tmpfs, c->shm_tmpfs};
	for (size_t i = 0; i < ARRAY_SIZE(fresh); i++) {
		char base[COCOON_GUEST_CKPT_DIR_MAX + sizeof("/shm-") + COCOON_ID_MAX];
		if (!wanted[i])
			continue;
		snprintf(base, sizeof(base), "%s/%s-%s", x->a->ckpt_dir, fresh[i].dir, s->id);
		mkdir(base, 0700);
		/* CRIU's restored root opens these sources from inside a user
		 * namespace, as "other" to the guest's root. */
		if (userns_wanted(s) && (chmod(x->a->ckpt_dir, 0711) < 0 || chmod(base, 0711) < 0))
			return error_set(err, errno, "%s", base);
		if (mounts_prepare_fresh(s, fresh[i].destination, base, err) < 0) {
			(void)error_wrap(err, "%s", fresh[i].destination);
			return -EIO;
		}
		snprintf(x->fresh_args[i], sizeof(x->fresh_args[i]), "mnt[%s]:%s%s", fresh[i].key,
			 base, fresh[i].destination);
	}
	return 0;
}

/* The engine's network, in place before CRIU binds the sockets: a new
 * namespace (x->child_fds[3]) with the interfaces s->network names. With a
 * user namespace CRIU makes the network namespace from the images
 * (checkpoint.c), and such a checkpoint has no interfaces: not called.
 * Returns 0, or a negative errno with *ERR saying why. */
static int restore_engine_network(struct restore_ctx *x, const Cocoon__ContainerSpec *s,
				  struct error **err)
{
	x->child_fds[3] = ckpt_new_loopback_netns();
	if (x->child_fds[3] < 0)
		return error_set(err, errno, "a network namespace for the container");
	return net_configure(s->network, x->child_fds[3], err);
}

/* The copy into guest memory goes on: the host hears of it. */
static void restore_copy_watch(struct agent_job *job)
{
	restore_progress(job->userdata, "copy into guest memory");
}

/* bench_from_tmpfs's baseline: the images copied into guest memory first
 * (cocoon-agent --copy-tree as a job), then CRIU alone (restore_copied). */
static void restore_via_tmpfs(struct restore_ctx *x)
{
	struct agent *a = x->a;
	_cleanup_error_ struct error *e = NULL;
	char dst[300];
	snprintf(dst, sizeof(dst), "%s/rimg-%s", a->ckpt_dir, x->cid);
	copy_tree_remove(dst);
	char src[sizeof(x->images)];
	snprintf(src, sizeof(src), "%s", x->share0[0] ? x->share0 : x->images);
	snprintf(x->images, sizeof(x->images), "%s", dst);
	char *argv[] = {a->self_path, (char *)"--copy-tree", src, dst, NULL};
	struct agent_job_options o = {.watch = restore_copy_watch, .watch_ms = CRIU_WATCH_MS};
	x->t0 = now_ms();
	x->next_progress_ms = 0;
	if (agent_job_start_ex(a, argv, &o, restore_copied, x, &e) < 0)
		restore_fail(x, e ? e->code : EIO, error_msg(e));
}

/* The Restore request: the images in place (restore_images), the
 * container made from its spec without a process, its rootfs, fresh /dev
 * and /dev/shm and the engine's network prepared, then CRIU
 * (restore_start_criu). Every failure goes through restore_fail: answered,
 * the half-made container, the image shares and their staging undone. */
void restore_handle(struct agent *a, uint64_t id, const Cocoon__RestoreRequest *req)
{
	_cleanup_error_ struct error *e = NULL;
	int r;

	if (!restore_request_valid(a, id, req))
		return;
	const Cocoon__ContainerSpec *s = req->spec;
	/* Before anything is mounted: a failure undoes what this request made,
	 * the container of this ID included, so it must be new. */
	if (container_find(a, s->id)) {
		agent_send_error(a, id, EINVAL, "restore %s: container %s exists in this VM", s->id,
				 s->id);
		return;
	}
	struct restore_ctx *x = restore_ctx_new(a, id, s->id, req->fault);
	if (!x) {
		agent_send_error(a, id, ENOMEM, "restore: out of memory");
		return;
	}
	(void)mkdir_p(a->ckpt_dir, 0700, NULL); /* a failure shows in the next step's */
	if ((r = restore_images(x, req, &e)) < 0)
		goto fail;
	x->terminal = s->process && s->process->terminal;
	if (x->terminal && s->process->console_size)
		x->size = *s->process->console_size;
	struct agent_container *c = container_new(a, s->id, s, &e);
	if (!c) {
		r = -EINVAL;
		goto fail;
	}
	if (mounts_prepare_restore(s, c->rootfs, &e) < 0)
		r = -EIO;
	else
		r = restore_fresh_mounts(x, c, s, &e);
	if (r == 0 && c->own_netns && !userns_wanted(s) && s->network && s->network->n_interfaces)
		r = restore_engine_network(x, s, &e);
	if (r < 0)
		goto fail;
	copy_tree_remove(x->work);
	mkdir(x->work, 0700);
	if (req->criu)
		x->criu = *req->criu;
	if (req->bench_from_tmpfs)
		restore_via_tmpfs(x);
	else
		restore_start_criu(x);
	return;
fail:
	(void)error_wrap(&e, "restore %s", s->id);
	restore_fail(x, -r, error_msg(e));
}
