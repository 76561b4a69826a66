/* The CRIU configuration file of one dump or restore in the guest, and the
 * action script that puts mount flags back after a restore.
 *
 * CRIU reads options from a file given with --config, one per line, as
 * "name value" without the dashes. cocoon writes one per run: the
 * --external entries that come from the container's spec (masked paths, see
 * confine.c), the settings the user gave CRIU on the host (CriuOptions.config:
 * cocoon's criu.conf or the org.criu.config annotation, checked by the host,
 * src/host/lib/criu-config.c), and at restore the action script. Command-line
 * options still win over the file.
 *
 * Mount flags: CRIU 3.17 restores the container's root mount without its
 * read-only flag (fixed in CRIU 4.2), so a read-only root came back
 * writable. The dump records every mount's per-mount flags (cocoon-mounts in
 * the images); at restore CRIU runs this binary as its action script, and at
 * "post-restore" (the tasks are restored but not yet resumed) it enters the
 * container's mount namespace and remounts each mount whose flags differ. */
#include "agent.h"
#include "cleanup.h"
#include "procfs.h"
#include "confine.h"
#include "criu-conf.h"

#include <fcntl.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#define MOUNTS_FILE "cocoon-mounts"
#define ACTION_LINK COCOON_GUEST_RUN_DIR "/" CRIU_ACTION_NAME

/* A setting from the host, one "name[ value]" line: checked again here,
 * since a stray newline would smuggle in a second option. */
static bool config_line_ok(const char *line)
{
	size_t n = strlen(line);
	if (n == 0 || n > 512 || line[0] < 'a' || line[0] > 'z')
		return false;
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r' || line[i] == '#')
			return false;
	return true;
}

bool criu_fault_valid(const char *fault, bool dump)
{
	if (!fault || !*fault)
		return true;
	if (dump)
		return strcmp(fault, "post-dump:stall") == 0;
	return strcmp(fault, "post-restore:stall") == 0 || strcmp(fault, "post-restore:kill") == 0;
}

int criu_conf_write(const char *path, const struct agent *a, const struct agent_container *c,
		    pid_t pid, const Cocoon__CriuOptions *o, bool dump, const char *fault)
{
	_cleanup_fclose_ FILE *f = fopen(path, "we");
	if (!f)
		return -errno;
	const Cocoon__ContainerSpec *s = c->spec;
	int r;
	if (s && (r = confine_criu_externals(f, pid, s->masked_paths, s->n_masked_paths, dump)) < 0)
		return r;
	for (size_t i = 0; o && i < o->n_config; i++)
		if (config_line_ok(o->config[i]))
			fprintf(f, "%s\n", o->config[i]);
	if (!dump || (fault && *fault)) {
		/* CRIU runs it with sh -c: a path without spaces. */
		unlink(ACTION_LINK);
		if (symlink(a->self_path, ACTION_LINK) == 0)
			fprintf(f, "action-script " ACTION_LINK "\n");
	}
	if (fflush(f) != 0 || ferror(f))
		return -EIO;
	return 0;
}

/* ---- mount flags --------------------------------------------------------- */

static const struct {
	const char *name;
	unsigned long flag;
} mnt_flags[] = {
	{"ro", MS_RDONLY},	   {"nosuid", MS_NOSUID},   {"nodev", MS_NODEV},
	{"noexec", MS_NOEXEC},	   {"noatime", MS_NOATIME}, {"nodiratime", MS_NODIRATIME},
	{"relatime", MS_RELATIME},
};

static unsigned long parse_flags(const char *opts)
{
	char buf[256], *save = NULL;
	unsigned long flags = 0;
	snprintf(buf, sizeof(buf), "%s", opts);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		for (size_t i = 0; i < ARRAY_SIZE(mnt_flags); i++)
			if (strcmp(t, mnt_flags[i].name) == 0)
				flags |= mnt_flags[i].flag;
	return flags;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = 0;
}

int criu_conf_save_mounts(pid_t pid, const char *img_dir)
{
	char src[64], dst[300], line[2048];
	snprintf(src, sizeof(src), "/proc/%d/mountinfo", pid);
	snprintf(dst, sizeof(dst), "%s/" MOUNTS_FILE, img_dir);
	_cleanup_fclose_ FILE *in = fopen(src, "re");
	_cleanup_fclose_ FILE *out = fopen(dst, "wex");
	if (!in || !out)
		return -errno;
	/* "mount-point per-mount-options", the mount point still escaped. */
	while (fgets(line, sizeof(line), in)) {
		char mp[1024], opts[256];
		if (sscanf(line, "%*s %*s %*s %*s %1023s %255s", mp, opts) == 2)
			fprintf(out, "%s %s\n", mp, opts);
	}
	return fflush(out) == 0 ? 0 : -errno;
}

/* The flags each mount point of pid has now, from its mountinfo (mount
 * points relative to its root): "mount-point flags" lines. */
