/* The engines' stats: the container's guest figures in the host cgroup files
 * podman and containerd read (cgroup-mirror.h says why and how). */
#include "cgroup-mirror.h"
#include "cleanup.h"

#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#define CG_MEMORY 1u
#define CG_CPU 2u
#define CG_CPUACCT 4u
#define CG_PIDS 8u
#define CG_BLKIO 16u
/* Those with figures from the guest. blkio is joined only, as runc joins
 * it: the guest has no per-cgroup IO figures to give. */
#define CG_MIRRORED (CG_MEMORY | CG_CPU | CG_CPUACCT | CG_PIDS)

#define CGROUP_ROOT "/sys/fs/cgroup"

static int check_component(const char *c, size_t len, const char *what, struct error **err)
{
	if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
		return error_setx(
			err, EINVAL,
			"config.json: linux.cgroupsPath '%s': '.', '..' and empty components are not allowed",
			what);
	return 0;
}

/* systemd's "a-b-c.slice" lives at /a.slice/a-b.slice/a-b-c.slice. */
static int expand_slice(const char *slice, const char *what, char *out, size_t size,
			struct error **err)
{
	size_t len = strlen(slice), n = 0;
	const char *suffix = ".slice";
	if (len <= strlen(suffix) || strcmp(slice + len - strlen(suffix), suffix) != 0 ||
	    strchr(slice, '/'))
		return error_setx(
			err, EINVAL,
			"config.json: linux.cgroupsPath '%s': '%s' is not a systemd slice name",
			what, slice);
	if (strcmp(slice, "-.slice") == 0) {
		out[0] = 0;
		return 0;
	}
	len -= strlen(suffix);
	for (size_t i = 0; i <= len; i++) {
		if (i < len && slice[i] != '-')
			continue;
		if (i == 0 || slice[i - 1] == '-')
			return error_setx(
				err, EINVAL,
				"config.json: linux.cgroupsPath '%s': bad slice name '%s'", what,
				slice);
		int w = snprintf(out + n, size - n, "/%.*s%s", (int)i, slice, suffix);
		if (w < 0 || (size_t)w >= size - n)
			return error_setx(err, ENAMETOOLONG,
					  "config.json: linux.cgroupsPath '%s' is too long", what);
		n += (size_t)w;
	}
	return 0;
}

