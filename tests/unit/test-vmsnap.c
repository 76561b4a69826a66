/* Whole-VM checkpoints (vmsnap.h): what the VMM must be able to do, the
 * refusal that names what is missing, the key a snapshot is bound to and
 * the vm.json a restore reads (untrusted: it comes with the images). */
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "paths.h"
#include "qmp.h"
#include "vmsnap-zstd.h"
#include "vmsnap.h"

#include <zstd.h>

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
	free(ka);
	free(kb);
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

/* ---- zstd of vm.state (vmsnap-zstd.h) ----------------------------------- */

static int make_file(const char *name)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	return fd;
}

static uint64_t allocated(int fd)
{
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

/* A mapped-ram-like state: mostly holes, data here and there, an odd end. */
#define SPARSE_SIZE ((64 << 20) + 123)
static int sparse_state(void)
{
	int fd = make_file("state");
	char buf[1 << 16];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 7 + i / 251);
	assert_int_equal(pwrite(fd, buf, 4096, 0), 4096);
	for (int i = 0; i < 16; i++)
		assert_int_equal(pwrite(fd, buf, sizeof(buf), (10 << 20) + i * (off_t)sizeof(buf)),
				 (ssize_t)sizeof(buf));
	assert_int_equal(pwrite(fd, "tail", 4, SPARSE_SIZE - 4), 4);
	return fd;
}

static int pack(int from, const char *name, uint64_t *raw)
{
	uint64_t zst = 0;
	struct error *err = NULL;
	int to = make_file(name);
	assert_int_equal(vmsnap_zstd_pack(from, to, 3, raw, &zst, &err), 0);
	assert_int_equal(lseek(to, 0, SEEK_END), (off_t)zst);
	assert_int_equal(lseek(to, 0, SEEK_SET), 0);
	return to;
}

static int unpack(int from, uint64_t raw, uint64_t max, struct error **err, int *out)
{
	*out = make_file("out");
	assert_int_equal(lseek(from, 0, SEEK_SET), 0);
	return vmsnap_zstd_unpack(from, *out, "vm.state.zst", raw, max, err);
}

static void test_zstd_round_trip_stays_sparse(void **state)
{
	struct error *err = NULL;
	uint64_t raw = 0;
	int in = sparse_state(), out;
	int z = pack(in, "z", &raw);
	assert_int_equal(raw, SPARSE_SIZE);
	/* 64 MiB of mostly zeros and a repeated pattern: a few KiB. */
	assert_true(lseek(z, 0, SEEK_END) < (1 << 20));
	assert_int_equal(unpack(z, raw, 1ULL << 30, &err, &out), 0);
	assert_null(err);
	assert_int_equal(lseek(out, 0, SEEK_END), SPARSE_SIZE);
	/* Same bytes everywhere, holes where the zeros were. */
	static char a[1 << 20], b[1 << 20];
	for (off_t at = 0; at < SPARSE_SIZE; at += sizeof(a)) {
		ssize_t n = pread(in, a, sizeof(a), at);
		assert_true(n > 0);
		assert_int_equal(pread(out, b, sizeof(b), at), n);
		assert_memory_equal(a, b, (size_t)n);
	}
	assert_true(allocated(out) <= allocated(in) + 8192);
	close(in);
	close(out);
	close(z);
}

static void test_zstd_bomb_and_lies_are_refused(void **state)
{
	struct error *err = NULL;
	uint64_t raw = 0;
	/* 256 MiB of zeros: a few hundred bytes of zstd. */
	int in = make_file("zeros"), out;
	assert_int_equal(ftruncate(in, 256 << 20), 0);
	int z = pack(in, "bomb", &raw);
	assert_true(lseek(z, 0, SEEK_END) < 64 * 1024);
	/* vm.json may claim the full size: over the limit, nothing written. */
	assert_int_not_equal(unpack(z, raw, 16 << 20, &err, &out), 0);
	assert_non_null(strstr(err->msg, "over the limit"));
	assert_int_equal(lseek(out, 0, SEEK_END), 0);
	error_free(&err);
	close(out);
	/* Or claim less: decoding stops there. */
	assert_int_not_equal(unpack(z, 1 << 20, 16 << 20, &err, &out), 0);
	assert_non_null(strstr(err->msg, "more than its raw_size"));
	assert_true(lseek(out, 0, SEEK_END) <= (1 << 20));
	error_free(&err);
	close(out);
	/* Or more than there is. */
	assert_int_not_equal(unpack(z, (256 << 20) + 1, 1ULL << 30, &err, &out), 0);
	assert_non_null(strstr(err->msg, "not its raw_size"));
	error_free(&err);
	close(out);
	close(z);
	close(in);
}

