/* What a checkpoint would lose or trip on, found before anything is frozen,
 * so that the refusal names the thing and what to do instead of leaving it
 * to a CRIU error (or a silent loss).
 *
 * - Processes of the container outside its init's tree: CRIU dumps the
 *   tree of the container's init only, and would leave them out without a
 *   word. `exec` hands its processes to the init
 *   (execs.h), so this is only an exec caught between its two forks.
 * - Deleted files (and directories) held open on a 9p share: the
 *   container's root filesystem or a volume (a bind mount of a host path).
 *   CRIU reads a deleted file into the images (a "ghost file"), but first
 *   it calls fstatfs() on it, which QEMU's 9p server answers by path: the
 *   path is gone, and CRIU stops with "Can't statfs fd N: No such file or
 *   directory". On tmpfs (memfd, /dev/shm, a tmpfs mount) they work, and
 *   so on virtiofs (rootfs_fs, shared_fs "virtiofs"), whose server answers
 *   statfs and open by inode (docs/checkpoint.md). The refusal names the
 *   setting that moves that share to virtiofs. */
#include "agent.h"
#include "cleanup.h"
#include "error.h"
#include "procfs.h"
#include "ckpt-check.h"
#include "userns.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>

static bool in_tree(pid_t pid, pid_t init)
{
	for (int depth = 0; pid > 1 && depth < 4096; depth++) {
		if (pid == init)
			return true;
		pid = (pid_t)proc_status_long(pid, "PPid", 0);
	}
	return pid == init;
}

/* A task of the cgroup's list that has ended since (a shell's short-lived
 * child): there is nothing to leave out, and its PPid cannot be read. */
static bool task_gone(pid_t pid)
{
	char path[32];
	snprintf(path, sizeof(path), "/proc/%d", pid);
	return access(path, F_OK) < 0;
}

static void comm_of(pid_t pid, char *out, size_t size)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	size_t n = f ? fread(out, 1, size - 1, f) : 0;
	out[n] = 0;
	for (size_t i = 0; i + 1 < n; i++)
		if (out[i] == 0)
			out[i] = ' ';
	if (n == 0)
		snprintf(out, size, "?");
}

static int outside_tree(const struct agent_container *c, const pid_t *pids, size_t n,
			struct error **err)
{
	for (size_t i = 0; i < n; i++) {
		if (in_tree(pids[i], c->procs[0].pid) || task_gone(pids[i]))
			continue;
		/* A parent that ended during the walk reads as PPid 0; its
		 * children are the init's by now (the init reaps orphans). */
		if (in_tree(pids[i], c->procs[0].pid))
			continue;
		char cmd[128];
		comm_of(pids[i], cmd, sizeof(cmd));
		return error_setx(
			err, EBUSY,
			"checkpoint %s: process %d (%s) is not in the process tree of the container's init, which is all CRIU checkpoints; it would be left out (an exec that is still starting: checkpoint again in a moment)",
			c->id, pids[i], cmd);
	}
	return 0;
}

/* The places a process holds a file that CRIU dumps (criu/cr-dump.c: the
 * fs of each task, its exe, its mappings, its fds), as /proc/PID names, and
 * how a refusal says it. */
enum held { HELD_CWD, HELD_ROOT, HELD_EXE, HELD_FD, HELD_MAP };
static const char *const held_how[] = {
	[HELD_CWD] = "has its working directory in",
	[HELD_ROOT] = "has its root directory in",
	[HELD_EXE] = "runs",
	[HELD_FD] = "holds open",
	[HELD_MAP] = "has mapped in memory",
};

/* Whether device dev is a 9p mount in pid's mount namespace. statfs() of
 * a deleted directory held as a cwd answers on 9p (the kernel's dentry
 * keeps its fid), yet CRIU's dump of such a task fails all the same
 * (measured: "Can't fstat exe link: No such file or directory" with the
 * cwd removed), so on 9p a deleted file or directory is refused whatever
 * statfs() says. */
static bool on_9p(pid_t pid, dev_t dev)
{
	char file[64];
	snprintf(file, sizeof(file), "/proc/%d/mountinfo", pid);
	_cleanup_fclose_ FILE *f = fopen(file, "re");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	while (f && getline(&line, &cap, f) > 0) {
		unsigned major, minor;
		const char *sep = strstr(line, " - ");
		/* id parent major:minor ... - fstype source options (proc(5)) */
		if (sscanf(line, "%*d %*d %u:%u", &major, &minor) == 2 &&
		    makedev(major, minor) == dev && sep && strncmp(sep + 3, "9p ", 3) == 0)
			return true;
	}
	return false;
}

