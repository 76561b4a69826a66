/* The host library's container operations (container.h): load a
 * container's state, call its shim, start it, wait for it in the
 * foreground, delete it; container-create.c creates one. The commands
 * (cmd-*.c) parse options and call these. */
#include "container.h"
#include "cleanup.h"
#include "cgroup-mirror.h"
#include "cgroup-overhead.h"
#include "log.h"
#include "paths.h"
#include "pod.h"
#include "shim.h"

#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

/* The directory of a deleted pod sandbox whose keeper died before the
 * pod's last member left (it removes the directory when it ends): no
 * state.json, and a keeper file naming a process that is gone. */
static bool stale_keeper_dir(const char *dir)
{
	char path[4200];
	pid_t pid;
	unsigned long long start;
	_cleanup_close_ int lock = state_lock_dir(dir);
	snprintf(path, sizeof(path), "%s/" STATE_FILE, dir);
	return lock >= 0 && access(path, F_OK) < 0 && errno == ENOENT &&
	       state_keeper_read(dir, &pid, &start, NULL) == -ESRCH;
}

/* The directory of a pod sandbox deleted while members run: its state.json
 * goes (the container is gone: `state` and `list` say so), the rest stays
 * for the keeper, which removes it when the pod's last member leaves. It
 * moves out of the id's way (pod_kept_dir) so that the id can be used
 * again at once; when that cannot be done the id stays taken until then,
 * and create says so. Under the directory's lock. */
static int kept_pod_release(const char *dir, pid_t keeper, struct error **err)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/" STATE_FILE, dir);
	if (unlink(path) < 0 && errno != ENOENT)
		return error_set(err, errno, "remove %s", path);
	_cleanup_free_ char *kept = pod_kept_dir(dir, keeper);
	if (!kept)
		return 0;
	/* A directory of that name left by a keeper of the same pid that
	 * died (stale_keeper_dir) is in the way. */
	if (rename(dir, kept) < 0 && (errno == EEXIST || errno == ENOTEMPTY) &&
	    stale_keeper_dir(kept) && remove_tree(kept, NULL) == 0)
		(void)rename(dir, kept);
	return 0;
}

int container_remove_files(const char *dir, struct error **err)
{
	struct container_state st;
	_cleanup_error_ struct error *cg_err = NULL;
	bool have = state_read(dir, &st, NULL) == 0;
	if (have && st.cgroup[0] && cgmirror_remove(st.cgroup, &cg_err) < 0)
		log_warning("container %s: %s", st.id, cg_err->msg);
	/* One left by a VM owner that was killed (cgroup-overhead.h). */
	if (have && st.id[0])
		cgoverhead_remove("/sys/fs/cgroup", st.id);
	/* The keeper (state.h) of a container without members ends with
	 * it, within moments of its shim. One that still runs the VM for a
	 * pod's members (the sandbox deleted first) removes the directory
	 * itself, which holds the pod share and the VM's shared directory,
	 * once the last member has left: the container is gone when
	 * state.json is (`state` and `list` say so). Decided under the
	 * directory's lock, which the keeper takes at its end. */
	long long kill_at = now_ms() + 10000;
	for (int kills = 0;;) {
		pid_t pid;
		unsigned long long start;
		bool pod = false;
		_cleanup_close_ int lock = state_lock_dir(dir);
		if (lock == -ENOENT)
			return 0;
		if (lock == -ENOTDIR || lock == -ELOOP)
			return remove_tree(dir, err); /* not a directory: no keeper in it */
		if (lock < 0)
			return error_set(err, -lock, "lock %s", dir);
		int r = state_keeper_read(dir, &pid, &start, &pod);
		if (r == -ENOENT || r == -ESRCH)
			return remove_tree(dir, err);
		if (r < 0)
			return error_set(err, -r, "read %s/" STATE_KEEPER_FILE, dir);
		if (pod)
			return kept_pod_release(dir, pid, err);
		if (now_ms() >= kill_at) {
			/* A keeper that hangs: QEMU goes with it. One that a
			 * second kill does not end is in the kernel's hands (a
			 * hung filesystem): say so rather than wait for ever
			 * (rev16b L4). */
			if (kills == 2)
				return error_setx(
					err, EBUSY,
					"the keeper of %s (pid %d) does not end after SIGKILL", dir,
					pid);
			kill(pid, SIGKILL);
			kills++;
			kill_at = now_ms() + 5000;
		}
		nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
	}
}

