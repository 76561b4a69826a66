/* VM templates: what a template is keyed by. VMs that differ only in their
 * per-VM paths share one; a change of shape or of any input means another. */
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
#include <linux/capability.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "accel.h"
#include "network.h"
#include "template.h"

static char dir[] = "/tmp/cocoon-test-template.XXXXXX";
static char kernel[256], initrd[256];

static struct vm_spec base_spec(void)
{
	return (struct vm_spec){
		.qemu = "qemu-system-x86_64",
		.kernel = kernel,
		.initrd = initrd,
		.cmdline_extra = "cocoon.criu=/usr/sbin/criu",
		.accel = "tcg",
		.memory_mib = 512,
		.vcpus = 1,
		.channel_path = "/run/a/agent.sock",
		.shared_dir = "/run/a/shared",
		.shared_fs = "9p",
		.rootfs_dir = "/bundles/a/rootfs",
		.console_log = "/run/a/console.log",
	};
}

static char *key_of(const struct vm_spec *s)
{
	char *key = NULL;
	struct error *err = NULL;
	if (template_key(s, &key, &err) < 0)
		fail_msg("template_key: %s", err ? err->msg : "?");
	return key;
}

static void touch(const char *path, long sec)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("x", f);
	fclose(f);
	struct timespec t[2] = {{.tv_sec = sec}, {.tv_sec = sec}};
	assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(kernel, sizeof(kernel), "%s/vmlinux", dir);
	snprintf(initrd, sizeof(initrd), "%s/initrd.img", dir);
	touch(kernel, 1000);
	touch(initrd, 1000);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(kernel);
	unlink(initrd);
	rmdir(dir);
	return 0;
}

static void test_per_vm_paths_share_a_template(void **state)
{
	(void)state;
	struct vm_spec a = base_spec(), b = base_spec();
	b.channel_path = "/run/b/agent.sock";
	b.shared_dir = "/run/b/shared";
	b.rootfs_dir = "/bundles/b/rootfs";
	b.console_log = "/run/b/console.log";
	b.vmm_log = "/run/b/qemu.log";
	char *ka = key_of(&a), *kb = key_of(&b);
	assert_string_equal(ka, kb);
	assert_null(strstr(ka, "/run/a"));
	assert_non_null(strstr(ka, "cocoon.template=1"));
	free(ka);
	free(kb);
}

static void test_shape_changes_the_key(void **state)
{
	(void)state;
	static const char *const one[] = {"/x/ck1"};
	struct vm_spec a = base_spec();
	char *ka = key_of(&a);
	struct vm_spec variants[6];
	for (int i = 0; i < 6; i++)
		variants[i] = base_spec();
	variants[0].memory_mib = 256;
	variants[1].vcpus = 2;
	variants[2].rootfs_dir = NULL;
	variants[3].images_dirs = one;
	variants[3].n_images_dirs = 1;
	variants[4].cmdline_extra = "cocoon.criu=/other";
	variants[5].accel = "kvm";
	for (int i = 0; i < 6; i++) {
		char *kv = key_of(&variants[i]);
		if (strcmp(ka, kv) == 0)
			fail_msg("variant %d has the same key", i);
		free(kv);
	}
	free(ka);
}

static void test_another_image_changes_the_key(void **state)
{
	(void)state;
	struct vm_spec a = base_spec();
	char *before = key_of(&a);
	touch(initrd, 2000); /* a rebuilt agent */
	char *after = key_of(&a);
	assert_string_not_equal(before, after);
	touch(initrd, 1000);
	touch(kernel, 3000);
	char *k2 = key_of(&a);
	assert_string_not_equal(before, k2);
	assert_string_not_equal(after, k2);
	free(before);
	free(after);
	free(k2);
}

static void test_virtiofs_has_no_template(void **state)
{
	(void)state;
	struct vm_spec a = base_spec();
	a.shared_fs = "virtiofs";
	char *key = NULL;
	struct error *err = NULL;
	assert_true(template_key(&a, &key, &err) < 0);
	assert_non_null(strstr(err->msg, "9p"));
	error_free(&err);
}

/* rootfs_fs "virtiofs": the rootfs alone is a vhost-user-fs device, the
 * other shares stay 9p, the guest is told (its agent mounts the rootfs
 * as virtiofs) and its memory is a shared memfd, so no template either. */
