/* A running dump: its jobs' callbacks, and the one reply (dump-job.h). */
#include "jobs.h"
#include "channel.h"
#include "container-ops.h"
#include "dump-job.h"
#include "cleanup.h"
#include "ckpt-common.h"
#include "container.h"
#include "copy-tree.h"

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

void ckpt_free(struct ckpt_ctx *x)
{
	if (x->follow_wr >= 0)
		close(x->follow_wr);
	if (x->shm_watch >= 0)
		close(x->shm_watch);
	dump_limit_close(&x->limit);
	free(x->err);
	free(x->stop_reason);
	free(x);
}

static void ckpt_done_state(struct agent *a, const char *cid)
{
	struct agent_container *c = container_find(a, cid);
	if (c)
		c->checkpointing = false;
}

/* A failed checkpoint leaves the container as it was: paused if it was
 * paused, else running. CRIU puts the freezer back itself when it ends
 * normally, but not when it was killed (by us or by the OOM killer), and an
 * exit-mode checkpoint froze the container itself. */
void ckpt_thaw_on_failure(struct ckpt_ctx *x)
{
	struct agent_container *c = container_find(x->a, x->cid);
	int r = c && c->procs[0].phase == PROC_RUNNING ? container_freeze(c, c->paused) : 0;
	if (r < 0)
		agent_log(x->a, "checkpoint %s: put the freezer back (frozen %d): %s", x->cid,
			  c->paused, strerror(-r));
}

/* The container's tasks get their own oom_score_adj back. */
void ckpt_unguard(struct ckpt_ctx *x)
{
	if (x->guarded)
		guard_release(&x->guard);
	x->guarded = false;
}

/* Keeps CRIU's log for the host even when the dump failed. */
static void save_log_to_shared(struct ckpt_ctx *x, const char *name)
{
	char src[300], dst[300];
	snprintf(src, sizeof(src), "%s/%s", x->img, name);
	snprintf(dst, sizeof(dst), AGENT_SHARED_DIR "/" COCOON_CHECKPOINTS_DIR "/%s.%s", x->ckid,
		 name);
	/* On the stack: this may run while the guest is short of memory. */
	char buf[64 * 1024];
	_cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int out =
		open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	ssize_t n;
	while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			break;
}

/* The bulk of a failed dump's guest memory, freed before anything else is
 * done: after an OOM kill of CRIU the guest has next to nothing left, and
 * the container must not be the next to need a page. */
static void remove_page_images(const char *dir)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (strncmp(de->d_name, "pages-", 6) == 0)
			unlinkat(dirfd(d), de->d_name, 0);
}

static void ckpt_fail(struct ckpt_ctx *x, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void count_files(const char *dir, uint32_t *files, uint64_t *bytes)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct dirent *de;
	struct stat st;
	while (d && (de = readdir(d)))
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode)) {
			(*files)++;
			*bytes += (uint64_t)st.st_size;
		}
}

/* What the checkpoint needed and took of the guest's memory. */
static void ckpt_reply_memory(const struct ckpt_ctx *x, Cocoon__CheckpointReply *reply)
{
	reply->route = (char *)x->route_name;
	reply->container_mib = (uint32_t)(x->need_kib / 1024);
	reply->available_mib = (uint32_t)(x->avail_kib / 1024);
	if (x->guard.avail_start_kib > x->guard.avail_low_kib)
		reply->peak_used_mib =
			(uint32_t)((x->guard.avail_start_kib - x->guard.avail_low_kib) / 1024);
}

/* Runs once CRIU and the copier have both finished: one reply, then the
 * guest's copy goes. An error is answered only after the copier is gone, so
 * that the host's cleanup of the shared directory does not race with it. */
