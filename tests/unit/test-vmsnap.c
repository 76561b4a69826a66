/* Whole-VM checkpoints (vmsnap.h): what the VMM must be able to do, the
 * refusal that names what is missing, the key a snapshot is bound to and
 * the vm.json a restore reads (untrusted: it comes with the images). The
 * state file itself: test-vmsnap-state.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "accel.h"
#include "paths.h"
#include "qmp.h"
#include "vmsnap.h"

static char dir[] = "/tmp/cocoon-test-vmsnap.XXXXXX";
static char kernel[256], initrd[256];

static void test_qemu_versions(void **state)
{
	int a, b, c;
	assert_int_equal(vmsnap_parse_qemu_version(
				 "QEMU emulator version 10.0.13 (Debian 1:10.0.13+ds-0+deb13u1)\n",
				 &a, &b, &c),
			 0);
	assert_int_equal(a, 10);
	assert_int_equal(b, 0);
	assert_int_equal(c, 13);
	assert_int_equal(
		vmsnap_parse_qemu_version(
			"QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)", &a, &b, &c),
		0);
	assert_int_equal(a, 7);
	assert_int_equal(b, 2);
	assert_int_equal(vmsnap_parse_qemu_version("QEMU emulator version 8.2", &a, &b, &c), 0);
	assert_int_equal(c, 0);
	assert_int_equal(vmsnap_parse_qemu_version("qemu-system-x86_64: not found", &a, &b, &c),
			 -EINVAL);
	assert_int_equal(vmsnap_parse_qemu_version("version x.y", &a, &b, &c), -EINVAL);
	assert_int_equal(vmsnap_parse_qemu_version(NULL, &a, &b, &c), -EINVAL);
}

static struct vmsnap_caps caps(int major, int minor, bool vfs_runs, bool vfs_migration)
{
	struct vmsnap_caps c = {.qemu_major = major,
				.qemu_minor = minor,
				.qemu_micro = 1,
				.virtiofsd_runs = vfs_runs,
				.virtiofsd_migration = vfs_migration};
	snprintf(c.qemu, sizeof(c.qemu), "/usr/bin/qemu-system-x86_64");
	snprintf(c.virtiofsd, sizeof(c.virtiofsd), "/usr/lib/qemu/virtiofsd");
	snprintf(c.virtiofsd_version, sizeof(c.virtiofsd_version), "virtiofsd 1.13.2");
	return c;
}

static void test_caps_check_names_what_is_missing(void **state)
{
	char why[1024];
	struct vmsnap_caps c = caps(10, 0, true, true);
	assert_int_equal(vmsnap_caps_check(&c, why, sizeof(why)), 0);
	assert_string_equal(why, "");
	c = caps(8, 2, true, true);
	assert_int_equal(vmsnap_caps_check(&c, why, sizeof(why)), 0);
	/* Debian 12: QEMU 7.2 and its C virtiofsd. */
	c = caps(7, 2, true, false);
	assert_int_equal(vmsnap_caps_check(&c, why, sizeof(why)), -EOPNOTSUPP);
	assert_non_null(strstr(why, "QEMU 7.2.1"));
	assert_non_null(strstr(why, "vhost-user-fs"));
	assert_non_null(strstr(why, "--migration-mode"));
	assert_non_null(strstr(why, "/usr/lib/qemu/virtiofsd"));
	c = caps(8, 1, true, true);
	assert_int_equal(vmsnap_caps_check(&c, why, sizeof(why)), -EOPNOTSUPP);
	assert_non_null(strstr(why, "QEMU 8.1.1"));
	assert_null(strstr(why, "--migration-mode"));
	c = caps(10, 0, false, false);
	assert_int_equal(vmsnap_caps_check(&c, why, sizeof(why)), -EOPNOTSUPP);
	assert_non_null(strstr(why, "not found"));
	assert_null(strstr(why, "QEMU 10"));
	c = caps(0, 0, true, true);
	assert_int_equal(vmsnap_caps_check(&c, why, sizeof(why)), -EOPNOTSUPP);
	assert_non_null(strstr(why, "did not run"));
}

