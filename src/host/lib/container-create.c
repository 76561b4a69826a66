/* container_create (container-create.h): the bundle and what a restore
 * keeps read first, then the claim on the ID (its state directory), then
 * the shim, which boots the VM and creates or restores the container. */
#include "container-create.h"
#include "cleanup.h"
#include "container.h"
#include "log.h"
#include "paths.h"
#include "pod.h"
#include "resources-kept.h"
#include "shim.h"
#include "spec.h"
#include "vmsnap.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* Reads the shim's "OK" or error text until it closes the pipe. Returns
 * the length, or (size_t)-1 when nothing final came within timeout_ms. */
static size_t read_ready(int fd, char *msg, size_t size, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	size_t len = 0;
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		long long left = deadline - now_ms();
		msg[len] = 0;
		if (left <= 0)
			return (size_t)-1;
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno != EINTR)
			return len;
		if (r <= 0)
			continue;
		ssize_t n = read(fd, msg + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || (len += (size_t)n) == size - 1) {
			msg[len] = 0;
			return len;
		}
	}
}

static int write_pid_file(const char *path, pid_t pid, struct error **err)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d", pid);
	return write_file_atomic(path, buf, (size_t)n, 0644, err);
}

/* The limits update set before the checkpoint (c->resources), over the
 * bundle's: as they are when this host noted them for that checkpoint,
 * else only where they lower the bundle's (resources-kept.h). *kept gets
 * what was taken, for the restored container's next checkpoint. */
static int restore_kept_resources(struct global_opts *g, struct oci_bundle *b,
				  const struct images_chain *c, char **kept, struct error **err)
{
	*kept = NULL;
	if (!b->spec->resources) {
		if (!(b->spec->resources = calloc(1, sizeof(*b->spec->resources))))
			return error_set(err, ENOMEM, "restore");
		cocoon__resources__init(b->spec->resources);
	}
	_cleanup_free_ char *taken = NULL;
	if (resources_kept_noted(&g->cfg, c->dirs[0], c->resources)) {
		taken = strdup(c->resources);
	} else {
		char dropped[512];
		taken = resources_kept_lower_only(&g->cfg, c->resources, b->spec->resources,
						  b->cpuset_cpus, dropped, sizeof(dropped), err);
		if (!taken)
			return error_wrap(err, "the checkpoint's limits set by update");
		if (dropped[0])
			log_warning(
				"restore: the checkpoint's %s (set by update) not taken, above the bundle's: "
				"this host did not make that checkpoint, or it was moved, and a checkpoint "
				"directory only lowers limits (docs/resources.md)",
				dropped);
	}
	if (!taken)
		return error_set(err, ENOMEM, "restore");
	int r = resources_kept_apply(taken, b->spec->resources, err);
	if (r < 0)
		return error_wrap(err, "the checkpoint's limits set by update");
	*kept = TAKE_PTR(taken);
	return 0;
}

/* The id is taken: by a container, or by the directory of a deleted pod
 * sandbox whose VM still serves its members (docs/pods.md "Lifetimes"). */
static int create_taken(const char *id, const char *dir, struct error **err)
{
	char path[4200];
	pid_t pid;
	unsigned long long start;
	bool pod = false;
	snprintf(path, sizeof(path), "%s/" STATE_FILE, dir);
	if (access(path, F_OK) < 0 && errno == ENOENT &&
	    state_keeper_read(dir, &pid, &start, &pod) == 0 && pod)
		return error_setx(
			err, EEXIST,
			"container %s already exists: it was deleted, but its pod's VM still runs for the pod's other containers (keeper pid %d); the id is free when the last of them is deleted (docs/pods.md \"Lifetimes\")",
			id, pid);
	return error_setx(err, EEXIST, "container %s already exists", id);
}

/* What container_create works with, read before anything is made. */
struct create_plan {
	struct oci_bundle bundle;
	struct pod_sandbox pod; /* a pod member's sandbox (pod_resolve) */
	int member;		/* 1: a pod member */
	bool vmsnap;		/* booted for whole-VM checkpoints (vmsnap.h) */
	char *kept;		/* a restore's limits set by update (resources-kept.h) */
};

static void create_plan_free(struct create_plan *p)
{
	spec_free(&p->bundle);
	pod_sandbox_free(&p->pod);
	free(p->kept);
}

/* Loads the bundle (its warnings logged), the limits a restore keeps, the
 * pod it joins and whether the VM is booted for whole-VM checkpoints:
 * refused up front when the VMM cannot save such a VM (vmsnap.h). */
static int create_plan_load(struct global_opts *g, const char *id, const struct create_options *o,
			    struct create_plan *p, struct error **err)
{
	int r = spec_load(o->bundle ? o->bundle : ".", id, &p->bundle, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < p->bundle.n_warnings; i++)
		log_warning("config.json: %s", p->bundle.warnings[i]);
	/* The limits update set before the checkpoint, over the bundle's, for
	 * the VM's size and the container's cgroup (resources-kept.h). */
	if (o->restore && o->restore->resources && o->restore->n > 0 &&
	    (r = restore_kept_resources(g, &p->bundle, o->restore, &p->kept, err)) < 0)
		return r;
	p->member = pod_resolve(g, &p->bundle, o->pod_sandbox, &p->pod, err);
	if (p->member < 0)
		return p->member;
	/* Whole-VM mode is decided here, for the VM's life. */
	struct vmsnap_caps caps;
	int vmsnap = o->vmsnap_state ? 1 : vmsnap_wanted(&g->cfg, p->bundle.bundle, err);
	if (vmsnap > 0 && p->member)
		vmsnap = error_setx(
			err, EOPNOTSUPP,
			"whole-VM checkpoints (checkpoint_mode \"vm\") are not supported for pod members yet: a pod's share is 9p (docs/whole-vm.md)");
	else if (vmsnap > 0 && !o->vmsnap_state && vmsnap_require(&g->cfg, &caps, err) < 0)
		vmsnap = -1;
	if (vmsnap < 0)
		return vmsnap;
	p->vmsnap = vmsnap > 0;
	return 0;
}