void container_reap_stale(const char *dir)
{
	if (stale_keeper_dir(dir))
		(void)remove_tree(dir, NULL); /* best effort: create and delete --force retry */
}

/* The shim leads its own session and process group (setsid), with QEMU and
 * virtiofsd in it: killing the group leaves nothing of the VM behind. */
static void kill_shim_group(const struct container_state *st)
{
	pid_t pgid = getpgid(st->shim_pid);
	kill(pgid == st->shim_pid ? -pgid : st->shim_pid, SIGKILL);
	long long deadline = now_ms() + 5000;
	while (pgid == st->shim_pid && kill(-pgid, 0) == 0 && now_ms() < deadline)
		nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
}

static void wait_shim_gone(struct container_state *st, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	while (state_shim_alive(st) && now_ms() < deadline)
		nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
	if (state_shim_alive(st)) {
		/* An unresponsive shim, or one still starting (a restore that
		 * hangs before its state is complete). */
		kill_shim_group(st);
		while (state_shim_alive(st))
			nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
	}
}

static void stop_shim(const char *dir, struct container_state *st)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__ShutdownRequest bye = COCOON__SHUTDOWN_REQUEST__INIT;
	Cocoon__Response *resp = NULL;
	struct agent_client c;

	req.body_case = COCOON__REQUEST__BODY_SHUTDOWN;
	req.shutdown = &bye;
	if (shim_connect(dir, st->id, &c, NULL) == 0) {
		if (agent_call(&c, &req, &resp, 5000, NULL) == 0)
			cocoon__response__free_unpacked(resp, NULL);
		agent_client_close(&c);
	}
	wait_shim_gone(st, 10000);
}

int container_delete(struct global_opts *g, const char *id, bool force, struct error **err)
{
	_cleanup_free_ char *dir = NULL;
	struct container_state st = {0};

	int r = validate_id("container", id, err);
	if (r < 0)
		return r;
	r = container_load(g, id, &dir, &st, err);
	if (r == -ENOENT && dir && force) {
		/* runc: delete --force of a missing container succeeds. A
		 * directory left without its state.json is removed, so the
		 * success is true. */
		error_free(err);
		return container_remove_files(dir, err);
	}
	if (r < 0 && (r != -EINVAL || !dir))
		return r;
	bool live = st.status == STATUS_RUNNING || st.status == STATUS_PAUSED ||
		    st.status == STATUS_CREATING;
	if (r == 0 && live && !force)
		return error_setx(err, EBUSY,
				  "delete %s: container is %s; stop it first or use --force", id,
				  state_status_name(st.status));
	if (r == 0 && st.status == STATUS_CREATING)
		wait_shim_gone(&st, 0); /* no control socket yet: nothing to ask */
	else if (r == 0 && st.status != STATUS_STOPPED)
		stop_shim(dir, &st);
	else if (r == 0)
		wait_shim_gone(&st, 10000); /* a stopped container's shim may still be exiting */
	error_free(err);
	/* A member's pod: its sandbox's directory, if a keeper that died
	 * left it after the sandbox's delete. */
	_cleanup_free_ char *sandbox_dir = NULL;
	(void)pod_images_state_dir(g, dir, &sandbox_dir, NULL); /* none: not a member */
	if ((r = container_remove_files(dir, err)) < 0)
		return r;
	if (sandbox_dir)
		container_reap_stale(sandbox_dir);
	return 0;
}

