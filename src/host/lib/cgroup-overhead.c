/* The VM's cost out of the pod's host cgroup (cgroup-overhead.h says why and
 * the rule). */
#include "cgroup-overhead.h"
#include "cleanup.h"
#include "paths.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A memory limit at or above this is "none" (v1's PAGE_COUNTER_MAX pages). */
#define NO_LIMIT (UINT64_C(1) << 50)

static bool read_u64(const char *dir, const char *name, uint64_t *v, uint64_t *second)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	char *end;
	if (asprintf(&path, "%s/%s", dir, name) < 0 ||
	    read_file_bounded(path, 256, &text, NULL, NULL) < 0 || text[0] < '0' || text[0] > '9')
		return false; /* missing, "max" or "-1": no limit */
	errno = 0;
	*v = strtoull(text, &end, 10);
	if (errno)
		return false;
	if (second) {
		if (*end != ' ')
			return false;
		*second = strtoull(end + 1, NULL, 10);
	}
	return true;
}

/* Whether a limit of the cgroup PATH or an ancestor in the hierarchy at
 * MOUNT is in the way of a VM of need bytes and vcpus vCPUs. */
static bool in_the_way(const char *mount, const char *path, bool v2, bool memory, bool cpu,
		       uint64_t need, int vcpus)
{
	char dir[1200];
	int n = snprintf(dir, sizeof(dir), "%s%s", mount, path);
	if (n < 0 || (size_t)n >= sizeof(dir))
		return false;
	size_t root = strlen(mount);
	for (;;) {
		uint64_t a = 0, b = 0, q = 0;
		while (n > (int)root && dir[n - 1] == '/')
			dir[--n] = 0;
		if ((size_t)n <= root)
			return false; /* the hierarchy's root has no limit */
		if (memory &&
		    read_u64(dir, v2 ? "memory.max" : "memory.limit_in_bytes", &a, NULL) &&
		    a < NO_LIMIT && a < need)
			return true;
		if (cpu && v2 && read_u64(dir, "cpu.max", &q, &b) && b && q < (uint64_t)vcpus * b)
			return true;
		if (cpu && !v2 && read_u64(dir, "cpu.cfs_quota_us", &q, NULL) &&
		    read_u64(dir, "cpu.cfs_period_us", &b, NULL) && b && q < (uint64_t)vcpus * b)
			return true;
		char *slash = strrchr(dir + root, '/');
		if (!slash)
			return false;
		*slash = 0;
		n = (int)(slash - dir);
	}
}

static bool has_token(const char *list, const char *word)
{
	size_t len = strlen(word);
	for (const char *s = list; *s;) {
		size_t n = strcspn(s, ",");
		if (n == len && strncmp(s, word, n) == 0)
			return true;
		s += n;
		if (*s)
			s++;
	}
	return false;
}

static int write_pid(const char *dir, pid_t pid)
{
	_cleanup_free_ char *path = NULL;
	char text[24];
	int n = snprintf(text, sizeof(text), "%d", pid);
	if (asprintf(&path, "%s/cgroup.procs", dir) < 0)
		return -ENOMEM;
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || write(fd, text, (size_t)n) != n)
		return -errno;
	return 0;
}

/* rmdir, while the last of QEMU's threads may still be leaving it. */
static void remove_dir(const char *dir, int tries)
{
	while (rmdir(dir) < 0 && errno == EBUSY && tries-- > 0)
		nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
}

