/* The host's side of the checkpoint boundary, attacked the way a guest that
 * owns its agent would: every test plants something in the shared
 * directory (or a restore directory) and checks that the host refuses it
 * quickly, clearly, and without touching the canary outside the state
 * directory. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "images.h"
#include "paths.h"
#include "safefs.h"

#include "images-fixture.h"

static void test_publish_good(void **st)
{
	for (int fallback = 0; fallback < 2; fallback++) {
		struct error *err = NULL;
		struct stat sb;
		char p[300];
		if (fallback) {
			remove_tree(dest, NULL);
			make_dump();
		}
		chmod(ckpt, 0777);
		snprintf(p, sizeof(p), "%s/pstree.img", ckpt);
		chmod(p, 04755); /* the guest's setuid bit must not reach the host */
		assert_int_equal(publish(fallback, &err), 0);
		assert_int_equal(access(ckpt, F_OK), -1);
		assert_int_equal(stat(dest, &sb), 0);
		assert_int_equal(sb.st_mode & 07777, 0700);
		snprintf(p, sizeof(p), "%s/pstree.img", dest);
		assert_int_equal(stat(p, &sb), 0);
		assert_int_equal(sb.st_mode & 07777, 0600);
		assert_int_equal(sb.st_uid, geteuid());
		struct images_chain chain = {0};
		assert_int_equal(images_verify(dest, &default_limits, &chain, &err), 0);
		assert_int_equal(chain.n, 1);
		images_chain_free(&chain);
	}
}

static void test_logs_reach_the_work_path(void **st)
{
	struct error *err = NULL;
	char work[200], p[300];
	putf(ckpt, "dump.log", "(00.1) Dumping finished successfully\n", 37);
	assert_int_equal(publish(false, &err), 0);
	snprintf(work, sizeof(work), "%s/work", root);
	images_copy_logs(dest, work);
	snprintf(p, sizeof(p), "%s/dump.log", work);
	assert_int_equal(access(p, R_OK), 0);
}

static void test_dump_dir_symlink(void **st)
{
	for (int fallback = 0; fallback < 2; fallback++) {
		remove_tree(ckpt, NULL);
		assert_int_equal(symlink(canary_dir, ckpt), 0);
		expect_refused(fallback, CKID);
		/* The dump's name is removed; what it pointed at is not. */
		assert_int_equal(access(ckpt, F_OK), -1);
	}
}

static void test_checkpoints_dir_symlink(void **st)
{
	char real[300];
	snprintf(real, sizeof(real), "%s/elsewhere", root);
	assert_int_equal(rename(ckdir, real), 0);
	/* checkpoints -> a directory outside, holding CKID -> the canary. */
	char inner[400];
	snprintf(inner, sizeof(inner), "%s/" CKID, real);
	remove_tree(inner, NULL);
	assert_int_equal(symlink(canary_dir, inner), 0);
	assert_int_equal(symlink(real, ckdir), 0);
	expect_refused(false, COCOON_CHECKPOINTS_DIR);
	expect_refused(true, COCOON_CHECKPOINTS_DIR);
	images_discard(state, CKID);
	assert_canary_intact();
}

static void test_fifo_in_dump(void **st)
{
	char p[300];
	snprintf(p, sizeof(p), "%s/pages-1.img", ckpt);
	unlink(p);
	assert_int_equal(mkfifo(p, 0644), 0);
	expect_refused(false, "not a regular file");
	make_dump();
	unlink(p);
	assert_int_equal(mkfifo(p, 0644), 0);
	expect_refused(true, "not a regular file");
}

static void test_symlink_to_char_device(void **st)
{
	char p[300];
	for (int fallback = 0; fallback < 2; fallback++) {
		make_dump();
		snprintf(p, sizeof(p), "%s/pages-1.img", ckpt);
		unlink(p);
		assert_int_equal(symlink("/dev/zero", p), 0);
		expect_refused(fallback, "not a regular file");
	}
}

static void test_device_node(void **st)
{
	char p[300];
	snprintf(p, sizeof(p), "%s/core-1.img", ckpt);
	if (mknod(p, S_IFCHR | 0666, makedev(1, 5)) < 0)
		skip(); /* needs CAP_MKNOD */
	expect_refused(false, "not a regular file");
}

static void test_sparse_giant(void **st)
{
	char p[300];
	for (int fallback = 0; fallback < 2; fallback++) {
		make_dump();
		snprintf(p, sizeof(p), "%s/pages-1.img", ckpt);
		int fd = open(p, O_WRONLY);
		assert_true(fd >= 0);
		/* 2^60 where the filesystem allows it, else its largest. */
		off_t size = 1LL << 60;
		while (ftruncate(fd, size) < 0 && size > (1LL << 30))
			size >>= 1;
		close(fd);
		expect_refused(fallback, "limits.checkpoint_max_bytes");
	}
}

