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

/* ---- publish (vmsnap_publish) ---------------------------------------------- */

/* Limits a sparse_state() fits in. */
static const struct vmsnap_limits roomy = {
	.max_bytes = 1ULL << 30, .verify_ms = 60000, .max_memory_mib = 4096};

/* Where a save is published (dir/name) and its staging directory beside
 * it (vmsnap_stage), once staged. */
struct publish_at {
	char work[300], dest[300];
};

static struct publish_at publish_at(const char *name)
{
	struct publish_at at = {.work = ""};
	snprintf(at.dest, sizeof(at.dest), "%s/%s", dir, name);
	return at;
}

/* What QEMU does with vmsnap_stage's file: dir/state (sparse_state,
 * hole_state) becomes the staged vm.state. The staging directory is
 * beside dest, named after it, and holds an empty, write-only vm.state. */
static void stage(struct publish_at *at)
{
	struct error *err = NULL;
	char *staging = NULL, from[300], to[400];
	int fd = -1;
	assert_int_equal(vmsnap_stage(at->dest, &staging, &fd, &err), 0);
	assert_true(strncmp(staging, at->dest, strlen(at->dest)) == 0);
	assert_non_null(strstr(staging + strlen(at->dest), ".vmsnap-"));
	assert_int_equal(fcntl(fd, F_GETFL) & O_ACCMODE, O_WRONLY);
	assert_int_equal(lseek(fd, 0, SEEK_END), 0);
	close(fd);
	snprintf(at->work, sizeof(at->work), "%s", staging);
	free(staging);
	snprintf(from, sizeof(from), "%s/state", dir);
	snprintf(to, sizeof(to), "%s/" VMSNAP_STATE, at->work);
	assert_int_equal(rename(from, to), 0);
}

/* sparse_state() published into dir/name, zstd or not, as the save of
 * container c1, a 128 MiB VM; the work file is gone, and the vm.json and
 * inventory.img written are read back (vm.json into *r). */
static struct publish_at publish_sparse(const char *name, bool zstd, struct vmsnap_meta *r)
{
	struct publish_at at = publish_at(name);
	struct error *err = NULL;
	close(sparse_state());
	struct vmsnap_meta m = {
		.key = key_of(128), .zstd = zstd, .zstd_level = zstd ? 1 : 0, .state_bytes = 5};
	snprintf(m.container_id, sizeof(m.container_id), "c1");
	stage(&at);
	assert_int_equal(vmsnap_publish(at.work, at.dest, &m, &roomy, 1, 2, &err), 0);
	assert_null(err);
	assert_int_equal(access(at.work, F_OK), -1);
	bool found;
	assert_int_equal(vmsnap_meta_read(at.dest, r, &found, &err), 0);
	assert_true(found && r->zstd == zstd);
	assert_inventory(at.dest);
	return at;
}

/* vmsnap_publish refuses at's work file with a message that names needle,
 * and leaves neither it nor at's dest. */
static void publish_refused(struct publish_at *at, struct vmsnap_meta *m,
			    const struct vmsnap_limits *lim, const char *needle)
{
	struct error *err = NULL;
	stage(at);
	assert_int_not_equal(vmsnap_publish(at->work, at->dest, m, lim, 1, 2, &err), 0);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, needle));
	error_free(&err);
	assert_int_equal(access(at->dest, F_OK), -1);
	assert_int_equal(access(at->work, F_OK), -1);
}

/* dir/state: mib MiB of holes. */
static void hole_state(int mib)
{
	int fd = make_file("state");
	assert_int_equal(ftruncate(fd, (off_t)mib << 20), 0);
	close(fd);
}

/* ---- vm.state.zst's raw_size at publish ------------------------------------ */