static void test_virtiofs_rootfs_alone(void **state)
{
	(void)state;
	struct vm_spec a = base_spec();
	a.rootfs_fs = "virtiofs";
	struct error *err = NULL;
	char *line = vm_qemu_command_line(&a, &err);
	assert_non_null(line);
	assert_non_null(strstr(line, "vhost-user-fs-device,chardev=vfs-rootfs,tag=rootfs"));
	assert_non_null(strstr(line, "virtio-9p-device,fsdev=cocoon,mount_tag=cocoon"));
	assert_null(strstr(line, "mount_tag=rootfs"));
	assert_non_null(strstr(line, "cocoon.rootfs=virtiofs"));
	assert_null(strstr(line, "cocoon.fs=virtiofs"));
	assert_non_null(strstr(line, "memory-backend-memfd"));
	free(line);
	char *key = NULL;
	assert_true(template_key(&a, &key, &err) < 0);
	assert_non_null(strstr(err->msg, "9p"));
	error_free(&err);
	a.rootfs_fs = "nfs";
	assert_null(vm_qemu_command_line(&a, &err));
	assert_non_null(strstr(err->msg, "rootfs_fs \"nfs\""));
	error_free(&err);
	/* Without a rootfs (a pod's VM) the setting changes nothing. */
	a = base_spec();
	a.rootfs_fs = "virtiofs";
	a.rootfs_dir = NULL;
	line = vm_qemu_command_line(&a, &err);
	assert_non_null(line);
	assert_null(strstr(line, "vhost-user-fs-device"));
	assert_null(strstr(line, "cocoon.rootfs=virtiofs"));
	free(line);
}

/* A /proc/cpuinfo of two processors, the first of model MODEL with FLAGS,
 * at dir/NAME; accel_cpuinfo_path points at it. */
static void fake_cpuinfo(const char *name, int model, const char *flags)
{
	static char path[300];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (int cpu = 0; cpu < 2; cpu++)
		fprintf(f,
			"processor\t: %d\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n"
			"model\t\t: %d\nmodel name\t: Intel(R) Xeon(R) CPU model %d\n"
			"stepping\t: 7\nmicrocode\t: 0x%x\nflags\t\t: %s\n\n",
			cpu, model, model, cpu, cpu ? "fpu other" : flags);
	fclose(f);
	accel_cpuinfo_path = path;
}

/* Under KVM the guest's CPU is the host's (-cpu host): a template saved on
 * another CPU model, or one with other features, is another template.
 * Under TCG the CPU is QEMU's "max", the same on every host. */