int cgmirror_path(const char *cgroups_path, char *out, size_t size, struct error **err)
{
	const char *p = cgroups_path;
	const char *c1 = strchr(p, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	char tmp[CGMIRROR_PATH_MAX];
	int r;

	if (strlen(p) >= CGMIRROR_PATH_MAX || size < 2)
		return error_setx(err, ENAMETOOLONG, "config.json: linux.cgroupsPath is too long");
	if (c1 && c2 && !strchr(c2 + 1, ':') && !strchr(p, '/')) {
		/* runc --systemd-cgroup's "slice:prefix:name". */
		char slice[CGMIRROR_PATH_MAX];
		snprintf(slice, sizeof(slice), "%.*s", (int)(c1 - p), p);
		if ((r = expand_slice(*slice ? slice : "system.slice", p, out, size, err)) < 0)
			return r;
		size_t n = strlen(out);
		if (c2 == c1 + 1)
			r = snprintf(out + n, size - n, "/%s.scope", c2 + 1);
		else
			r = snprintf(out + n, size - n, "/%.*s-%s.scope", (int)(c2 - c1 - 1),
				     c1 + 1, c2 + 1);
		if (r < 0 || (size_t)r >= size - n)
			return error_setx(err, ENAMETOOLONG,
					  "config.json: linux.cgroupsPath '%s' is too long", p);
		snprintf(tmp, sizeof(tmp), "%s", out);
		p = tmp;
	}
	/* Clean it: one '/' between components, none at the end. */
	size_t n = 0;
	const char *s = p;
	while (*s) {
		while (*s == '/')
			s++;
		if (!*s)
			break;
		size_t len = strcspn(s, "/");
		if ((r = check_component(s, len, cgroups_path, err)) < 0)
			return r;
		if (n + 1 + len >= size)
			return error_setx(err, ENAMETOOLONG,
					  "config.json: linux.cgroupsPath '%s' is too long",
					  cgroups_path);
		out[n++] = '/';
		memcpy(out + n, s, len);
		n += len;
		s += len;
	}
	out[n] = 0;
	if (n == 0)
		return error_setx(
			err, EINVAL,
			"config.json: linux.cgroupsPath '%s' names the root cgroup, which a container cannot have to itself",
			cgroups_path);
	return 0;
}

/* ---- the files of each hierarchy ---- */

static const char *const v1_memory_files[] = {
	"memory.usage_in_bytes",
	"memory.max_usage_in_bytes",
	"memory.limit_in_bytes",
	"memory.failcnt",
	"memory.memsw.usage_in_bytes",
	"memory.memsw.max_usage_in_bytes",
	"memory.memsw.limit_in_bytes",
	"memory.memsw.failcnt",
	"memory.kmem.usage_in_bytes",
	"memory.kmem.max_usage_in_bytes",
	"memory.kmem.limit_in_bytes",
	"memory.kmem.failcnt",
	"memory.kmem.tcp.usage_in_bytes",
	"memory.kmem.tcp.max_usage_in_bytes",
	"memory.kmem.tcp.limit_in_bytes",
	"memory.kmem.tcp.failcnt",
	"memory.stat",
	"memory.oom_control",
	NULL,
};
static const char *const v1_cpu_files[] = {"cpu.stat", NULL};
static const char *const v1_cpuacct_files[] = {"cpuacct.usage",	    "cpuacct.usage_user",
					       "cpuacct.usage_sys", "cpuacct.usage_percpu",
					       "cpuacct.stat",	    NULL};
static const char *const v1_pids_files[] = {"pids.current", "pids.max", NULL};
const char *const cgmirror_v2_files[] = {
	"cgroup.controllers",
	"cgroup.events",
	"memory.current",
	"memory.peak",
	"memory.max",
	"memory.events",
	"memory.stat",
	"memory.swap.current",
	"memory.swap.max",
	"cpu.stat",
	"io.stat",
	"pids.current",
	"pids.max",
	NULL,
};

/* In place, and only when the text changes: a watcher's inotify watch
 * (IN_MODIFY) is on the inode, which a rename would replace. Never empty in
 * between (conmon stops watching a memory.events without an oom line). */
static void write_in_place(int dir, const char *name, const char *buf, int n)
{
	char old[4096];
	_cleanup_close_ int fd = openat(dir, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0444);
	if (fd < 0)
		return;
	ssize_t len = pread(fd, old, sizeof(old), 0);
	if (len == n && memcmp(old, buf, (size_t)n) == 0)
		return;
	if (pwrite(fd, buf, (size_t)n, 0) == n && len > n)
		(void)ftruncate(fd, n); /* a tmpfs file: the next tick rewrites it */
}

static void write_one(int dir, const char *name, bool v2, const Cocoon__StatsReply *st)
{
	char buf[4096], tmp[96];
	int n = cgmirror_render(name, v2, st, buf, sizeof(buf));
	if (n < 0)
		return;
	if (v2 && (strcmp(name, "memory.events") == 0 || strcmp(name, "cgroup.events") == 0)) {
		write_in_place(dir, name, buf, n);
		return;
	}
	snprintf(tmp, sizeof(tmp), ".%s.new", name);
	_cleanup_close_ int fd =
		openat(dir, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0444);
	if (fd < 0 || write(fd, buf, (size_t)n) != n) {
		unlinkat(dir, tmp, 0);
		return;
	}
	if (renameat(dir, tmp, dir, name) < 0)
		(void)unlinkat(dir, tmp, 0); /* the old figures stay until the next tick */
}

/* bound: memory.oom_control is the OOM relay's (cgroup-oom.h), the
 * kernel's own file. */
static void write_dir(const struct cgmirror_dir *d, const Cocoon__StatsReply *st, bool bound)
{
	const char *const *lists[4] = {NULL};
	size_t k = 0;
	if (d->v2) {
		lists[k++] = cgmirror_v2_files;
	} else {
		if (d->controllers & CG_MEMORY)
			lists[k++] = v1_memory_files;
		if (d->controllers & CG_CPU)
			lists[k++] = v1_cpu_files;
		if (d->controllers & CG_CPUACCT)
			lists[k++] = v1_cpuacct_files;
		if (d->controllers & CG_PIDS)
			lists[k++] = v1_pids_files;
	}
	for (size_t i = 0; i < k; i++)
		for (const char *const *f = lists[i]; *f; f++)
			if (!bound || strcmp(*f, "memory.oom_control") != 0)
				write_one(d->mount_fd, *f, d->v2, st);
}

int cgmirror_update(struct cgmirror *m, const Cocoon__StatsReply *st, struct error **err)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->dirs[i].mount_fd >= 0)
			write_dir(&m->dirs[i], st, m->oom.active);
	return cgoom_notify(&m->oom, st->memory_oom_kill, err);
}