static void test_hard_link_to_canary(void **st)
{
	char p[300];
	snprintf(p, sizeof(p), "%s/pages-2.img", ckpt);
	assert_int_equal(link(canary, p), 0);
	expect_refused(false, "links");
	/* Not chmod'ed to 0600 or chowned on the way: checked above. */
}

static void test_subdirectory_and_odd_names(void **st)
{
	char p[300];
	snprintf(p, sizeof(p), "%s/sub", ckpt);
	mkdir(p, 0700);
	expect_refused(false, "not a regular file");
	make_dump();
	snprintf(p, sizeof(p), "%s/bad name", ckpt);
	put(p, "x", 1);
	expect_refused(true, "unexpected file name");
}

static void test_too_many_files(void **st)
{
	for (int i = 0; i < 120; i++) {
		char n[32];
		snprintf(n, sizeof(n), "extra-%d.img", i);
		putf(ckpt, n, "x", 1);
	}
	expect_refused(false, "limits.checkpoint_max_files");
}

static void test_verify_time_limit(void **st)
{
	struct images_limits lim = default_limits;
	struct images_info info = {.container_id = "c1", .checkpoint_id = CKID};
	struct error *err = NULL;
	static char big[64 << 20];
	putf(ckpt, "big.img", big, sizeof(big));
	lim.verify_ms = 0;
	assert_int_not_equal(images_publish(state, CKID, dest, &info, &lim, &err), 0);
	assert_non_null(strstr(err->msg, "limits.verify_timeout_ms"));
	error_free(&err);
}

/* The guest swaps the dump directory for a symlink to the canary, and back,
 * as fast as it can while the host publishes. */
static void test_swap_race(void **st)
{
	char real[300], lnk[300];
	snprintf(real, sizeof(real), "%s/" CKID ".real", ckdir);
	snprintf(lnk, sizeof(lnk), "%s/" CKID ".lnk", ckdir);
	for (int round = 0; round < 40; round++) {
		remove_tree(dest, NULL);
		remove_tree(real, NULL);
		make_dump();
		safefs_force_fallback = round % 2;
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			for (;;) {
				rename(ckpt, real);
				unlink(lnk);
				symlink(canary_dir, lnk);
				rename(lnk, ckpt);
				rename(ckpt, lnk);
				rename(real, ckpt);
			}
		}
		struct error *err = NULL;
		publish(round % 2, &err);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		error_free(&err);
		assert_canary_intact();
		struct stat sb;
		if (lstat(dest, &sb) == 0)
			assert_true(S_ISDIR(sb.st_mode));
	}
	safefs_force_fallback = false;
}

/* A guest process opened an image file through the share before the
 * publish, and writes through that handle after it (QEMU keeps the fid's
 * descriptor, whatever the host renames): the published file must neither
 * change nor grow. */
static void write_through(int fd)
{
	static char junk[1 << 20];
	memset(junk, 'E', sizeof(junk));
	assert_int_equal(pwrite(fd, "EVIL", 4, 0), 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pwrite(fd, junk, sizeof(junk), (off_t)(8192 + i * sizeof(junk))),
				 (ssize_t)sizeof(junk));
}

static void assert_published_intact(void)
{
	char p[300];
	uint8_t buf[8192 + 16];
	struct stat sb;
	struct error *err = NULL;
	snprintf(p, sizeof(p), "%s/pages-1.img", dest);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_size, 8192);
	int fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), 8192);
	close(fd);
	for (size_t i = 0; i < 8192; i++)
		if (buf[i] != 0xab)
			fail_msg("pages-1.img byte %zu is 0x%02x after the guest wrote", i, buf[i]);
	struct images_chain chain = {0};
	if (images_verify(dest, &default_limits, &chain, &err) < 0)
		fail_msg("%s", err->msg);
	images_chain_free(&chain);
}