static void test_host_cpu_is_in_the_key_under_kvm(void **state)
{
	(void)state;
	struct vm_spec kvm = base_spec(), tcg = base_spec();
	kvm.accel = "kvm";
	fake_cpuinfo("cpuinfo-a", 85, "fpu vme sse sse2 avx avx2 avx512f");
	char *ka = key_of(&kvm), *ta = key_of(&tcg);
	assert_non_null(strstr(ka, "\nhost-cpu=GenuineIntel family 6 model 85 stepping 7 "
				   "'Intel(R) Xeon(R) CPU model 85' flags 7 fnv1a "));
	assert_non_null(strstr(ka, "\nhost-kernel="));
	assert_null(strstr(ta, "host-cpu="));
	assert_null(strstr(ta, "host-kernel="));
	/* Another model; the same model without avx512f. */
	fake_cpuinfo("cpuinfo-b", 106, "fpu vme sse sse2 avx avx2 avx512f");
	char *kb = key_of(&kvm), *tb = key_of(&tcg);
	fake_cpuinfo("cpuinfo-c", 85, "fpu vme sse sse2 avx avx2");
	char *kc = key_of(&kvm);
	assert_string_not_equal(ka, kb);
	assert_string_not_equal(ka, kc);
	assert_non_null(strstr(kc, "model 85 stepping 7 'Intel(R) Xeon(R) CPU model 85' flags 6 "));
	assert_string_equal(ta, tb);
	/* Only the first processor counts (microcode is not a feature). */
	fake_cpuinfo("cpuinfo-a2", 85, "fpu vme sse sse2 avx avx2 avx512f");
	char *ka2 = key_of(&kvm);
	assert_string_equal(ka, ka2);
	/* A cpuinfo without flags: no key, so no template (a cold boot). */
	char path[300];
	snprintf(path, sizeof(path), "%s/cpuinfo-none", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("processor\t: 0\nvendor_id\t: GenuineIntel\n\n", f);
	fclose(f);
	accel_cpuinfo_path = path;
	char *none = NULL;
	struct error *err = NULL;
	assert_true(template_key(&kvm, &none, &err) < 0);
	assert_non_null(strstr(err->msg, "cpuinfo-none"));
	assert_non_null(strstr(err->msg, "flags"));
	error_free(&err);
	accel_cpuinfo_path = "/proc/cpuinfo";
	for (const char *n = "cpuinfo-a\0cpuinfo-b\0cpuinfo-c\0cpuinfo-a2\0cpuinfo-none\0"; *n;
	     n += strlen(n) + 1) {
		snprintf(path, sizeof(path), "%s/%s", dir, n);
		unlink(path);
	}
	free(ka);
	free(ta);
	free(kb);
	free(tb);
	free(kc);
	free(ka2);
}

/* NICs are in the template by their number: a VM with one and a VM with
 * two (or none) have other templates; VMs with the same number share one
 * whatever their taps and their engines' MACs, which the key holds as
 * network_placeholder_mac's, the MACs every VM of the template has. */
static void test_nic_count_is_the_key_not_the_macs(void **state)
{
	(void)state;
	static const int fds_a[] = {7, 8}, fds_b[] = {12, 13};
	static const char *const macs_a[] = {"52:54:00:aa:00:01", "52:54:00:aa:00:02"},
				 *const macs_b[] = {"0e:11:22:33:44:55", "0e:11:22:33:44:66"};
	struct vm_spec none = base_spec(), one_a = base_spec(), one_b = base_spec(),
		       two_a = base_spec(), two_b = base_spec();
	one_a.net_fds = two_a.net_fds = fds_a;
	one_a.net_macs = two_a.net_macs = macs_a;
	one_b.net_fds = two_b.net_fds = fds_b;
	one_b.net_macs = two_b.net_macs = macs_b;
	one_a.n_nets = one_b.n_nets = 1;
	two_a.n_nets = two_b.n_nets = 2;
	char *k0 = key_of(&none), *k1a = key_of(&one_a), *k1b = key_of(&one_b),
	     *k2a = key_of(&two_a), *k2b = key_of(&two_b);
	assert_string_equal(k1a, k1b);
	assert_string_equal(k2a, k2b);
	assert_string_not_equal(k0, k1a);
	assert_string_not_equal(k1a, k2a);
	assert_null(strstr(k0, "virtio-net-device"));
	/* The placeholders, in order, and none of the engines' MACs. */
	assert_string_equal(network_placeholder_mac(0), "02:63:63:00:00:01");
	assert_string_equal(network_placeholder_mac(1), "02:63:63:00:00:02");
	assert_null(network_placeholder_mac(NET_MAX_INTERFACES));
	const char *m0 = strstr(k2a, "mac=02:63:63:00:00:01"),
		   *m1 = strstr(k2a, "mac=02:63:63:00:00:02");
	assert_non_null(m0);
	assert_non_null(m1);
	assert_true(m0 < m1);
	assert_null(strstr(k1a, "mac=02:63:63:00:00:02"));
	assert_null(strstr(k2a, "52:54:00"));
	assert_null(strstr(k2b, "0e:11"));
	/* More NICs than a VM can carry: no template. */
	struct vm_spec many = base_spec();
	static const int fds5[] = {3, 4, 5, 6, 7};
	static const char *const macs5[] = {"02:00:00:00:00:01", "02:00:00:00:00:02",
					    "02:00:00:00:00:03", "02:00:00:00:00:04",
					    "02:00:00:00:00:05"};
	many.net_fds = fds5;
	many.net_macs = macs5;
	many.n_nets = 5;
	char *key = NULL;
	struct error *err = NULL;
	assert_true(template_key(&many, &key, &err) < 0);
	assert_non_null(strstr(err->msg, "5 network devices"));
	error_free(&err);
	free(k0);
	free(k1a);
	free(k1b);
	free(k2a);
	free(k2b);
}

/* A template's build gives its VM taps made as every VM's are (so the saved
 * virtio-net state loads over a container's taps), down, in a namespace
 * of their own; the builder stays in its own. Needs CAP_SYS_ADMIN (root). */
static void test_template_taps_are_down_in_a_namespace_of_their_own(void **state)
{
	(void)state;
	struct stat mine, after, theirs;
	int fds[2];
	struct error *err = NULL;
	assert_int_equal(stat("/proc/self/ns/net", &mine), 0);
	int r = network_scratch_taps(2, fds, &err);
	if (r == -EPERM) {
		print_message("skipped: a network namespace needs CAP_SYS_ADMIN (%s)\n", err->msg);
		error_free(&err);
		skip();
	}
	if (r < 0)
		fail_msg("network_scratch_taps: %s", err ? err->msg : "?");
	assert_int_equal(stat("/proc/self/ns/net", &after), 0);
	assert_int_equal(mine.st_ino, after.st_ino);
	int ns = ioctl(fds[0], TUNGETDEVNETNS);
	assert_true(ns >= 0);
	assert_int_equal(fstat(ns, &theirs), 0);
	assert_int_not_equal(theirs.st_ino, mine.st_ino);
	for (int i = 0; i < 2; i++) {
		struct ifreq ifr = {0};
		char name[IF_NAMESIZE];
		snprintf(name, sizeof(name), "cctap%d", i);
		assert_int_equal(ioctl(fds[i], TUNGETIFF, &ifr), 0);
		assert_string_equal(ifr.ifr_name, name);
		assert_int_equal(ifr.ifr_flags & (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR),
				 IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
		int other = ioctl(fds[i], TUNGETDEVNETNS);
		struct stat st;
		assert_int_equal(fstat(other, &st), 0);
		assert_int_equal(st.st_ino, theirs.st_ino);
		close(other);
	}
	/* Down, seen from inside their namespace. */
	int back = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	assert_int_equal(setns(ns, CLONE_NEWNET), 0);
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "cctap1");
	int got = sock >= 0 ? ioctl(sock, SIOCGIFFLAGS, &ifr) : -1;
	assert_int_equal(setns(back, CLONE_NEWNET), 0);
	assert_int_equal(got, 0);
	assert_false(ifr.ifr_flags & IFF_UP);
	close(sock);
	close(back);
	close(ns);
	close(fds[0]);
	close(fds[1]);
	/* No more than a VM can have. */
	int many[NET_MAX_INTERFACES + 1];
	assert_true(network_scratch_taps(NET_MAX_INTERFACES + 1, many, &err) < 0);
	assert_non_null(strstr(err->msg, "network devices"));
	error_free(&err);
}

/* Runs fn in a child process, its stderr captured into out (NUL-ended).
 * The child's wait status, or -1. */
static int in_child(int (*fn)(void), char *out, size_t size)
{
	int p[2];
	if (pipe(p) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(p[1], 2);
		close(p[0]);
		_exit(fn());
	}
	close(p[1]);
	size_t n = 0;
	ssize_t got;
	while (n + 1 < size && (got = read(p[0], out + n, size - 1 - n)) > 0)
		n += (size_t)got;
	out[n] = '\0';
	close(p[0]);
	int status;
	return waitpid(pid, &status, 0) == pid ? status : -1;
}

/* Child exit codes of the tests below (the function's own fatal exit is
 * NETWORK_SCRATCH_STUCK_EXIT, 1). */
enum { CHILD_OK = 0, CHILD_SETUP = 2, CHILD_FAILED = 3, CHILD_WRONG = 4, CHILD_SKIP = 5 };

/* No CAP_SYS_ADMIN: unshare(CLONE_NEWNET) is refused (EPERM), as in a shim
 * without capabilities. A VM without NICs must still get its template. */
static int no_nic_without_cap_sys_admin(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) < 0)
		return CHILD_SETUP;
	d[CAP_SYS_ADMIN / 32].effective &= ~(1u << (CAP_SYS_ADMIN % 32));
	if (syscall(SYS_capset, &h, d) < 0)
		return CHILD_SETUP;
	/* The denial is real: a template with a NIC is refused here. */
	int fds[1];
	struct error *err = NULL;
	if (network_scratch_taps(1, fds, &err) != -EPERM)
		return CHILD_WRONG;
	error_free(&err);
	if (network_scratch_taps(0, fds, &err) < 0) {
		fprintf(stderr, "network_scratch_taps(0): %s\n", err ? err->msg : "?");
		return CHILD_FAILED;
	}
	return CHILD_OK;
}