static void test_zstd_publish_writes_raw_size(void **state)
{
	struct vmsnap_meta r;
	struct publish_at at = publish_sparse("published", true, &r);
	char path[400];
	snprintf(path, sizeof(path), "%s/" VMSNAP_STATE_ZST, at.dest);
	assert_int_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/" VMSNAP_STATE, at.dest);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(r.raw_size, SPARSE_SIZE);
	vmsnap_meta_free(&r);
	assert_int_equal(remove_tree(at.dest, NULL), 0);
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

/* vmsnap_state_verify refuses fd with a message that names needle. */
static void verify_refused(int fd, const struct vmsnap_meta *r, const struct vmsnap_limits *lim,
			   const char *needle)
{
	struct error *err = NULL;
	assert_int_not_equal(vmsnap_state_verify(fd, "vm.state", r, lim, &err), 0);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, needle));
	error_free(&err);
}

static void test_publish_records_size_and_checksum_and_restore_checks_them(void **state)
{
	struct error *err = NULL;
	const struct vmsnap_limits *lim = &roomy;
	struct vmsnap_meta r;
	struct publish_at at = publish_sparse("published-raw", false, &r);
	assert_int_equal(r.state_size, SPARSE_SIZE);
	assert_int_equal(strlen(r.xxh3), 16);
	int fd = published_state(at.dest);
	assert_int_equal(vmsnap_state_verify(fd, "vm.state", &r, lim, &err), 0);
	/* A byte of guest memory changed. */
	xor_at(fd, (10 << 20) + 777);
	verify_refused(fd, &r, lim, "checksum");
	xor_at(fd, (10 << 20) + 777);
	/* Cut short, or grown. */
	assert_int_equal(ftruncate(fd, SPARSE_SIZE - 4), 0);
	verify_refused(fd, &r, lim, "vm.json records");
	assert_int_equal(ftruncate(fd, SPARSE_SIZE), 0);
	assert_int_equal(pwrite(fd, "tail", 4, SPARSE_SIZE - 4), 4);
	assert_int_equal(vmsnap_state_verify(fd, "vm.state", &r, lim, &err), 0);
	/* No checksum recorded (a vm.json edited, or older): refused. */
	r.xxh3[0] = 0;
	verify_refused(fd, &r, lim, "no size and checksum");
	vmsnap_meta_free(&r);
	close(fd);
	assert_int_equal(remove_tree(at.dest, NULL), 0);
}

static void test_publish_refuses_a_state_over_max_bytes(void **state)
{
	struct publish_at at = publish_at("too-big");
	int fd = sparse_state();
	/* vm.state: what it takes on disk, the bound a restore applies. */
	struct vmsnap_limits lim = {
		.max_bytes = allocated(fd) - 1, .verify_ms = 60000, .max_memory_mib = 4096};
	close(fd);
	struct vmsnap_meta m = {.key = key_of(128)};
	snprintf(m.container_id, sizeof(m.container_id), "c1");
	publish_refused(&at, &m, &lim, "checkpoint_max_bytes");
	/* vm.state.zst: the size it decompresses to. */
	close(sparse_state());
	m.zstd = true;
	m.zstd_level = 1;
	lim.max_bytes = SPARSE_SIZE - 1;
	publish_refused(&at, &m, &lim, "over limits.checkpoint_max_bytes");
	/* Or more than the VM's memory and device state: 200 MiB of state
	 * for a VM of 64 MiB. */
	hole_state(200);
	lim.max_bytes = 1ULL << 36;
	m.key = key_of(64);
	publish_refused(&at, &m, &lim, "the VM's 64 MiB of memory");
	/* The same as vm.state: a restore refuses it too (QEMU would parse it). */
	hole_state(200);
	m.zstd = false;
	publish_refused(&at, &m, &lim, "the VM's 64 MiB of memory");
	/* No staging directory is left beside dest. */
	DIR *d = opendir(dir);
	struct dirent *de;
	while ((de = readdir(d)))
		assert_null(strstr(de->d_name, "too-big."));
	closedir(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inventory_is_read_by_crit),
		cmocka_unit_test(test_zstd_publish_writes_raw_size),
		cmocka_unit_test(test_state_hash_sees_data_not_holes),
		cmocka_unit_test(test_publish_records_size_and_checksum_and_restore_checks_them),
		cmocka_unit_test(test_publish_refuses_a_state_over_max_bytes),
	};
	return cmocka_run_group_tests(tests, fixture_dir_make, fixture_dir_remove);
}
