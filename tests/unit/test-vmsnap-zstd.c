/* vm.state.zst as a restore decompresses it (vmsnap-zstd.h): the
 * directory is untrusted, so the decoder is bounded in memory (window), in
 * output (the VM's memory, vmsnap_state_bound; raw_size, before every
 * write), in time, and checked for length, stated size and checksum. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdio.h"
#include "paths.h"
#include "vmsnap-fixture.h"
#include "vmsnap-zstd.h"
#include "vmsnap.h"

#include <zstd.h>

static int unpack_within(int from, uint64_t raw, uint64_t max, uint64_t max_ms, struct error **err,
			 int *out)
{
	struct vmsnap_zstd_bounds b = {.max_bytes = max, .max_what = "THE BOUND", .max_ms = max_ms};
	*out = make_file("out");
	assert_int_equal(lseek(from, 0, SEEK_SET), 0);
	return vmsnap_zstd_unpack(from, *out, "vm.state.zst", raw, &b, err);
}

static int unpack(int from, uint64_t raw, uint64_t max, struct error **err, int *out)
{
	return unpack_within(from, raw, max, 60000, err, out);
}

/* unpack refuses from, with a message that names needle; returns the bytes
 * it wrote before it stopped. */
static off_t refused(int from, uint64_t raw, uint64_t max, const char *needle)
{
	struct error *err = NULL;
	int out;
	assert_int_not_equal(unpack(from, raw, max, &err, &out), 0);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, needle));
	error_free(&err);
	off_t written = lseek(out, 0, SEEK_END);
	assert_true(written >= 0);
	close(out);
	return written;
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
	uint64_t raw = 0;
	/* 256 MiB of zeros: a few hundred bytes of zstd. */
	int in = make_file("zeros");
	assert_int_equal(ftruncate(in, 256 << 20), 0);
	int z = pack(in, "bomb", &raw);
	assert_true(lseek(z, 0, SEEK_END) < 64 * 1024);
	/* vm.json may claim the full size: over the limit, nothing written. */
	assert_int_equal(refused(z, raw, 16 << 20, "over THE BOUND"), 0);
	/* Or claim less: the frame's header says otherwise, and nothing is
	 * decoded. */
	assert_int_equal(
		refused(z, 1 << 20, 16 << 20, "its zstd frame says it holds 268435456 bytes"), 0);
	/* Or more than there is. */
	refused(z, (256 << 20) + 1, 1ULL << 30, "its zstd frame says it holds 268435456 bytes");
	close(z);
	close(in);
}

static void test_zstd_damaged_streams_are_refused(void **state)
{
	uint64_t raw = 0;
	int in = sparse_state();
	int z = pack(in, "z", &raw);
	off_t len = lseek(z, 0, SEEK_END);
	static char buf[1 << 20];
	assert_true(len < (off_t)sizeof(buf));
	assert_int_equal(pread(z, buf, (size_t)len, 0), len);
	/* Cut short. */
	int cut = make_file("cut");
	assert_int_equal(write(cut, buf, (size_t)len / 2), len / 2);
	refused(cut, raw, 1ULL << 30, "vm.state.zst");
	close(cut);
	/* A byte changed in the middle: the checksum or the decoder says so. */
	int bent = make_file("bent");
	buf[len / 2] ^= 0x55;
	assert_int_equal(write(bent, buf, (size_t)len), len);
	refused(bent, raw, 1ULL << 30, "not a valid zstd stream");
	close(bent);
	/* Not zstd at all, and empty. */
	int text = make_file("text");
	assert_int_equal(write(text, "QEVM\n", 5), 5);
	refused(text, raw, 1ULL << 30, "not a valid zstd stream");
	close(text);
	int empty = make_file("empty");
	refused(empty, raw, 1ULL << 30, "ends short");
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
	int z = make_file("wide");
	assert_int_equal(write(z, dst, ob.pos), (ssize_t)ob.pos);
	refused(z, sizeof(src), 1ULL << 30, "window");
	close(z);
}

/* A hand-made frame as a hostile checkpoint would carry it: RLE blocks of
 * 128 KiB of byte c each, 4 bytes a block, so a few KiB say gigabytes. No
 * single segment (a 1 MiB window), no checksum; the content size in the
 * header when said is not 0. */
static int rle_bomb(const char *name, uint64_t bytes, uint64_t said, unsigned char c)
{
	int fd = make_file(name);
	unsigned char head[14] = {0x28, 0xb5, 0x2f, 0xfd, said ? 0xc0 : 0x00, 0x50};
	size_t hl = 6;
	for (int i = 0; said && i < 8; i++)
		head[hl++] = (unsigned char)(said >> (8 * i));
	assert_int_equal(write(fd, head, hl), (ssize_t)hl);
	static unsigned char blocks[4 * 4096];
	size_t n = 0;
	for (uint64_t left = bytes; left;) {
		uint32_t sz = left < (128 << 10) ? (uint32_t)left : (128 << 10);
		left -= sz;
		uint32_t h = (left ? 0 : 1) | (1 << 1) | (sz << 3);
		blocks[n++] = (unsigned char)h;
		blocks[n++] = (unsigned char)(h >> 8);
		blocks[n++] = (unsigned char)(h >> 16);
		blocks[n++] = c;
		if (n == sizeof(blocks) || !left) {
			assert_int_equal(write(fd, blocks, n), (ssize_t)n);
			n = 0;
		}
	}
	return fd;
}