static void test_no_nic_makes_no_namespace(void **state)
{
	(void)state;
	char out[1024];
	int st = in_child(no_nic_without_cap_sys_admin, out, sizeof(out));
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == CHILD_SETUP) {
		print_message("skipped: cannot drop CAP_SYS_ADMIN here (capset)\n");
		skip();
	}
	if (WEXITSTATUS(st) != CHILD_OK)
		fail_msg("child exit %d: %s", WEXITSTATUS(st), out);
}

/* A user namespace of its own: the child can unshare a network namespace
 * (owned by its user namespace) but not setns back into the original one
 * (owned by the initial user namespace, where it has no capability). */
static int setns_back_refused(void)
{
	struct stat before;
	if (stat("/proc/thread-self/ns/net", &before) < 0 || unshare(CLONE_NEWUSER) < 0)
		return CHILD_SETUP;
	int fds[1];
	struct error *err = NULL;
	int r = network_scratch_taps(1, fds, &err);
	/* Not reached when the function does its job. */
	struct stat after;
	if (stat("/proc/thread-self/ns/net", &after) == 0 && after.st_ino != before.st_ino)
		fprintf(stderr, "left in another network namespace (returned %d: %s)\n", r,
			err ? err->msg : "no error");
	else
		fprintf(stderr, "returned %d: %s\n", r, err ? err->msg : "no error");
	return r == 0 ? CHILD_OK : CHILD_FAILED;
}