/* A found one: what ("file /x"), how it is held, its size and device. */
struct undumpable {
	char what[600];
	enum held how;
	off_t bytes;
	dev_t dev;
};

/* /proc/PID/ENTRY (a link) when it is a deleted file or directory CRIU
 * cannot dump: one whose filesystem cannot answer statfs() once the path
 * is gone. */
static bool deleted_undumpable(pid_t pid, const char *entry, enum held how, struct undumpable *u)
{
	char path[128], target[512];
	struct stat st;
	snprintf(path, sizeof(path), "/proc/%d/%s", pid, entry);
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0)
		return false;
	target[n] = 0;
	/* statfs() through the link asks the file's server, as CRIU's
	 * fstatfs() does: 9p's fails (ENOENT, the path is gone), virtiofs'
	 * and tmpfs' answer. (9p's f_type is the host filesystem's: no use
	 * here, so this asks rather than recognises.) map_files links are
	 * read and followed the same way (the agent has CAP_SYS_ADMIN). */
	struct statfs fs;
	if (n < 10 || strcmp(target + n - 10, " (deleted)") != 0)
		return false;
	/* A removed directory held only as a cwd or root on 9p has no fid
	 * left: even its stat() fails (ENOENT), as CRIU's would. */
	bool gone = stat(path, &st) < 0;
	if (gone && errno != ENOENT)
		return false;
	if (!gone && statfs(path, &fs) == 0 && !on_9p(pid, st.st_dev))
		return false;
	target[n - 10] = 0;
	bool dir = gone ? how == HELD_CWD || how == HELD_ROOT : S_ISDIR(st.st_mode);
	snprintf(u->what, sizeof(u->what), "%s %s",
		 dir		   ? "directory"
		 : how == HELD_EXE ? "executable"
				   : "file",
		 target);
	u->how = how;
	u->bytes = gone ? -1 : st.st_size;
	u->dev = gone ? 0 : st.st_dev;
	return true;
}

/* The first entry of the directory /proc/PID/DIR ("fd", "map_files") that
 * is a deleted file CRIU cannot dump. */
static bool deleted_undumpable_in(pid_t pid, const char *dir, enum held how, struct undumpable *u)
{
	char path[64], entry[128];
	snprintf(path, sizeof(path), "/proc/%d/%s", pid, dir);
	_cleanup_closedir_ DIR *d = opendir(path);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (snprintf(entry, sizeof(entry), "%s/%s", dir, de->d_name) >= (int)sizeof(entry))
			continue; /* not an fd number or an address range */
		if (deleted_undumpable(pid, entry, how, u))
			return true;
	}
	return false;
}

/* Everything of pid CRIU would dump, in CRIU's order. */
static bool pid_holds_undumpable(pid_t pid, struct undumpable *u)
{
	return deleted_undumpable(pid, "cwd", HELD_CWD, u) ||
	       deleted_undumpable(pid, "root", HELD_ROOT, u) ||
	       deleted_undumpable(pid, "exe", HELD_EXE, u) ||
	       deleted_undumpable_in(pid, "map_files", HELD_MAP, u) ||
	       deleted_undumpable_in(pid, "fd", HELD_FD, u);
}

/* Whether mount point mnt holds path (component-wise: "/data" holds
 * "/data/g", not "/database/g"). */
static bool holds(const char *mnt, const char *path)
{
	size_t len = strlen(mnt);
	if (strcmp(mnt, "/") == 0)
		return true;
	return strncmp(mnt, path, len) == 0 && (path[len] == '/' || path[len] == 0);
}

/* The mount point, in pid's mount namespace, of the mount of device dev
 * that holds path: the longest such one of /proc/PID/mountinfo (every bind
 * of the volumes share has the share's device; dev 0: any device). ""
 * when none is found. */
static void mount_point_of(pid_t pid, dev_t dev, const char *path, char *out, size_t size)
{
	char file[64], line[1024];
	size_t best = 0;
	out[0] = 0;
	snprintf(file, sizeof(file), "/proc/%d/mountinfo", pid);
	_cleanup_fclose_ FILE *f = fopen(file, "re");
	while (f && fgets(line, sizeof(line), f)) {
		unsigned major, minor;
		char mnt[512];
		/* id parent major:minor root mountpoint ... (proc(5)) */
		if (sscanf(line, "%*d %*d %u:%u %*s %511s", &major, &minor, mnt) != 3 ||
		    (dev && makedev(major, minor) != dev) || !holds(mnt, path) ||
		    strlen(mnt) < best)
			continue;
		best = strlen(mnt);
		snprintf(out, size, "%s", mnt);
	}
}

