/* The files of a whole-VM checkpoint (vmsnap.h, vmsnap-zstd.h): vm.state
 * compressed and decompressed (the decoder bounded: the directory is
 * untrusted), its size and checksum recorded at publish and checked at
 * restore, and checkpoint_max_bytes applied before anything is published. */
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
#include "vmsnap-zstd.h"
#include "vmsnap.h"

#include <zstd.h>

static char dir[] = "/tmp/cocoon-test-vmsnap-state.XXXXXX";

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
	struct vmsnap_limits lim = {.max_bytes = 1ULL << 30, .verify_ms = 60000};
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
	struct vmsnap_limits lim = {.max_bytes = 1ULL << 30, .verify_ms = 60000};
	snprintf(work, sizeof(work), "%s/state", dir);
	snprintf(dest, sizeof(dest), "%s/published-raw", dir);
	close(sparse_state());
	struct vmsnap_meta m = {.key = (char *)"k\n", .state_bytes = 5};
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
	struct vmsnap_limits lim = {.max_bytes = allocated(fd) - 1, .verify_ms = 60000};
	close(fd);
	struct vmsnap_meta m = {.key = (char *)"k\n"};
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
	assert_non_null(strstr(err->msg, "decompressed"));
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
		cmocka_unit_test(test_zstd_round_trip_stays_sparse),
		cmocka_unit_test(test_zstd_bomb_and_lies_are_refused),
		cmocka_unit_test(test_zstd_damaged_streams_are_refused),
		cmocka_unit_test(test_zstd_large_window_is_refused),
		cmocka_unit_test(test_zstd_publish_writes_raw_size),
		cmocka_unit_test(test_state_hash_sees_data_not_holes),
		cmocka_unit_test(test_publish_records_size_and_checksum_and_restore_checks_them),
		cmocka_unit_test(test_publish_refuses_a_state_over_max_bytes),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	remove_tree(dir, NULL);
	return r;
}