static void ckpt_finish(struct ckpt_ctx *x)
{
	if (!x->dump_finished || x->copier > 0 || x->pserver > 0)
		return;
	if (x->pserver_failed && !x->err)
		ckpt_fail(x, EIO, "checkpoint %s: CRIU's page server failed: %s", x->cid,
			  x->pserver_msg);
	ckpt_done_state(x->a, x->cid);
	ckpt_unguard(x);
	guard_sample_memory(&x->guard);
	if (x->err) {
		ckpt_thaw_on_failure(x);
		agent_send_error(x->a, x->req_id, x->err_code, "%s", x->err);
		x->keep = false;
	} else if (x->route == ROUTE_FLOOR || x->route == ROUTE_DIRECT9P) {
		/* The floor stops at the dump; a direct dump is already in place. */
		Cocoon__Response resp = COCOON__RESPONSE__INIT;
		Cocoon__CheckpointReply reply = COCOON__CHECKPOINT_REPLY__INIT;
		ckpt_thaw_on_failure(x);
		reply.shared_path = x->route == ROUTE_DIRECT9P ? x->shared : (char *)"";
		reply.stats = &x->stats;
		reply.dump_ms = (uint64_t)x->dump_ms;
		ckpt_reply_memory(x, &reply);
		resp.id = x->req_id;
		resp.body_case = COCOON__RESPONSE__BODY_CHECKPOINT;
		resp.checkpoint = &reply;
		agent_send_response(x->a, &resp);
		x->keep = x->route == ROUTE_DIRECT9P;
	} else {
		Cocoon__Response resp = COCOON__RESPONSE__INIT;
		Cocoon__CheckpointReply reply = COCOON__CHECKPOINT_REPLY__INIT;
		/* Count what went across, for the report. */
		count_files(x->img, &reply.files, &reply.bytes);
		reply.shared_path = x->shared;
		reply.stats = &x->stats;
		reply.dump_ms = (uint64_t)x->dump_ms;
		/* What the copy added after the dump ended. */
		reply.copy_ms = (uint64_t)(now_ms() - x->t0 - x->dump_ms);
		reply.copy_overlapped = x->followed;
		/* Frozen until the host kills or thaws it (also the thaw of a
		 * reply that comes after the host gave up, proto). */
		reply.left_frozen = x->froze;
		ckpt_reply_memory(x, &reply);
		resp.id = x->req_id;
		resp.body_case = COCOON__RESPONSE__BODY_CHECKPOINT;
		resp.checkpoint = &reply;
		agent_send_response(x->a, &resp);
	}
	/* The reply goes out before the guest's copy is freed: under TCG,
	 * freeing 256 MiB of tmpfs took most of a second. */
	agent_flush(x->a);
	if (!x->keep)
		copy_tree_remove(x->img);
	if (*x->parent && !x->keep) {
		char parent[300];
		snprintf(parent, sizeof(parent), "%s/%s", x->a->ckpt_dir, x->parent);
		copy_tree_remove(parent);
	}
	ckpt_free(x);
}

static void ckpt_fail(struct ckpt_ctx *x, int code, const char *fmt, ...)
{
	if (x->err)
		return; /* the first cause is the one reported */
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&x->err, fmt, ap) < 0)
		x->err = NULL;
	va_end(ap);
	x->err_code = code;
	if (!x->err)
		x->err = strdup("checkpoint failed (out of memory)");
}