/* The first deleted file or directory of the container's processes that
 * CRIU cannot dump, as a refusal that says where it is and what to do. */
static int deleted_undumpable_files(const struct agent_container *c, const pid_t *pids, size_t n,
				    struct error **err)
{
	struct stat root;
	if (stat(c->rootfs, &root) < 0)
		root.st_dev = 0; /* then only the mount point tells the rootfs */
	for (size_t i = 0; i < n; i++) {
		struct undumpable u;
		char mnt[512];
		if (!pid_holds_undumpable(pids[i], &u))
			continue;
		/* what is "file /path": the path starts at its first '/'. A pod
		 * member's rootfs and volumes are binds of one share, one
		 * device: the mount point tells them apart. */
		const char *path = strchr(u.what, '/');
		mount_point_of(pids[i], u.dev, path ? path : "/", mnt, sizeof(mnt));
		char size_text[48];
		if (u.bytes < 0)
			snprintf(size_text, sizeof(size_text), "its size unreadable");
		else
			snprintf(size_text, sizeof(size_text), "%lld bytes", (long long)u.bytes);
		if (strcmp(mnt, "/") == 0 || (!*mnt && u.dev == root.st_dev)) {
			return error_setx(
				err, EOPNOTSUPP,
				"checkpoint %s: process %d %s the deleted %s (%s) on the container's root filesystem, which is shared from the host over 9p; CRIU cannot dump a deleted file there (it needs fstatfs(), which 9p answers by the path that is gone). Share the rootfs over virtiofs instead (rootfs_fs = \"virtiofs\" in cocoon's config, [vm]; not for the members of a pod), keep such files on a tmpfs in the container (their content then travels in the checkpoint as a ghost file), or let go of them before the checkpoint (docs/checkpoint.md)",
				c->id, pids[i], held_how[u.how], u.what, size_text);
		}
		return error_setx(
			err, EOPNOTSUPP,
			"checkpoint %s: process %d %s the deleted %s (%s) on the volume mounted at %s, which is shared from the host over 9p; CRIU cannot dump a deleted file there (it needs fstatfs() and a reopen, which 9p answers by the path that is gone). Share volumes over virtiofs instead (shared_fs = \"virtiofs\" in cocoon's config, [vm]; not for the members of a pod, whose volumes are in the pod's 9p share), keep such files on a tmpfs in the container (their content then travels in the checkpoint as a ghost file), or let go of them before the checkpoint (docs/checkpoint.md)",
			c->id, pids[i], held_how[u.how], u.what, size_text,
			*mnt ? mnt : "(unknown)");
	}
	return 0;
}

/* Sub-cgroups deeper than this below the container's are refused: their
 * processes could not be checked. */
#define CGROUP_MAX_DEPTH 64

struct pid_list {
	pid_t *v;
	size_t n, cap;
};

static void pid_list_free(struct pid_list *l)
{
	free(l->v);
}

/* The processes of the cgroup directory dirfd and, recursively, of its
 * sub-cgroups (a container may make its own, e.g. systemd or a nested
 * runtime in it; its init's tree spans them all). -ELOOP past
 * CGROUP_MAX_DEPTH, -ENOMEM. */
static int cgroup_pids(int dirfd, int depth, struct pid_list *l)
{
	if (depth > CGROUP_MAX_DEPTH)
		return -ELOOP;
	int fd = openat(dirfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
	_cleanup_fclose_ FILE *f = fd >= 0 ? fdopen(fd, "re") : NULL;
	unsigned v;
	if (fd >= 0 && !f)
		close(fd);
	while (f && fscanf(f, "%u", &v) == 1) {
		if (l->n == l->cap) {
			size_t cap = l->cap ? l->cap * 2 : 256;
			pid_t *grown = realloc(l->v, cap * sizeof(*grown));
			if (!grown)
				return -ENOMEM;
			l->v = grown;
			l->cap = cap;
		}
		l->v[l->n++] = (pid_t)v;
	}
	int dup = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	_cleanup_closedir_ DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
	if (dup >= 0 && !d)
		close(dup);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		_cleanup_close_ int sub =
			openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int r = sub >= 0 ? cgroup_pids(sub, depth + 1, l) : 0;
		if (r < 0)
			return r;
	}
	return 0;
}

