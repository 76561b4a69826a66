/* Checkpoint in the host library (checkpoint.h): CRIU dumps the container
 * inside its VM; the images are checked, checksummed and published on the
 * host atomically. A whole pod is paused, dumped and published together. */
#include "checkpoint.h"
#include "checkpoint-report.h"
#include "cleanup.h"
#include "container.h"
#include "criu-config.h"
#include "images.h"
#include "log.h"
#include "resources-kept.h"
#include "pod.h"
#include "paths.h"
#include "safefs.h"
#include "shim.h"
#include "vmsnap.h"

#include <ctype.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <json-c/json.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

static void make_checkpoint_id(char out[64])
{
	time_t t = time(NULL);
	struct tm tm;
	unsigned r = 0;
	FILE *f = fopen("/dev/urandom", "re");
	if (f) {
		if (fread(&r, sizeof(r), 1, f) != 1)
			r = (unsigned)getpid();
		fclose(f);
	}
	gmtime_r(&t, &tm);
	strftime(out, 64, "ck-%Y%m%d-%H%M%S", &tm);
	snprintf(out + strlen(out), 64 - strlen(out), "-%04x", r & 0xffff);
}

/* A runc-style --parent-path names the pre-dump's image directory; the guest
 * knows that dump by its checkpoint ID, recorded in cocoon.json. */
static int parent_checkpoint_id(const char *parent, char *out, size_t size, struct error **err)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_close_ int dirfd = open(parent, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
	json_object *v;
	if (dirfd < 0)
		return error_set(err, errno, "--parent-path %s", parent);
	int r = safefs_read(dirfd, IMAGES_META, 16 << 20, &text, NULL, err);
	if (r < 0)
		return error_wrap(err, "--parent-path %s", parent);
	json_object *o = json_tokener_parse(text);
	if (!o || !json_object_object_get_ex(o, "checkpoint", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    validate_id("checkpoint", json_object_get_string(v), NULL) < 0) {
		json_object_put(o);
		return error_setx(err, EINVAL, "--parent-path %s: not a cocoon pre-dump", parent);
	}
	snprintf(out, size, "%s", json_object_get_string(v));
	json_object_put(o);
	return 0;
}

/* The destination must be absent or an empty directory: a non-empty one is
 * not ours to overwrite. */
int checkpoint_check_destination(const char *dest, struct error **err)
{
	_cleanup_closedir_ DIR *d = opendir(dest);
	struct dirent *de;
	if (!d)
		return errno == ENOENT ? 0 : error_set(err, errno, "--image-path %s", dest);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			return error_setx(
				err, ENOTEMPTY,
				"image path %s is not empty; refusing to overwrite what is not ours",
				dest);
	return 0;
}

/* After a checkpoint without --leave-running: the container ends (as under
 * runc) once its images are safe, or is thawed when they are not. */
void checkpoint_thaw_or_kill(struct global_opts *g, const char *id, bool kill_it)
{
	/* Best effort: the checkpoint's own result is what is reported. */
	if (!kill_it) {
		(void)container_pause(g, id, true, NULL);
		return;
	}
	(void)container_signal(g, id, SIGKILL, true, NULL);
	/* As with runc, the container is stopped when checkpoint returns. */
	_cleanup_free_ char *dir = NULL;
	struct container_state st;
	long long deadline = now_ms() + 20000;
	while (container_load(g, id, &dir, &st, NULL) == 0 && st.status != STATUS_STOPPED &&
	       now_ms() < deadline) {
		free(dir);
		dir = NULL;
		usleep(20000);
	}
}

/* CRIU's whole log after a failed dump, kept where the user can read it:
 * one per container, the newest (it replaces the last one atomically), so
 * a guest that fails its dumps on purpose, with CRIU's log at its 64 MiB cap
 * (IMAGES_MAX_LOG), cannot take more of the host's disk with each
 * `checkpoint`. */
static void keep_dump_log(struct global_opts *g, const struct checkpoint_options *o, const char *id,
			  const char *dir, const char *ckid, struct error **err)
{
	_cleanup_free_ char *keep = NULL, *msg = NULL;
	const char *where = o->work_path ? o->work_path : g->cfg.host_checkpoint_dir;
	int n = o->work_path ? asprintf(&keep, "%s/" COCOON_DUMP_LOG, where)
			     : asprintf(&keep, "%s/failed-%s-" COCOON_DUMP_LOG, where, id);
	if (n < 0 || mkdir_p(where, 0700, NULL) < 0 || images_keep_dump_log(dir, ckid, keep) < 0)
		return;
	if (err && *err && asprintf(&msg, "%s (CRIU's whole log: %s)", (*err)->msg, keep) >= 0) {
		free((*err)->msg);
		(*err)->msg = TAKE_PTR(msg);
	}
}

/* A shim with volumes has a mount namespace of its own (volumes.h), and
 * QEMU with it: the staging mount is then made there. Returns an fd of the
 * shim's mount namespace when it is not ours, -1 when it is ours, -2 when
 * the shim is not the one recorded (then nothing is staged). */
static int shim_mount_ns(const char *dir, const struct container_state *st)
{
	char path[64];
	struct stat ours, theirs;
	/* QEMU's is the keeper's, when the shim has one (state.h). */
	pid_t pid = st->shim_pid;
	unsigned long long start = st->shim_start;
	(void)state_keeper_read(dir, &pid, &start, NULL); /* none: the shim's own */
	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || stat("/proc/self/ns/mnt", &ours) < 0 || fstat(fd, &theirs) < 0 ||
	    proc_start_time(pid) != start) {
		if (fd >= 0)
			close(fd);
		return -2;
	}
	if (ours.st_ino == theirs.st_ino && ours.st_dev == theirs.st_dev) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The container's VM was booted for whole-VM checkpoints (vmsnap.h). */
static bool vmsnap_booted(const char *dir)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/" VMSNAP_MARK, dir);
	return access(path, F_OK) == 0;
}