static void test_zstd_damaged_streams_are_refused(void **state)
{
	struct error *err = NULL;
	uint64_t raw = 0;
	int in = sparse_state(), out;
	int z = pack(in, "z", &raw);
	off_t len = lseek(z, 0, SEEK_END);
	static char buf[1 << 20];
	assert_true(len < (off_t)sizeof(buf));
	assert_int_equal(pread(z, buf, (size_t)len, 0), len);
	/* Cut short. */
	int cut = make_file("cut");
	assert_int_equal(write(cut, buf, (size_t)len / 2), len / 2);
	assert_int_not_equal(unpack(cut, raw, 1ULL << 30, &err, &out), 0);
	assert_non_null(strstr(err->msg, "vm.state.zst"));
	error_free(&err);
	close(out);
	close(cut);
	/* A byte changed in the middle: the checksum or the decoder says so. */
	int bent = make_file("bent");
	buf[len / 2] ^= 0x55;
	assert_int_equal(write(bent, buf, (size_t)len), len);
	assert_int_not_equal(unpack(bent, raw, 1ULL << 30, &err, &out), 0);
	assert_non_null(strstr(err->msg, "not a valid zstd stream"));
	error_free(&err);
	close(out);
	close(bent);
	/* Not zstd at all, and empty. */
	int text = make_file("text");
	assert_int_equal(write(text, "QEVM\n", 5), 5);
	assert_int_not_equal(unpack(text, raw, 1ULL << 30, &err, &out), 0);
	assert_non_null(strstr(err->msg, "not a valid zstd stream"));
	error_free(&err);
	close(out);
	close(text);
	int empty = make_file("empty");
	assert_int_not_equal(unpack(empty, raw, 1ULL << 30, &err, &out), 0);
	assert_non_null(strstr(err->msg, "ends short"));
	error_free(&err);
	close(out);
	close(empty);
	close(z);
	close(in);
}

static void test_zstd_large_window_is_refused(void **state)
{
	/* A frame whose header asks for a 128 MiB window (size unknown when it
	 * was written): the decoder refuses it rather than allocate it. */
	ZSTD_CCtx *c = ZSTD_createCCtx();
	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, 27)));
	static char src[1 << 20], dst[2 << 20];
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (char)(i % 253);
	ZSTD_inBuffer ib = {src, sizeof(src), 0};
	ZSTD_outBuffer ob = {dst, sizeof(dst), 0};
	assert_false(ZSTD_isError(ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_continue)));
	ZSTD_inBuffer none = {NULL, 0, 0};
	assert_int_equal(ZSTD_compressStream2(c, &ob, &none, ZSTD_e_end), 0);
	ZSTD_freeCCtx(c);
	int z = make_file("wide"), out;
	assert_int_equal(write(z, dst, ob.pos), (ssize_t)ob.pos);
	struct error *err = NULL;
	assert_int_not_equal(unpack(z, sizeof(src), 1ULL << 30, &err, &out), 0);
	assert_non_null(strstr(err->msg, "window"));
	error_free(&err);
	close(out);
	close(z);
}

static void test_zstd_publish_writes_raw_size(void **state)
{
	char work[300], dest[300];
	struct error *err = NULL;
	snprintf(work, sizeof(work), "%s/state", dir);
	snprintf(dest, sizeof(dest), "%s/published", dir);
	close(sparse_state());
	struct vmsnap_meta m = {
		.key = (char *)"k\n", .zstd = true, .zstd_level = 1, .state_bytes = 5};
	snprintf(m.container_id, sizeof(m.container_id), "c1");
	assert_int_equal(vmsnap_publish(work, dest, &m, 1, 2, &err), 0);
	assert_int_equal(access(work, F_OK), -1);
	char path[400];
	snprintf(path, sizeof(path), "%s/" VMSNAP_STATE_ZST, dest);
	assert_int_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/" VMSNAP_STATE, dest);
	assert_int_equal(access(path, F_OK), -1);
	struct vmsnap_meta r;
	bool found;
	assert_int_equal(vmsnap_meta_read(dest, &r, &found, &err), 0);
	assert_true(found && r.zstd);
	assert_int_equal(r.raw_size, SPARSE_SIZE);
	vmsnap_meta_free(&r);
	remove_tree(dest, NULL);
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
		cmocka_unit_test(test_pods_are_refused),
		cmocka_unit_test(test_meta_is_checked),
		cmocka_unit_test(test_zstd_round_trip_stays_sparse),
		cmocka_unit_test(test_zstd_bomb_and_lies_are_refused),
		cmocka_unit_test(test_zstd_damaged_streams_are_refused),
		cmocka_unit_test(test_zstd_large_window_is_refused),
		cmocka_unit_test(test_zstd_publish_writes_raw_size),
		cmocka_unit_test(test_qmp_events_are_not_replies),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	remove_tree(dir, NULL);
	return r;
}
