/* The files of a whole-VM checkpoint (vmsnap.h): CRIU's inventory.img for
 * the engines, vm.state's size and checksum recorded at publish and checked
 * at restore, vm.state.zst's raw_size, and the restore's bounds applied
 * before anything is published. The decoder is test-vmsnap-zstd.c's. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "criu-inventory.pb-c.h"
#include "paths.h"
#include "vmsnap-fixture.h"
#include "vmsnap.h"

/* ---- CRIU's inventory.img, for the engines (vmsnap_inventory_*) ----------- */

/* dest/inventory.img is CRIU's framing (the inventory magic, one entry:
 * u32 size, the message) around an inventory of image format 1.1 that
 * CRIU's check_img_inventory() takes (fdinfo_per_id set). */
static void assert_inventory(const char *dest)
{
	char path[400];
	uint8_t buf[256];
	snprintf(path, sizeof(path), "%s/" VMSNAP_INVENTORY, dest);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	assert_true(n > 8 && n < (ssize_t)sizeof(buf));
	static const uint8_t magic[] = {0x16, 0x31, 0x31, 0x58}; /* 0x58313116, LE */
	assert_memory_equal(buf, magic, 4);
	uint32_t size = buf[4] | buf[5] << 8 | buf[6] << 16 | (uint32_t)buf[7] << 24;
	assert_int_equal(size, n - 8);
	CocoonCriu__InventoryEntry *e = cocoon_criu__inventory_entry__unpack(NULL, size, buf + 8);
	assert_non_null(e);
	assert_int_equal(e->img_version, 2);
	assert_true(e->has_fdinfo_per_id && e->fdinfo_per_id);
	assert_true(e->has_ns_per_id && e->ns_per_id);
	assert_true(e->has_lsmtype && e->lsmtype == COCOON_CRIU__LSM__NO_LSM);
	cocoon_criu__inventory_entry__free_unpacked(e, NULL);
}

/* CRIU's own reader (crit, Debian's criu package: what checkpointctl and
 * podman's tooling read images with) decodes it as an inventory. */