/* A whole-VM checkpoint: the shim has QEMU save the VM into its state
 * directory, and the file is published here as dest with vm.json. Without
 * --leave-running the VM stays stopped until then, and is killed (or let
 * run on when the publish failed), as the CRIU route does. */
static int vm_checkpoint(struct global_opts *g, const char *id, const char *dir,
			 struct checkpoint_options *o, const char *dest, const char *ckid,
			 struct error **err)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__CheckpointRequest cr = COCOON__CHECKPOINT_REQUEST__INIT;
	Cocoon__Response *resp = NULL;
	_cleanup_free_ char *mark = NULL, *lock = NULL, *staging = NULL;
	struct vmsnap_meta m = {0};

	if (o->pre_dump || o->parent_path || o->bench_route)
		return error_setx(
			err, EOPNOTSUPP,
			"--pre-dump, --parent-path and --bench-route are CRIU's; this container's VM is checkpointed whole (checkpoint_mode \"vm\")");
	if (asprintf(&mark, "%s/" VMSNAP_MARK, dir) < 0 ||
	    asprintf(&lock, "%s/" VMSNAP_LOCK, dir) < 0)
		return error_set(err, ENOMEM, "checkpoint");
	/* One at a time (docs/checkpoint.md): without --leave-running the VM
	 * stays stopped after the save until this command has published it
	 * and thawed or killed the container; a second save served meanwhile
	 * would let it run or kill it under the first. Held until then. */
	_cleanup_close_ int lfd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (lfd < 0)
		return error_set(err, errno, "checkpoint %s: %s", id, lock);
	if (flock(lfd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK
			       ? error_setx(err, EBUSY,
					    "checkpoint %s: another checkpoint is in progress", id)
			       : error_set(err, errno, "checkpoint %s: lock %s", id, lock);
	int r = read_file_bounded(mark, VMSNAP_KEY_MAX, &m.key, NULL, err);
	if (r < 0)
		return r;
	/* QEMU writes the VM beside dest, on its filesystem (disk under the
	 * engines), never under the state root (tmpfs: host memory); the
	 * shim hands it the descriptor. The staging directory goes on every
	 * failure: vmsnap_publish removes it, and before that, here. */
	_cleanup_close_ int state_fd = -1;
	if (vmsnap_stage(dest, &staging, &state_fd, err) < 0) {
		free(m.key);
		return error_wrap(err, "checkpoint %s", id);
	}
	cr.id = (char *)id;
	cr.checkpoint_id = (char *)ckid;
	cr.leave_running = o->leave_running;
	cr.whole_vm = true;
	/* Only --tcp-established counts here: the shim holds the container's
	 * addresses until the restore (network.h). */
	cr.criu = &o->criu;
	req.body_case = COCOON__REQUEST__BODY_CHECKPOINT;
	req.checkpoint = &cr;
	long long t0 = now_ms();
	r = container_call_fds(g, id, &req, &state_fd, 1, &resp, SHIM_CHECKPOINT_TIMEOUT_MS, err);
	if (r < 0) {
		(void)remove_tree(staging, NULL);
		free(m.key);
		return r;
	}
	snprintf(m.container_id, sizeof(m.container_id), "%s", id);
	/* [vm] snapshot_zstd_level: vm.state.zst (vmsnap-zstd.h). */
	m.zstd = g->cfg.snapshot_zstd_level > 0;
	m.zstd_level = (int)g->cfg.snapshot_zstd_level;
	Cocoon__CheckpointReply *rep = resp->checkpoint;
	m.state_bytes = rep->bytes;
	/* The bounds a restore applies: nothing is published that it would
	 * refuse (docs/config.md, [limits]). */
	struct vmsnap_limits lim = {.max_bytes = (uint64_t)g->cfg.checkpoint_max_bytes,
				    .verify_ms = (uint64_t)g->cfg.verify_timeout_ms,
				    .max_memory_mib = g->cfg.max_memory_mib};
	r = vmsnap_publish(staging, dest, &m, &lim, rep->stats ? rep->stats->frozen_us / 1000 : 0,
			   (long long)rep->dump_ms, err);
	free(m.key);
	if (!o->leave_running)
		checkpoint_thaw_or_kill(g, id, r == 0);
	if (r < 0) {
		cocoon__response__free_unpacked(resp, NULL);
		return r;
	}
	long long total = now_ms() - t0;
	checkpoint_report_add(o, "checkpoint %s of %s: %s\n", ckid, id, dest);
	checkpoint_report_add(
		o, "  whole VM, %.1f MiB; frozen %.0f ms, save %llu ms, total %lld ms\n",
		(double)rep->bytes / (1 << 20), rep->stats ? rep->stats->frozen_us / 1000.0 : 0.0,
		(unsigned long long)rep->dump_ms, total);
	checkpoint_report_stats(o, rep, total, dest);
	cocoon__response__free_unpacked(resp, NULL);
	return 0;
}

/* What one checkpoint of a container works with (checkpoint_target_load). */
struct checkpoint_target {
	char *dir;	   /* its state directory */
	char *sandbox_dir; /* a pod member's: the sandbox's, whose VM dumps it */
	const char *idir;  /* the shared directory's owner: one of the two */
	struct container_state st;
	char ckid[64];
	char *dest; /* where the images are published */
};

static void checkpoint_target_free(struct checkpoint_target *t)
{
	free(t->dir);
	free(t->sandbox_dir);
	free(t->dest);
}

/* Loads container ID and checks it can be checkpointed, with the user's
 * CRIU settings, before anything is frozen; makes the checkpoint's ID and
 * its destination (checked absent or empty, its parent made). */
static int checkpoint_target_load(struct global_opts *g, const char *id,
				  struct checkpoint_options *o, struct checkpoint_target *t,
				  struct error **err)
{
	_cleanup_free_ char *parent_dir = NULL;
	if (!g->cfg.enable_checkpoint)
		return error_setx(
			err, EPERM,
			"checkpoints are disabled by runtime.enable_checkpoint = false in %s",
			g->cfg.source ? g->cfg.source : "the configuration");
	int r = container_load(g, id, &t->dir, &t->st, err);
	if (r < 0)
		return r;
	/* A pod member's images are in its sandbox's shared directory: the
	 * guest is the sandbox's VM (docs/pods.md). */
	if (pod_images_state_dir(g, t->dir, &t->sandbox_dir, err) < 0)
		return error_wrap(err, "checkpoint %s", id);
	t->idir = t->sandbox_dir ? t->sandbox_dir : t->dir;
	/* The user's CRIU settings, refused here when they cannot work in
	 * the VM, before anything is frozen. */
	criu_config_free(&o->criu);
	if (criu_config_collect(g->cfg.criu_config, t->st.bundle, &o->criu, err) < 0)
		return error_wrap(err, "checkpoint %s", id);
	if (t->st.status != STATUS_RUNNING && t->st.status != STATUS_PAUSED)
		return error_setx(
			err, EINVAL,
			"container %s is %s; only running or paused containers can be checkpointed",
			id, state_status_name(t->st.status));
	make_checkpoint_id(t->ckid);
	if (o->image_path)
		t->dest = strdup(o->image_path);
	else if (asprintf(&parent_dir, "%s/%s", g->cfg.host_checkpoint_dir, id) < 0 ||
		 asprintf(&t->dest, "%s/%s", parent_dir, t->ckid) < 0)
		return error_set(err, ENOMEM, "checkpoint");
	if ((r = checkpoint_check_destination(t->dest, err)) < 0)
		return r;
	if (parent_dir && (r = mkdir_p(parent_dir, 0700, err)) < 0)
		return r;
	return 0;
}

/* The engines' layout (state root on tmpfs, images on disk): the guest
 * writes the images beside dest, mounted into the shared directory at
 * their place (images.h). 9p only: virtiofsd runs in a mount namespace of
 * its own, where a later mount does not show. Returns whether they are. */
static bool checkpoint_stage_beside(struct global_opts *g, const struct checkpoint_options *o,
				    const struct checkpoint_target *t, struct images_stage *stage)
{
	/* COCOON_STAGING=shared: the way before, for make bench to compare. */
	const char *how = getenv("COCOON_STAGING");
	bool staged = false;
	if (strcmp(g->cfg.shared_fs, "9p") == 0 &&
	    o->bench_route != COCOON__CHECKPOINT_ROUTE__ROUTE_FLOOR &&
	    !(how && !strcmp(how, "shared"))) {
		int ns = shim_mount_ns(t->dir, &t->st);
		staged = ns != -2 &&
			 images_stage_beside(t->idir, t->ckid, t->dest, ns, stage, NULL) == 1;
		if (ns >= 0)
			close(ns);
	}
	return staged;
}

/* CRIU's dump in the container's VM, the images written into the shared
 * directory (or STAGE beside the destination); *RESP is the guest's reply.
 * A failed dump keeps CRIU's log and leaves no images. */
static int checkpoint_dump(struct global_opts *g, const char *id, struct checkpoint_options *o,
			   const struct checkpoint_target *t, char *parent_id,
			   struct images_stage *stage, Cocoon__Response **resp, struct error **err)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__CheckpointRequest cr = COCOON__CHECKPOINT_REQUEST__INIT;
	cr.id = (char *)id;
	cr.checkpoint_id = (char *)t->ckid;
	cr.leave_running = o->leave_running;
	cr.pre_dump = o->pre_dump;
	cr.parent_id = parent_id;
	cr.criu = &o->criu;
	cr.bench_route = o->bench_route;
	/* Fault injection for the e2e tests (docs/checkpoint.md). */
	cr.fault = getenv(COCOON_FAULT_ENV) ? getenv(COCOON_FAULT_ENV) : (char *)"";
	o->criu.debug = g->cfg.enable_debug;
	req.body_case = COCOON__REQUEST__BODY_CHECKPOINT;
	req.checkpoint = &cr;
	o->staged_beside = checkpoint_stage_beside(g, o, t, stage);
	int r = container_call_timeout(g, id, &req, resp, SHIM_CHECKPOINT_TIMEOUT_MS, err);
	if (r < 0 && (*err)->code == ESTALE && !cr.dump_dev_shm) {
		/* The agent left an empty /dev/shm out of the dump, and it
		 * changed before the dump ended: once more, archiving it. */
		error_free(err);
		cr.dump_dev_shm = true;
		o->shm_second_try = true;
		r = container_call_timeout(g, id, &req, resp, SHIM_CHECKPOINT_TIMEOUT_MS, err);
	}
	if (r < 0) {
		keep_dump_log(g, o, id, t->idir, t->ckid, err);
		images_stage_discard(stage);
		images_discard(t->idir, t->ckid);
	}
	return r;
}