/* The bound of a decompressed state is the VM's memory (vm.json's key, at
 * most [vm] max_memory_mib) and its device state, not checkpoint_max_bytes
 * (64 GiB by default): a hostile checkpoint's bomb stops there, before any
 * output when it says its size, at that size when it does not. */
static void test_zstd_bound_is_the_vms_memory(void **state)
{
	struct vmsnap_limits lim = {
		.max_bytes = 64ULL << 30, .verify_ms = 60000, .max_memory_mib = 4096};
	struct error *err = NULL;
	char what[256];
	uint64_t max = 0;
	assert_int_equal(vmsnap_state_bound(key_of(128), &lim, &max, what, sizeof(what), &err), 0);
	assert_int_equal(max, (128ULL + 1 + VMSNAP_STATE_OVERHEAD_MIB) << 20);
	assert_non_null(strstr(what, "the VM's 128 MiB of memory"));
	assert_non_null(strstr(what, "[vm] max_memory_mib"));
	/* A key that claims more memory than this host gives any VM. */
	assert_int_equal(vmsnap_state_bound(key_of(8192), &lim, &max, what, sizeof(what), &err),
			 -EFBIG);
	assert_non_null(
		strstr(err->msg, "8192 MiB of memory, more than [vm] max_memory_mib (4096)"));
	error_free(&err);
	/* checkpoint_max_bytes below it wins. */
	lim.max_bytes = 100 << 20;
	assert_int_equal(vmsnap_state_bound(key_of(128), &lim, &max, what, sizeof(what), &err), 0);
	assert_int_equal(max, 100 << 20);
	assert_non_null(strstr(what, "limits.checkpoint_max_bytes"));
	assert_int_equal(vmsnap_state_bound("cocoon-vm-snapshot 1\nqemu-command-line=QEMU -smp 1\n",
					    &lim, &max, what, sizeof(what), &err),
			 -EINVAL);
	assert_non_null(strstr(err->msg, "no memory size"));
	error_free(&err);

	/* 1 TiB of 'A' in 32 MiB of zstd, vm.json honest: refused at once. */
	int z = rle_bomb("tib", 1ULL << 40, 1ULL << 40, 'A');
	lim.max_bytes = 64ULL << 30;
	assert_int_equal(vmsnap_state_bound(key_of(128), &lim, &max, what, sizeof(what), &err), 0);
	long long t0 = now_ms();
	assert_int_equal(refused(z, 1ULL << 40, max, "over THE BOUND"), 0);
	/* vm.json says 64 MiB, the frame 1 TiB: refused at the first read. */
	assert_int_equal(
		refused(z, 64 << 20, max, "its zstd frame says it holds 1099511627776 bytes"), 0);
	assert_true(now_ms() - t0 < 2000);
	close(z);
	/* A frame that does not say its size stops at vm.json's, with no more
	 * than that written. */
	z = rle_bomb("unsaid", 1ULL << 32, 0, 'A');
	assert_true(refused(z, 64 << 20, max, "more than its raw_size") <= (64 << 20));
	close(z);
	/* Nor does one that comes to less than vm.json says. */
	z = rle_bomb("short", 1 << 20, 0, 'A');
	refused(z, 2 << 20, max, "decompresses to 1048576 bytes, not its raw_size");
	close(z);
}

/* limits.verify_timeout_ms holds for the decompression too: a state of
 * zeros the size of the bound (no disk, all CPU) stops at the deadline. */
static void test_zstd_unpack_has_a_deadline(void **state)
{
	struct error *err = NULL;
	int out, z = rle_bomb("zeros", 1ULL << 30, 1ULL << 30, 0);
	assert_int_equal(unpack_within(z, 1ULL << 30, 1ULL << 30, 0, &err, &out), -ETIMEDOUT);
	assert_non_null(strstr(err->msg, "vm.state.zst"));
	assert_non_null(strstr(err->msg, "limits.verify_timeout_ms"));
	assert_true(lseek(out, 0, SEEK_END) < (1 << 30));
	error_free(&err);
	close(out);
	/* With the time, the same frame is fine: 1 GiB of holes. */
	assert_int_equal(unpack(z, 1ULL << 30, 1ULL << 30, &err, &out), 0);
	assert_int_equal(lseek(out, 0, SEEK_END), 1 << 30);
	assert_true(allocated(out) < (1 << 20));
	close(out);
	close(z);
}

/* One frame: what follows it is refused, not decoded as a second. */
static void test_zstd_data_after_the_frame_is_refused(void **state)
{
	uint64_t raw = 0;
	int in = sparse_state();
	int z = pack(in, "z", &raw);
	off_t len = lseek(z, 0, SEEK_END);
	static char buf[1 << 20];
	assert_true(len < (off_t)sizeof(buf) / 2);
	assert_int_equal(pread(z, buf, (size_t)len, 0), len);
	assert_int_equal(pwrite(z, buf, (size_t)len, len), len);
	refused(z, raw, 1ULL << 30, "data after its zstd frame");
	close(z);
	close(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zstd_round_trip_stays_sparse),
		cmocka_unit_test(test_zstd_bomb_and_lies_are_refused),
		cmocka_unit_test(test_zstd_damaged_streams_are_refused),
		cmocka_unit_test(test_zstd_large_window_is_refused),
		cmocka_unit_test(test_zstd_bound_is_the_vms_memory),
		cmocka_unit_test(test_zstd_unpack_has_a_deadline),
		cmocka_unit_test(test_zstd_data_after_the_frame_is_refused),
	};
	return cmocka_run_group_tests(tests, fixture_dir_make, fixture_dir_remove);
}
