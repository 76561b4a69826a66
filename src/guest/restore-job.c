/* A running restore: its CRIU job's watch and end (restore-job.h). */
#include "channel.h"
#include "restore-job.h"
#include "cleanup.h"
#include "cgroups.h"
#include "devcg.h"
#include "error.h"
#include "ckpt-common.h"
#include "container.h"
#include "copy-tree.h"
#include "fdio.h"

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
#include <unistd.h>

void restore_ctx_free(struct restore_ctx *x)
{
	for (int i = 0; i < 4; i++)
		if (x->child_fds[i] >= 0)
			close(x->child_fds[i]);
	free(x->stop_reason);
	guard_tree_close(&x->progress);
	free(x);
}

/* A restored init that dies late in a restore leaves CRIU 3.17 waiting
 * without end (cr-restore.c), whichever way it goes:
 *   - while CRIU still handles SIGCHLD: its handler reaps it, logs "N killed
 *     by signal S" and aborts the stage, but the next stage switch
 *     (__restore_switch_stage) resets the abort, and CRIU waits for the dead
 *     task to reach that stage;
 *   - once CRIU ignores SIGCHLD (ignore_kids, after the post-restore
 *     scripts): it fails to attach to it ("Unable to resume N", a failure it
 *     does not act on) and waits the same way.
 * The kernel's exit events tell the agent of the death either way (CRIU may
 * have reaped the zombie). CRIU's pidfile, written by then, names the
 * init; CRIU writes its stats once it has resumed the tasks, and from then
 * on an end is the container's own. Only the init: another task of the
 * container may die by a signal during a restore as it should (a zombie of
 * the checkpoint is restored as a task that kills itself with its signal),
 * so another's death is left to the progress watch. */
static bool restored_task_lost(struct restore_ctx *x)
{
	char path[sizeof(x->work) + 16];
	snprintf(path, sizeof(path), "%s/" COCOON_STATS_RESTORE, x->work);
	if (access(path, F_OK) == 0)
		return false;
	snprintf(path, sizeof(path), "%s/pidfile", x->work);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	int init = 0;
	if (!f || fscanf(f, "%d", &init) != 1 || init <= 0)
		return false;
	return guard_tree_lost(&x->progress, init, &x->lost);
}

/* A restore that stops making progress is stopped: CRIU and the tasks it
 * restores all run in the container's cgroup, so its CPU time, with CRIU's
 * log, shows whether anything is happening. The kernel's exit events tell
 * which of the tasks CRIU made died and how (named if the restore fails:
 * CRIU's own words often do not, e.g. when its post-restore script then
 * fails on the task that is gone). */
void restore_progress(struct restore_ctx *x, const char *stage)
{
	long long now = now_ms();
	if (now < x->next_progress_ms)
		return;
	x->next_progress_ms = now + CKPT_PROGRESS_MS;
	ckpt_send_progress(x->a, x->cid, stage, 0, now - x->t0);
}

void restore_watch(struct agent_job *job)
{
	struct restore_ctx *x = job->userdata;
	struct agent_container *c = container_find(x->a, x->cid);
	struct guard_death dead;
	restore_progress(x, "restore");
	(void)guard_tree_killed(&x->progress, false, &dead); /* drains the events */
	if (x->stop_reason || !c)
		return;
	/* The restored init died before CRIU resumed the tasks: CRIU would
	 * wait for it without end (restored_task_lost). */
	if (restored_task_lost(x)) {
		if (asprintf(&x->stop_reason, "task %d of the container ended", x->lost.pid) < 0)
			x->stop_reason = NULL;
		kill(job->pid, SIGKILL);
		return;
	}
	unsigned long long sig =
		guard_cgroup_usec(c->cgroup) + guard_cpu_ticks(job->pid) + guard_dir_bytes(x->work);
	if (!guard_stalled(&x->progress, sig, now_ms(), CRIU_STALL_MS))
		return;
	if (asprintf(&x->stop_reason,
		     "CRIU made no progress for %d s (no CPU time used, nothing logged)",
		     CRIU_STALL_MS / 1000) < 0)
		x->stop_reason = NULL;
	kill(job->pid, SIGKILL);
}

/* Whether task pid shares the agent's namespace of this type (a name under
 * /proc/PID/ns). */
static bool shares_agent_ns(pid_t pid, const char *type)
{
	char path[64];
	struct stat mine, theirs;
	snprintf(path, sizeof(path), "/proc/%d/ns/%s", pid, type);
	if (stat(path, &theirs) < 0)
		return false; /* it ended: the host hears of that */
	snprintf(path, sizeof(path), "/proc/self/ns/%s", type);
	return stat(path, &mine) == 0 && mine.st_dev == theirs.st_dev &&
	       mine.st_ino == theirs.st_ino;
}

