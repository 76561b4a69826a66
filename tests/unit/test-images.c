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

#define CKID "ck-test"

static char root[64];
static char state[128], ckdir[192], ckpt[256], canary_dir[128], canary[192], dest[128];
static const char canary_text[] = "the host's secret";

static void put(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void putf(const char *dir, const char *name, const void *data, size_t len)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	put(p, data, len);
}

/* A pagemap with one entry of n present pages, stored in pages-1.img. */
static size_t pagemap(uint8_t *out, uint64_t n)
{
	uint8_t head[] = {0x08, 0x01};
	uint8_t entry[16] = {0x10};
	size_t k = 1;
	do {
		entry[k++] = (uint8_t)((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
		n >>= 7;
	} while (n);
	entry[k++] = 0x20;
	entry[k++] = 0x04;
	uint32_t hl = sizeof(head), el = (uint32_t)k;
	memset(out, 0x55, 8);
	memcpy(out + 8, &hl, 4);
	memcpy(out + 12, head, sizeof(head));
	memcpy(out + 14, &el, 4);
	memcpy(out + 18, entry, k);
	return 18 + k;
}

static void make_dump(void)
{
	uint8_t pm[64], pages[8192];
	mkdir(ckpt, 0755);
	/* The init (task 1) in a pid and mount namespace of its own, as
	 * restore wants (images-ns.h). */
	static const uint8_t inv[] = {0x16, 0x31, 0x31, 0x58, 8,    0,	  0,	0,
				      0x08, 0x02, 0x1a, 0x04, 0x28, 0x01, 0x48, 0x06};
	static const uint8_t tree[] = {0x19, 0x43, 0x56, 0x54, 0x30, 0x30, 0x27, 0x50,
				       4,    0,	   0,	 0,    0x08, 0x01, 0x10, 0x00};
	static const uint8_t ids[] = {0x19, 0x43, 0x56, 0x54, 0x30, 0x20, 0x43, 0x54,
				      4,    0,	  0,	0,    0x28, 0x09, 0x48, 0x0c};
	putf(ckpt, "inventory.img", inv, sizeof(inv));
	putf(ckpt, "pstree.img", tree, sizeof(tree));
	putf(ckpt, "ids-1.img", ids, sizeof(ids));
	memset(pages, 0xab, sizeof(pages));
	putf(ckpt, "pages-1.img", pages, sizeof(pages));
	putf(ckpt, "pagemap-1.img", pm, pagemap(pm, 2));
}

static int setup(void **st)
{
	snprintf(root, sizeof(root), "/tmp/cocoon-test-images.XXXXXX");
	assert_non_null(mkdtemp(root));
	snprintf(state, sizeof(state), "%s/state", root);
	snprintf(ckdir, sizeof(ckdir), "%s/shared/" IMAGES_SHARED_SUBDIR, state);
	snprintf(ckpt, sizeof(ckpt), "%s/" CKID, ckdir);
	snprintf(canary_dir, sizeof(canary_dir), "%s/canary", root);
	snprintf(canary, sizeof(canary), "%s/secret", canary_dir);
	snprintf(dest, sizeof(dest), "%s/out", root);
	assert_int_equal(mkdir_p(ckdir, 0700, NULL), 0);
	mkdir(canary_dir, 0755);
	put(canary, canary_text, strlen(canary_text));
	chmod(canary, 0644);
	make_dump();
	safefs_force_fallback = false;
	return 0;
}

static int teardown(void **st)
{
	char shared[160];
	snprintf(shared, sizeof(shared), "%s/shared", state);
	umount2(shared, MNT_DETACH); /* the staging test's tmpfs, if any */
	remove_tree(root, NULL);
	return 0;
}

static void assert_canary_intact(void)
{
	struct stat sb;
	char buf[64] = "";
	assert_int_equal(stat(canary, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0644);
	int fd = open(canary, O_RDONLY);
	assert_true(fd >= 0);
	assert_true(read(fd, buf, sizeof(buf) - 1) > 0);
	close(fd);
	assert_string_equal(buf, canary_text);
}

static const struct images_limits default_limits = {
	.max_bytes = 1ULL << 30, .max_files = 100, .verify_ms = 10000};

/* Every route copies now (images.h); the second way through takes the
 * O_NOFOLLOW-per-step resolver. */
static int publish(bool fallback, struct error **err)
{
	struct images_info info = {.container_id = "c1", .checkpoint_id = CKID};
	safefs_force_fallback = fallback;
	int r = images_publish(state, CKID, dest, &info, &default_limits, err);
	safefs_force_fallback = false;
	return r;
}

/* Publishing must fail, name why, leave nothing at dest or in the shared
 * directory, and leave the canary alone. */
static void expect_refused(bool fallback, const char *needle)
{
	struct error *err = NULL;
	long long t0 = now_ms();
	int r = publish(fallback, &err);
	if (r == 0 || !err || !strstr(err->msg, needle))
		fail_msg("expected a refusal naming '%s', got: %s", needle,
			 err ? err->msg : "success");
	assert_true(now_ms() - t0 < 5000);
	error_free(&err);
	assert_int_equal(access(dest, F_OK), -1);
	assert_canary_intact();
}

static void test_publish_good(void **st)
{
	for (int fallback = 0; fallback < 2; fallback++) {
		struct error *err = NULL;
		struct stat sb;
		char p[256];
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
	expect_refused(false, IMAGES_SHARED_SUBDIR);
	expect_refused(true, IMAGES_SHARED_SUBDIR);
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
		int fd = safefs_open(dirfd, "shared/" IMAGES_SHARED_SUBDIR "/" CKID "/pstree.img",
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

static void published(void)
{
	struct error *err = NULL;
	assert_int_equal(publish(false, &err), 0);
}

static void expect_verify_error(const char *needle)
{
	struct images_chain chain = {0};
	struct error *err = NULL;
	long long t0 = now_ms();
	int r = images_verify(dest, &default_limits, &chain, &err);
	images_chain_free(&chain);
	if (r == 0 || !err || !strstr(err->msg, needle))
		fail_msg("expected an error naming '%s', got: %s", needle,
			 err ? err->msg : "success");
	assert_true(now_ms() - t0 < 5000);
	error_free(&err);
}

static void set_meta(const char *text)
{
	char p[300];
	snprintf(p, sizeof(p), "%s/" IMAGES_META, dest);
	unlink(p);
	put(p, text, strlen(text));
}

static void test_verify_wrong_types(void **st)
{
	published();
	static const struct {
		const char *json, *needle;
	} cases[] = {
		{"{\"format\": 1, \"version\": null, \"files\": {}}", "made by cocoon ?"},
		{"{\"format\": \"1\", \"version\": \"" COCOON_VERSION "\", \"files\": {}}",
		 "image format -1"},
		{"{\"format\": 1, \"version\": 7, \"files\": {}}", "made by cocoon ?"},
		{"{\"format\": 1, \"version\": \"" COCOON_VERSION "\", \"files\": []}",
		 "lists no files"},
		{"{\"format\": 1, \"version\": \"" COCOON_VERSION "\"}", "lists no files"},
		{"{\"format\": 1, \"version\": \"" COCOON_VERSION
		 "\", \"files\": {\"a.img\": null}}",
		 "bad entry"},
		{"{\"format\": 1, \"version\": \"" COCOON_VERSION
		 "\", \"files\": {\"a.img\": {\"size\": \"3\", \"xxh3\": \"0000000000000000\"}}}",
		 "bad entry"},
		{"{\"format\": 1, \"version\": \"" COCOON_VERSION
		 "\", \"files\": {\"a.img\": {\"size\": 3, \"xxh3\": 12}}}",
		 "bad entry"},
		{"{\"format\": 1, \"version\": \"" COCOON_VERSION
		 "\", \"files\": {\"a.img\": {\"size\": -1, \"xxh3\": \"0000000000000000\"}}}",
		 "bad entry"},
		{"{\"format\": 1, \"version\": \"" COCOON_VERSION
		 "\", \"files\": {\"../x\": {\"size\": 1, \"xxh3\": \"0000000000000000\"}}}",
		 "bad entry"},
		{"{\"format\": 1, \"version\": \"" COCOON_VERSION
		 "\", \"files\": {\"a.img\": {\"size\": 1152921504606846976, \"xxh3\": \"0000000000000000\"}}}",
		 "limits.checkpoint_max_bytes"},
		{"[1, 2]", "not a JSON object"},
		{"{\"format\": 1, ", "not valid JSON"},
		{"", "not valid JSON"},
		{"null", "not a JSON object"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		set_meta(cases[i].json);
		expect_verify_error(cases[i].needle);
	}
}

static void test_verify_fifo_and_symlink(void **st)
{
	char p[300];
	published();
	snprintf(p, sizeof(p), "%s/pstree.img", dest);
	unlink(p);
	assert_int_equal(mkfifo(p, 0644), 0);
	expect_verify_error("not a regular file");
	unlink(p);
	assert_int_equal(symlink("/dev/zero", p), 0);
	expect_verify_error("not a regular file");
	unlink(p);
	assert_int_equal(symlink(canary, p), 0);
	expect_verify_error("not a regular file");
	snprintf(p, sizeof(p), "%s/" IMAGES_META, dest);
	unlink(p);
	assert_int_equal(mkfifo(p, 0644), 0);
	expect_verify_error("a FIFO");
}

/* A restore directory holds what cocoon.json lists, and nothing else: an
 * extra file of any kind, or a second link to a listed one, is refused by
 * name before any VM starts. */
static void test_verify_unlisted_entries(void **st)
{
	char p[300], q[300];
	published();
	putf(dest, "pages-9.img", "x", 1);
	expect_verify_error("pages-9.img is not listed in cocoon.json");
	snprintf(p, sizeof(p), "%s/pages-9.img", dest);
	unlink(p);
	snprintf(p, sizeof(p), "%s/core-99.img", dest);
	assert_int_equal(mkfifo(p, 0644), 0);
	expect_verify_error("core-99.img is not a regular file");
	unlink(p);
	assert_int_equal(symlink("pstree.img", p), 0);
	expect_verify_error("core-99.img is not a regular file");
	unlink(p);
	if (mknod(p, S_IFCHR | 0666, makedev(1, 5)) == 0) {
		expect_verify_error("core-99.img is not a regular file");
		unlink(p);
	}
	assert_int_equal(mkdir(p, 0700), 0);
	expect_verify_error("core-99.img is not a regular file");
	rmdir(p);
	snprintf(p, sizeof(p), "%s/pstree.img", dest);
	snprintf(q, sizeof(q), "%s/elsewhere.img", root);
	assert_int_equal(link(p, q), 0);
	expect_verify_error("pstree.img has 2 links");
	unlink(q);
	struct images_chain chain = {0};
	struct error *err = NULL;
	if (images_verify(dest, &default_limits, &chain, &err) < 0)
		fail_msg("%s", err->msg);
	images_chain_free(&chain);
}

static void test_verify_sparse_giant(void **st)
{
	char p[300];
	published();
	snprintf(p, sizeof(p), "%s/pstree.img", dest);
	int fd = open(p, O_WRONLY);
	off_t size = 1LL << 60;
	while (ftruncate(fd, size) < 0 && size > (1LL << 30))
		size >>= 1;
	close(fd);
	expect_verify_error("expected 16 (truncated?)");
}

static void test_verify_pagemap_overflow(void **st)
{
	uint8_t pm[64];
	/* 2^52 pages, twice: 2^65 bytes, which must not wrap to a small
	 * number. Published as the guest made it: a restore checks it. */
	size_t n = pagemap(pm, 1ULL << 52);
	memcpy(pm + n, pm + 14, n - 14);
	putf(ckpt, "pagemap-1.img", pm, n + n - 14);
	published();
	expect_verify_error("overflows");
}

static void test_pagemap_reader(void **st)
{
	uint8_t pm[64];
	uint64_t id, pages;
	struct error *err = NULL;
	size_t n = pagemap(pm, 300);
	assert_int_equal(images_pagemap_pages(pm, n, &id, &pages, NULL), 0);
	assert_int_equal(id, 1);
	assert_int_equal(pages, 300);
	/* Cut anywhere but between entries: refused. */
	for (size_t cut = 0; cut < n; cut++)
		if (cut != 8 && cut != 14)
			assert_int_not_equal(images_pagemap_pages(pm, cut, &id, &pages, NULL), 0);
	uint8_t two[128];
	n = pagemap(two, UINT64_MAX / 4096);
	memcpy(two + n, two + 14, n - 14);
	assert_int_equal(images_pagemap_pages(two, n + n - 14, &id, &pages, &err), -EOVERFLOW);
	error_free(&err);
}

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
		cmocka_unit_test_setup_teardown(test_verify_wrong_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_fifo_and_symlink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_unlisted_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_sparse_giant, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_pagemap_overflow, setup, teardown),
		cmocka_unit_test(test_pagemap_reader),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