int cgmirror_oom_kill(struct cgmirror *m, uint64_t count, struct error **err)
{
	Cocoon__StatsReply st = COCOON__STATS_REPLY__INIT;
	st.memory_oom_kill = count;
	for (size_t i = 0; i < m->n; i++)
		if (m->dirs[i].mount_fd >= 0 && m->dirs[i].v2)
			write_one(m->dirs[i].mount_fd, "memory.events", true, &st);
	return cgoom_notify(&m->oom, count, err);
}

void cgmirror_close(struct cgmirror *m)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->dirs[i].mount_fd >= 0)
			close(m->dirs[i].mount_fd);
	for (size_t i = 0; i < m->n_leaves; i++)
		close(m->leaves[i]);
	m->n = m->n_leaves = 0;
	cgoom_close(&m->oom);
}

/* ---- the hierarchies ---- */

struct hierarchy {
	char mountpoint[256];
	unsigned controllers;
	bool v2;
};

static unsigned controllers_of(const char *superopts)
{
	static const struct {
		const char *name;
		unsigned bit;
	} known[] = {{"memory", CG_MEMORY},
		     {"cpu", CG_CPU},
		     {"cpuacct", CG_CPUACCT},
		     {"pids", CG_PIDS},
		     {"blkio", CG_BLKIO}};
	unsigned mask = 0;
	const char *s = superopts;
	while (*s) {
		size_t len = strcspn(s, ",\n");
		for (size_t i = 0; i < ARRAY_SIZE(known); i++)
			if (len == strlen(known[i].name) && strncmp(s, known[i].name, len) == 0)
				mask |= known[i].bit;
		s += len;
		if (*s)
			s++;
	}
	return mask;
}

/* The v1 hierarchies under /sys/fs/cgroup with a controller of ours, or the
 * v2 one when /sys/fs/cgroup is cgroup2 (what the engines use on a hybrid
 * host is v1, so then /sys/fs/cgroup/unified is left alone). */