/* Makes the state directory DIR: mkdir is the atomic claim on the ID (a
 * stale pod keeper's directory is taken over). */
static int create_claim(struct global_opts *g, const char *id, const char *dir, struct error **err)
{
	int r = mkdir_p(g->root, 0700, err);
	if (r < 0)
		return r;
	int made = mkdir(dir, 0700), e = errno;
	if (made < 0 && e == EEXIST) {
		container_reap_stale(dir); /* a dead keeper's directory is taken over */
		made = mkdir(dir, 0700);
		e = errno;
	}
	if (made < 0)
		/* e, not errno: the stale-keeper check's access() sets
		 * errno (rev16b M1 "No such file or directory"). */
		return e == EEXIST ? create_taken(id, dir, err)
				   : error_set(err, e, "create %s", dir);
	return 0;
}

/* What the state directory records beside state.json: the pod the
 * container joins or the network namespace a sandbox holds, and the limits
 * a restore kept. */
static int create_records(const char *dir, const struct create_plan *p, struct error **err)
{
	int r = 0;
	if (p->member && (r = pod_member_record(dir, &p->pod, err)) < 0)
		return r;
	if (!p->member && p->bundle.netns_path &&
	    (r = pod_sandbox_record_netns(dir, p->bundle.netns_path, err)) < 0)
		return r;
	if (p->kept && (r = resources_kept_write(dir, p->kept, err)) < 0)
		return r;
	return 0;
}

/* Forks the shim (shim_main), which boots the VM and creates or restores
 * the container, and waits for its word; writes --pid-file. A shim that
 * failed or hangs is gone on return. */
static int create_start_shim(struct global_opts *g, const char *id, const char *dir,
			     const struct create_options *o, struct create_plan *p, pid_t *shim_pid,
			     struct error **err)
{
	char msg[4096];
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0)
		return error_set(err, errno, "pipe");
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int r = error_set(err, errno, "fork");
		close(fds[0]);
		close(fds[1]);
		return r;
	}
	if (pid == 0) {
		close(fds[0]);
		for (int i = 0; i < o->n_shim_drops; i++)
			if (o->shim_drops[i] >= 0 && o->shim_drops[i] != fds[1])
				close(o->shim_drops[i]);
		struct shim_args a = {.g = g,
				      .id = id,
				      .dir = dir,
				      .bundle = &p->bundle,
				      .console_socket = o->console_socket,
				      .ready_fd = fds[1],
				      .restore = o->restore,
				      .criu = o->criu,
				      .work_path = o->work_path,
				      .bench_from_tmpfs = o->bench_from_tmpfs,
				      .vmsnap = p->vmsnap,
				      .vmsnap_state = o->vmsnap_state,
				      .vmsnap_state_fd = o->vmsnap_state_fd,
				      .vmsnap_key = o->vmsnap_key,
				      .pod = p->member ? &p->pod : NULL};
		shim_main(&a);
	}
	close(fds[1]);
	/* The shim reports within its own bounds (boot, then the create or
	 * restore call); this one catches a shim that hangs regardless. */
	int timeout_ms = (int)g->cfg.boot_timeout_ms +
			 (o->restore ? SHIM_CHECKPOINT_TIMEOUT_MS : SHIM_CALL_TIMEOUT_MS) + 10000;
	size_t len = read_ready(fds[0], msg, sizeof(msg), timeout_ms);
	close(fds[0]);
	if (strcmp(msg, "OK") != 0) {
		if (len == (size_t)-1)
			kill(-pid, SIGKILL); /* the shim's group: QEMU and virtiofsd too */
		waitpid(pid, NULL, 0);
		return len == (size_t)-1
			       ? error_setx(err, ETIMEDOUT, "the shim did not report within %d ms",
					    timeout_ms)
			       : error_setx(err, EIO, "%s",
					    len ? msg : "the shim died during start-up");
	}
	int r = o->pid_file ? write_pid_file(o->pid_file, pid, err) : 0;
	if (r < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return r;
	}
	*shim_pid = pid;
	return 0;
}

int container_create(struct global_opts *g, const char *id, const struct create_options *o,
		     pid_t *shim_pid, struct error **err)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_(create_plan_free) struct create_plan p = {0};

	int r = state_dir(g->root, id, &dir, err);
	if (r < 0)
		return r;
	if ((r = create_plan_load(g, id, o, &p, err)) < 0 ||
	    (r = create_claim(g, id, dir, err)) < 0)
		return r;
	if ((r = create_records(dir, &p, err)) < 0 ||
	    (r = create_start_shim(g, id, dir, o, &p, shim_pid, err)) < 0)
		(void)container_remove_files(dir,
					     NULL); /* best effort: the create failed already */
	return r;
}

int container_run(struct global_opts *g, const char *id, const struct create_options *o,
		  pid_t *shim_pid, struct error **err)
{
	int r = container_create(g, id, o, shim_pid, err);
	if (r < 0)
		return r;
	if ((r = container_start(g, id, err)) < 0) {
		kill(*shim_pid, SIGKILL);
		waitpid(*shim_pid, NULL, 0);
		_cleanup_free_ char *dir = NULL;
		if (state_dir(g->root, id, &dir, NULL) == 0)
			(void)container_remove_files(dir,
						     NULL); /* best effort: run failed already */
	}
	return r;
}