static struct vm_spec base_spec(void)
{
	return (struct vm_spec){
		.qemu = "/opt/qemu/bin/qemu-system-x86_64",
		.kernel = kernel,
		.initrd = initrd,
		.cmdline_extra = "cocoon.criu=/usr/sbin/criu",
		.accel = "tcg",
		.memory_mib = 512,
		.vcpus = 1,
		.channel_path = "/run/a/agent.sock",
		.shared_dir = "/run/a/shared",
		.shared_fs = "virtiofs",
		.rootfs_dir = "/bundles/a/rootfs",
		.console_log = "/run/a/console.log",
		.qmp_path = "/run/a/qmp.sock",
		.snapshot_virtiofsd = "/opt/qemu/bin/virtiofsd",
	};
}

static char *key_of(const struct vm_spec *s)
{
	struct vmsnap_caps c = caps(10, 0, true, true);
	struct error *err = NULL;
	char *key = NULL;
	assert_int_equal(vmsnap_key(s, &c, &key, &err), 0);
	assert_null(err);
	return key;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_key_per_vm_paths_and_macs_do_not_count(void **state)
{
	struct vm_spec a = base_spec(), b = base_spec();
	static const int fds_a[] = {5}, fds_b[] = {9};
	static const char *const macs_a[] = {"02:00:00:00:00:01"}, *const macs_b[] = {
									   "02:00:00:00:00:02"};
	a.net_fds = fds_a;
	a.net_macs = macs_a;
	a.n_nets = 1;
	b.net_fds = fds_b;
	b.net_macs = macs_b;
	b.n_nets = 1;
	b.channel_path = "/run/b/agent.sock";
	b.shared_dir = "/run/b/shared";
	b.rootfs_dir = "/var/lib/containers/b/merged";
	b.console_log = "/run/b/console.log";
	b.qmp_path = "/run/b/qmp.sock";
	b.qemu = "qemu-system-x86_64";
	b.incoming_defer = true;
	char *ka = key_of(&a), *kb = key_of(&b);
	assert_string_equal(ka, kb);
	/* Every share is virtiofs, none 9p (a mounted 9p export blocks
	 * migration), and the VMM's identity is in the key. */
	assert_null(strstr(ka, "virtio-9p"));
	assert_non_null(strstr(ka, "tag=rootfs"));
	assert_non_null(strstr(ka, "qemu=10.0.1 mapped-ram=no"));
	assert_true(vmsnap_key_mapped_ram("x\nqemu=10.0.1 mapped-ram=yes\n"));
	assert_false(vmsnap_key_mapped_ram(ka));
	free(ka);
	free(kb);
}

static void test_key_shape_and_image_count(void **state)
{
	struct vm_spec a = base_spec(), b = base_spec();
	char *ka = key_of(&a);
	b.memory_mib = 640;
	char *kb = key_of(&b), diff[800];
	assert_string_not_equal(ka, kb);
	vmsnap_key_diff(kb, ka, diff, sizeof(diff));
	assert_non_null(strstr(diff, "640"));
	free(kb);
	b = base_spec();
	b.volumes_dir = "/run/a/volumes";
	kb = key_of(&b);
	assert_string_not_equal(ka, kb);
	free(kb);
	/* The same kernel file with other contents: another image. */
	write_text(kernel, "another kernel");
	kb = key_of(&a);
	assert_string_not_equal(ka, kb);
	vmsnap_key_diff(kb, ka, diff, sizeof(diff));
	assert_non_null(strstr(diff, "kernel="));
	vmsnap_key_diff(ka, ka, diff, sizeof(diff));
	assert_string_equal(diff, "");
	/* The snapshot's key comes from vm.json: its control characters do
	 * not reach the terminal in the refusal. */
	vmsnap_key_diff("a\nkernel=1\n", "a\nkernel=\033[2J\033]0;x\007\n", diff, sizeof(diff));
	assert_non_null(strstr(diff, "kernel="));
	for (const char *p = diff; *p; p++)
		assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
	free(ka);
	free(kb);
}

/* Under KVM (-cpu host) a VM saved on another CPU model is refused by
 * name; the host's kernel does not count (a snapshot may move to another
 * host of the same CPU). Under TCG the host's CPU is not in the key. */
static void test_key_host_cpu_under_kvm(void **state)
{
	char a[300], b[300];
	snprintf(a, sizeof(a), "%s/cpuinfo-a", dir);
	snprintf(b, sizeof(b), "%s/cpuinfo-b", dir);
	write_text(a, "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\n"
		      "model name\t: AMD EPYC 7713\nstepping\t: 1\nflags\t\t: fpu sse avx2\n\n");
	write_text(
		b,
		"processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
		"model name\t: AMD EPYC 9654\nstepping\t: 1\nflags\t\t: fpu sse avx2 avx512f\n\n");
	struct vm_spec kvm = base_spec(), tcg = base_spec();
	kvm.accel = "kvm";
	accel_cpuinfo_path = a;
	char *ka = key_of(&kvm), *ta = key_of(&tcg);
	accel_cpuinfo_path = b;
	char *kb = key_of(&kvm), *tb = key_of(&tcg), diff[800];
	accel_cpuinfo_path = "/proc/cpuinfo";
	assert_string_not_equal(ka, kb);
	vmsnap_key_diff(kb, ka, diff, sizeof(diff));
	assert_non_null(strstr(diff, "host-cpu=AuthenticAMD family 25 model 1 "));
	assert_non_null(strstr(diff, "'AMD EPYC 9654' flags 4 "));
	assert_null(strstr(ka, "host-kernel="));
	assert_string_equal(ta, tb);
	assert_null(strstr(ta, "host-cpu="));
	unlink(a);
	unlink(b);
	free(ka);
	free(kb);
	free(ta);
	free(tb);
}

/* The VM's memory as its key says it (the bound of a decompressed state,
 * vmsnap_state_bound): from the real key, and never from elsewhere in an
 * untrusted one. */
static void test_key_memory(void **state)
{
	struct vm_spec a = base_spec();
	a.memory_mib = 640;
	char *ka = key_of(&a);
	assert_int_equal(vmsnap_key_memory_mib(ka), 640);
	free(ka);
	static const char *const bad[] = {
		NULL,
		"",
		"cocoon-vm-snapshot 1\nqemu-command-line=QEMU -smp 1\n",
		"cocoon-vm-snapshot 1\nqemu-command-line=QEMU -m x\n",
		"cocoon-vm-snapshot 1\nqemu-command-line=QEMU -m 0\n",
		"cocoon-vm-snapshot 1\nqemu-command-line=QEMU -m 12345678901\n",
		"cocoon-vm-snapshot 1\nqemu-command-line=QEMU\nkernel= -m 512\n",
		"qemu-command-line=QEMU -m 512\n", /* not a line of its own */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(vmsnap_key_memory_mib(bad[i]), -EINVAL);
	assert_int_equal(
		vmsnap_key_memory_mib("cocoon-vm-snapshot 1\nqemu-command-line=QEMU -m x -m 96\n"),
		96);
}

static void test_pods_are_refused(void **state)
{
	struct vm_spec a = base_spec();
	struct vmsnap_caps c = caps(10, 0, true, true);
	struct error *err = NULL;
	char *key = NULL;
	a.pod_dir = "/run/a/pod";
	assert_int_not_equal(vmsnap_key(&a, &c, &key, &err), 0);
	assert_non_null(strstr(err->msg, "pod"));
	error_free(&err);
}

static int meta(const char *text, struct vmsnap_meta *m, bool *found, struct error **err)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/" VMSNAP_META, dir);
	unlink(path);
	if (text)
		write_text(path, text);
	return vmsnap_meta_read(dir, m, found, err);
}

static void test_meta_is_checked(void **state)
{
	struct vmsnap_meta m;
	struct error *err = NULL;
	bool found;
	assert_int_equal(meta(NULL, &m, &found, &err), 0);
	assert_false(found);
	assert_int_equal(
		meta("{\"format\": \"cocoon-vm-snapshot 1\", \"container_id\": \"c1\", \"state\": \"vm.state\", \"key\": \"k\\n\", \"state_bytes\": 5}",
		     &m, &found, &err),
		0);
	assert_true(found);
	assert_string_equal(m.container_id, "c1");
	assert_string_equal(m.key, "k\n");
	assert_false(m.zstd);
	vmsnap_meta_free(&m);
	static const char *const bad[] = {
		"not json",
		"{\"format\": \"cocoon-vm-snapshot 2\", \"container_id\": \"c\", \"state\": \"vm.state\", \"key\": \"k\"}",
		"{\"format\": \"cocoon-vm-snapshot 1\", \"container_id\": 7, \"state\": \"vm.state\", \"key\": \"k\"}",
		"{\"format\": \"cocoon-vm-snapshot 1\", \"container_id\": \"c\", \"state\": \"../../etc/shadow\", \"key\": \"k\"}",
		"{\"format\": \"cocoon-vm-snapshot 1\", \"container_id\": \"c\", \"state\": \"vm.state\"}",
		"{\"format\": \"cocoon-vm-snapshot 1\", \"container_id\": \"c\", \"state\": \"vm.state\", \"key\": \"k\", \"xxh3\": \"../x\"}",
		"{\"format\": \"cocoon-vm-snapshot 1\", \"container_id\": \"c\\u001b[2J\", \"state\": \"vm.state\", \"key\": \"k\"}",
		"{\"format\": \"cocoon-vm-snapshot 1\", \"container_id\": \"../c\", \"state\": \"vm.state\", \"key\": \"k\"}",
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_not_equal(meta(bad[i], &m, &found, &err), 0);
		assert_non_null(err);
		assert_non_null(strstr(err->msg, VMSNAP_META));
		error_free(&err);
		vmsnap_meta_free(&m);
	}
	/* A symlink planted as vm.json is not followed. */
	char path[300];
	snprintf(path, sizeof(path), "%s/" VMSNAP_META, dir);
	unlink(path);
	assert_int_equal(symlink("/etc/hostname", path), 0);
	assert_int_not_equal(vmsnap_meta_read(dir, &m, &found, &err), 0);
	error_free(&err);
	unlink(path);
	/* A FIFO is looked at, not opened: the open waited for a writer
	 * for ever (the alarm ends the test instead). */
	assert_int_equal(mkfifo(path, 0600), 0);
	alarm(10);
	assert_int_not_equal(vmsnap_meta_read(dir, &m, &found, &err), 0);
	alarm(0);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "a FIFO"));
	error_free(&err);
	unlink(path);
}