/* Publishes the images REP describes at t->dest, then lets the container
 * go as runc does: killed once they are safe, thawed when they are not (a
 * failed checkpoint leaves it as it was). */
static int checkpoint_publish(struct global_opts *g, const char *id,
			      const struct checkpoint_options *o, const struct checkpoint_target *t,
			      const Cocoon__CheckpointReply *rep, struct images_stage *stage,
			      struct error **err)
{
	bool staged = o->staged_beside;
	int r = 0;
	/* The host knows where the images are: checkpoints/CKID, from the ID
	 * it made. The reply only has to agree; it names nothing. */
	char expect[128];
	snprintf(expect, sizeof(expect), COCOON_CHECKPOINTS_DIR "/%s", t->ckid);
	if (strcmp(rep->shared_path, expect) != 0) {
		char named[64];
		snprintf(named, sizeof(named), "%s", rep->shared_path);
		agent_text_sanitize(named);
		r = error_setx(err, EPROTO, "the agent's reply names images at '%s', not %s", named,
			       expect);
	}
	_cleanup_free_ char *kept = resources_kept_read(t->dir);
	struct images_info info = {.container_id = id,
				   .checkpoint_id = t->ckid,
				   .parent_path = o->parent_path,
				   .resources = kept};
	struct images_limits lim;
	images_limits_from_config(&g->cfg, &lim);
	/* Into new host files either way: the guest may hold handles on its
	 * own (images.h). */
	if (r == 0 && staged)
		r = images_publish_staged(stage, t->dest, &info, &lim, err);
	else if (r == 0)
		r = images_publish(t->idir, t->ckid, t->dest, &info, &lim, err);
	if (staged)
		images_discard(t->idir, t->ckid); /* the empty mount point */
	if (r < 0) {
		images_discard(t->idir, t->ckid);
		/* The container was kept frozen, not killed: let it go on. */
		if (!o->leave_running && !o->pre_dump && t->st.status == STATUS_RUNNING)
			checkpoint_thaw_or_kill(g, id, false);
		return r;
	}
	if (!o->leave_running && !o->pre_dump)
		checkpoint_thaw_or_kill(g, id, true);
	/* This host's word on the limits the checkpoint carries: a restore
	 * takes them as they are only with it (resources-kept.h). */
	_cleanup_error_ struct error *note_err = NULL;
	if (resources_kept_note(&g->cfg, t->dest, kept, &note_err) < 0)
		log_warning(
			"checkpoint %s: %s: a restore of it will take only limits that lower the bundle's",
			id, note_err->msg);
	images_copy_logs(t->dest, o->work_path);
	return 0;
}