static void test_inventory_is_read_by_crit(void **state)
{
	if (access("/usr/bin/crit", X_OK) != 0)
		skip(); /* cmocka prints the test as skipped: crit is not installed */
	char sub[300], cmd[700], out[1024] = "";
	struct error *err = NULL;
	snprintf(sub, sizeof(sub), "%s/crit", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	int dfd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	assert_int_equal(vmsnap_inventory_write(dfd, &err), 0);
	/* Written once: O_EXCL, never over what is there. */
	assert_int_not_equal(vmsnap_inventory_write(dfd, &err), 0);
	assert_non_null(strstr(err->msg, VMSNAP_INVENTORY));
	error_free(&err);
	close(dfd);
	assert_inventory(sub);
	snprintf(cmd, sizeof(cmd), "/usr/bin/crit decode -i %s/" VMSNAP_INVENTORY " 2>&1", sub);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = 0;
	assert_int_equal(pclose(p), 0);
	assert_non_null(strstr(out, "\"magic\": \"INVENTORY\""));
	assert_non_null(strstr(out, "\"img_version\": 2"));
	assert_non_null(strstr(out, "\"fdinfo_per_id\": true"));
}

/* ---- vm.state.zst's raw_size at publish ------------------------------------ */

static void test_zstd_publish_writes_raw_size(void **state)
{
	char work[300], dest[300];
	struct error *err = NULL;
	snprintf(work, sizeof(work), "%s/state", dir);
	snprintf(dest, sizeof(dest), "%s/published", dir);
	close(sparse_state());
	struct vmsnap_meta m = {
		.key = key_of(128), .zstd = true, .zstd_level = 1, .state_bytes = 5};
	struct vmsnap_limits lim = {
		.max_bytes = 1ULL << 30, .verify_ms = 60000, .max_memory_mib = 4096};
	snprintf(m.container_id, sizeof(m.container_id), "c1");
	assert_int_equal(vmsnap_publish(work, dest, &m, &lim, 1, 2, &err), 0);
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
	assert_inventory(dest);
	vmsnap_meta_free(&r);
	remove_tree(dest, NULL);
}

/* ---- vm.state's size and checksum (vmsnap_state_hash) -------------------- */

static uint64_t state_hash(int fd)
{
	struct error *err = NULL;
	uint64_t size = 0, h = 0;
	assert_int_equal(vmsnap_state_hash(fd, "vm.state", 60000, &size, &h, &err), 0);
	assert_null(err);
	assert_int_equal(size, (uint64_t)lseek(fd, 0, SEEK_END));
	return h;
}

static void xor_at(int fd, off_t at)
{
	char c;
	assert_int_equal(pread(fd, &c, 1, at), 1);
	c ^= 0x40;
	assert_int_equal(pwrite(fd, &c, 1, at), 1);
}

static void test_state_hash_sees_data_not_holes(void **state)
{
	int sparse = sparse_state();
	uint64_t h = state_hash(sparse);
	/* The same bytes with every zero written out (a copy that filled the
	 * holes) hash the same. */
	int dense = make_file("dense");
	static char buf[1 << 20];
	for (off_t at = 0; at < SPARSE_SIZE; at += sizeof(buf)) {
		ssize_t n = pread(sparse, buf, sizeof(buf), at);
		assert_true(n > 0);
		assert_int_equal(pwrite(dense, buf, (size_t)n, at), n);
	}
	assert_true(allocated(dense) > allocated(sparse) + (32 << 20));
	assert_true(state_hash(dense) == h);
	/* One byte changed anywhere, in data or in a hole, is seen. */
	xor_at(sparse, (10 << 20) + 12345);
	assert_true(state_hash(sparse) != h);
	xor_at(sparse, (10 << 20) + 12345);
	assert_true(state_hash(sparse) == h);
	xor_at(sparse, 40 << 20);
	assert_true(state_hash(sparse) != h);
	xor_at(sparse, 40 << 20);
	xor_at(sparse, SPARSE_SIZE - 1);
	assert_true(state_hash(sparse) != h);
	xor_at(sparse, SPARSE_SIZE - 1);
	/* Zeros added at the end: another size, another hash. */
	assert_int_equal(ftruncate(dense, SPARSE_SIZE + 4096), 0);
	assert_true(state_hash(dense) != h);
	close(sparse);
	close(dense);
}

static int published_state(const char *dest)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/" VMSNAP_STATE, dest);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static void test_publish_records_size_and_checksum_and_restore_checks_them(void **state)
{
	char work[300], dest[300];
	struct error *err = NULL;
	struct vmsnap_limits lim = {
		.max_bytes = 1ULL << 30, .verify_ms = 60000, .max_memory_mib = 4096};
	snprintf(work, sizeof(work), "%s/state", dir);
	snprintf(dest, sizeof(dest), "%s/published-raw", dir);
	close(sparse_state());
	struct vmsnap_meta m = {.key = key_of(128), .state_bytes = 5};
	snprintf(m.container_id, sizeof(m.container_id), "c1");
	assert_int_equal(vmsnap_publish(work, dest, &m, &lim, 1, 2, &err), 0);
	struct vmsnap_meta r;
	bool found;
	assert_int_equal(vmsnap_meta_read(dest, &r, &found, &err), 0);
	assert_true(found && !r.zstd);
	assert_int_equal(r.state_size, SPARSE_SIZE);
	assert_int_equal(strlen(r.xxh3), 16);
	assert_inventory(dest);
	int fd = published_state(dest);
	assert_int_equal(vmsnap_state_verify(fd, "vm.state", &r, &lim, &err), 0);
	/* A byte of guest memory changed. */
	xor_at(fd, (10 << 20) + 777);
	assert_int_not_equal(vmsnap_state_verify(fd, "vm.state", &r, &lim, &err), 0);
	assert_non_null(strstr(err->msg, "checksum"));
	error_free(&err);
	xor_at(fd, (10 << 20) + 777);
	/* Cut short, or grown. */
	assert_int_equal(ftruncate(fd, SPARSE_SIZE - 4), 0);
	assert_int_not_equal(vmsnap_state_verify(fd, "vm.state", &r, &lim, &err), 0);
	assert_non_null(strstr(err->msg, "vm.json records"));
	error_free(&err);
	assert_int_equal(ftruncate(fd, SPARSE_SIZE), 0);
	assert_int_equal(pwrite(fd, "tail", 4, SPARSE_SIZE - 4), 4);
	assert_int_equal(vmsnap_state_verify(fd, "vm.state", &r, &lim, &err), 0);
	/* No checksum recorded (a vm.json edited, or older): refused. */
	r.xxh3[0] = 0;
	assert_int_not_equal(vmsnap_state_verify(fd, "vm.state", &r, &lim, &err), 0);
	assert_non_null(strstr(err->msg, "no size and checksum"));
	error_free(&err);
	vmsnap_meta_free(&r);
	close(fd);
	remove_tree(dest, NULL);
}

static void test_publish_refuses_a_state_over_max_bytes(void **state)
{
	char work[300], dest[300];
	struct error *err = NULL;
	snprintf(work, sizeof(work), "%s/state", dir);
	snprintf(dest, sizeof(dest), "%s/too-big", dir);
	int fd = sparse_state();
	/* vm.state: what it takes on disk, the bound a restore applies. */
	struct vmsnap_limits lim = {
		.max_bytes = allocated(fd) - 1, .verify_ms = 60000, .max_memory_mib = 4096};
	close(fd);
	struct vmsnap_meta m = {.key = key_of(128)};
	snprintf(m.container_id, sizeof(m.container_id), "c1");
	assert_int_not_equal(vmsnap_publish(work, dest, &m, &lim, 1, 2, &err), 0);
	assert_non_null(strstr(err->msg, "checkpoint_max_bytes"));
	error_free(&err);
	assert_int_equal(access(dest, F_OK), -1);
	assert_int_equal(access(work, F_OK), -1);
	/* vm.state.zst: the size it decompresses to. */
	close(sparse_state());
	m.zstd = true;
	m.zstd_level = 1;
	lim.max_bytes = SPARSE_SIZE - 1;
	assert_int_not_equal(vmsnap_publish(work, dest, &m, &lim, 1, 2, &err), 0);
	assert_non_null(strstr(err->msg, "over limits.checkpoint_max_bytes"));
	error_free(&err);
	assert_int_equal(access(dest, F_OK), -1);
	assert_int_equal(access(work, F_OK), -1);
	/* Or more than the VM's memory and device state: 200 MiB of state
	 * for a VM of 64 MiB. */
	fd = make_file("state");
	assert_int_equal(ftruncate(fd, 200 << 20), 0);
	close(fd);
	lim.max_bytes = 1ULL << 36;
	m.key = key_of(64);
	assert_int_not_equal(vmsnap_publish(work, dest, &m, &lim, 1, 2, &err), 0);
	assert_non_null(strstr(err->msg, "the VM's 64 MiB of memory"));
	error_free(&err);
	assert_int_equal(access(dest, F_OK), -1);
	assert_int_equal(access(work, F_OK), -1);
	/* The same as vm.state: a restore refuses it too (QEMU would parse it). */
	fd = make_file("state");
	assert_int_equal(ftruncate(fd, 200 << 20), 0);
	close(fd);
	m.zstd = false;
	assert_int_not_equal(vmsnap_publish(work, dest, &m, &lim, 1, 2, &err), 0);
	assert_non_null(strstr(err->msg, "the VM's 64 MiB of memory"));
	error_free(&err);
	assert_int_equal(access(dest, F_OK), -1);
	assert_int_equal(access(work, F_OK), -1);
	/* No staging directory is left beside dest. */
	DIR *d = opendir(dir);
	struct dirent *de;
	while ((de = readdir(d)))
		assert_null(strstr(de->d_name, "too-big."));
	closedir(d);
}

int main(void)
{
	assert_non_null(mkdtemp(dir));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inventory_is_read_by_crit),
		cmocka_unit_test(test_zstd_publish_writes_raw_size),
		cmocka_unit_test(test_state_hash_sees_data_not_holes),
		cmocka_unit_test(test_publish_records_size_and_checksum_and_restore_checks_them),
		cmocka_unit_test(test_publish_refuses_a_state_over_max_bytes),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	remove_tree(dir, NULL);
	return r;
}