/* Ends every task of the cgroup (a restore that must not stand). */
static void kill_cgroup(const char *cgroup)
{
	char path[192];
	snprintf(path, sizeof(path), "%s/cgroup.kill", cgroup);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "1", 1) != 1)
		agent_log(NULL, "%s: %s", path, strerror(errno));
}

/* What restore_images made for a restore that failed: each image share
 * under x->shares unmounted (detached) and its mount point removed, the
 * staging under x->staged removed (copy_tree_remove: files and links, one
 * level). Best effort: a mount point still in use stays, and nothing on a
 * share is touched (its directory is only removed once empty). */
static void restore_undo_images(struct restore_ctx *x)
{
	_cleanup_closedir_ DIR *d = x->shares[0] ? opendir(x->shares) : NULL;
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char dir[sizeof(x->shares) + 256], stage[sizeof(x->staged) + 256];
		if (de->d_name[0] == '.')
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", x->shares, de->d_name);
		snprintf(stage, sizeof(stage), "%s/%s", x->staged, de->d_name);
		(void)umount2(dir, MNT_DETACH); /* not mounted: nothing to undo */
		rmdir(dir);
		copy_tree_remove(stage);
	}
	if (x->shares[0])
		rmdir(x->shares);
	if (x->staged[0])
		rmdir(x->staged);
}

void restore_fail(struct restore_ctx *x, int code, const char *msg)
{
	struct agent_container *c = container_find(x->a, x->cid);
	agent_send_error(x->a, x->req_id, code, "%s", msg);
	if (x->host_in >= 0)
		close(x->host_in);
	if (x->host_out >= 0)
		close(x->host_out);
	if (x->host_err >= 0)
		close(x->host_err);
	if (c)
		container_free(c);
	restore_undo_images(x);
	restore_ctx_free(x);
}

/* The host copies it to --work-path: kept on success and on failure. */
static void save_restore_log(struct restore_ctx *x)
{
	static const char *const names[] = {COCOON_RESTORE_LOG, COCOON_STATS_RESTORE};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		char src[300], dst[300], buf[65536];
		snprintf(src, sizeof(src), "%s/%s", x->work, names[i]);
		char name[128];
		if (cocoon_restore_file(name, sizeof(name), x->cid, names[i]) < 0)
			continue; /* not reached: the ID is checked, at most COCOON_ID_MAX */
		snprintf(dst, sizeof(dst), AGENT_SHARED_DIR "/%s", name);
		_cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
		_cleanup_close_ int out =
			open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (in >= 0 && out >= 0)
			(void)fd_copy_stream(in, out, buf, sizeof(buf)); /* best effort */
	}
}

/* What a failed restore left to tell why: CRIU's first error, a task of the
 * container that ended and how, the OOM killer, a task CRIU could not
 * resume. Read once by restore_end_read; restore_explain words it. */
struct restore_end {
	char first[512]; /* CRIU's first Error line of restore.log */
	char how[48];	 /* guard_describe_end of the task that ended */
	struct guard_death dead;
	bool died;   /* a task of the container ended (dead, how) */
	bool oomed;  /* the guest's OOM killer ran during the restore */
	bool enomem; /* or the restorer's mmap failed: -ENOMEM, in hex */
	int gone;    /* CRIU: "Unable to resume N: No such process" (0: not said) */
};

static void restore_end_read(struct restore_ctx *x, struct restore_end *e)
{
	char path[sizeof(x->work) + 16];
	snprintf(path, sizeof(path), "%s/" COCOON_RESTORE_LOG, x->work);
	criu_log_first_error(path, e->first, sizeof(e->first));
	long oom = ckpt_oom_kills();
	e->oomed = x->oom_kills0 >= 0 && oom > x->oom_kills0;
	e->enomem = strstr(e->first, " with 0xfffffffffffffff4") ||
		    strstr(e->first, "Cannot allocate memory");
	e->how[0] = 0;
	e->died = guard_tree_killed(&x->progress, e->oomed, &e->dead);
	if (e->died)
		guard_describe_end(e->dead.status, e->how, sizeof(e->how));
	/* A restored task that died before CRIU resumed the tree (killed from
	 * outside, or by the guest's kernel): the watch saw its zombie
	 * (x->lost). Else CRIU names it, and waits on it until the stall
	 * watch ends it. */
	const char *unres = strstr(e->first, "Unable to resume ");
	e->gone = unres && strstr(unres, "No such process")
			  ? atoi(unres + strlen("Unable to resume "))
			  : 0;
}

