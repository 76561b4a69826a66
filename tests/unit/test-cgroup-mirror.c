/* The engines' view of a container's cgroup (cgroup-mirror.h, cgroup-oom.h):
 * OOM events as the engines watch for them. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cmocka.h>

#include "cgroup-mirror.h"
#include "cgroup-overhead.h"

static void read_file(int dir, const char *name, char *buf, size_t size)
{
	int fd = openat(dir, name, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, size - 1);
	assert_true(n >= 0);
	buf[n] = 0;
	close(fd);
}

/* cgroup v2: conmon and containerd watch memory.events with inotify
 * (IN_MODIFY on its inode) and compare the oom_kill count. */
static void test_v2_memory_events_change_in_place(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/cgmirror-XXXXXX", buf[512];
	assert_non_null(mkdtemp(tmpl));
	int dir = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dir >= 0);
	struct cgmirror m = {.n = 1, .dirs = {{.mount_fd = dir, .v2 = true}}};
	Cocoon__StatsReply st = COCOON__STATS_REPLY__INIT;

	assert_int_equal(cgmirror_update(&m, &st, NULL), 0);
	read_file(dir, "cgroup.events", buf, sizeof(buf));
	assert_string_equal(buf, "populated 1\nfrozen 0\n");
	char path[64];
	snprintf(path, sizeof(path), "%s/memory.events", tmpl);
	int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	assert_true(in >= 0);
	assert_true(inotify_add_watch(in, path, IN_MODIFY) >= 0);
	char ev[4096];

	/* Same figures: no wake-up for the watcher. */
	st.memory_current = 1 << 20;
	assert_int_equal(cgmirror_update(&m, &st, NULL), 0);
	assert_int_equal(read(in, ev, sizeof(ev)), -1);
	assert_int_equal(errno, EAGAIN);

	/* An OOM kill in the guest: the watched inode changes. */
	st.memory_oom_kill = 1;
	assert_int_equal(cgmirror_update(&m, &st, NULL), 0); /* no relay on v2 */
	assert_true(read(in, ev, sizeof(ev)) > 0);
	read_file(dir, "memory.events", buf, sizeof(buf));
	assert_non_null(strstr(buf, "\noom_kill 1\n"));
	/* A shorter text leaves no tail of the old one. */
	st.memory_oom_kill = 12345678;
	cgmirror_update(&m, &st, NULL);
	st.memory_oom_kill = 2;
	cgmirror_update(&m, &st, NULL);
	read_file(dir, "memory.events", buf, sizeof(buf));
	assert_string_equal(buf, "low 0\nhigh 0\nmax 2\noom 2\noom_kill 2\n");

	close(in);
	/* The mirror's files, and nothing else, or the rmdir fails. */
	for (const char *const *name = cgmirror_v2_files; *name; name++)
		unlinkat(dir, *name, 0);
	close(dir);
	assert_int_equal(rmdir(tmpl), 0);
}

/* Where this host has a cgroup v1 memory hierarchy and we are root. */
static bool have_v1_memory(void)
{
	struct statfs sf;
	return geteuid() == 0 && statfs("/sys/fs/cgroup/memory", &sf) == 0 &&
	       sf.f_type == 0x27e0eb /* CGROUP_SUPER_MAGIC */;
}

static int register_oom_eventfd(const char *leaf)
{
	char path[512], line[64];
	snprintf(path, sizeof(path), "%s/memory.oom_control", leaf);
	int ofd = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "%s/cgroup.event_control", leaf);
	int cfd = open(path, O_WRONLY | O_CLOEXEC);
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(ofd >= 0 && cfd >= 0 && efd >= 0);
	int n = snprintf(line, sizeof(line), "%d %d", efd, ofd);
	/* As conmon and containerd do; a tmpfs file would take it silently. */
	assert_int_equal(write(cfd, line, (size_t)n), n);
	close(cfd);
	return efd;
}

static uint64_t events(int efd, int wait_ms)
{
	struct pollfd p = {.fd = efd, .events = POLLIN};
	uint64_t v = 0;
	if (poll(&p, 1, wait_ms) == 1)
		assert_int_equal(read(efd, &v, sizeof(v)), sizeof(v));
	return v;
}

/* cgroup v1: an engine's eventfd on the mirrored cgroup fires once per rise
 * of the guest's OOM count, and not for the removal at delete. */