int container_load(struct global_opts *g, const char *id, char **dir, struct container_state *st,
		   struct error **err)
{
	int r = state_dir(g->root, id, dir, err);
	if (r < 0)
		return r;
	r = state_read(*dir, st, err);
	if (r == -ENOENT) {
		error_free(err);
		return error_setx(err, ENOENT, "container %s does not exist", id);
	}
	return r;
}

int container_call(struct global_opts *g, const char *id, Cocoon__Request *req,
		   Cocoon__Response **resp, struct error **err)
{
	return container_call_timeout(g, id, req, resp, SHIM_CALL_TIMEOUT_MS, err);
}

int container_load_live(struct global_opts *g, const char *id, char **dir, struct error **err)
{
	struct container_state st;
	int r = container_load(g, id, dir, &st, err);
	if (r < 0)
		return r;
	if (st.status == STATUS_STOPPED) {
		free(*dir);
		*dir = NULL;
		return error_setx(err, ESRCH, "container %s is stopped", id);
	}
	return 0;
}

/* A connection to container ID's shim, which must not be stopped. */
static int container_connect(struct global_opts *g, const char *id, struct agent_client *c,
			     struct error **err)
{
	_cleanup_free_ char *dir = NULL;
	int r = container_load_live(g, id, &dir, err);
	return r < 0 ? r : shim_connect(dir, id, c, err);
}

int container_call_timeout(struct global_opts *g, const char *id, Cocoon__Request *req,
			   Cocoon__Response **resp, int timeout_ms, struct error **err)
{
	struct agent_client c;
	int r = container_connect(g, id, &c, err);
	if (r < 0)
		return r;
	r = agent_call(&c, req, resp, timeout_ms, err);
	agent_client_close(&c);
	return r;
}

int container_call_fds(struct global_opts *g, const char *id, Cocoon__Request *req, const int *fds,
		       size_t nfds, Cocoon__Response **resp, int timeout_ms, struct error **err)
{
	struct agent_client c;
	int r = container_connect(g, id, &c, err);
	if (r < 0)
		return r;
	r = agent_call_fds(&c, req, fds, nfds, resp, timeout_ms, err);
	agent_client_close(&c);
	return r;
}

int container_request(struct global_opts *g, const char *id, Cocoon__Request *req,
		      struct error **err)
{
	struct agent_client c;
	int r = container_connect(g, id, &c, err);
	if (r < 0)
		return r;
	r = agent_request(&c, req, SHIM_CALL_TIMEOUT_MS, err);
	agent_client_close(&c);
	return r;
}

int container_pause(struct global_opts *g, const char *id, bool resume, struct error **err)
{
	struct agent_client c;
	int r = container_connect(g, id, &c, err);
	if (r < 0)
		return r;
	r = agent_pause(&c, id, resume, SHIM_CALL_TIMEOUT_MS, err);
	agent_client_close(&c);
	return r;
}

int container_set_paused(struct global_opts *g, const char *id, bool paused, struct error **err)
{
	const char *op = paused ? "pause" : "resume";
	_cleanup_free_ char *dir = NULL;
	struct container_state st;
	int r = container_load(g, id, &dir, &st, err);
	if (r < 0)
		return r;
	enum container_status want = paused ? STATUS_RUNNING : STATUS_PAUSED;
	if (st.status != want)
		return error_setx(err, EINVAL, "%s %s: container is %s, not %s", op, id,
				  state_status_name(st.status), state_status_name(want));
	if (container_pause(g, id, !paused, err) < 0)
		return error_wrap(err, "%s %s", op, id);
	return 0;
}

int container_ps(struct global_opts *g, const char *id, uint32_t **pids, size_t *n,
		 struct error **err)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__PsRequest pr = COCOON__PS_REQUEST__INIT;
	Cocoon__Response *resp = NULL;
	pr.id = (char *)id;
	req.body_case = COCOON__REQUEST__BODY_PS;
	req.ps = &pr;
	*pids = NULL;
	*n = 0;
	int r = container_call(g, id, &req, &resp, err);
	if (r < 0)
		return r;
	size_t count = resp->ps->n_pids;
	*pids = calloc(count ? count : 1, sizeof(**pids));
	if (!*pids) {
		cocoon__response__free_unpacked(resp, NULL);
		return error_set(err, ENOMEM, "ps");
	}
	memcpy(*pids, resp->ps->pids, count * sizeof(**pids));
	*n = count;
	cocoon__response__free_unpacked(resp, NULL);
	return 0;
}