/* Every process of the container: its cgroup's and its sub-cgroups'. */
static int container_pids(const struct agent_container *c, struct pid_list *l)
{
	*l = (struct pid_list){0};
	_cleanup_close_ int fd = open(c->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? 0 : cgroup_pids(fd, 0, l);
}

int ckpt_ctty_keys(const struct agent_container *c, char keys[][CKPT_TTY_KEY_MAX], size_t max)
{
	struct pid_list l;
	size_t found = 0;
	int r = container_pids(c, &l);
	const pid_t *pids = l.v;
	for (size_t i = 0; r == 0 && i < l.n; i++) {
		char dir[64], path[128];
		snprintf(dir, sizeof(dir), "/proc/%d/fd", pids[i]);
		_cleanup_closedir_ DIR *d = opendir(dir);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			struct stat st;
			char key[CKPT_TTY_KEY_MAX];
			if (de->d_name[0] == '.')
				continue;
			if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >=
			    (int)sizeof(path))
				continue; /* not an fd number */
			if (stat(path, &st) < 0 || !S_ISCHR(st.st_mode) ||
			    st.st_rdev != makedev(5, 0))
				continue;
			snprintf(key, sizeof(key), "tty[%llx:%llx]", (unsigned long long)st.st_rdev,
				 (unsigned long long)st.st_dev);
			bool known = false;
			for (size_t k = 0; k < found && k < max; k++)
				known |= strcmp(keys[k], key) == 0;
			if (known)
				continue;
			if (found < max)
				snprintf(keys[found], CKPT_TTY_KEY_MAX, "%s", key);
			found++;
		}
	}
	pid_list_free(&l);
	return r < 0 ? r : (int)found;
}

/* An exec on a terminal of its own (exec --tty): its pty's master is the
 * agent's, outside the dump, and after a restore nobody would hold the
 * host side (the engine's exec session ends with the old VM). Only the
 * container's own terminal gets a new pty at restore. */
static int exec_on_terminal(const struct agent_container *c, struct error **err)
{
	for (int i = 1; i < AGENT_MAX_PROCS; i++) {
		const struct agent_proc *p = &c->procs[i];
		if (!p->used || !p->terminal || p->phase == PROC_EXITED)
			continue;
		return error_setx(
			err, EOPNOTSUPP,
			"checkpoint %s: exec %s (pid %d) runs on a terminal of its own (exec --tty); a checkpoint carries only the container's own terminal: end that process first",
			c->id, p->exec_id, (int)p->pid);
	}
	return 0;
}

/* A container with a user namespace has its network namespace dumped and
 * restored by CRIU (checkpoint.c), so that the restored one belongs to the
 * restored user namespace. CRIU 3.17 dumps loopback, veth, tun, bridge and
 * macvlan links, not the guest's virtio-net NIC that an engine's network
 * puts there (docs/networking.md: from the spec at create, or configured
 * after create and moved in at start); and the agent cannot hand it a
 * namespace it made itself, which the guest's user namespace would own.
 * Any link besides loopback in the init's namespace (/proc/PID/net/dev) is
 * refused up front, before anything is frozen. */
static int userns_with_interfaces(const struct agent_container *c, struct error **err)
{
	if (!c->spec || !userns_wanted(c->spec) || !c->own_netns)
		return 0;
	char path[64], line[256], name[IFNAMSIZ + 1] = "";
	snprintf(path, sizeof(path), "/proc/%d/net/dev", (int)c->procs[0].pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	for (int n = 0; f && fgets(line, sizeof(line), f); n++) {
		char *colon = strchr(line, ':');
		const char *start = line + strspn(line, " ");
		if (n < 2 || !colon || colon - start > IFNAMSIZ)
			continue;
		if (colon - start == 2 && strncmp(start, "lo", 2) == 0)
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(colon - start), start);
		break;
	}
	if (!*name)
		return 0;
	return error_setx(
		err, EOPNOTSUPP,
		"checkpoint %s: the container has a user namespace and the network interface %s in its network namespace: CRIU 3.17 cannot dump that interface (the VM's virtio-net device for the engine's network) with the namespace, which it must make again inside the restored user namespace. Not supported yet; with loopback only (podman --network none) it can be checkpointed. The container was not touched",
		c->id, name);
}

/* The per-mount options CRIU 3.17 knows (criu/proc_parse.c,
 * parse_mnt_flags); it stops a dump on any other with "Unknown option
 * [NAME]". The kernel also shows nosymfollow (Linux 5.10) and idmapped
 * (5.12) there. */