static void test_v1_oom_relay_wakes_the_engines_eventfd(void **state)
{
	(void)state;
	if (!have_v1_memory()) {
		print_message("SKIP: needs root and a cgroup v1 memory hierarchy at "
			      "/sys/fs/cgroup/memory\n");
		skip();
	}
	char path[64], leaf[128], buf[256];
	struct cgmirror m;
	struct error *err = NULL;
	snprintf(path, sizeof(path), "/cocoon-unit-oom-%d", (int)getpid());
	snprintf(leaf, sizeof(leaf), "/sys/fs/cgroup/memory%s", path);
	if (cgmirror_setup(&m, path, &err) < 0)
		fail_msg("cgmirror_setup: %s", err->msg);
	if (cgmirror_oom_setup(&m, path, &err) < 0)
		fail_msg("cgmirror_oom_setup: %s", err->msg);
	assert_true(m.oom.active);
	int efd = register_oom_eventfd(leaf);
	Cocoon__StatsReply st = COCOON__STATS_REPLY__INIT;

	assert_int_equal(cgmirror_update(&m, &st, NULL), 0);
	assert_int_equal(events(efd, 200), 0);
	st.memory_oom_kill = 1;
	if (cgmirror_update(&m, &st, &err) != 1)
		fail_msg("relay: %s", err ? err->msg : "no event made");
	assert_int_equal(events(efd, 2000), 1);
	/* The kernel's own count, in the file the engines read. */
	snprintf(buf, sizeof(buf), "%s/memory.oom_control", leaf);
	int fd = open(buf, O_RDONLY | O_CLOEXEC);
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n > 0);
	buf[n] = 0;
	assert_non_null(strstr(buf, "oom_kill 1\n"));
	/* No rise, no event; the other figures stay the mirror's. */
	st.memory_current = 5 << 20;
	assert_int_equal(cgmirror_update(&m, &st, NULL), 0);
	assert_int_equal(events(efd, 200), 0);
	snprintf(buf, sizeof(buf), "%s/memory.usage_in_bytes", leaf);
	fd = open(buf, O_RDONLY | O_CLOEXEC);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n > 0);
	buf[n] = 0;
	assert_string_equal(buf, "5242880\n");

	cgmirror_close(&m);
	if (cgmirror_remove(path, &err) < 0)
		fail_msg("cgmirror_remove: %s", err->msg);
	/* The relay goes after the watched cgroup: when its removal wakes the
	 * engine, the watched cgroup is already gone, which is how conmon and
	 * containerd tell a removal from an OOM. */
	assert_int_equal(events(efd, 2000), 1);
	snprintf(buf, sizeof(buf), "%s/cgroup.event_control", leaf);
	assert_int_equal(access(buf, F_OK), -1);
	snprintf(buf, sizeof(buf), "/sys/fs/cgroup/memory/cocoon-oom%s", path);
	assert_int_equal(access(buf, F_OK), -1);
	close(efd);
}

static void put(const char *root, const char *rel, const char *text)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	for (char *q = p + strlen(root) + 1; (q = strchr(q, '/')); q++) {
		*q = 0;
		mkdir(p, 0700);
		*q = '/';
	}
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void slurp(const char *root, const char *rel, char *buf, size_t size)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	FILE *f = fopen(p, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, size - 1, f);
	buf[n] = 0;
	fclose(f);
}

/* cgroup-overhead.h's rule, on a fake v1 tree: a pod cgroup of 300 MiB and
 * 2 CPUs above conmon's, as podman makes it (rev16c F1). */
static void test_overhead_moves_the_vm_out_of_a_limit_it_would_exceed(void **st)
{
	char root[] = "/tmp/cgoverhead-XXXXXX", pid[24], got[64], proc[600];
	struct cgoverhead o;
	assert_non_null(mkdtemp(root));
	snprintf(pid, sizeof(pid), "%d", getpid());
	snprintf(proc, sizeof(proc), "%s/proc-cgroup", root);
	put(root, "proc-cgroup",
	    "7:pids:/libpod_parent/p1/conmon\n5:memory:/libpod_parent/p1/conmon\n"
	    "4:cpu:/libpod_parent/p1/conmon\n1:name=systemd:/x\n");
	put(root, "memory/libpod_parent/memory.limit_in_bytes", "9223372036854771712\n");
	put(root, "memory/libpod_parent/p1/memory.limit_in_bytes", "314572800\n");
	put(root, "memory/libpod_parent/p1/conmon/memory.limit_in_bytes", "9223372036854771712\n");
	put(root, "memory/libpod_parent/p1/conmon/cgroup.procs", "");
	put(root, "cpu/libpod_parent/p1/cpu.cfs_quota_us", "200000\n");
	put(root, "cpu/libpod_parent/p1/cpu.cfs_period_us", "100000\n");
	put(root, "cpu/libpod_parent/p1/conmon/cgroup.procs", "");
	/* A VM of 728 MiB does not fit in 300; 2 vCPUs fit in 2 CPUs. */
	assert_int_equal(cgoverhead_enter(&o, root, proc, "c1", 0, 2, NULL), 0);
	put(root, "memory/cocoon.overhead/c1/cgroup.procs", "");
	assert_int_equal(cgoverhead_enter(&o, root, proc, "c1", 728, 2, NULL), 1);
	assert_int_equal(o.n, 1);
	slurp(root, "memory/cocoon.overhead/c1/cgroup.procs", got, sizeof(got));
	assert_string_equal(got, pid);
	cgoverhead_leave(&o);
	slurp(root, "memory/libpod_parent/p1/conmon/cgroup.procs", got, sizeof(got));
	assert_string_equal(got, pid);
	/* 3 vCPUs exceed the pod's 2 CPUs: the cpu hierarchy too. */
	put(root, "cpu/cocoon.overhead/c1/cgroup.procs", "");
	assert_int_equal(cgoverhead_enter(&o, root, proc, "c1", 728, 3, NULL), 1);
	assert_int_equal(o.n, 2);
	cgoverhead_leave(&o);
	/* Where it cannot join: an error, nothing moved. */
	char p[600];
	snprintf(p, sizeof(p), "%s/memory/cocoon.overhead/c2", root);
	struct error *err = NULL;
	assert_true(cgoverhead_enter(&o, root, proc, "c2", 728, 2, &err) < 0);
	assert_non_null(strstr(err->msg, "cocoon.overhead/c2"));
	error_free(&err);
	assert_int_equal(o.n, 0);
	assert_int_equal(access(p, F_OK), -1); /* removed again */
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v2_memory_events_change_in_place),
		cmocka_unit_test(test_v1_oom_relay_wakes_the_engines_eventfd),
		cmocka_unit_test(test_overhead_moves_the_vm_out_of_a_limit_it_would_exceed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
