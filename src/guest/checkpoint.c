/* Checkpoint and restore with CRIU, inside the guest.
 *
 * Dump: CRIU writes into guest memory (tmpfs), which measured ~9x faster than
 * a dump straight into 9p (CRIU writes in small pieces and 9p pays a round
 * trip for each). The container is frozen only during that dump. The images
 * then go to the shared directory with large writes, in a child process
 * (`cocoon-agent --copy-tree`), while the agent keeps serving and, with
 * --leave-running, the container already runs again.
 *
 * Restore: CRIU reads the images from the shared directory and restores the
 * tree detached; its root task is reparented to us, PID 1. The container's
 * stdio pipes are new ones, handed over with --inherit-fd, as runc does; a
 * terminal's pty slave is external to the dump, and a restore hands a new
 * one in its place (the engine gets its master on a new --console-socket).
 *
 * CRIU writes its errors to its log file, not to stdout: so the log is always
 * kept, copied to the host, and its "Error" lines quoted in the reply.
 */
#include "agent.h"
#include "cleanup.h"
#include "cgroups.h"
#include "container.h"
#include "ckpt-check.h"
#include "execs.h"
#include "criu-conf.h"
#include "guard.h"
#include "mounts.h"
#include "network.h"
#include "terminal.h"
#include "pbwire.h"

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

#define CKPT_SHARED_SUBDIR COCOON_CHECKPOINTS_DIR

/* The schema's CheckpointRoute values (proto/cocoon.proto), by short name. */
#define ROUTE_COCOON COCOON__CHECKPOINT_ROUTE__ROUTE_COCOON
#define ROUTE_FLOOR COCOON__CHECKPOINT_ROUTE__ROUTE_FLOOR
#define ROUTE_SEED COCOON__CHECKPOINT_ROUTE__ROUTE_SEED
#define ROUTE_DIRECT9P COCOON__CHECKPOINT_ROUTE__ROUTE_DIRECT9P
#define ROUTE_TMPFS COCOON__CHECKPOINT_ROUTE__ROUTE_TMPFS
#define ROUTE_TMPFS_UNCHECKED COCOON__CHECKPOINT_ROUTE__ROUTE_TMPFS_UNCHECKED
#define ROUTE_STREAM COCOON__CHECKPOINT_ROUTE__ROUTE_STREAM
#define DESCRIPTORS_FILE "cocoon-descriptors"
#define OOM_ADJ_FILE "cocoon-oom-score-adj"
#define NETNS_KEY "cocoon-netns"
#define DEV_KEY "cocoon-dev"
#define SHM_KEY "cocoon-shm"
/* Last resorts only: the watch below stops a stalled CRIU within seconds. */
#define CRIU_DUMP_TIMEOUT_MS (10 * 60 * 1000)
#define CRIU_RESTORE_TIMEOUT_MS (5 * 60 * 1000)
/* How often a running CRIU is looked at, and how long it may go without
 * using CPU time or writing anything before it is taken as stalled. A dump
 * waiting on a task that died sleeps; a working one does neither. */
#define CRIU_WATCH_MS 200
#define CRIU_STALL_MS 6000
/* The guest-memory route needs the container's memory free in the guest,
 * plus room for CRIU itself and what the container may touch meanwhile. */
#define TMPFS_ROUTE_RESERVE_KIB (32 * 1024)
/* The streaming route holds no image pages in the guest: CRIU, the page
 * server, their socket buffers and the small images (docs/checkpoint.md
 * has the measured peak). Below this much free memory nothing is tried. */
#define STREAM_ROUTE_NEED_KIB (32 * 1024)
#define COPY_BUF (4 * 1024 * 1024)

/* mkdir -p, for runtime.guest_checkpoint_dir. */
static void ensure_dir(const char *path)
{
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = 0;
			mkdir(buf, 0700);
			*p = '/';
		}
	}
	mkdir(buf, 0700);
}

/* ---- --copy-tree ----------------------------------------------------------- */

static size_t copy_buf_size = COPY_BUF;
static bool copy_like_cp;
/* The streaming route: what is copied is punched out of tmpfs at once, and
 * the writer (CRIU's page server) is stopped while too much waits. */
static pid_t stream_writer;
static bool writer_stopped;
#define STREAM_BACKLOG_HIGH ((off_t)32 << 20)
#define STREAM_BACKLOG_LOW ((off_t)8 << 20)

/* Writes straight from a shared mapping of the source: 9p's zero-copy path
 * then hands the tmpfs pages to QEMU, and the guest copies nothing. Under
 * TCG a guest memcpy is the dearest part of a copy: 256 MiB took 2.3 s with
 * read()+write() and 0.95 s like this (docs/performance.md). */
static int copy_mapped(int in, int out, off_t from, off_t to)
{
	if (to <= from)
		return 0;
	size_t size = (size_t)(to - from);
	void *map = mmap(NULL, size, PROT_READ, MAP_SHARED | MAP_POPULATE, in, from);
	if (map == MAP_FAILED)
		return -errno;
	int r = 0;
	for (size_t off = 0; off < size && r == 0; off += copy_buf_size) {
		size_t len = size - off < copy_buf_size ? size - off : copy_buf_size;
		r = fd_write_all(out, (const char *)map + off, len);
	}
	munmap(map, size);
	return r;
}

static int copy_file(int sdir, int ddir, const char *name, char *buf)
{
	_cleanup_close_ int in = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_close_ int out =
		openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	struct stat st;
	if (in < 0 || out < 0 || fstat(in, &st) < 0)
		return -errno;
	if (!copy_like_cp && st.st_size >= (off_t)copy_buf_size)
		return copy_mapped(in, out, 0, st.st_size);
	for (;;) {
		ssize_t n = read(in, buf, copy_buf_size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : 0;
		int r = fd_write_all(out, buf, (size_t)n);
		if (r < 0)
			return r;
	}
}

static int copy_link(int sdir, int ddir, const char *name)
{
	char target[256];
	ssize_t n = readlinkat(sdir, name, target, sizeof(target) - 1);
	if (n <= 0)
		return n < 0 ? -errno : 0;
	target[n] = 0;
	return symlinkat(target, ddir, name) < 0 ? -errno : 0;
}

/* A page image CRIU is still writing, copied as it grows. */
struct growing_file {
	char name[64];
	int in, out;
	off_t copied; /* a multiple of COPY_BUF until the last pass */
};

static int growing_copy(struct growing_file *f, bool last)
{
	struct stat st;
	if (fstat(f->in, &st) < 0)
		return -errno;
	/* Below i_size a tmpfs file is written: CRIU appends page runs. */
	off_t end = last ? st.st_size : st.st_size - st.st_size % (off_t)COPY_BUF;
	int r = copy_mapped(f->in, f->out, f->copied, end);
	if (r == 0 && end > f->copied && stream_writer > 0 &&
	    fallocate(f->in, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, f->copied,
		      end - f->copied) < 0)
		r = -errno;
	if (r == 0 && end > f->copied)
		f->copied = end;
	return r;
}

/* Flow control for the streaming route: the page server stops while more
 * than STREAM_BACKLOG_HIGH waits in tmpfs (then CRIU blocks on the full
 * socket), and goes on below STREAM_BACKLOG_LOW. */
static void stream_throttle(struct growing_file *g, size_t n)
{
	off_t backlog = 0;
	struct stat st;
	if (stream_writer <= 0)
		return;
	for (size_t i = 0; i < n; i++)
		if (fstat(g[i].in, &st) == 0 && st.st_size > g[i].copied)
			backlog += st.st_size - g[i].copied;
	if (!writer_stopped && backlog > STREAM_BACKLOG_HIGH)
		writer_stopped = kill(stream_writer, SIGSTOP) == 0;
	else if (writer_stopped && backlog < STREAM_BACKLOG_LOW &&
		 kill(stream_writer, SIGCONT) == 0)
		writer_stopped = false;
}

static struct growing_file *growing_find(struct growing_file *g, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(g[i].name, name) == 0)
			return &g[i];
	return NULL;
}

/* --follow: the page images are copied while CRIU writes them, so that the
 * transfer overlaps the dump; fd 3 reaches end-of-file when the agent has seen
 * CRIU finish. Everything else (small images, the rest of the pages) is
 * copied after that. */