/* ---- QMP replies and events (qmp.h) ---------------------------------------- */

static void test_qmp_events_are_not_replies(void **state)
{
	/* What QEMU writes: events lead with their timestamp. An event taken
	 * for a reply left every later reply one message behind. */
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	const char *from_qemu =
		"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\n"
		"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 3}, \"event\": \"MIGRATION\", \"data\": {\"status\": \"completed\"}}\n"
		"{\"return\": {\"status\": \"active\", \"total-time\": 5}}\n"
		"{\"return\": {\"status\": \"postmigrate\", \"running\": false}}\n"
		"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 4}, \"event\": \"RESUME\"}\n"
		"{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}\n";
	assert_int_equal(write(sv[1], from_qemu, strlen(from_qemu)), (ssize_t)strlen(from_qemu));
	struct qmp q = {.fd = sv[0]};
	struct error *err = NULL;
	char *reply = NULL, status[32];
	assert_int_equal(qmp_call(&q, "{\"execute\":\"query-migrate\"}\n", -1, &reply, &err), 0);
	assert_int_equal(qmp_status(reply, status, sizeof(status)), 0);
	assert_string_equal(status, "active");
	free(reply);
	assert_int_equal(qmp_call(&q, "{\"execute\":\"query-status\"}\n", -1, &reply, &err), 0);
	assert_int_equal(qmp_status(reply, status, sizeof(status)), 0);
	assert_string_equal(status, "postmigrate");
	free(reply);
	assert_int_not_equal(qmp_call(&q, "{\"execute\":\"cont\"}\n", -1, NULL, &err), 0);
	assert_non_null(strstr(err->msg, "GenericError"));
	error_free(&err);
	/* No status, or one that does not fit. */
	assert_int_equal(qmp_status("{\"return\": {}}", status, sizeof(status)), -EINVAL);
	assert_int_equal(
		qmp_status("{\"return\": {\"status\": \"0123456789abcdef0123456789abcdef\"}}",
			   status, sizeof(status)),
		-EINVAL);
	close(sv[0]);
	close(sv[1]);
}