/* The process never goes on in the template's scratch namespace: a failed
 * setns back is fatal, and says so. */
static void test_a_failed_return_is_fatal(void **state)
{
	(void)state;
	char out[2048];
	int st = in_child(setns_back_refused, out, sizeof(out));
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == CHILD_SETUP) {
		print_message("skipped: no user namespace here (unshare CLONE_NEWUSER)\n");
		skip();
	}
	if (WEXITSTATUS(st) != NETWORK_SCRATCH_STUCK_EXIT)
		fail_msg("child exit %d, not the fatal exit: %s", WEXITSTATUS(st), out);
	assert_non_null(strstr(out, "cannot return to the caller's network namespace"));
}

struct thread_ns {
	ino_t own, after;
	int r;
};

static void *scratch_from_a_thread(void *arg)
{
	struct thread_ns *t = arg;
	struct stat st;
	int fds[1];
	struct error *err = NULL;
	t->r = -1;
	/* This thread alone moves to a namespace of its own. */
	if (unshare(CLONE_NEWNET) < 0 || stat("/proc/thread-self/ns/net", &st) < 0)
		return NULL;
	t->own = st.st_ino;
	t->r = network_scratch_taps(1, fds, &err);
	error_free(&err);
	if (t->r == 0)
		close(fds[0]);
	if (stat("/proc/thread-self/ns/net", &st) == 0)
		t->after = st.st_ino;
	return NULL;
}

static int scratch_in_a_thread(void)
{
	struct thread_ns t = {0};
	pthread_t th;
	if (pthread_create(&th, NULL, scratch_from_a_thread, &t) != 0 ||
	    pthread_join(th, NULL) != 0)
		return CHILD_SETUP;
	if (t.own == 0)
		return CHILD_SETUP;
	if (t.r < 0)
		return CHILD_FAILED;
	if (t.after != t.own) {
		fprintf(stderr, "thread's namespace %lu, after the taps %lu\n",
			(unsigned long)t.own, (unsigned long)t.after);
		return CHILD_WRONG;
	}
	return CHILD_OK;
}

/* The calling thread returns to its own namespace, not to the thread-group
 * leader's (/proc/self/ns/net is the leader's). */
static void test_a_thread_returns_to_its_own_namespace(void **state)
{
	(void)state;
	char out[1024];
	int st = in_child(scratch_in_a_thread, out, sizeof(out));
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == CHILD_SETUP) {
		print_message("skipped: a network namespace needs CAP_SYS_ADMIN\n");
		skip();
	}
	if (WEXITSTATUS(st) != CHILD_OK)
		fail_msg("child exit %d: %s", WEXITSTATUS(st), out);
}

static void test_directory_is_named_by_the_key(void **state)
{
	(void)state;
	char *d1 = NULL, *d2 = NULL, *d3 = NULL;
	assert_int_equal(template_dir_for("/t", "key one", &d1, NULL), 0);
	assert_int_equal(template_dir_for("/t", "key one", &d2, NULL), 0);
	assert_int_equal(template_dir_for("/t", "key two", &d3, NULL), 0);
	assert_string_equal(d1, d2);
	assert_string_not_equal(d1, d3);
	assert_int_equal(strncmp(d1, "/t/", 3), 0);
	free(d1);
	free(d2);
	free(d3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_per_vm_paths_share_a_template),
		cmocka_unit_test(test_shape_changes_the_key),
		cmocka_unit_test(test_another_image_changes_the_key),
		cmocka_unit_test(test_virtiofs_has_no_template),
		cmocka_unit_test(test_virtiofs_rootfs_alone),
		cmocka_unit_test(test_directory_is_named_by_the_key),
		cmocka_unit_test(test_host_cpu_is_in_the_key_under_kvm),
		cmocka_unit_test(test_nic_count_is_the_key_not_the_macs),
		cmocka_unit_test(test_template_taps_are_down_in_a_namespace_of_their_own),
		cmocka_unit_test(test_no_nic_makes_no_namespace),
		cmocka_unit_test(test_a_failed_return_is_fatal),
		cmocka_unit_test(test_a_thread_returns_to_its_own_namespace),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