static size_t find_hierarchies(struct hierarchy *h, size_t max)
{
	struct statfs sf;
	if (statfs(CGROUP_ROOT, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC) {
		snprintf(h[0].mountpoint, sizeof(h[0].mountpoint), "%s", CGROUP_ROOT);
		h[0].controllers = CG_MIRRORED;
		h[0].v2 = true;
		return 1;
	}
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[1024];
	size_t n = 0;
	while (f && n < max && fgets(line, sizeof(line), f)) {
		char root[256], mp[256], fstype[32], source[64], opts[256];
		const char *dash = strstr(line, " - ");
		if (!dash || sscanf(line, "%*s %*s %*s %255s %255s", root, mp) != 2 ||
		    sscanf(dash + 3, "%31s %63s %255s", fstype, source, opts) != 3)
			continue;
		if (strcmp(fstype, "cgroup") != 0 || strcmp(root, "/") != 0 ||
		    strncmp(mp, CGROUP_ROOT "/", strlen(CGROUP_ROOT) + 1) != 0 ||
		    strchr(mp + strlen(CGROUP_ROOT) + 1, '/'))
			continue;
		unsigned mask = controllers_of(opts);
		if (!mask)
			continue;
		bool dup = false;
		for (size_t i = 0; i < n; i++)
			dup |= h[i].controllers == mask;
		if (dup)
			continue;
		snprintf(h[n].mountpoint, sizeof(h[n].mountpoint), "%s", mp);
		h[n].controllers = mask;
		h[n].v2 = false;
		n++;
	}
	return n;
}

/* mkdir -p of path under the hierarchy; *created says whether the leaf is
 * new. Returns an O_PATH fd of the leaf. */
static int make_cgroup(const char *mountpoint, const char *path, bool *created, struct error **err)
{
	_cleanup_close_ int dir = open(mountpoint, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return error_set(err, errno, "%s", mountpoint);
	const char *s = path;
	while (*s == '/')
		s++;
	while (*s) {
		char name[256];
		size_t len = strcspn(s, "/");
		if (len >= sizeof(name))
			return error_setx(err, ENAMETOOLONG, "%s%s", mountpoint, path);
		memcpy(name, s, len);
		name[len] = 0;
		s += len;
		while (*s == '/')
			s++;
		*created = mkdirat(dir, name, 0755) == 0;
		if (!*created && errno != EEXIST)
			return error_set(err, errno, "mkdir %s%s", mountpoint, path);
		int next = openat(dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			return error_set(err, errno, "%s%s", mountpoint, path);
		close(dir);
		dir = next;
	}
	return TAKE_FD(dir);
}

static int join_cgroup(int dir, pid_t who, struct error **err)
{
	char pid[24], where[64];
	int n = snprintf(pid, sizeof(pid), "%d", who);
	_cleanup_close_ int fd = openat(dir, "cgroup.procs", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, pid, (size_t)n) != n) {
		int e = errno;
		snprintf(where, sizeof(where), "/proc/self/fd/%d", dir);
		char real[CGMIRROR_PATH_MAX + 256] = "";
		ssize_t len = readlink(where, real, sizeof(real) - 1);
		return error_set(err, e, "join cgroup %s", len > 0 ? real : "");
	}
	return 0;
}

/* A detached tmpfs, small and inert, for the figures. */
static int make_tmpfs(struct error **err)
{
	_cleanup_close_ int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
	if (fs < 0 || fsconfig(fs, FSCONFIG_SET_STRING, "size", "1m", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "nr_inodes", "256", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "mode", "755", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return error_set(err, errno, "tmpfs for the stats");
	int mnt = fsmount(fs, FSMOUNT_CLOEXEC,
			  MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
	if (mnt < 0)
		return error_set(err, errno, "tmpfs for the stats");
	return mnt;
}

/* The cgroup PATH in hierarchy H, as a host path. */
static int where_of(char *out, size_t size, const struct hierarchy *h, const char *path,
		    struct error **err)
{
	int n = snprintf(out, size, "%s%s", h->mountpoint, path);
	if (n < 0 || (size_t)n >= size)
		return error_setx(err, ENAMETOOLONG, "cgroup %s under %s: path too long", path,
				  h->mountpoint);
	return 0;
}

int cgmirror_setup(struct cgmirror *m, const char *path, struct error **err)
{
	struct hierarchy h[CGMIRROR_MAX_HIERARCHIES];
	size_t nh = find_hierarchies(h, ARRAY_SIZE(h));
	int leaves[CGMIRROR_MAX_HIERARCHIES];
	Cocoon__StatsReply zero = COCOON__STATS_REPLY__INIT;
	char where[CGMIRROR_PATH_MAX + 256];
	size_t i;
	int r = 0;

	memset(m, 0, sizeof(*m));
	if (nh == 0)
		return error_setx(err, ENOENT,
				  "no cgroup hierarchy with memory, cpu or pids under %s",
				  CGROUP_ROOT);
	for (i = 0; i < nh; i++)
		leaves[i] = -1;
	/* Only a cgroup of its own is covered: a path that exists already
	 * (another container's, or one of the host's) keeps its files, and
	 * nothing is made then. */
	for (i = 0; i < nh; i++) {
		struct stat sb;
		if ((r = where_of(where, sizeof(where), &h[i], path, err)) < 0)
			return r;
		if (stat(where, &sb) == 0)
			return error_setx(err, EEXIST, "%s exists already", where);
	}
	for (i = 0; i < nh && r == 0; i++) {
		bool created = false;
		where_of(where, sizeof(where), &h[i], path, NULL); /* fits: checked above */
		leaves[i] = make_cgroup(h[i].mountpoint, path, &created, err);
		if (leaves[i] < 0)
			r = leaves[i];
		else if (!created)
			r = error_setx(err, EEXIST, "%s exists already", where);
	}
	for (i = 0; i < nh && r == 0; i++) {
		if (!(h[i].controllers & CG_MIRRORED))
			continue;
		struct cgmirror_dir *d = &m->dirs[m->n];
		d->mount_fd = make_tmpfs(err);
		d->controllers = h[i].controllers;
		d->v2 = h[i].v2;
		if (d->mount_fd < 0) {
			r = d->mount_fd;
			break;
		}
		m->n++;
		write_dir(d, &zero, false);
		if (move_mount(d->mount_fd, "", leaves[i], "",
			       MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) {
			r = error_set(err, errno, "mount the stats over %s%s", h[i].mountpoint,
				      path);
		}
	}
	for (i = 0; i < nh; i++) {
		if (r == 0)
			m->leaves[m->n_leaves++] = leaves[i];
		else if (leaves[i] >= 0)
			close(leaves[i]);
	}
	if (r < 0)
		cgmirror_close(m);
	return r;
}

int cgmirror_oom_setup(struct cgmirror *m, const char *path, struct error **err)
{
	struct hierarchy h[CGMIRROR_MAX_HIERARCHIES];
	size_t nh = find_hierarchies(h, ARRAY_SIZE(h));
	for (size_t i = 0; i < nh; i++) {
		if (h[i].v2 || !(h[i].controllers & CG_MEMORY))
			continue;
		for (size_t k = 0; k < m->n; k++)
			if (m->dirs[k].controllers == h[i].controllers && m->dirs[k].mount_fd >= 0)
				return cgoom_setup(&m->oom, h[i].mountpoint, path,
						   m->dirs[k].mount_fd, err);
	}
	return 0;
}

int cgmirror_join(struct cgmirror *m, pid_t pid, struct error **err)
{
	int r = 0;
	for (size_t i = 0; i < m->n_leaves; i++) {
		if (r == 0)
			r = join_cgroup(m->leaves[i], pid, err);
		close(m->leaves[i]);
	}
	m->n_leaves = 0;
	return r;
}

int cgmirror_remove(const char *path, struct error **err)
{
	struct hierarchy h[CGMIRROR_MAX_HIERARCHIES];
	size_t nh = find_hierarchies(h, ARRAY_SIZE(h));
	char where[CGMIRROR_PATH_MAX + 256];
	int r = 0;

	if (!path || path[0] != '/' || !path[1])
		return 0;
	for (size_t i = 0; i < nh; i++) {
		int w = where_of(where, sizeof(where), &h[i], path, r == 0 ? err : NULL);
		if (w < 0) {
			r = r ? r : w;
			continue;
		}
		/* Only our tmpfs: whatever else is mounted there is not ours. */
		struct statfs sf;
		while (statfs(where, &sf) == 0 && sf.f_type == TMPFS_MAGIC &&
		       umount2(where, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
			;
		/* The last of QEMU's threads may still be leaving it. */
		for (int tries = 0; rmdir(where) < 0; tries++) {
			if (errno == ENOENT)
				break;
			if (errno != EBUSY || tries >= 50) {
				if (r == 0)
					r = error_set(err, errno, "remove cgroup %s", where);
				break;
			}
			nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
		}
	}
	/* The OOM relay after the cgroup the engines watch (cgroup-oom.h). */
	for (size_t i = 0; i < nh; i++)
		if (!h[i].v2 && (h[i].controllers & CG_MEMORY)) {
			_cleanup_error_ struct error *e = NULL;
			int rr = cgoom_remove(h[i].mountpoint, path, r == 0 ? err : &e);
			if (rr < 0 && r == 0)
				r = rr;
		}
	return r;
}