static void ckpt_copy_done(struct agent_job *job, int status)
{
	struct ckpt_ctx *x = job->userdata;

	x->copier = 0;
	if (x->pserver > 0)
		kill(x->pserver, SIGCONT); /* the copier may have stopped it */
	bool failed = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
	if (failed && x->criu > 0 && x->stream) {
		/* Nobody takes the pages out of tmpfs any more. */
		if (!x->stop_reason &&
		    asprintf(&x->stop_reason, "the copier of the page images ended") < 0)
			x->stop_reason = NULL;
		kill(x->criu, SIGKILL);
	}
	if (!x->err && WIFSIGNALED(status) && x->oom_kills0 >= 0 &&
	    ckpt_oom_kills() > x->oom_kills0)
		ckpt_fail(
			x, ENOMEM,
			"checkpoint %s: the guest ran out of memory while the images were copied to the host; its OOM killer ended the copier, not the container (whose tasks are protected during a checkpoint). Raise vm.memory_mib",
			x->cid);
	else if (!x->err && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
		ckpt_fail(x, EIO,
			  "checkpoint %s: copying images to the shared directory failed: %s",
			  x->cid, job->out && *job->out ? job->out : "the copier was killed");
	ckpt_finish(x);
}

/* Tells the host, every CKPT_PROGRESS_MS, that the checkpoint goes on and
 * where: the host gives up on a guest that goes quiet (the shim's
 * limits.checkpoint_silence_ms), rather than wait for its last-resort
 * deadline. */
static void ckpt_progress(struct ckpt_ctx *x, const struct agent_job *job)
{
	long long now = now_ms();
	if (now < x->next_progress_ms)
		return;
	x->next_progress_ms = now + CKPT_PROGRESS_MS;
	ckpt_send_progress(x->a, x->cid,
			   job->pid == x->criu	   ? "dump"
			   : job->pid == x->copier ? "copy to the host"
						   : "page server",
			   guard_dir_bytes(x->img), now - x->t0);
}

/* Runs every CRIU_WATCH_MS beside CRIU and the copier: the host's word of
 * progress, the memory low-water mark, and, for CRIU, whether a task of the
 * container ended (CRIU could wait on it until its deadline) or CRIU stopped
 * making progress. */
void ckpt_watch(struct agent_job *job)
{
	struct ckpt_ctx *x = job->userdata;

	ckpt_progress(x, job);
	guard_sample_memory(&x->guard);
	if (job->pid != x->criu || x->stop_reason)
		return;
	struct guard_death dead;
	char how[48];
	bool died = guard_dead_task(&x->guard, &dead);
	unsigned long long sig = guard_cpu_ticks(job->pid) + guard_dir_bytes(x->img);
	if (x->pserver > 0)
		sig += guard_cpu_ticks(x->pserver);
	if (x->copier > 0)
		sig += guard_cpu_ticks(x->copier);
	if (died) {
		if (asprintf(&x->stop_reason, "task %d of the container ended during the dump (%s)",
			     dead.pid, guard_describe_end(dead.status, how, sizeof(how))) < 0)
			x->stop_reason = NULL;
	} else if (guard_stalled(&x->guard, sig, now_ms(), CRIU_STALL_MS)) {
		if (asprintf(&x->stop_reason,
			     "CRIU made no progress for %d s (no CPU time used, nothing written)",
			     CRIU_STALL_MS / 1000) < 0)
			x->stop_reason = NULL;
	}
	if (!x->stop_reason)
		return;
	kill(job->pid, SIGKILL);
	if (x->copier > 0)
		kill(x->copier, SIGKILL);
	if (x->pserver > 0)
		kill(x->pserver, SIGKILL);
}

void ckpt_start_copier(struct ckpt_ctx *x, bool follow)
{
	struct agent *a = x->a;
	char dst[300];
	int p[2] = {-1, -1};
	snprintf(dst, sizeof(dst), AGENT_SHARED_DIR "/%s", x->shared);
	char writer[16];
	snprintf(writer, sizeof(writer), "%d", x->pserver);
	char *argv[] = {a->self_path,
			(char *)"--copy-tree",
			x->img,
			dst,
			follow ? (x->stream ? (char *)"--follow-punch" : (char *)"--follow") : NULL,
			writer,
			NULL};
	if (!x->stream)
		argv[5] = NULL;
	_cleanup_error_ struct error *e = NULL;
	if (follow && pipe2(p, O_CLOEXEC) < 0)
		return; /* no overlap: the copy runs after the dump */
	struct agent_job_options o = {.pass_fds = p,
				      .n_pass_fds = follow ? 1 : 0,
				      .oom_victim = true,
				      .watch = ckpt_watch,
				      .watch_ms = CRIU_WATCH_MS};
	if (x->route == ROUTE_SEED && !follow)
		argv[1] = (char *)"--copy-tree-like-cp"; /* make bench's baseline */
	pid_t pid = agent_job_start_ex(a, argv, &o, ckpt_copy_done, x, &e);
	if (follow)
		close(p[0]);
	if (pid < 0) {
		if (follow)
			close(p[1]);
		else
			ckpt_fail(x, e->code, "checkpoint %s: %s", x->cid, e->msg);
		return;
	}
	x->copier = pid;
	x->follow_wr = follow ? p[1] : -1;
	x->followed = follow;
}

static bool shm_changed(int watch)
{
	char buf[4096];
	ssize_t n = read(watch, buf, sizeof(buf));
	return n > 0;
}

/* Why the dump failed, in the order that explains it best. A task of the
 * container that died during the dump is named whoever saw it first: the
 * watch (which then stopped CRIU), or CRIU itself (its parasite, or a
 * vanished /proc entry), which exits with its own words before the next
 * watch tick. */
static void ckpt_dump_failed(struct ckpt_ctx *x, const struct agent_job *job, int status,
			     const char *err)
{
	long oom = ckpt_oom_kills();
	/* Counted in /proc/vmstat too; read here in case that is unreadable. */
	bool limit_oom = dump_limit_oom_kills(&x->limit) > 0;
	char cap[64] = "";
	if (x->limit.max_kib > 0)
		snprintf(cap, sizeof(cap), ", %ld MiB of them for CRIU", x->limit.max_kib / 1024);
	struct guard_death dead;
	bool died = guard_killed_task(&x->guard, &dead);
	char also[128] = "", how[48], explained[1024];
	if (died)
		snprintf(also, sizeof(also), " Task %d of the container ended too (%s).", dead.pid,
			 guard_describe_end(dead.status, how, sizeof(how)));
	if (x->stop_reason)
		ckpt_fail(x, died ? ESRCH : ETIMEDOUT,
			  "criu dump stopped: %s; the agent ended CRIU. CRIU said: %s",
			  x->stop_reason, err);
	else if (limit_oom || (x->oom_kills0 >= 0 && oom > x->oom_kills0))
		/* CRIU's own words then only say that something vanished. */
		ckpt_fail(
			x, ENOMEM,
			"criu dump failed: the guest ran out of memory during the dump (the %s route needed about %ld MiB, %ld MiB were available%s) and its OOM killer ended %s, not the container, whose tasks are protected during a checkpoint.%s Raise vm.memory_mib. CRIU said: %s",
			x->route_name, x->need_kib / 1024, x->avail_kib / 1024, cap,
			WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL
				? "CRIU"
				: "a process CRIU needed",
			also, err);
	else if (died)
		ckpt_fail(
			x, ESRCH,
			"criu dump stopped: task %d of the container ended during the dump (%s); CRIU cannot dump a task that is gone. CRIU said: %s",
			dead.pid, how, err);
	else if (ckpt_explain_criu_error(err, x->ghost_limit, explained, sizeof(explained)))
		ckpt_fail(x, EFBIG, "checkpoint %s: %s. CRIU said: %s", x->cid, explained, err);
	else
		ckpt_fail(x, EIO, "criu dump failed%s (%s): %s",
			  job->timed_out ? " and was killed at its time limit" : "",
			  WIFEXITED(status) ? "exit status" : "signal", err);
}

void ckpt_dump_done(struct agent_job *job, int status)
{
	struct ckpt_ctx *x = job->userdata;
	char log[300], stats[300], err[512];

	x->dump_finished = true;
	x->criu = 0;
	x->dump_ms = now_ms() - x->t0;
	snprintf(log, sizeof(log), "%s/" COCOON_DUMP_LOG, x->img);
	if (job->timed_out || x->stop_reason || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		if (x->copier > 0)
			kill(x->copier, SIGKILL);
		if (x->pserver > 0)
			kill(x->pserver, SIGKILL);
		if (x->route != ROUTE_DIRECT9P)
			remove_page_images(x->img);
		criu_log_first_error(log, err, sizeof(err));
		save_log_to_shared(x, COCOON_DUMP_LOG);
		ckpt_dump_failed(x, job, status, err);
		if (x->copier > 0)
			kill(x->copier, SIGKILL);
		dump_limit_close(&x->limit); /* and whatever CRIU left running */
	} else {
		dump_limit_close(&x->limit);
		snprintf(stats, sizeof(stats), "%s/" COCOON_STATS_DUMP, x->img);
		criu_read_stats(stats, &x->stats);
		if (x->shm_watch >= 0 && shm_changed(x->shm_watch)) {
			ckpt_fail(x, ESTALE,
				  "checkpoint %s: /dev/shm changed while it was dumped as empty",
				  x->cid);
			if (x->copier > 0)
				kill(x->copier, SIGKILL);
		} else if (x->follow_wr >= 0) {
			/* The copier makes its last pass now. */
			close(x->follow_wr);
			x->follow_wr = -1;
		} else if (!x->err && x->copier <= 0 && x->route != ROUTE_FLOOR &&
			   x->route != ROUTE_DIRECT9P) {
			ckpt_start_copier(x, false);
		}
	}
	ckpt_finish(x);
}

static void ckpt_pserver_done(struct agent_job *job, int status)
{
	struct ckpt_ctx *x = job->userdata;
	char log[300];
	x->pserver = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		x->pserver_failed = true;
		snprintf(log, sizeof(log), "%s/page-server.log", x->img);
		criu_log_first_error(log, x->pserver_msg, sizeof(x->pserver_msg));
	}
	ckpt_finish(x);
}

/* Starts `criu page-server` on SOCK, the other end of the dump's
 * --ps-socket, writing the page images beside the small ones, where the
 * copier takes them as they grow. Started after the dump: the pair is
 * connected already, and should this fail, the dump's own end (and its
 * callback) clears everything up. */
int ckpt_start_page_server(struct ckpt_ctx *x, int sock, struct error **err)
{
	char *argv[] = {x->a->criu_path, (char *)"page-server",
			(char *)"-D",	 x->img,
			(char *)"-o",	 (char *)"page-server.log",
			(char *)"-v2",	 (char *)"--ps-socket",
			(char *)"3",	 NULL};
	struct agent_job_options o = {.pass_fds = &sock,
				      .n_pass_fds = 1,
				      .oom_victim = true,
				      .watch = ckpt_watch,
				      .watch_ms = CRIU_WATCH_MS};
	pid_t pid = agent_job_start_ex(x->a, argv, &o, ckpt_pserver_done, x, err);
	if (pid > 0)
		x->pserver = pid;
	return pid;
}