static int follow_pages(int sdir, int ddir, int done_fd, struct growing_file *g, size_t max,
			size_t *n)
{
	for (;;) {
		struct pollfd p = {.fd = done_fd, .events = POLLIN};
		int finished = poll(&p, 1, 40);
		if (finished < 0 && errno != EINTR)
			return -errno;
		if (finished > 0 && (p.revents & POLLNVAL))
			return -EBADF; /* no fd 3: not started by the agent */
		int scan = openat(sdir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		_cleanup_closedir_ DIR *d = scan >= 0 ? fdopendir(scan) : NULL;
		if (!d) {
			int saved = errno;
			if (scan >= 0)
				close(scan);
			return -saved;
		}
		struct dirent *de;
		while ((de = readdir(d))) {
			struct growing_file *f = growing_find(g, *n, de->d_name);
			if (!f && *n < max && strncmp(de->d_name, "pages-", 6) == 0 &&
			    strlen(de->d_name) < sizeof(f->name)) {
				f = &g[*n];
				snprintf(f->name, sizeof(f->name), "%s", de->d_name);
				/* Writable to punch holes in it (streaming route). */
				f->in = openat(sdir, de->d_name,
					       (stream_writer > 0 ? O_RDWR : O_RDONLY) |
						       O_NOFOLLOW | O_CLOEXEC);
				f->out = openat(
					ddir, de->d_name,
					O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
				f->copied = 0;
				if (f->in < 0 || f->out < 0)
					return -errno;
				(*n)++;
			}
			int r = f ? growing_copy(f, false) : 0;
			if (r < 0)
				return r;
		}
		stream_throttle(g, *n);
		if (finished > 0)
			return 0;
	}
}

int copy_tree_main(const char *src, const char *dst, int done_fd, pid_t writer, bool like_cp)
{
	stream_writer = writer;
	/* The seed's baseline copied like cp(1): 128 KiB at a time. */
	if (like_cp) {
		copy_buf_size = 128 * 1024;
		copy_like_cp = true;
	}
	_cleanup_closedir_ DIR *d = opendir(src);
	_cleanup_free_ char *buf = malloc(COPY_BUF);
	struct growing_file growing[16];
	size_t n_growing = 0;
	struct dirent *de;
	int r = 0;

	if (!d || !buf || (mkdir(dst, 0700) < 0 && errno != EEXIST)) {
		fprintf(stderr, "copy %s -> %s: %s\n", src, dst, strerror(errno));
		return 1;
	}
	_cleanup_close_ int ddir = open(dst, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int sdir = dirfd(d);
	r = done_fd >= 0
		    ? follow_pages(sdir, ddir, done_fd, growing, ARRAY_SIZE(growing), &n_growing)
		    : 0;
	if (writer_stopped)
		kill(stream_writer, SIGCONT);
	if (r < 0) {
		fprintf(stderr, "copy %s -> %s while CRIU writes: %s\n", src, dst, strerror(-r));
		return 1;
	}
	while ((de = readdir(d))) {
		struct stat st;
		if (de->d_name[0] == '.' || fstatat(sdir, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		struct growing_file *f = growing_find(growing, n_growing, de->d_name);
		if (f)
			r = growing_copy(f, true);
		else if (S_ISREG(st.st_mode))
			r = copy_file(sdir, ddir, de->d_name, buf);
		else if (S_ISLNK(st.st_mode))
			r = copy_link(sdir, ddir, de->d_name);
		if (r < 0) {
			fprintf(stderr, "copy %s/%s: %s\n", src, de->d_name, strerror(-r));
			return 1;
		}
	}
	return 0;
}

/* ---- CRIU's stats-dump / stats-restore ------------------------------------ */

/* Reads the few fields we report from CRIU's stats_entry (criu/images/
 * stats.proto): dump = 1 { freezing_time 1, frozen_time 2, memdump_time 3,
 * memwrite_time 4, pages_scanned 5, pages_skipped_parent 6, pages_written 7 },
 * restore = 2 { forking_time 3, restore_time 4 }. Times are microseconds. */
static void parse_stats_msg(const uint8_t *p, const uint8_t *end, int outer, Cocoon__CriuStats *st)
{
	while (p < end) {
		uint64_t key, v;
		if (!pbwire_varint(&p, end, &key))
			return;
		unsigned field = (unsigned)(key >> 3), wt = key & 7;
		if (wt == 2) {
			if (!pbwire_varint(&p, end, &v) || v > (uint64_t)(end - p))
				return;
			if (outer == 0)
				parse_stats_msg(p, p + v, (int)field, st);
			p += v;
			continue;
		}
		if (wt != 0 || !pbwire_varint(&p, end, &v))
			return;
		if (outer == 1) {
			switch (field) {
			case 1:
				st->freezing_us = (uint32_t)v;
				break;
			case 2:
				st->frozen_us = (uint32_t)v;
				break;
			case 3:
				st->memdump_us = (uint32_t)v;
				break;
			case 4:
				st->memwrite_us = (uint32_t)v;
				break;
			case 5:
				st->pages_scanned = v;
				break;
			case 6:
				st->pages_skipped_parent = v;
				break;
			case 7:
				st->pages_written = v;
				break;
			}
		} else if (outer == 2) {
			if (field == 3)
				st->forking_us = (uint32_t)v;
			else if (field == 4)
				st->restore_us = (uint32_t)v;
		}
	}
}

static void read_stats(const char *path, Cocoon__CriuStats *st)
{
	uint8_t buf[4096];
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
	/* Two magics (service + stats), then a u32 size and the entry. */
	if (n < 12)
		return;
	uint32_t len;
	memcpy(&len, buf + 8, 4);
	if (len > (size_t)n - 12)
		return;
	parse_stats_msg(buf + 12, buf + 12 + len, 0, st);
}

/* The first "Error" line of a CRIU log, for the reply. */
static void first_error(const char *log, char *out, size_t size)
{
	_cleanup_fclose_ FILE *f = fopen(log, "re");
	char line[512];
	snprintf(out, size, "no Error line in %s", log);
	while (f && fgets(line, sizeof(line), f)) {
		if (strstr(line, "Error") || strstr(line, "error:")) {
			line[strcspn(line, "\n")] = 0;
			snprintf(out, size, "%s", line);
			return;
		}
	}
}

static void criu_common_args(char **argv, int *n, const Cocoon__CriuOptions *o)
{
	if (!o)
		return;
	if (o->tcp_established)
		argv[(*n)++] = (char *)"--tcp-established";
	if (o->ext_unix_sk)
		argv[(*n)++] = (char *)"--ext-unix-sk";
	if (o->shell_job)
		argv[(*n)++] = (char *)"--shell-job";
	if (o->file_locks)
		argv[(*n)++] = (char *)"--file-locks";
}

/* A fresh network namespace with loopback up, as the container had, for
 * CRIU to restore into (--inherit-fd fd[N]:cocoon-netns). The agent steps
 * into it just long enough to bring lo up; it has no threads. */
static int new_loopback_netns(void)
{
	int mine = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (mine < 0 || unshare(CLONE_NEWNET) < 0) {
		if (mine >= 0)
			close(mine);
		return -1;
	}
	agent_loopback_up();
	int ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (setns(mine, CLONE_NEWNET) < 0)
		agent_log(NULL, "cannot return to the agent's network namespace: %s",
			  strerror(errno));
	close(mine);
	return ns;
}

/* ---- checkpoint -------------------------------------------------------------- */

struct ckpt_ctx {
	struct agent *a;
	uint64_t req_id;
	char cid[AGENT_ID_MAX + 1];
	char ckid[AGENT_ID_MAX + 1];
	char img[256];	  /* guest tmpfs */
	char shared[256]; /* relative to the shared dir */
	bool leave_running;
	bool keep;
	bool froze;		       /* we froze it for an exit-mode checkpoint */
	Cocoon__CheckpointRoute route; /* bench_route of the request */
	char parent[AGENT_ID_MAX + 1];
	long long t0, dump_ms;
	Cocoon__CriuStats stats;
	/* The copy to the shared directory runs beside CRIU (--follow). */
	pid_t copier;  /* > 0 while it runs */
	int follow_wr; /* closed when CRIU has finished: the copier's last pass */
	bool followed; /* the copier was started beside CRIU */
	bool dump_finished;
	long oom_kills0;    /* /proc/vmstat oom_kill when the dump began */
	struct guard guard; /* the container's tasks, protected while CRIU runs */
	bool guarded;
	pid_t criu;		  /* the dump's CRIU, while it runs */
	char *stop_reason;	  /* why the agent stopped CRIU */
	long need_kib, avail_kib; /* the fit check's two figures */
	const char *route_name;
	/* The streaming route: CRIU sends the pages to its page server, and
	 * the copier sends them on as they come, punching them out of tmpfs
	 * (docs/checkpoint.md). */
	bool stream;
	pid_t pserver; /* > 0 while the page server runs */
	bool pserver_failed;
	char pserver_msg[256];
	int shm_watch; /* inotify on an empty /dev/shm left out of the dump */
	char *err;     /* the first failure, answered once both have ended */
	int err_code;
	char *ext_args[AGENT_MAX_BINDS];
	size_t n_ext;
	/* The terminal's keys, "tty[rdev:dev]", external to the dump: its pty
	 * slave, then each /dev/tty the container holds (ckpt-check.h). */
	char tty_args[3][CKPT_TTY_KEY_MAX];
	size_t n_tty;
};

static void ckpt_free(struct ckpt_ctx *x)
{
	if (x->follow_wr >= 0)
		close(x->follow_wr);
	if (x->shm_watch >= 0)
		close(x->shm_watch);
	free(x->err);
	free(x->stop_reason);
	for (size_t i = 0; i < x->n_ext; i++)
		free(x->ext_args[i]);
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
static void ckpt_thaw_on_failure(struct ckpt_ctx *x)
{
	struct agent_container *c = container_find(x->a, x->cid);
	if (c && c->procs[0].phase == PROC_RUNNING)
		container_freeze(c, c->paused);
}

/* The container's tasks get their own oom_score_adj back. */
static void ckpt_unguard(struct ckpt_ctx *x)
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
	snprintf(dst, sizeof(dst), AGENT_SHARED_DIR "/" CKPT_SHARED_SUBDIR "/%s.%s", x->ckid, name);
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

static void remove_dir_files(const char *dir)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' || de->d_name[1] != 0)
			unlinkat(dirfd(d), de->d_name, 0);
	rmdir(dir);
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
		reply.copy_ms = (uint64_t)(agent_now_ms() - x->t0 - x->dump_ms);
		reply.copy_overlapped = x->followed;
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
		remove_dir_files(x->img);
	if (*x->parent && !x->keep) {
		char parent[300];
		snprintf(parent, sizeof(parent), "%s/%s", x->a->ckpt_dir, x->parent);
		remove_dir_files(parent);
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

static long oom_kills(void);

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
	if (!x->err && WIFSIGNALED(status) && x->oom_kills0 >= 0 && oom_kills() > x->oom_kills0)
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

/* Runs every CRIU_WATCH_MS beside CRIU and the copier: the memory low-water
 * mark, and, for CRIU, whether a task of the container ended (CRIU could
 * wait on it until its deadline) or CRIU stopped making progress. */
static void ckpt_watch(struct agent_job *job)
{
	struct ckpt_ctx *x = job->userdata;

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
	} else if (guard_stalled(&x->guard, sig, agent_now_ms(), CRIU_STALL_MS)) {
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

static void ckpt_start_copier(struct ckpt_ctx *x, bool follow)
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

/* /dev/shm may hold the container's data, so CRIU archives it (tar | gzip
 * while the container is frozen: 0.18 s under TCG). While it is empty it is
 * left out and made afresh at restore. The watch is set before looking, so
 * that any file created from then until the dump ends shows up as an event:
 * the dump is then refused as stale (ESTALE) and the host asks again with
 * the archive. Returns the watch, or -1 to archive /dev/shm as usual. */
static int shm_left_out(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/root/dev/shm", pid);
	int w = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (w < 0)
		return -1;
	if (inotify_add_watch(w, path, IN_CREATE | IN_MOVED_TO | IN_ONLYDIR) < 0) {
		close(w);
		return -1;
	}
	_cleanup_closedir_ DIR *d = opendir(path);
	struct dirent *de;
	bool empty = d != NULL;
	while (empty && (de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			empty = false;
	if (!empty) {
		close(w);
		return -1;
	}
	return w;
}

static bool shm_changed(int watch)
{
	char buf[4096];
	ssize_t n = read(watch, buf, sizeof(buf));
	return n > 0;
}

/* The kernel's count of OOM kills so far (/proc/vmstat oom_kill). */
static long oom_kills(void)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/vmstat", "re");
	char key[64];
	long v;
	while (f && fscanf(f, "%63s %ld", key, &v) == 2)
		if (strcmp(key, "oom_kill") == 0)
			return v;
	return -1;
}

/* Why the dump failed, in the order that explains it best. A task of the
 * container that died during the dump is named whoever saw it first: the
 * watch (which then stopped CRIU), or CRIU itself (its parasite, or a
 * vanished /proc entry), which exits with its own words before the next
 * watch tick. */
static void ckpt_dump_failed(struct ckpt_ctx *x, const struct agent_job *job, int status,
			     const char *err)
{
	long oom = oom_kills();
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
	else if (x->oom_kills0 >= 0 && oom > x->oom_kills0)
		/* CRIU's own words then only say that something vanished. */
		ckpt_fail(
			x, ENOMEM,
			"criu dump failed: the guest ran out of memory during the dump (the %s route needed about %ld MiB, %ld MiB were available) and its OOM killer ended %s, not the container, whose tasks are protected during a checkpoint.%s Raise vm.memory_mib. CRIU said: %s",
			x->route_name, x->need_kib / 1024, x->avail_kib / 1024,
			WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL
				? "CRIU"
				: "a process CRIU needed",
			also, err);
	else if (died)
		ckpt_fail(
			x, ESRCH,
			"criu dump stopped: task %d of the container ended during the dump (%s); CRIU cannot dump a task that is gone. CRIU said: %s",
			dead.pid, how, err);
	else if (ckpt_explain_criu_error(err, explained, sizeof(explained)))
		ckpt_fail(x, EFBIG, "checkpoint %s: %s. CRIU said: %s", x->cid, explained, err);
	else
		ckpt_fail(x, EIO, "criu dump failed%s (%s): %s",
			  job->timed_out ? " and was killed at its time limit" : "",
			  WIFEXITED(status) ? "exit status" : "signal", err);
}

static void ckpt_dump_done(struct agent_job *job, int status)
{
	struct ckpt_ctx *x = job->userdata;
	char log[300], stats[300], err[512];

	x->dump_finished = true;
	x->criu = 0;
	x->dump_ms = agent_now_ms() - x->t0;
	snprintf(log, sizeof(log), "%s/dump.log", x->img);
	if (job->timed_out || x->stop_reason || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		if (x->copier > 0)
			kill(x->copier, SIGKILL);
		if (x->pserver > 0)
			kill(x->pserver, SIGKILL);
		if (x->route != ROUTE_DIRECT9P)
			remove_page_images(x->img);
		first_error(log, err, sizeof(err));
		save_log_to_shared(x, COCOON_DUMP_LOG);
		ckpt_dump_failed(x, job, status, err);
		if (x->copier > 0)
			kill(x->copier, SIGKILL);
	} else {
		snprintf(stats, sizeof(stats), "%s/stats-dump", x->img);
		read_stats(stats, &x->stats);
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
		first_error(log, x->pserver_msg, sizeof(x->pserver_msg));
	}
	ckpt_finish(x);
}

/* A connected pair of TCP sockets over the guest's loopback: CRIU splices
 * the pages into one (zero-copy to a TCP socket, where a unix socket would
 * copy them) and the page server splices them out of the other. */
static int tcp_pair(int sv[2])
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	_cleanup_close_ int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sv[0] = sv[1] = -1;
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&sa, &len) < 0)
		return -errno;
	sv[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sv[0] < 0 || connect(sv[0], (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    (sv[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0) {
		int saved = errno;
		if (sv[0] >= 0)
			close(sv[0]);
		sv[0] = -1;
		return -saved;
	}
	return 0;
}

/* Starts `criu page-server` on SOCK, the other end of the dump's
 * --ps-socket, writing the page images beside the small ones, where the
 * copier takes them as they grow. Started after the dump: the pair is
 * connected already, and should this fail, the dump's own end (and its
 * callback) clears everything up. */
static int ckpt_start_page_server(struct ckpt_ctx *x, int sock, struct error **err)
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

/* The pipes behind the container's stdio, e.g. "pipe:[12345]": restore hands
 * new pipes in their place with --inherit-fd. With a terminal, the lines
 * after those three are CRIU's keys of the pty slave and of each /dev/tty
 * held open, "tty[rdev:dev]" (criu/tty.c): the dump names them external,
 * and a restore hands a new slave in their place, as runc does with a new
 * --console-socket. */
static int save_descriptors(pid_t pid, const char *dir, char tty_keys[][CKPT_TTY_KEY_MAX],
			    size_t n_tty, int master)
{
	char size_line[64];
	char path[300], link[64], target[128];
	snprintf(path, sizeof(path), "%s/" DESCRIPTORS_FILE, dir);
	_cleanup_fclose_ FILE *f = fopen(path, "we");
	if (!f)
		return -errno;
	for (int fd = 0; fd < 3; fd++) {
		snprintf(link, sizeof(link), "/proc/%d/fd/%d", pid, fd);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = 0;
		fprintf(f, "%s\n", target);
	}
	for (size_t i = 0; i < n_tty; i++)
		fprintf(f, "%s\n", tty_keys[i]);
	/* Then the terminal's size (terminal.h), which the new pty takes. */
	if (n_tty && terminal_size_line(master, size_line, sizeof(size_line)))
		fprintf(f, "%s\n", size_line);
	return 0;
}

/* CRIU's key for the pty slave the init holds as stdin: the agent's pty,
 * whose master stays with the agent, so CRIU cannot dump the pair. */
static int terminal_key(pid_t pid, char *key, size_t size)
{
	char link[64];
	struct stat st;
	snprintf(link, sizeof(link), "/proc/%d/fd/0", pid);
	if (stat(link, &st) < 0)
		return -errno;
	if (!S_ISCHR(st.st_mode))
		return -ENOTTY;
	snprintf(key, size, "tty[%llx:%llx]", (unsigned long long)st.st_rdev,
		 (unsigned long long)st.st_dev);
	return 0;
}

static bool valid_name(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > AGENT_ID_MAX || s[0] == '.' || strstr(s, ".."))
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '/')
			return false;
	return true;
}

/* Picks where CRIU writes the pages, from what the dump will need and what
 * the guest has; refuses up front, touching nothing, when it cannot fit. */
static bool ckpt_choose_route(struct ckpt_ctx *x, struct agent_container *c,
			      const Cocoon__CheckpointRequest *req)
{
	x->need_kib = guard_container_memory_kib(c->cgroup);
	x->avail_kib = guard_mem_available_kib();
	bool checked = x->route != ROUTE_TMPFS_UNCHECKED,
	     may_stream = x->route == ROUTE_COCOON || x->route == ROUTE_STREAM;
	x->stream = x->route == ROUTE_STREAM;
	if (x->route == ROUTE_TMPFS || x->route == ROUTE_TMPFS_UNCHECKED ||
	    x->route == ROUTE_STREAM)
		x->route = ROUTE_COCOON; /* cocoon's route, with one of its two ways forced */
	x->route_name = x->route == ROUTE_DIRECT9P ? "direct9p" : "tmpfs";
	/* Fault injection (tests): the guest-memory route, unchecked. */
	if (!checked || x->route == ROUTE_DIRECT9P)
		return true;
	/* An incremental dump writes only what changed since its parent,
	 * which is not known before, and a pre-dump is kept in guest memory
	 * as the next dump's parent: both take the guest-memory route. */
	bool incremental = *req->parent_id || req->pre_dump;
	if (incremental)
		may_stream = x->stream = false;
	long want = x->need_kib + TMPFS_ROUTE_RESERVE_KIB + x->need_kib / 16;
	if (!x->stream && (*req->parent_id || x->avail_kib < 0 || want <= x->avail_kib))
		return true;
	if (may_stream) {
		x->stream = true;
		if (x->avail_kib < 0 || STREAM_ROUTE_NEED_KIB <= x->avail_kib)
			return true;
		agent_send_error(
			x->a, x->req_id, ENOMEM,
			"checkpoint %s: not enough guest memory for the dump: even streamed to the host it needs about %d MiB free, and the guest has %ld MiB available. Raise vm.memory_mib by at least %ld. The container was not touched",
			c->id, STREAM_ROUTE_NEED_KIB / 1024, x->avail_kib / 1024,
			(STREAM_ROUTE_NEED_KIB - x->avail_kib) / 1024 + 1);
		return false;
	}
	agent_send_error(
		x->a, x->req_id, ENOMEM,
		"checkpoint %s: not enough guest memory for the dump: CRIU writes the container's memory (about %ld MiB) into guest memory first and needs about %ld MiB free, but the guest has %ld MiB available. Raise vm.memory_mib by at least %ld. The container was not touched",
		c->id, x->need_kib / 1024, want / 1024, x->avail_kib / 1024,
		(want - x->avail_kib) / 1024 + 1);
	return false;
}

/* The namespaces a pod member shares with its pod (spec join_namespaces),
 * as process PID has them: fds[0..2] for net, ipc, uts, or -1. */
static void pod_namespaces_of(const struct agent_container *c, pid_t pid, int fds[3])
{
	static const char *const types[] = {"network", "ipc", "uts"}, *const files[] = {
									      "net", "ipc", "uts"};
	for (int i = 0; i < 3; i++) {
		fds[i] = -1;
		if (!c->spec || !c->spec->join_container || !*c->spec->join_container)
			continue;
		for (size_t j = 0; j < c->spec->n_join_namespaces; j++) {
			if (strcmp(c->spec->join_namespaces[j], types[i]) != 0)
				continue;
			char path[64];
			snprintf(path, sizeof(path), "/proc/%d/ns/%s", pid, files[i]);
			fds[i] = open(path, O_RDONLY | O_CLOEXEC);
			break;
		}
	}
}

static void pod_namespaces_close(int fds[3])
{
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

void checkpoint_handle(struct agent *a, uint64_t id, const Cocoon__CheckpointRequest *req)
{
	struct agent_container *c = req ? container_find(a, req->id) : NULL;
	_cleanup_error_ struct error *e = NULL;

	if (!c) {
		agent_send_error(a, id, ENOENT, "checkpoint: no such container");
		return;
	}
	if (!cocoon_id_valid(req->checkpoint_id) ||
	    (*req->parent_id && !cocoon_id_valid(req->parent_id))) {
		agent_send_error(a, id, EINVAL, "checkpoint %s: invalid checkpoint id", c->id);
		return;
	}
	if (!protobuf_c_enum_descriptor_get_value(&cocoon__checkpoint_route__descriptor,
						  (int)req->bench_route)) {
		agent_send_error(a, id, EINVAL, "checkpoint %s: unknown route %d", c->id,
				 (int)req->bench_route);
		return;
	}
	if (c->procs[0].phase != PROC_RUNNING) {
		agent_send_error(a, id, EINVAL, "checkpoint %s: container is not running", c->id);
		return;
	}
	if (!criu_fault_valid(req->fault, true)) {
		agent_send_error(a, id, EINVAL, "checkpoint %s: unknown fault to inject: %s", c->id,
				 req->fault);
		return;
	}
	/* One at a time: a second checkpoint of the same container is refused. */
	if (c->checkpointing) {
		agent_send_error(a, id, EBUSY, "checkpoint %s: another checkpoint is in progress",
				 c->id);
		return;
	}
	char why[1024];
	int bad = ckpt_precheck(c, why, sizeof(why));
	if (bad < 0) {
		agent_send_error(a, id, -bad, "%s", why);
		return;
	}
	struct ckpt_ctx *x = calloc(1, sizeof(*x));
	if (!x) {
		agent_send_error(a, id, ENOMEM, "checkpoint: out of memory");
		return;
	}
	x->a = a;
	x->req_id = id;
	x->follow_wr = -1;
	x->shm_watch = -1;
	x->oom_kills0 = oom_kills();
	cocoon__criu_stats__init(&x->stats);
	x->leave_running = req->leave_running || req->pre_dump;
	x->keep = req->keep_in_guest || req->pre_dump;
	snprintf(x->cid, sizeof(x->cid), "%s", c->id);
	snprintf(x->ckid, sizeof(x->ckid), "%s", req->checkpoint_id);
	x->route = req->bench_route;
	if (!ckpt_choose_route(x, c, req)) {
		ckpt_free(x);
		return;
	}
	snprintf(x->shared, sizeof(x->shared), CKPT_SHARED_SUBDIR "/%s", req->checkpoint_id);
	if (x->stream)
		x->route_name = "stream";
	if (x->route == ROUTE_DIRECT9P)
		snprintf(x->img, sizeof(x->img), AGENT_SHARED_DIR "/%s", x->shared);
	else if (x->route == ROUTE_SEED)
		snprintf(x->img, sizeof(x->img), "/tmp/criu-checkpoint-%s", req->checkpoint_id);
	else
		snprintf(x->img, sizeof(x->img), "%s/%s", x->a->ckpt_dir, req->checkpoint_id);
	ensure_dir(a->ckpt_dir);
	mkdir(AGENT_SHARED_DIR "/" CKPT_SHARED_SUBDIR, 0700);
	/* What a first try left there (the host asks again after ESTALE). The
	 * directory itself may be the host's mount point: it stays then. */
	char dst[300];
	snprintf(dst, sizeof(dst), AGENT_SHARED_DIR "/%s", x->shared);
	if (x->route != ROUTE_FLOOR)
		remove_dir_files(dst);
	if (mkdir(x->img, 0700) < 0 && !(errno == EEXIST && x->route == ROUTE_DIRECT9P)) {
		agent_send_error(a, id, errno, "checkpoint %s: %s: %s", c->id, x->img,
				 strerror(errno));
		ckpt_free(x);
		return;
	}
	if (c->procs[0].terminal) {
		int r = terminal_key(c->procs[0].pid, x->tty_args[0], sizeof(x->tty_args[0]));
		int ctty =
			r < 0 ? 0 : ckpt_ctty_keys(c, x->tty_args + 1, ARRAY_SIZE(x->tty_args) - 1);
		if (r < 0 || ctty >= (int)ARRAY_SIZE(x->tty_args)) {
			if (r < 0)
				agent_send_error(
					a, id, -r,
					"checkpoint %s: the container's terminal (its stdin): %s",
					c->id, strerror(-r));
			else
				agent_send_error(
					a, id, EOPNOTSUPP,
					"checkpoint %s: the container's processes hold /dev/tty open from %d different /dev mounts; at most %zu can be handed a new terminal",
					c->id, ctty, ARRAY_SIZE(x->tty_args) - 1);
			remove_dir_files(x->img);
			ckpt_free(x);
			return;
		}
		x->n_tty = 1 + (size_t)ctty;
	}
	const struct agent_proc *init = &c->procs[0];
	save_descriptors(init->pid, x->img, x->tty_args, x->n_tty,
			 init->out_fd[0] >= 0 ? init->out_fd[0] : init->stdin_fd);
	if (!req->pre_dump) {
		criu_conf_save_mounts(c->procs[0].pid, x->img);
		execs_save_pipes(c, x->img);
	}

	char pid[16], parent[300];
	char *argv[64 + 2 * AGENT_MAX_BINDS];
	int n = 0;
	snprintf(pid, sizeof(pid), "%d", c->procs[0].pid);
	argv[n++] = a->criu_path;
	argv[n++] = req->pre_dump ? (char *)"pre-dump" : (char *)"dump";
	argv[n++] = (char *)"-t";
	argv[n++] = pid;
	argv[n++] = (char *)"-D";
	argv[n++] = x->img;
	argv[n++] = (char *)"-o";
	argv[n++] = (char *)"dump.log";
	argv[n++] = (req->criu && req->criu->debug) || a->debug ? (char *)"-v4" : (char *)"-v2";
	/* CRIU freezes through the container's cgroup; a paused container is
	 * already frozen there and stays so afterwards. */
	argv[n++] = (char *)"--freeze-cgroup";
	argv[n++] = c->cgroup;
	argv[n++] = (char *)"--manage-cgroups=ignore";
	argv[n++] = (char *)"--track-mem";
	/* CRIU runs inside the container's network namespace (see the job
	 * options below), so it locks only established TCP connections, and
	 * only with --tcp-established: then through libnftables, one table for
	 * all of them. Otherwise iptables, which costs nothing when there is
	 * nothing to lock; with nftables CRIU 3.17 built its table anyway
	 * (0.12 s of frozen time under TCG). */
	argv[n++] = (char *)"--network-lock";
	argv[n++] =
		req->criu && req->criu->tcp_established ? (char *)"nftables" : (char *)"iptables";
	/* CRIU always leaves the tasks alive. Without --leave-running the
	 * container stays frozen instead, and the host kills it only once the
	 * images are safely published; if publishing fails (a full disk, say)
	 * the host thaws it and nothing is lost. */
	if (!req->pre_dump)
		argv[n++] = (char *)"--leave-running";
	if (!x->leave_running && !c->paused) {
		int fr = container_freeze(c, true);
		if (fr < 0) {
			agent_send_error(a, id, -fr, "freeze %s for the checkpoint: %s", c->id,
					 strerror(-fr));
			remove_dir_files(x->img);
			ckpt_free(x);
			return;
		}
		x->froze = true;
	}
	if (*req->parent_id) {
		snprintf(x->parent, sizeof(x->parent), "%s", req->parent_id);
		snprintf(parent, sizeof(parent), "../%s", req->parent_id);
		argv[n++] = (char *)"--prev-images-dir";
		argv[n++] = parent;
	}
	if (!req->pre_dump) {
		criu_common_args(argv, &n, req->criu);
		/* /dev holds the device nodes and links the agent made from the
		 * spec. Dumped, it cost two tar+gzip runs while frozen (0.2-0.4 s
		 * under TCG); a restore builds it afresh from the same spec. */
		if (c->dev_tmpfs) {
			argv[n++] = (char *)"--external";
			argv[n++] = (char *)"mnt[/dev]:" DEV_KEY;
		}
		if (c->shm_tmpfs && !req->dump_dev_shm &&
		    (x->shm_watch = shm_left_out(c->procs[0].pid)) >= 0) {
			argv[n++] = (char *)"--external";
			argv[n++] = (char *)"mnt[/dev/shm]:" SHM_KEY;
		}
		for (size_t i = 0; i < c->n_binds && x->n_ext < ARRAY_SIZE(x->ext_args); i++) {
			/* Keyed by destination, as runc does: an engine may list the
			 * mounts in another order at restore (podman --import does). */
			if (asprintf(&x->ext_args[x->n_ext], "mnt[%s]:%s", c->bind_dests[i],
				     c->bind_dests[i]) < 0)
				break;
			argv[n++] = (char *)"--external";
			argv[n++] = x->ext_args[x->n_ext++];
		}
		for (size_t i = 0; i < x->n_tty; i++) {
			argv[n++] = (char *)"--external";
			argv[n++] = x->tty_args[i];
		}
	}
	if (x->stream) {
		argv[n++] = (char *)"--page-server";
		argv[n++] = (char *)"--ps-socket";
		argv[n++] = (char *)"3";
	}
	/* The rest comes from the spec: criu-conf.c. */
	char conf[300];
	snprintf(conf, sizeof(conf), "%s/criu-%s.conf", a->ckpt_dir, c->id);
	if (!req->pre_dump &&
	    criu_conf_write(conf, a, c, c->procs[0].pid, req->criu, true, req->fault) == 0) {
		argv[n++] = (char *)"--config";
		argv[n++] = conf;
	}
	argv[n] = NULL;
	/* CRIU runs inside the container's network namespace. It holds
	 * loopback and nothing else, and every task that can send into it is
	 * frozen, so there is nothing to lock or dump: a restore gets a fresh
	 * one. */
	char netns[64];
	snprintf(netns, sizeof(netns), "/proc/%d/ns/net", c->procs[0].pid);
	int ps[2] = {-1, -1};
	if (x->stream && tcp_pair(ps) < 0) {
		agent_send_error(a, id, errno,
				 "checkpoint %s: a socket pair for CRIU's page server: %s", c->id,
				 strerror(errno));
		ckpt_thaw_on_failure(x);
		remove_dir_files(x->img);
		ckpt_free(x);
		return;
	}
	_cleanup_close_ int ps_dump = ps[0], ps_server = ps[1];
	/* A pod member: CRIU runs in the namespaces it shares with the pod,
	 * which are then its own and not dumped (they are the sandbox's). */
	int pod_ns[3];
	pod_namespaces_of(c, c->procs[0].pid, pod_ns);
	struct agent_job_options o = {.netns = c->own_netns ? netns : NULL,
				      .timeout_ms = CRIU_DUMP_TIMEOUT_MS,
				      .oom_victim = true,
				      .watch = ckpt_watch,
				      .watch_ms = CRIU_WATCH_MS,
				      .pass_fds = &ps_dump,
				      .n_pass_fds = x->stream ? 1 : 0,
				      .ns_fds = pod_ns,
				      .n_ns_fds = 3};
	/* If the guest still runs out of memory, CRIU or the copier is the
	 * OOM killer's choice, never the container. */
	guard_protect(&x->guard, c->cgroup);
	x->guarded = true;
	guard_sample_memory(&x->guard);
	char adj_path[300];
	snprintf(adj_path, sizeof(adj_path), "%s/" OOM_ADJ_FILE, x->img);
	guard_save_adj(&x->guard, adj_path);
	x->t0 = agent_now_ms();
	if (req->fault && *req->fault)
		setenv(CRIU_FAULT_ENV, req->fault, 1); /* inherited by CRIU only */
	x->criu = agent_job_start_ex(a, argv, &o, ckpt_dump_done, x, &e);
	pod_namespaces_close(pod_ns);
	unsetenv(CRIU_FAULT_ENV);
	if (x->criu < 0) {
		agent_send_error(a, id, e->code, "checkpoint %s: %s", c->id, e->msg);
		ckpt_unguard(x);
		ckpt_thaw_on_failure(x);
		remove_dir_files(x->img);
		ckpt_free(x);
		return;
	}
	c->checkpointing = true;
	if (x->stream && ckpt_start_page_server(x, ps_server, &e) < 0) {
		if (asprintf(&x->stop_reason, "CRIU's page server did not start: %s", e->msg) < 0)
			x->stop_reason = NULL;
		kill(x->criu, SIGKILL);
	}
	/* The streaming route copies as the pages come, whatever the vCPUs. */
	if (x->stream && x->pserver > 0)
		ckpt_start_copier(x, true);
	/* With a spare vCPU the transfer overlaps the dump. With one vCPU it
	 * only steals CRIU's time (measured under TCG at 256 MiB: frozen time
	 * up by about the copy's 0.5 s, the total no shorter), so the copy
	 * follows the dump. The seed's baseline and the "serial" bench route
	 * (4) always copy after it. */
	else if (x->route == ROUTE_COCOON && !x->stream && sysconf(_SC_NPROCESSORS_ONLN) > 1)
		ckpt_start_copier(x, true);
}

/* ---- restore ------------------------------------------------------------------ */

struct restore_ctx {
	struct agent *a;
	uint64_t req_id;
	char cid[AGENT_ID_MAX + 1];
	char work[256];
	char images[300];
	char share0[300];		 /* the first image share's mount, when shared by tag */
	char fresh_args[2][340];	 /* --external for a fresh /dev and /dev/shm, or empty */
	char fault[64];			 /* fault injection for the e2e tests, or empty */
	int host_in, host_out, host_err; /* the agent's ends of the new pipes (or pty master) */
	bool terminal;			 /* the spec's process.terminal */
	Cocoon__ConsoleSize size;	 /* the checkpoint's, else the spec's (0x0: none) */
	int child_fds[4];		 /* stdin, stdout, stderr, netns */
	long long t0, copy_ms;
	Cocoon__CriuOptions criu;
	char *args[16 + AGENT_MAX_BINDS];
	size_t n_args;
	pid_t criu_pid;
	struct guard progress;
	long oom_kills0;   /* the kernel's OOM kill count when the restore began */
	char *stop_reason; /* why the agent stopped CRIU */
};

static void restore_ctx_free(struct restore_ctx *x)
{
	for (int i = 0; i < 4; i++)
		if (x->child_fds[i] >= 0)
			close(x->child_fds[i]);
	for (size_t i = 0; i < x->n_args; i++)
		free(x->args[i]);
	free(x->stop_reason);
	guard_tree_close(&x->progress);
	free(x);
}

/* A restore that stops making progress is stopped: CRIU and the tasks it
 * restores all run in the container's cgroup, so its CPU time, with CRIU's
 * log, shows whether anything is happening. The kernel's exit events tell
 * which of the tasks CRIU made died and how (named if the restore fails:
 * CRIU's own words often do not, e.g. when its post-restore script then
 * fails on the task that is gone). */
static void restore_watch(struct agent_job *job)
{
	struct restore_ctx *x = job->userdata;
	struct agent_container *c = container_find(x->a, x->cid);
	struct guard_death dead;
	guard_tree_killed(&x->progress, false, &dead); /* drains the events */
	if (x->stop_reason || !c)
		return;
	unsigned long long sig =
		guard_cgroup_usec(c->cgroup) + guard_cpu_ticks(job->pid) + guard_dir_bytes(x->work);
	if (!guard_stalled(&x->progress, sig, agent_now_ms(), CRIU_STALL_MS))
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

static void restore_fail(struct restore_ctx *x, int code, const char *msg)
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
	restore_ctx_free(x);
}

/* The host copies it to --work-path: kept on success and on failure. */
static void save_restore_log(struct restore_ctx *x)
{
	static const char *const names[] = {COCOON_RESTORE_LOG, COCOON_STATS_RESTORE};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		char src[300], dst[300], buf[65536];
		ssize_t n;
		snprintf(src, sizeof(src), "%s/%s", x->work, names[i]);
		snprintf(dst, sizeof(dst), AGENT_SHARED_DIR "/restore-%s.%s", x->cid, names[i]);
		_cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
		_cleanup_close_ int out =
			open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
		while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
			if (write(out, buf, (size_t)n) != n)
				break;
	}
}

static void restore_done(struct agent_job *job, int status)
{
	struct restore_ctx *x = job->userdata;
	char path[300], err[1024];

	if (job->timed_out || x->stop_reason || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char first[512], file[256];
		long have, want;
		snprintf(path, sizeof(path), "%s/restore.log", x->work);
		first_error(path, first, sizeof(first));
		const char *bad = strstr(first, "File ");
		struct guard_death dead;
		char how[48], also[128] = "";
		long oom = oom_kills();
		bool oomed = x->oom_kills0 >= 0 && oom > x->oom_kills0;
		/* Or the restorer's mmap got -ENOMEM, printed in hex. */
		bool enomem = strstr(first, " with 0xfffffffffffffff4") ||
			      strstr(first, "Cannot allocate memory");
		bool died = guard_tree_killed(&x->progress, oomed, &dead);
		if (died)
			snprintf(also, sizeof(also), " Task %d of the container ended too (%s).",
				 dead.pid, guard_describe_end(dead.status, how, sizeof(how)));
		/* A restored task that died before CRIU resumed the tree (killed
		 * from outside, or by the guest's kernel): CRIU names it, then
		 * waits on it until the stall watch ends it. Its exit cannot be
		 * told from the SIGKILLs CRIU sends its own helpers. */
		const char *unres = strstr(first, "Unable to resume ");
		int gone = unres && strstr(unres, "No such process")
				   ? atoi(unres + strlen("Unable to resume "))
				   : 0;
		if (gone > 0 && !oomed)
			snprintf(
				err, sizeof(err),
				"criu restore failed: task %d of the container ended during the restore, before CRIU could resume it%s. CRIU said: %s",
				gone,
				x->stop_reason
					? "; CRIU then stopped making progress and the agent ended it"
					: "",
				first);
		else if (x->stop_reason)
			snprintf(err, sizeof(err),
				 "criu restore stopped: %s; the agent ended CRIU.%s CRIU said: %s",
				 x->stop_reason, also, first);
		else if (oomed || enomem) {
			/* The restored tasks get the oom_score_adj the dump saw
			 * (protected), so CRIU is usually the one taken. */
			char victim[80] = " and a memory map of the container could not be made";
			if (oomed && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
				snprintf(victim, sizeof(victim), " and its OOM killer ended CRIU");
			else if (oomed && died)
				snprintf(victim, sizeof(victim),
					 " and its OOM killer ended task %d of the container",
					 dead.pid);
			else if (oomed)
				snprintf(victim, sizeof(victim),
					 " and its OOM killer ended a process of the restore");
			snprintf(
				err, sizeof(err),
				"criu restore failed: the guest ran out of memory during the restore (%ld MiB available now)%s. The container needs more memory than this VM has: raise vm.memory_mib. CRIU said: %s",
				guard_mem_available_kib() / 1024, victim, first);
		} else if (died)
			/* Not by CRIU: it sends only SIGKILL (guard_tree_killed). */
			snprintf(
				err, sizeof(err),
				"criu restore failed: task %d of the container ended during the restore (%s). CRIU said: %s",
				dead.pid, how, first);
		else if (bad && sscanf(bad, "File %255s has bad size %ld (expect %ld)", file, &have,
				       &want) == 3)
			/* CRIU checks the size of every regular file a task holds open. */
			snprintf(
				err, sizeof(err),
				"the container's file /%s in its rootfs changed since the checkpoint (%ld bytes, the checkpoint expects %ld). CRIU cannot restore a task holding a file whose size changed: this happens when a --leave-running checkpoint is restored while the original keeps writing to its rootfs. Restore a checkpoint taken without --leave-running, or keep such files on a tmpfs inside the container, which the images capture",
				file, have, want);
		else if (strstr(first, "Can't bind inet socket back"))
			/* soccr binds each restored TCP connection to the local
			 * address it had: the container's network must have it. */
			snprintf(
				err, sizeof(err),
				"criu restore failed: an established TCP connection of the checkpoint has a local address the container's network does not have now (the engine's network namespace given to restore has other addresses). Restore on a namespace with the addresses the container had, or checkpoint without --tcp-established. CRIU said: %s",
				first);
		else
			snprintf(err, sizeof(err), "criu restore failed%s: %s",
				 job->timed_out ? " and was killed at its time limit" : "", first);
		save_restore_log(x);
		restore_fail(x, EIO, err);
		return;
	}
	snprintf(path, sizeof(path), "%s/pidfile", x->work);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	int pid = 0;
	if (!f || fscanf(f, "%d", &pid) != 1 || pid <= 0) {
		restore_fail(x, EIO, "criu restore wrote no pid");
		return;
	}
	struct agent_container *c = container_find(x->a, x->cid);
	if (!c) {
		restore_fail(x, ENOENT, "container vanished");
		return;
	}
	/* CRIU restores the namespaces the images name. Images of a container
	 * that ran in the guest's own pid or mount namespace (a cocoon before
	 * the rule in container.c, or images made elsewhere) would put it back
	 * there, beside CRIU and the agent: refused. */
	static const char *const own[] = {"pid", "mnt"};
	for (size_t i = 0; i < ARRAY_SIZE(own); i++) {
		if (!shares_agent_ns(pid, own[i]))
			continue;
		kill_cgroup(c->cgroup);
		snprintf(
			err, sizeof(err),
			"the checkpoint's container ran in the guest's own %s namespace, which no container may share (docs/confinement.md): take the checkpoint again with this cocoon",
			own[i]);
		save_restore_log(x);
		restore_fail(x, EPERM, err);
		return;
	}
	char limits_msg[256];
	if (c->has_limits &&
	    cgroups_apply(c->cgroup, &c->limits, 0, limits_msg, sizeof(limits_msg)) < 0) {
		kill_cgroup(c->cgroup);
		restore_fail(x, EIO, limits_msg);
		return;
	}
	container_proc_set_running(c, pid, x->host_in, x->host_out, x->host_err, x->terminal);
	/* The dump saw the protected values; these are the container's own. */
	snprintf(path, sizeof(path), "%s/" OOM_ADJ_FILE, x->images);
	guard_apply_saved_adj(c->cgroup, path);
	save_restore_log(x);

	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	Cocoon__RestoreReply reply = COCOON__RESTORE_REPLY__INIT;
	Cocoon__CriuStats stats = COCOON__CRIU_STATS__INIT;
	snprintf(path, sizeof(path), "%s/stats-restore", x->work);
	read_stats(path, &stats);
	reply.pid = (uint32_t)pid;
	reply.stats = &stats;
	reply.restore_ms = (uint64_t)(agent_now_ms() - x->t0);
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
			    const Cocoon__ConsoleSize *size, char **argv, int *n)
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
	fcntl(master, F_SETFL, O_NONBLOCK);
	int r = terminal_set_size(master, size);
	if (r < 0)
		return r;
	/* One fd per key: CRIU moves each inherited fd into its store and
	 * closes it (files.c, inherit_fd_move_to_fdstore). */
	for (size_t i = 0; i < n_keys && i < 3; i++) {
		if (asprintf(&x->args[x->n_args], "fd[%zu]:%s", 3 + i, keys[i]) < 0)
			return -ENOMEM;
		argv[(*n)++] = (char *)"--inherit-fd";
		argv[(*n)++] = x->args[x->n_args++];
	}
	return 0;
}

/* New stdio for the restored init: new pipes with --inherit-fd for each
 * original pipe, or a new terminal for a checkpoint taken with one. The
 * spec must agree with the checkpoint: the engine's side (a console socket
 * or pipes) was set up from the spec. */
static int restore_stdio(struct restore_ctx *x, char **argv, int *n, char *msg, size_t size)
{
	char path[300], line[7][128] = {"", "", "", "", "", "", ""}, keys[3][CKPT_TTY_KEY_MAX];
	int in[2], out[2], err[2];

	snprintf(path, sizeof(path), "%s/" DESCRIPTORS_FILE, x->images);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	for (int i = 0; f && i < 7 && fgets(line[i], sizeof(line[i]), f); i++)
		line[i][strcspn(line[i], "\n")] = 0;
	size_t n_keys = 0;
	while (n_keys < 3 && parse_tty_key(line[3 + n_keys], keys[n_keys], sizeof(keys[n_keys])))
		n_keys++;
	bool had_tty = n_keys > 0;
	if (had_tty != x->terminal) {
		snprintf(
			msg, size,
			had_tty ? "restore %s: the checkpoint was taken with a terminal: restore it with process.terminal true in the bundle's config.json and a new --console-socket"
				: "restore %s: process.terminal is true, but the checkpoint was taken without a terminal: restore it with process.terminal false",
			x->cid);
		return -EINVAL;
	}
	if (had_tty) {
		/* The size the container had when it was dumped; the spec's
		 * for a checkpoint that did not record one. */
		Cocoon__ConsoleSize saved = COCOON__CONSOLE_SIZE__INIT;
		if (terminal_parse_size_line(line[3 + n_keys], &saved))
			x->size = saved;
		int r = restore_terminal(x, keys, n_keys, &x->size, argv, n);
		if (r < 0)
			snprintf(msg, size, "restore %s: a new terminal: %s", x->cid, strerror(-r));
		return r;
	}
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
		snprintf(msg, size, "restore %s: stdio pipes: %s", x->cid, strerror(errno));
		return -errno;
	}
	x->child_fds[0] = in[0];
	x->child_fds[1] = out[1];
	x->child_fds[2] = err[1];
	x->host_in = in[1];
	x->host_out = out[0];
	x->host_err = err[0];
	fcntl(x->host_in, F_SETFL, O_NONBLOCK);
	fcntl(x->host_out, F_SETFL, O_NONBLOCK);
	fcntl(x->host_err, F_SETFL, O_NONBLOCK);
	for (int i = 0; i < 3; i++) {
		if (strncmp(line[i], "pipe:", 5) != 0)
			continue;
		bool dup_of_earlier = false;
		for (int j = 0; j < i; j++)
			dup_of_earlier |= strcmp(line[j], line[i]) == 0;
		if (dup_of_earlier)
			continue;
		if (asprintf(&x->args[x->n_args], "fd[%d]:%s", 3 + i, line[i]) < 0) {
			snprintf(msg, size, "restore %s: out of memory", x->cid);
			return -ENOMEM;
		}
		argv[(*n)++] = (char *)"--inherit-fd";
		argv[(*n)++] = x->args[x->n_args++];
	}
	return 0;
}

static void restore_start_criu(struct restore_ctx *x)
{
	struct agent *a = x->a;
	struct agent_container *c = container_find(a, x->cid);
	_cleanup_error_ struct error *e = NULL;
	char *argv[64 + 2 * AGENT_MAX_BINDS + 2 * EXECS_PIPES_MAX];
	int n = 0;

	if (!c) {
		restore_fail(x, ENOENT, "container vanished");
		return;
	}
	argv[n++] = a->criu_path;
	argv[n++] = (char *)"restore";
	argv[n++] = (char *)"-D";
	argv[n++] = x->images;
	argv[n++] = (char *)"-W";
	argv[n++] = x->work;
	argv[n++] = (char *)"-o";
	argv[n++] = (char *)"restore.log";
	argv[n++] = x->criu.debug || a->debug ? (char *)"-v4" : (char *)"-v2";
	argv[n++] = (char *)"--root";
	argv[n++] = c->rootfs;
	argv[n++] = (char *)"--restore-detached";
	char pidfile[300];
	snprintf(pidfile, sizeof(pidfile), "%s/pidfile", x->work);
	argv[n++] = (char *)"--pidfile";
	argv[n++] = pidfile;
	argv[n++] = (char *)"--manage-cgroups=ignore";
	criu_common_args(argv, &n, &x->criu);
	for (size_t i = 0; i < c->n_binds; i++) {
		if (asprintf(&x->args[x->n_args], "mnt[%s]:%s", c->bind_dests[i],
			     c->bind_sources[i]) < 0)
			break;
		argv[n++] = (char *)"--external";
		argv[n++] = x->args[x->n_args++];
	}
	for (size_t i = 0; i < ARRAY_SIZE(x->fresh_args); i++) {
		if (!x->fresh_args[i][0])
			continue;
		argv[n++] = (char *)"--external";
		argv[n++] = x->fresh_args[i];
	}
	char conf[300];
	snprintf(conf, sizeof(conf), "%s/criu.conf", x->work);
	if (criu_conf_write(conf, a, c, 0, &x->criu, false, x->fault) == 0) {
		argv[n++] = (char *)"--config";
		argv[n++] = conf;
	}
	char msg[400];
	int r = restore_stdio(x, argv, &n, msg, sizeof(msg));
	if (r < 0) {
		restore_fail(x, -r, msg);
		return;
	}
	/* CRIU restores the tasks into its own network namespace: a fresh one
	 * with loopback up, as the container had (see the dump). Images from
	 * before, which name the namespace as external, get the same one. */
	char netns[64];
	size_t npass = 3;
	if (c->own_netns) {
		if (x->child_fds[3] < 0)
			x->child_fds[3] = new_loopback_netns();
		if (x->child_fds[3] < 0) {
			restore_fail(x, errno, "a network namespace for the container");
			return;
		}
		argv[n++] = (char *)"--inherit-fd";
		argv[n++] = (char *)"fd[6]:" NETNS_KEY;
		snprintf(netns, sizeof(netns), "/proc/self/fd/%d", x->child_fds[3]);
		npass = 4;
	}
	/* The stdio of the execs the dump took (execs.h), after those. */
	struct execs_restore ex;
	int pass[4 + EXECS_PIPES_MAX];
	if (execs_restore_pipes(x->images, x->child_fds[1], x->child_fds[2], 3 + (int)npass, &ex,
				msg, sizeof(msg)) < 0) {
		restore_fail(x, EINVAL, msg);
		return;
	}
	memcpy(pass, x->child_fds, npass * sizeof(int));
	for (size_t i = 0; i < ex.n; i++) {
		pass[npass + i] = ex.fds[i];
		argv[n++] = (char *)"--inherit-fd";
		argv[n++] = ex.args[i];
	}
	argv[n] = NULL;
	/* A pod member is restored into the pod's namespaces (its sandbox's
	 * init's): CRIU runs in them, and the tasks it makes inherit them. */
	int pod_ns[3];
	if (container_open_join_namespaces(a, c->spec, pod_ns, msg, sizeof(msg)) < 0) {
		execs_restore_close(&ex);
		restore_fail(x, ESRCH, msg);
		return;
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
				      .n_pass_fds = npass + ex.n,
				      .cgroup = c->cgroup,
				      .netns = c->own_netns ? netns : NULL,
				      .no_new_privs = nnp,
				      .timeout_ms = CRIU_RESTORE_TIMEOUT_MS,
				      .watch = restore_watch,
				      .watch_ms = CRIU_WATCH_MS,
				      .ns_fds = pod_ns,
				      .n_ns_fds = 3};
	x->t0 = agent_now_ms();
	if (*x->fault)
		setenv(CRIU_FAULT_ENV, x->fault, 1); /* inherited by CRIU only */
	guard_tree_open(&x->progress);
	int started = agent_job_start_ex(a, argv, &o, restore_done, x, &e);
	pod_namespaces_close(pod_ns);
	execs_restore_close(&ex);
	unsetenv(CRIU_FAULT_ENV);
	guard_tree_root(&x->progress, started);
	if (started < 0) {
		restore_fail(x, e->code, e->msg);
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
	x->copy_ms = agent_now_ms() - x->t0;
	restore_start_criu(x);
}

/* Builds the directory CRIU restores from: the small images (pstree,
 * core, mm, fds, ...) copied into guest tmpfs, where CRIU's many small reads
 * cost nothing, and symlinks to the page images on the share, which CRIU
 * reads in large runs (at 256 MiB: 8.6 s through a cached 9p mount, see
 * docs/performance.md for the figure with this). */
static int stage_images(const char *share, const char *share_rel, const char *stage)
{
	_cleanup_closedir_ DIR *d = opendir(share);
	_cleanup_free_ char *buf = malloc(COPY_BUF);
	struct dirent *de;

	remove_dir_files(stage);
	if (!d || !buf || (mkdir(stage, 0700) < 0 && errno != EEXIST))
		return -errno;
	_cleanup_close_ int ddir = open(stage, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (ddir < 0)
		return -errno;
	while ((de = readdir(d))) {
		struct stat st;
		if (de->d_name[0] == '.' ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		int r = 0;
		if (S_ISREG(st.st_mode) && strncmp(de->d_name, "pages-", 6) == 0) {
			/* Relative: CRIU opens the pages from inside the restored
			 * mount namespace, through its fd of the images directory,
			 * where an absolute guest path does not resolve. */
			char target[600];
			snprintf(target, sizeof(target), "%s/%s", share_rel, de->d_name);
			r = symlinkat(target, ddir, de->d_name) < 0 ? -errno : 0;
		} else if (S_ISREG(st.st_mode)) {
			r = copy_file(dirfd(d), ddir, de->d_name, buf);
		} else if (S_ISLNK(st.st_mode)) {
			r = copy_link(dirfd(d), ddir, de->d_name);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* A directory of a share (the pod share), bound read-only on DIR. */
static int share_subdir_bind(const char *tag, const char *path, const char *dir)
{
	char from[400];
	int r = container_share_dir(tag, path, from, sizeof(from));
	if (r < 0) {
		errno = -r;
		return -1;
	}
	if (mount(from, dir, NULL, MS_BIND, NULL) < 0 ||
	    mount(NULL, dir, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) <
		    0)
		return -1;
	return 0;
}

void restore_handle(struct agent *a, uint64_t id, const Cocoon__RestoreRequest *req)
{
	const Cocoon__ContainerSpec *s = req ? req->spec : NULL;
	char msg[400];
	_cleanup_error_ struct error *e = NULL;

	bool by_tag = req && req->n_images > 0;
	if (!s || !cocoon_id_valid(s->id) || req->n_images > COCOON_MAX_CHAIN ||
	    (!by_tag &&
	     (!req->shared_path || strstr(req->shared_path, "..") || req->shared_path[0] == '/'))) {
		agent_send_error(a, id, EINVAL, "restore: invalid request");
		return;
	}
	if (!criu_fault_valid(req->fault, false) ||
	    strlen(req->fault) >= sizeof(((struct restore_ctx *)0)->fault)) {
		agent_send_error(a, id, EINVAL, "restore %s: unknown fault to inject: %s", s->id,
				 req->fault);
		return;
	}
	struct restore_ctx *x = calloc(1, sizeof(*x));
	if (!x) {
		agent_send_error(a, id, ENOMEM, "restore: out of memory");
		return;
	}
	snprintf(x->fault, sizeof(x->fault), "%s", req->fault ? req->fault : "");
	x->progress.exits_fd = -1;
	x->oom_kills0 = oom_kills();
	x->a = a;
	x->req_id = id;
	x->host_in = x->host_out = x->host_err = -1;
	x->child_fds[0] = x->child_fds[1] = x->child_fds[2] = x->child_fds[3] = -1;
	cocoon__criu_options__init(&x->criu);
	snprintf(x->cid, sizeof(x->cid), "%s", s->id);
	snprintf(x->work, sizeof(x->work), "%s/restore-%s", x->a->ckpt_dir, s->id);
	ensure_dir(a->ckpt_dir);
	if (by_tag) {
		/* The host shares the image directories themselves, read-only:
		 * no copy. Side by side, so that "parent" links resolve. */
		char base[200], shares[200];
		snprintf(base, sizeof(base), "%s/images-%s", x->a->ckpt_dir, s->id);
		snprintf(shares, sizeof(shares), "%s/shares-%s", x->a->ckpt_dir, s->id);
		mkdir(base, 0700);
		mkdir(shares, 0700);
		for (size_t i = 0; i < req->n_images; i++) {
			const Cocoon__ImageShare *is = req->images[i];
			char dir[300];
			if (!valid_name(is->tag) || !valid_name(is->name)) {
				agent_send_error(a, id, EINVAL, "restore %s: invalid image share",
						 s->id);
				free(x);
				return;
			}
			snprintf(dir, sizeof(dir), "%s/%s", shares, is->name);
			mkdir(dir, 0700);
			umount2(dir, MNT_DETACH); /* a member restored in place before */
			/* Uncached: CRIU reads the pages straight into the
			 * restored task's memory, and 9p's zero-copy path lets
			 * QEMU fill those pages; no guest page cache, no guest
			 * memcpy. The small images are staged into tmpfs.
			 * A pod member's images are a directory of the pod
			 * share (read-only on the host's side). */
			if (is->path && *is->path
				    ? share_subdir_bind(is->tag, is->path, dir) < 0
				    : agent_mount_share(a, is->tag, dir,
							MS_RDONLY | MS_NOSUID | MS_NODEV) < 0) {
				agent_send_error(a, id, errno,
						 "restore %s: mount images (%s tag %s): %s", s->id,
						 a->virtiofs ? "virtiofs" : "9p", is->tag,
						 strerror(errno));
				free(x);
				return;
			}
			char stage[300];
			snprintf(stage, sizeof(stage), "%s/%s", base, is->name);
			char rel[300];
			snprintf(rel, sizeof(rel), "../../shares-%s/%s", s->id, is->name);
			int r = stage_images(dir, rel, stage);
			if (r < 0) {
				agent_send_error(a, id, -r,
						 "restore %s: staging the images of %s: %s", s->id,
						 is->name, strerror(-r));
				free(x);
				return;
			}
			if (i == 0)
				snprintf(x->share0, sizeof(x->share0), "%s", dir);
			snprintf(dir, sizeof(dir), "%s", stage);
			if (i == 0)
				snprintf(x->images, sizeof(x->images), "%s", dir);
		}
	} else {
		snprintf(x->images, sizeof(x->images), AGENT_SHARED_DIR "/%s", req->shared_path);
	}
	x->terminal = s->process && s->process->terminal;
	if (x->terminal && s->process->console_size)
		x->size = *s->process->console_size;
	struct agent_container *c = container_new(a, s->id, s, msg, sizeof(msg));
	if (!c) {
		agent_send_error(a, id, EINVAL, "restore %s: %s", s->id, msg);
		free(x);
		return;
	}
	if (mounts_prepare_restore(s, c->rootfs, msg, sizeof(msg)) < 0) {
		agent_send_error(a, id, EIO, "restore %s: %s", s->id, msg);
		container_free(c);
		free(x);
		return;
	}
	/* A fresh /dev (always left out of dumps) and /dev/shm (left out while
	 * empty), made from the spec; CRIU ignores a key the images do not use. */
	static const struct {
		const char *destination, *key, *dir;
	} fresh[] = {{"/dev", DEV_KEY, "dev"}, {"/dev/shm", SHM_KEY, "shm"}};
	const bool wanted[] = {c->dev_tmpfs, c->shm_tmpfs};
	for (size_t i = 0; i < ARRAY_SIZE(fresh); i++) {
		char base[300];
		if (!wanted[i])
			continue;
		snprintf(base, sizeof(base), "%s/%s-%s", a->ckpt_dir, fresh[i].dir, s->id);
		mkdir(base, 0700);
		if (mounts_prepare_fresh(s, fresh[i].destination, base, msg, sizeof(msg)) < 0) {
			agent_send_error(a, id, EIO, "restore %s: %s: %s", s->id,
					 fresh[i].destination, msg);
			container_free(c);
			free(x);
			return;
		}
		snprintf(x->fresh_args[i], sizeof(x->fresh_args[i]), "mnt[%s]:%s%s", fresh[i].key,
			 base, fresh[i].destination);
	}
	/* The engine's network is in place before CRIU binds the sockets. */
	if (c->own_netns && s->network && s->network->n_interfaces) {
		x->child_fds[3] = new_loopback_netns();
		int r = x->child_fds[3] < 0
				? -errno
				: net_configure(s->network, x->child_fds[3], msg, sizeof(msg));
		if (x->child_fds[3] < 0)
			snprintf(msg, sizeof(msg), "a network namespace for the container: %s",
				 strerror(-r));
		if (r < 0) {
			agent_send_error(a, id, -r, "restore %s: %s", s->id, msg);
			container_free(c);
			restore_ctx_free(x);
			return;
		}
	}
	ensure_dir(a->ckpt_dir);
	remove_dir_files(x->work);
	mkdir(x->work, 0700);
	if (req->criu)
		x->criu = *req->criu;
	if (req->bench_from_tmpfs) {
		/* Baseline: the images in guest memory first, then CRIU alone. */
		char dst[300];
		snprintf(dst, sizeof(dst), "%s/rimg-%s", x->a->ckpt_dir, s->id);
		remove_dir_files(dst);
		char src[sizeof(x->images)];
		snprintf(src, sizeof(src), "%s", x->share0[0] ? x->share0 : x->images);
		snprintf(x->images, sizeof(x->images), "%s", dst);
		char *argv[] = {a->self_path, (char *)"--copy-tree", src, dst, NULL};
		x->t0 = agent_now_ms();
		if (agent_job_start(a, argv, restore_copied, x, &e) < 0)
			restore_fail(x, e->code, e->msg);
		return;
	}
	restore_start_criu(x);
}