/* A stand-in for virtiofsd: holds a memfd (as virtiofsd holds the guest's
 * memory) and the file at path (deleted once open when deleted), in the
 * process itself or, as virtiofsd's sandbox does, in a child it forks.
 * Returns once it holds them; *pid is the process to give the VM. */
static pid_t fake_virtiofsd(const char *path, bool deleted, bool in_child)
{
	int ready[2];
	assert_int_equal(pipe(ready), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(ready[0]);
		/* A group of its own: end_fake kills the sandbox's child too. */
		(void)setpgid(0, 0);
		if (in_child && fork() != 0) {
			for (;;)
				pause();
		}
		int m = memfd_create("memory-backend-memfd", MFD_CLOEXEC);
		int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (m < 0 || f < 0 || (deleted && unlink(path) < 0))
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(ready[1]);
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	return pid;
}

static void end_fake(pid_t pid)
{
	kill(-pid, SIGKILL); /* its group: an in_child fake's child too */
	waitpid(pid, NULL, 0);
}

/* A whole-VM checkpoint refuses, before anything is saved, a VM whose
 * virtiofsd holds a deleted file of a share (find-paths cannot hand it
 * over: the restored container got EIO on it); a file that is still
 * there, and the guest's memory (a memfd), do not count. */
static void test_deleted_files_held_by_virtiofsd(void **state)
{
	(void)state;
	char kept[300], gone[300], gone2[300];
	snprintf(kept, sizeof(kept), "%s/kept", dir);
	snprintf(gone, sizeof(gone), "%s/keep-me-deleted", dir);
	snprintf(gone2, sizeof(gone2), "%s/in-the-sandbox", dir);
	struct vm vm = {0};
	struct error *err = NULL;

	vm.aux[0] = fake_virtiofsd(kept, false, false);
	snprintf(vm.aux_tag[0], sizeof(vm.aux_tag[0]), "rootfs");
	assert_int_equal(vmsnap_deleted_held(&vm, &err), 0);
	assert_null(err);

	vm.aux[2] = fake_virtiofsd(gone, true, false);
	snprintf(vm.aux_tag[2], sizeof(vm.aux_tag[2]), "volumes");
	assert_int_equal(vmsnap_deleted_held(&vm, &err), -EOPNOTSUPP);
	assert_non_null(strstr(err->msg, gone));
	assert_non_null(strstr(err->msg, "a volume of the container"));
	assert_non_null(strstr(err->msg, "EIO"));
	assert_null(strstr(err->msg, "memfd"));
	error_free(&err);
	end_fake(vm.aux[2]);
	vm.aux[2] = 0;

	/* virtiofsd's sandbox forks: the child holds the share's files. */
	vm.aux[1] = fake_virtiofsd(gone2, true, true);
	snprintf(vm.aux_tag[1], sizeof(vm.aux_tag[1]), "rootfs");
	assert_int_equal(vmsnap_deleted_held(&vm, &err), -EOPNOTSUPP);
	assert_non_null(strstr(err->msg, gone2));
	assert_non_null(strstr(err->msg, "the container's root filesystem"));
	error_free(&err);
	end_fake(vm.aux[1]);
	end_fake(vm.aux[0]);
}

int main(void)
{
	assert_non_null(mkdtemp(dir));
	snprintf(kernel, sizeof(kernel), "%s/vmlinux", dir);
	snprintf(initrd, sizeof(initrd), "%s/initrd.img", dir);
	write_text(kernel, "kernel");
	write_text(initrd, "initrd");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qemu_versions),
		cmocka_unit_test(test_caps_check_names_what_is_missing),
		cmocka_unit_test(test_key_per_vm_paths_and_macs_do_not_count),
		cmocka_unit_test(test_key_shape_and_image_count),
		cmocka_unit_test(test_key_memory),
		cmocka_unit_test(test_key_host_cpu_under_kvm),
		cmocka_unit_test(test_pods_are_refused),
		cmocka_unit_test(test_meta_is_checked),
		cmocka_unit_test(test_qmp_events_are_not_replies),
		cmocka_unit_test(test_deleted_files_held_by_virtiofsd),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	remove_tree(dir, NULL);
	return r;
}