struct mount_now {
	char mp[256];
	unsigned long flags;
};

static size_t current_flags(pid_t pid, struct mount_now *out, size_t max)
{
	char path[64], line[2048];
	size_t n = 0;
	snprintf(path, sizeof(path), "/proc/%d/mountinfo", pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	while (f && n < max && fgets(line, sizeof(line), f)) {
		char opts[256];
		if (sscanf(line, "%*s %*s %*s %*s %255s %255s", out[n].mp, opts) != 2)
			continue;
		unescape(out[n].mp);
		out[n++].flags = parse_flags(opts);
	}
	return n;
}

/* The last mount on mp is the one on top. */
static const struct mount_now *find_mount(const struct mount_now *m, size_t n, const char *mp)
{
	for (size_t i = n; i > 0; i--)
		if (strcmp(m[i - 1].mp, mp) == 0)
			return &m[i - 1];
	return NULL;
}

static int restore_mount_flags(const char *images, pid_t pid)
{
	char path[600], ns[64], line[2048];
	static struct mount_now now[512];
	int failed = 0;
	snprintf(path, sizeof(path), "%s/" MOUNTS_FILE, images);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : -errno; /* images from before */
	/* Read through our /proc: once in the container's mount namespace,
	 * /proc is the container's, where we have no /proc/self. */
	size_t n_now = current_flags(pid, now, ARRAY_SIZE(now));
	snprintf(ns, sizeof(ns), "/proc/%d/ns/mnt", pid);
	_cleanup_close_ int fd = open(ns, O_RDONLY | O_CLOEXEC);
	/* setns() also moves our root and cwd to the namespace's root. */
	if (fd < 0 || setns(fd, CLONE_NEWNS) < 0) {
		fprintf(stderr, "cocoon: mount flags: enter the restored mount namespace: %s\n",
			strerror(errno));
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		char mp[1024], opts[256];
		if (sscanf(line, "%1023s %255s", mp, opts) != 2)
			continue;
		unescape(mp);
		unsigned long want = parse_flags(opts);
		const struct mount_now *have = find_mount(now, n_now, mp);
		if (!have || have->flags == want)
			continue;
		if (mount(NULL, mp, NULL, MS_REMOUNT | MS_BIND | want, NULL) < 0) {
			fprintf(stderr, "cocoon: mount flags: remount %s (%s): %s\n", mp, opts,
				strerror(errno));
			failed = -errno;
		}
	}
	return failed;
}

static bool proc_comm(pid_t pid, char *buf, size_t size)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f || !fgets(buf, (int)size, f))
		return false;
	buf[strcspn(buf, "\n")] = 0;
	return true;
}

/* The e2e tests' faults (criu-conf.h), at the stage they name. */
static void inject_fault(const char *action)
{
	const char *fault = getenv(COCOON_FAULT_ENV), *colon = fault ? strchr(fault, ':') : NULL;
	if (!colon || strncmp(fault, action, (size_t)(colon - fault)) != 0 ||
	    action[colon - fault] != 0)
		return;
	if (strcmp(colon + 1, "stall") == 0) {
		/* Waits, without using CPU, until CRIU (the parent, or the
		 * parent of the sh that runs the script) is gone. */
		pid_t p = getppid();
		char comm[32];
		for (int i = 0; i < 3 && p > 1 &&
				!(proc_comm(p, comm, sizeof(comm)) && strcmp(comm, "criu") == 0);
		     i++)
			p = (pid_t)proc_status_long(p, "PPid", -1);
		struct pollfd pfd = {.fd = p > 1 ? (int)syscall(SYS_pidfd_open, p, 0) : -1,
				     .events = POLLIN};
		int mark = open(AGENT_SHARED_DIR "/" CRIU_FAULT_REACHED,
				O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (mark >= 0)
			close(mark);
		while (pfd.fd >= 0 && poll(&pfd, 1, -1) <= 0)
			;
		_exit(1);
	}
	if (strcmp(colon + 1, "kill") == 0) {
		/* A restored task dies before CRIU resumes the tree: its init,
		 * SIGKILL, as an OOM kill would end it. */
		const char *init = getenv("CRTOOLS_INIT_PID");
		if (init && atoi(init) > 1)
			kill((pid_t)atoi(init), SIGKILL);
		_exit(0);
	}
}

int criu_action_main(void)
{
	const char *action = getenv("CRTOOLS_SCRIPT_ACTION");
	const char *images = getenv("CRTOOLS_IMAGE_DIR");
	const char *init = getenv("CRTOOLS_INIT_PID");
	if (action)
		inject_fault(action);
	if (!action || strcmp(action, "post-restore") != 0)
		return 0;
	if (!images || !init || atoi(init) <= 0) {
		fprintf(stderr, "cocoon: post-restore: CRIU gave no images or init pid\n");
		return 1;
	}
	return restore_mount_flags(images, (pid_t)atoi(init)) < 0 ? 1 : 0;
}