static int overhead_path(char *out, size_t size, const char *mount, const char *id)
{
	int n = snprintf(out, size, "%s/" CGOVERHEAD_DIR "/%s", mount, id);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static void undo(struct cgoverhead *o, int tries)
{
	char dir[1200];
	for (int i = o->n - 1; i >= 0; i--) {
		char origin[1200];
		int n = snprintf(origin, sizeof(origin), "%s%s", o->moved[i].mount,
				 o->moved[i].origin);
		if (n < 0 || (size_t)n >= sizeof(origin) || write_pid(origin, getpid()) < 0)
			(void)write_pid(o->moved[i].mount, getpid()); /* the origin is gone */
		if (overhead_path(dir, sizeof(dir), o->moved[i].mount, o->id) == 0)
			remove_dir(dir, tries);
	}
	o->n = 0;
}

static int move_in(struct cgoverhead *o, const char *mount, const char *origin, struct error **err)
{
	char dir[1200];
	_cleanup_free_ char *top = NULL;
	if (o->n >= CGOVERHEAD_MAX)
		return 0;
	for (int i = 0; i < o->n; i++)
		if (strcmp(o->moved[i].mount, mount) == 0)
			return 0;
	if (asprintf(&top, "%s/" CGOVERHEAD_DIR, mount) < 0)
		return error_set(err, ENOMEM, "overhead cgroup");
	if (overhead_path(dir, sizeof(dir), mount, o->id) < 0 ||
	    strlen(mount) >= sizeof(o->moved[0].mount) ||
	    strlen(origin) >= sizeof(o->moved[0].origin))
		return error_setx(err, ENAMETOOLONG, "overhead cgroup under %s: path too long",
				  mount);
	if ((mkdir(top, 0700) < 0 && errno != EEXIST) || (mkdir(dir, 0700) < 0 && errno != EEXIST))
		return error_set(err, errno, "mkdir %s", dir);
	int r = write_pid(dir, getpid());
	if (r < 0) {
		remove_dir(dir, 0);
		return error_set(err, -r, "join cgroup %s", dir);
	}
	snprintf(o->moved[o->n].mount, sizeof(o->moved[0].mount), "%s", mount);
	snprintf(o->moved[o->n].origin, sizeof(o->moved[0].origin), "%s", origin);
	o->n++;
	return 0;
}

int cgoverhead_enter(struct cgoverhead *o, const char *cgroup_root, const char *proc_cgroup,
		     const char *id, int memory_mib, int vcpus, struct error **err)
{
	uint64_t need = ((uint64_t)memory_mib + CGOVERHEAD_VMM_MIB) << 20;
	_cleanup_free_ char *probe = NULL;
	char line[1400];
	int r = 0;

	o->n = 0;
	if (!id[0] || id[0] == '.' || strchr(id, '/') || strlen(id) >= sizeof(o->id))
		return error_setx(err, EINVAL, "overhead cgroup: bad id %s", id);
	snprintf(o->id, sizeof(o->id), "%s", id);
	if (asprintf(&probe, "%s/cgroup.controllers", cgroup_root) < 0)
		return error_set(err, ENOMEM, "overhead cgroup");
	bool v2 = access(probe, F_OK) == 0;
	_cleanup_fclose_ FILE *f = fopen(proc_cgroup, "re");
	if (!f)
		return error_set(err, errno, "%s", proc_cgroup);
	while (r == 0 && fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		char mount[128];
		if (!c2)
			continue;
		*c2 = 0;
		char *path = c2 + 1, *ctrls = c1 + 1;
		path[strcspn(path, "\n")] = 0;
		if (path[0] != '/')
			continue;
		bool mem, cpu;
		int n;
		if (v2) {
			if (ctrls[0])
				continue; /* a named v1 hierarchy beside v2 */
			mem = cpu = true;
			n = snprintf(mount, sizeof(mount), "%s", cgroup_root);
		} else {
			mem = has_token(ctrls, "memory");
			cpu = has_token(ctrls, "cpu");
			if (!mem && !cpu)
				continue;
			n = snprintf(mount, sizeof(mount), "%s/%s", cgroup_root, ctrls);
		}
		if (n < 0 || (size_t)n >= sizeof(mount))
			continue;
		if (in_the_way(mount, path, v2, mem, cpu, need, vcpus))
			r = move_in(o, mount, path, err);
	}
	if (r < 0) {
		undo(o, 0);
		return r;
	}
	return o->n > 0;
}

void cgoverhead_leave(struct cgoverhead *o)
{
	undo(o, 50);
}

void cgoverhead_remove(const char *cgroup_root, const char *id)
{
	char dir[1200];
	_cleanup_free_ char *probe = NULL;
	static const char *const v1[] = {"memory", "cpu", "cpu,cpuacct", "cpuacct,cpu"};
	if (!id[0] || id[0] == '.' || strchr(id, '/'))
		return;
	if (asprintf(&probe, "%s/cgroup.controllers", cgroup_root) < 0)
		return;
	if (access(probe, F_OK) == 0) {
		if (overhead_path(dir, sizeof(dir), cgroup_root, id) == 0)
			(void)rmdir(dir); /* only an empty one: best effort */
		return;
	}
	for (size_t i = 0; i < sizeof(v1) / sizeof(v1[0]); i++) {
		char mount[256];
		snprintf(mount, sizeof(mount), "%s/%s", cgroup_root, v1[i]);
		if (overhead_path(dir, sizeof(dir), mount, id) == 0)
			(void)rmdir(dir); /* only an empty one: best effort */
	}
}
