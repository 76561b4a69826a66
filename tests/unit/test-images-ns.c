/* images-ns.h: a checkpoint whose init ran in the guest's own pid or mount
 * namespace is refused before a VM starts, naming the namespace. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "images-ns.h"

static char dir[64];
static int dirfd_ = -1;

static void put(const char *name, const uint8_t *data, size_t len)
{
	int fd = openat(dirfd_, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* What CRIU 3.17 writes (crit decode shows the same fields): inventory.img
 * with root_ids { pid_ns_id 1, mnt_ns_id 6 }, pstree.img with task 1, and
 * ids-1.img with the init's { pid_ns_id 9, mnt_ns_id 12 }. */
static uint8_t inv[] = {0x16, 0x31, 0x31, 0x58, 8,    0,    0,	  0,
			0x08, 0x02, 0x1a, 0x04, 0x28, 0x01, 0x48, 0x06};
static const uint8_t tree[] = {0x19, 0x43, 0x56, 0x54, 0x30, 0x30, 0x27, 0x50,
			       4,    0,	   0,	 0,    0x08, 0x01, 0x10, 0x00};
static const uint8_t ids[] = {0x19, 0x43, 0x56, 0x54, 0x30, 0x20, 0x43, 0x54,
			      4,    0,	  0,	0,    0x28, 0x09, 0x48, 0x0c};

static int setup(void **st)
{
	(void)st;
	snprintf(dir, sizeof(dir), "/tmp/cocoon-test-ns.XXXXXX");
	assert_non_null(mkdtemp(dir));
	dirfd_ = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	inv[13] = 0x01; /* root_ids.pid_ns_id */
	inv[15] = 0x06; /* root_ids.mnt_ns_id */
	put("inventory.img", inv, sizeof(inv));
	put("pstree.img", tree, sizeof(tree));
	put("ids-1.img", ids, sizeof(ids));
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	static const char *const names[] = {"inventory.img", "pstree.img", "ids-1.img"};
	for (size_t i = 0; i < 3; i++)
		unlinkat(dirfd_, names[i], 0);
	close(dirfd_);
	rmdir(dir);
	return 0;
}

static void expect_refused(int code, const char *needle)
{
	struct error *err = NULL;
	int r = images_check_namespaces(dirfd_, &err);
	if (r != -code || !err || !strstr(err->msg, needle))
		fail_msg("expected %d naming '%s', got %d: %s", -code, needle, r,
			 err ? err->msg : "success");
	error_free(&err);
}

static void test_own_namespaces_pass(void **st)
{
	(void)st;
	assert_int_equal(images_check_namespaces(dirfd_, NULL), 0);
}

static void test_init_in_the_guests_pid_namespace_is_refused(void **st)
{
	(void)st;
	inv[13] = 0x09;
	put("inventory.img", inv, sizeof(inv));
	expect_refused(EPERM, "ran in the guest's own pid namespace");
}

static void test_init_in_the_guests_mount_namespace_is_refused(void **st)
{
	(void)st;
	inv[15] = 0x0c;
	put("inventory.img", inv, sizeof(inv));
	expect_refused(EPERM, "ran in the guest's own mount namespace");
}

static void test_missing_or_malformed_images_are_named(void **st)
{
	(void)st;
	unlinkat(dirfd_, "ids-1.img", 0);
	expect_refused(EINVAL, "ids-1.img (the namespaces of the init, task 1) is missing");
	put("ids-1.img", ids, 14); /* the entry cut short */
	expect_refused(EINVAL, "ids-1.img: truncated");
	put("ids-1.img", ids, sizeof(ids));
	put("inventory.img", inv, 10);
	expect_refused(EINVAL, "inventory.img: truncated");
	/* A varint that never ends. */
	uint8_t bad[sizeof(inv)];
	memcpy(bad, inv, sizeof(inv));
	memset(bad + 8, 0xff, 8);
	put("inventory.img", bad, sizeof(bad));
	expect_refused(EINVAL, "inventory.img: malformed");
	/* No root_ids at all. */
	uint8_t none[] = {0x16, 0x31, 0x31, 0x58, 2, 0, 0, 0, 0x08, 0x02};
	put("inventory.img", none, sizeof(none));
	expect_refused(EINVAL, "no root_ids");
	put("inventory.img", inv, sizeof(inv));
	uint8_t notask[] = {0x19, 0x43, 0x56, 0x54, 0x30, 0x30, 0x27, 0x50, 2, 0, 0, 0, 0x10, 0x00};
	put("pstree.img", notask, sizeof(notask));
	expect_refused(EINVAL, "pstree.img: malformed (no init pid)");
	/* A FIFO or a symlink in its place is refused, never read. */
	unlinkat(dirfd_, "pstree.img", 0);
	assert_int_equal(symlinkat("/dev/zero", dirfd_, "pstree.img"), 0);
	assert_int_not_equal(images_check_namespaces(dirfd_, NULL), 0);
	unlinkat(dirfd_, "pstree.img", 0);
}

static void test_ids_reader(void **st)
{
	(void)st;
	struct images_ns_ids got;
	/* Every wire type skipped but the two varints read. */
	static const uint8_t msg[] = {0x08, 0x02, 0x28, 0x07, 0x31, 1, 2,    3, 4, 5, 6,    7,
				      8,    0x3d, 1,	2,    3,    4, 0x42, 2, 9, 9, 0x48, 0x0b};
	assert_int_equal(images_ns_ids_parse(msg, sizeof(msg), &got), 0);
	assert_int_equal(got.pid_ns, 7);
	assert_int_equal(got.mnt_ns, 11);
	/* Cut anywhere inside a field: refused. */
	for (size_t cut = 1; cut < sizeof(msg); cut++)
		if (cut != 2 && cut != 4 && cut != 13 && cut != 18 && cut != 22)
			assert_int_not_equal(images_ns_ids_parse(msg, cut, &got), 0);
	static const uint8_t group[] = {0x0b, 0x0c}; /* wire types 3 and 4 */
	assert_int_not_equal(images_ns_ids_parse(group, sizeof(group), &got), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_own_namespaces_pass, setup, teardown),
		cmocka_unit_test_setup_teardown(test_init_in_the_guests_pid_namespace_is_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_init_in_the_guests_mount_namespace_is_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_or_malformed_images_are_named, setup,
						teardown),
		cmocka_unit_test(test_ids_reader),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