int container_list(struct global_opts *g, struct container_state **out, size_t *n,
		   struct error **err)
{
	*out = NULL;
	*n = 0;
	_cleanup_closedir_ DIR *d = opendir(g->root);
	if (!d)
		return errno == ENOENT ? 0 : error_set(err, errno, "state root %s", g->root);
	struct dirent *de;
	while ((de = readdir(d))) {
		struct container_state st;
		_cleanup_free_ char *dir = NULL;
		_cleanup_error_ struct error *e = NULL;
		if (validate_id("container", de->d_name, NULL) < 0 ||
		    state_dir(g->root, de->d_name, &dir, NULL) < 0)
			continue;
		/* No state.json: a container being created or removed (or
		 * `cocoon check`'s directory); anything else is named. */
		int r = state_read(dir, &st, &e);
		if (r == -ENOENT)
			continue;
		if (r < 0) {
			log_warning("list: container %s skipped: %s", de->d_name,
				    e ? e->msg : strerror(-r));
			continue;
		}
		struct container_state *more = realloc(*out, (*n + 1) * sizeof(**out));
		if (!more) {
			free(*out);
			*out = NULL;
			*n = 0;
			return error_set(err, ENOMEM, "list");
		}
		*out = more;
		(*out)[(*n)++] = st;
	}
	return 0;
}

int container_signal(struct global_opts *g, const char *id, int sig, bool all, struct error **err)
{
	struct agent_client c;
	int r = container_connect(g, id, &c, err);
	/* A stopped container (or one whose shim just went), as runc's kill
	 * answers it (libcontainer's Signal): with --all there is nothing left
	 * to signal, and that succeeds; one process's signal fails with
	 * runc's words "container not running", which containerd's shim reads
	 * as "process already finished" (checkKillError,
	 * pkg/process/utils.go). ctr 1.6's `tasks delete -f` kills with --all
	 * before it deletes, also a task that has exited: with any other
	 * answer it failed ("unknown error after kill"). */
	if (r == -ESRCH) {
		error_free(err);
		return all ? 0
			   : error_setx(err, ESRCH,
					"container %s is stopped: container not running", id);
	}
	if (r < 0)
		return r;
	r = agent_signal(&c, id, sig, all, SHIM_CALL_TIMEOUT_MS, err);
	agent_client_close(&c);
	return r;
}

int container_start(struct global_opts *g, const char *id, struct error **err)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__StartContainerRequest start = COCOON__START_CONTAINER_REQUEST__INIT;
	_cleanup_free_ char *dir = NULL;
	struct container_state st;

	int r = container_load(g, id, &dir, &st, err);
	if (r < 0)
		return r;
	if (st.status != STATUS_CREATED)
		return error_setx(err, EINVAL, "container %s is %s, not created", id,
				  state_status_name(st.status));
	req.body_case = COCOON__REQUEST__BODY_START;
	req.start = &start;
	start.id = (char *)id;
	return container_request(g, id, &req, err);
}

static volatile pid_t foreground_shim;

/* `cocoon run` in the foreground passes the signals it gets to the shim,
 * which forwards them to the container. */
static void forward_to_shim(int sig)
{
	if (foreground_shim > 0)
		kill(foreground_shim, sig);
}

int container_wait_foreground(pid_t shim)
{
	/* Foreground: the shim is our child; its status is the container's. */
	struct sigaction sa = {.sa_handler = forward_to_shim, .sa_flags = SA_RESTART};
	int fwd[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
	foreground_shim = shim;
	for (size_t i = 0; i < ARRAY_SIZE(fwd); i++)
		(void)sigaction(fwd[i], &sa, NULL); /* cannot fail: valid signals */
	int status;
	while (waitpid(shim, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