static const char *const criu_mount_options[] = {
	"rw", "ro", "nosuid", "nodev", "noexec", "noatime", "nodiratime", "relatime", NULL,
};

static bool criu_knows(const char *opt, size_t len)
{
	for (const char *const *o = criu_mount_options; *o; o++)
		if (strlen(*o) == len && strncmp(*o, opt, len) == 0)
			return true;
	return false;
}

/* A mount of the container with a per-mount option CRIU cannot dump. */
static int mount_options_undumpable(const struct agent_container *c, struct error **err)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int)c->procs[0].pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	while (f && getline(&line, &cap, f) > 0) {
		/* id parent major:minor root mount-point options ... (proc(5)) */
		char *field = line;
		for (int i = 0; i < 4 && field; i++) {
			char *sp = strchr(field, ' ');
			field = sp ? sp + 1 : NULL;
		}
		char *opts = field ? strchr(field, ' ') : NULL;
		if (!opts)
			continue;
		*opts++ = 0;
		opts[strcspn(opts, " \n")] = 0;
		for (const char *t = opts; *t; t += *t == ',') {
			size_t len = strcspn(t, ",");
			if (!criu_knows(t, len)) {
				return error_setx(
					err, EOPNOTSUPP,
					"checkpoint %s: the mount at %.300s has the mount option '%.*s', which CRIU 3.17 cannot checkpoint (it stops with \"Unknown option [%.*s]\"); remove that option from the mount (docs/checkpoint.md). The container was not touched",
					c->id, field, (int)len, t, (int)len, t);
			}
			t += len;
		}
	}
	return 0;
}

int ckpt_precheck(const struct agent_container *c, struct error **err)
{
	struct pid_list l;
	int r = container_pids(c, &l);
	if (r < 0)
		r = error_setx(err, -r, "checkpoint %s: listing its processes in %s: %s", c->id,
			       c->cgroup,
			       r == -ELOOP ? "sub-cgroups nested too deep (more than 64 levels)"
					   : strerror(-r));
	if (r == 0)
		r = userns_with_interfaces(c, err);
	if (r == 0)
		r = exec_on_terminal(c, err);
	if (r == 0)
		r = mount_options_undumpable(c, err);
	if (r == 0)
		r = outside_tree(c, l.v, l.n, err);
	if (r == 0)
		r = deleted_undumpable_files(c, l.v, l.n, err);
	pid_list_free(&l);
	return r;
}

/* CRIU reads a size as a number followed anywhere by K, M or G (uppercase
 * only; criu/crtools.c parse_size), else as bytes: "8m" is 8 bytes. */
static unsigned long long criu_size(const char *v)
{
	unsigned long long n = strtoull(v, NULL, 10);
	if (strchr(v, 'K'))
		return n << 10;
	if (strchr(v, 'M'))
		return n << 20;
	if (strchr(v, 'G'))
		return n << 30;
	return n;
}

void ckpt_ghost_limit(const Cocoon__CriuOptions *o, char *out, size_t size)
{
	const char *value = NULL;
	/* CRIU reads its config file like its command line: the last wins. */
	for (size_t i = 0; o && i < o->n_config; i++)
		if (strncmp(o->config[i], "ghost-limit ", 12) == 0)
			value = o->config[i] + 12;
	if (value)
		snprintf(out, size, "%llu bytes, the 'ghost-limit %.40s' of the CRIU config",
			 criu_size(value), value);
	else
		snprintf(out, size, "%llu bytes, CRIU's default of 1 MiB",
			 CRIU_GHOST_LIMIT_DEFAULT);
}

bool ckpt_explain_criu_error(const char *line, const char *limit, char *out, size_t size)
{
	const char *g = strstr(line, "Can't dump ghost file ");
	char file[512];
	unsigned long long bytes;
	if (g && sscanf(g, "Can't dump ghost file %511s of %llu size", file, &bytes) == 2) {
		snprintf(
			out, size,
			"the deleted file %s (%llu bytes) that a process holds open is larger than CRIU's ghost-file limit in force (%s); raise it with a line 'ghost-limit <bytes>' (or <n>K, <n>M, <n>G) in cocoon's CRIU config (/etc/cocoon/criu.conf, runtime.criu_config) or in the file the org.criu.config annotation names (docs/checkpoint.md)",
			file, bytes, limit && *limit ? limit : "unknown");
		return true;
	}
	return false;
}