static int open_image(const char *name)
{
	char p[300];
	snprintf(p, sizeof(p), "%s/%s", ckpt, name);
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static void test_guest_handle_cannot_reach_published_images(void **st)
{
	for (int fallback = 0; fallback < 2; fallback++) {
		struct error *err = NULL;
		remove_tree(dest, NULL);
		make_dump();
		int fd = open_image("pages-1.img");
		if (publish(fallback, &err) < 0)
			fail_msg("%s", err->msg);
		write_through(fd);
		close(fd);
		assert_published_intact();
	}
}

/* The same in the engines' layout: the shared directory on a tmpfs, dest on
 * another filesystem, so the images are staged beside dest through a bind
 * mount and the guest's handle names an inode on dest's filesystem. */
static void test_guest_handle_cannot_reach_staged_images(void **st)
{
	char shared[160];
	struct images_stage stg;
	struct images_info info = {.container_id = "c1", .checkpoint_id = CKID};
	struct error *err = NULL;
	snprintf(shared, sizeof(shared), "%s/shared", state);
	if (mount("tmpfs", shared, "tmpfs", 0, "mode=0700") < 0) {
		print_message("skipped: cannot mount a tmpfs here: %s\n", strerror(errno));
		skip();
	}
	assert_int_equal(mkdir_p(ckdir, 0700, NULL), 0);
	if (images_stage_beside(state, CKID, dest, -1, &stg, NULL) != 1) {
		print_message("skipped: no bind mount for staging here\n");
		skip();
	}
	make_dump(); /* through the bind mount, into the staged directory */
	int fd = open_image("pages-1.img");
	if (images_publish_staged(&stg, dest, &info, &default_limits, &err) < 0)
		fail_msg("%s", err->msg);
	write_through(fd);
	close(fd);
	assert_published_intact();
}

static void test_dump_log_attacks(void **st)
{
	char log[300], keep[300];
	snprintf(log, sizeof(log), "%s/" CKID ".dump.log", ckdir);
	snprintf(keep, sizeof(keep), "%s/kept.log", root);
	assert_int_equal(symlink(canary, log), 0);
	assert_int_not_equal(images_keep_dump_log(state, CKID, keep), 0);
	assert_int_equal(access(keep, F_OK), -1);
	unlink(log);
	assert_int_equal(mkfifo(log, 0644), 0);
	long long t0 = now_ms();
	assert_int_not_equal(images_keep_dump_log(state, CKID, keep), 0);
	assert_true(now_ms() - t0 < 2000);
	unlink(log);
	put(log, "Error (criu): boom\n", 19);
	assert_int_equal(images_keep_dump_log(state, CKID, keep), 0);
	images_discard(state, CKID);
	assert_int_equal(access(log, F_OK), -1);
	assert_int_equal(access(ckpt, F_OK), -1);
}

static void test_remove_tree_keeps_symlink_targets(void **st)
{
	char p[300];
	snprintf(p, sizeof(p), "%s/link", ckpt);
	assert_int_equal(symlink(canary_dir, p), 0);
	assert_int_equal(remove_tree(state, NULL), 0);
	assert_int_equal(access(state, F_OK), -1);
	assert_canary_intact();
}

/* A guest can nest directories in shared/ deeper than the walk's bound:
 * 200 levels, with a file and a symlink to the canary at the bottom, go
 * entirely, and the canary stays. Before, the removal stopped at 32 levels
 * with ELOOP, having removed part of the tree. */
static void test_remove_tree_any_depth(void **st)
{
	int fd = open(ckdir, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	for (int i = 0; i < 200; i++) {
		assert_int_equal(mkdirat(fd, "d", 0755), 0);
		int next = openat(fd, "d", O_RDONLY | O_DIRECTORY);
		assert_true(next >= 0);
		close(fd);
		fd = next;
	}
	assert_int_equal(symlinkat(canary_dir, fd, "link"), 0);
	int f = openat(fd, "f", O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(f >= 0);
	close(f);
	close(fd);
	assert_int_equal(remove_tree(state, NULL), 0);
	assert_int_equal(access(state, F_OK), -1);
	assert_canary_intact();
}

/* Both resolvers: openat2's and the one-step-at-a-time fallback. */
static void test_safefs_resolvers(void **st)
{
	char p[300];
	int dirfd = open(state, O_RDONLY | O_DIRECTORY);
	assert_true(dirfd >= 0);
	snprintf(p, sizeof(p), "%s/shared/up", state);
	assert_int_equal(symlink(canary_dir, p), 0);
	for (int fallback = 0; fallback < 2; fallback++) {
		safefs_force_fallback = fallback;
		int fd = safefs_open(dirfd, "shared/" COCOON_CHECKPOINTS_DIR "/" CKID "/pstree.img",
				     O_RDONLY, 0);
		assert_true(fd >= 0);
		close(fd);
		assert_int_equal(safefs_open(dirfd, "shared/up/secret", O_RDONLY, 0) < 0, 1);
		assert_int_equal(safefs_open(dirfd, "shared/up", O_RDONLY | O_DIRECTORY, 0) < 0, 1);
		assert_int_equal(safefs_open(dirfd, "shared/../../canary/secret", O_RDONLY, 0),
				 -EINVAL);
		assert_int_equal(safefs_open(dirfd, canary, O_RDONLY, 0), -EINVAL);
		assert_int_equal(safefs_open(dirfd, "", O_RDONLY, 0), -EINVAL);
		/* /proc is another filesystem: not reached through a bind or a
		 * magic link either. */
		int slash = open("/", O_RDONLY | O_DIRECTORY);
		assert_int_equal(safefs_open(slash, "proc/self/status", O_RDONLY, 0) < 0, 1);
		close(slash);
	}
	safefs_force_fallback = false;
	close(dirfd);
	assert_canary_intact();
}

/* ---- restore input ---------------------------------------------------------- */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_publish_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logs_reach_the_work_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dump_dir_symlink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoints_dir_symlink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo_in_dump, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_to_char_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_node, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sparse_giant, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hard_link_to_canary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subdirectory_and_odd_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_many_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_time_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swap_race, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_handle_cannot_reach_published_images,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_handle_cannot_reach_staged_images, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_dump_log_attacks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_tree_keeps_symlink_targets, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_remove_tree_any_depth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_safefs_resolvers, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