int checkpoint_container(struct global_opts *g, const char *id, struct checkpoint_options *o,
			 struct error **err)
{
	_cleanup_(checkpoint_target_free) struct checkpoint_target t = {0};
	Cocoon__Response *resp = NULL;
	char parent_id[80] = "";

	int r = checkpoint_target_load(g, id, o, &t, err);
	if (r < 0)
		return r;
	if (vmsnap_booted(t.dir))
		return vm_checkpoint(g, id, t.dir, o, t.dest, t.ckid, err);
	if (o->parent_path &&
	    (r = parent_checkpoint_id(o->parent_path, parent_id, sizeof(parent_id), err)) < 0)
		return r;
	long long t0 = now_ms();
	_cleanup_(images_stage_discard) struct images_stage stage = {
		.parentfd = -1, .mnt_fd = -1, .nsfd = -1};
	r = checkpoint_dump(g, id, o, &t, parent_id, &stage, &resp, err);
	if (r < 0)
		return r;
	Cocoon__CheckpointReply *rep = resp->checkpoint;
	if (o->bench_route == COCOON__CHECKPOINT_ROUTE__ROUTE_FLOOR) {
		/* The benchmark floor: dumped into guest memory and discarded. */
		checkpoint_report_stats(o, rep, now_ms() - t0, "");
		cocoon__response__free_unpacked(resp, NULL);
		return 0;
	}
	r = checkpoint_publish(g, id, o, &t, rep, &stage, err);
	if (r == 0) {
		long long total = now_ms() - t0;
		Cocoon__CriuStats *sts = rep->stats;
		checkpoint_report_add(o, "%s %s of %s: %s\n",
				      o->pre_dump ? "pre-dump" : "checkpoint", t.ckid, id, t.dest);
		checkpoint_report_add(
			o,
			"  %u files, %.1f MiB; frozen %.0f ms, criu %llu ms, copy to host %llu ms, total %lld ms\n",
			rep->files, (double)rep->bytes / (1 << 20),
			sts ? sts->frozen_us / 1000.0 : 0.0, (unsigned long long)rep->dump_ms,
			(unsigned long long)rep->copy_ms, total);
		checkpoint_report_stats(o, rep, total, t.dest);
	}
	cocoon__response__free_unpacked(resp, NULL);
	return r;
}