/* The guest ran out of memory: who its OOM killer took, if it did. The
 * restored tasks get the oom_score_adj the dump saw (protected), so CRIU is
 * usually the one taken. */
static void restore_explain_oom(struct restore_ctx *x, int status, const struct restore_end *e,
				char *err, size_t size)
{
	char victim[80] = " and a memory map of the container could not be made";
	if (e->oomed && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
		snprintf(victim, sizeof(victim), " and its OOM killer ended CRIU");
	else if (e->oomed && e->died)
		snprintf(victim, sizeof(victim),
			 " and its OOM killer ended task %d of the container", e->dead.pid);
	else if (e->oomed)
		snprintf(victim, sizeof(victim),
			 " and its OOM killer ended a process of the restore");
	snprintf(
		err, size,
		"criu restore failed: the guest ran out of memory during the restore (%ld MiB available now)%s. The container needs more memory than this VM has: raise vm.memory_mib. CRIU said: %s",
		guard_mem_available_kib() / 1024, victim, e->first);
}

/* CRIU's own error, where it has a known cause in the container's files or
 * network. False when it has none (err untouched). */
static bool restore_explain_criu(const char *first, char *err, size_t size)
{
	char file[256];
	long have, want;
	const char *bad = strstr(first, "File ");
	if (bad &&
	    sscanf(bad, "File %255s has bad size %ld (expect %ld)", file, &have, &want) == 3) {
		/* CRIU checks the size of every regular file a task holds open. */
		snprintf(
			err, size,
			"the container's file /%s in its rootfs changed since the checkpoint (%ld bytes, the checkpoint expects %ld). CRIU cannot restore a task holding a file whose size changed: this happens when a --leave-running checkpoint is restored while the original keeps writing to its rootfs. Restore a checkpoint taken without --leave-running, or keep such files on a tmpfs inside the container, which the images capture",
			file, have, want);
		return true;
	}
	if (strstr(first, "Can't bind inet socket back")) {
		/* soccr binds each restored TCP connection to the local
		 * address it had: the container's network must have it. */
		snprintf(
			err, size,
			"criu restore failed: an established TCP connection of the checkpoint has a local address the container's network does not have now (the engine's network namespace given to restore has other addresses). Restore on a namespace with the addresses the container had, or checkpoint without --tcp-established. CRIU said: %s",
			first);
		return true;
	}
	return false;
}

/* Why the restore's CRIU job (ended with wait status, or at its time limit)
 * failed, into err[size], from the likeliest cause down: a task of the
 * container lost under CRIU, a task CRIU could not resume, the agent's
 * stop, memory, a task that died, CRIU's own words. */
static void restore_explain(struct agent_job *job, int status, char *err, size_t size)
{
	struct restore_ctx *x = job->userdata;
	struct restore_end e;
	char how[48], also[128] = "";

	restore_end_read(x, &e);
	if (e.died)
		snprintf(also, sizeof(also), " Task %d of the container ended too (%s).",
			 e.dead.pid, e.how);
	if (x->lost.pid > 0 && !e.oomed)
		snprintf(
			err, size,
			"criu restore failed: task %d of the container ended during the restore (%s); CRIU would have waited for it without end, so the agent ended CRIU at once. CRIU said: %s",
			x->lost.pid, guard_describe_end(x->lost.status, how, sizeof(how)), e.first);
	else if (e.gone > 0 && !e.oomed)
		snprintf(
			err, size,
			"criu restore failed: task %d of the container ended during the restore, before CRIU could resume it%s. CRIU said: %s",
			e.gone,
			x->stop_reason
				? "; CRIU then stopped making progress and the agent ended it"
				: "",
			e.first);
	else if (x->stop_reason && !x->lost.pid)
		snprintf(err, size,
			 "criu restore stopped: %s; the agent ended CRIU.%s CRIU said: %s",
			 x->stop_reason, also, e.first);
	else if (e.oomed || e.enomem)
		restore_explain_oom(x, status, &e, err, size);
	else if (e.died)
		/* Not by CRIU: it sends only SIGKILL (guard_tree_killed). */
		snprintf(
			err, size,
			"criu restore failed: task %d of the container ended during the restore (%s). CRIU said: %s",
			e.dead.pid, e.how, e.first);
	else if (!restore_explain_criu(e.first, err, size))
		snprintf(err, size, "criu restore failed%s: %s",
			 job->timed_out ? " and was killed at its time limit" : "", e.first);
}

/* The restored init's pid, from CRIU's pidfile: > 0, or 0 when there is
 * none. */
static int restore_read_pid(struct restore_ctx *x)
{
	char path[sizeof(x->work) + 16];
	snprintf(path, sizeof(path), "%s/pidfile", x->work);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	int pid = 0;
	if (!f || fscanf(f, "%d", &pid) != 1 || pid <= 0)
		return 0;
	return pid;
}

/* CRIU restores the namespaces the images name. Images of a container that
 * ran in the guest's own pid or mount namespace (a cocoon before the rule in
 * container.c, or images made elsewhere) would put it back there, beside
 * CRIU and the agent: refused. Returns the name of the namespace the
 * restored init pid shares with the agent, or NULL. */
static const char *restore_shared_ns(pid_t pid)
{
	static const char *const own[] = {"pid", "mnt"};
	for (size_t i = 0; i < ARRAY_SIZE(own); i++)
		if (shares_agent_ns(pid, own[i]))
			return own[i];
	return NULL;
}

/* The container's limits, its unified cgroup settings and its device
 * program, on its cgroup once CRIU (which ran in it) is done. Returns 0, or
 * a negative errno with *ERR saying what could not be applied. */
static int restore_apply_cgroup(struct agent_container *c, struct error **err)
{
	int r = 0;
	if (c->has_limits && (r = cgroups_apply(c->cgroup, &c->limits, 0, err)) < 0)
		return r;
	if (c->spec &&
	    (r = cgroups_apply_unified(c->cgroup, c->spec->unified, c->spec->n_unified, err)) < 0)
		return r;
	if (c->spec &&
	    (r = devcg_apply(c->cgroup, c->spec->device_rules, c->spec->n_device_rules, err)) < 0)
		return r;
	return 0;
}

/* The reply to the Restore request: the restored init's pid, CRIU's stats,
 * the times, the pty's size. The host's ends of the stdio now belong to the
 * container (container_proc_set_running); x is freed. */
static void restore_reply(struct restore_ctx *x, int pid)
{
	char path[sizeof(x->work) + 16];
	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	Cocoon__RestoreReply reply = COCOON__RESTORE_REPLY__INIT;
	Cocoon__CriuStats stats = COCOON__CRIU_STATS__INIT;
	snprintf(path, sizeof(path), "%s/" COCOON_STATS_RESTORE, x->work);
	criu_read_stats(path, &stats);
	reply.pid = (uint32_t)pid;
	reply.stats = &stats;
	reply.restore_ms = (uint64_t)(now_ms() - x->t0);
	reply.copy_ms = (uint64_t)x->copy_ms;
	Cocoon__ConsoleSize size = COCOON__CONSOLE_SIZE__INIT;
	if (x->terminal && x->size.rows && x->size.cols) {
		size.rows = x->size.rows;
		size.cols = x->size.cols;
		reply.console_size = &size;
	}
	resp.id = x->req_id;
	resp.body_case = COCOON__RESPONSE__BODY_RESTORE;
	resp.restore = &reply;
	agent_send_response(x->a, &resp);
	x->host_in = x->host_out = x->host_err = -1;
	restore_ctx_free(x);
}

void restore_done(struct agent_job *job, int status)
{
	struct restore_ctx *x = job->userdata;
	char path[sizeof(x->images) + 64], err[1024];

	if (job->timed_out || x->stop_reason || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		restore_explain(job, status, err, sizeof(err));
		save_restore_log(x);
		restore_fail(x, EIO, err);
		return;
	}
	int pid = restore_read_pid(x);
	if (pid <= 0) {
		restore_fail(x, EIO, "criu restore wrote no pid");
		return;
	}
	struct agent_container *c = container_find(x->a, x->cid);
	if (!c) {
		restore_fail(x, ENOENT, "container vanished");
		return;
	}
	const char *ns = restore_shared_ns(pid);
	if (ns) {
		kill_cgroup(c->cgroup);
		snprintf(
			err, sizeof(err),
			"the checkpoint's container ran in the guest's own %s namespace, which no container may share (docs/confinement.md): take the checkpoint again with this cocoon",
			ns);
		save_restore_log(x);
		restore_fail(x, EPERM, err);
		return;
	}
	_cleanup_error_ struct error *e = NULL;
	if (restore_apply_cgroup(c, &e) < 0) {
		kill_cgroup(c->cgroup);
		restore_fail(x, EIO, error_msg(e));
		return;
	}
	container_proc_set_running(c, pid, x->host_in, x->host_out, x->host_err, x->terminal);
	/* The dump saw the protected values; these are the container's own. */
	snprintf(path, sizeof(path), "%s/" OOM_ADJ_FILE, x->images);
	guard_apply_saved_adj(c->cgroup, path);
	save_restore_log(x);
	restore_reply(x, pid);
}
