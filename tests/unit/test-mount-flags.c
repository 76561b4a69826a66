/* The restore's plan of remounts (src/guest/mount-flags.c): a saved
 * "cocoon-mounts" text against the restored init's mountinfo. Stacked
 * mounts, every per-mount flag, the atime modes, escaped mount points and
 * the bounds, which fail clearly instead of leaving mounts unchecked. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <cmocka.h>

#include "mount-flags.h"

/* A mountinfo line for mount point mp with per-mount options opts. */
static void info_line(char *buf, size_t size, int id, const char *mp, const char *opts)
{
	size_t len = strlen(buf);
	snprintf(buf + len, size - len, "%d 1 0:%d / %s %s shared:1 - tmpfs tmpfs rw\n", id, id, mp,
		 opts);
}

static struct mount_plan plan;
static struct error *err;

static int plan_of(const char *saved, const char *now)
{
	mount_plan_free(&plan);
	error_free(&err);
	return mount_flags_plan(saved, now, &plan, &err);
}

static int teardown(void **state)
{
	(void)state;
	mount_plan_free(&plan);
	error_free(&err);
	return 0;
}

/* The root came back rw (CRIU 3.17): remounted ro, its atime mode named. */
static void test_readonly_root_is_put_back(void **state)
{
	(void)state;
	char now[512] = "";
	info_line(now, sizeof(now), 20, "/", "rw,relatime");
	info_line(now, sizeof(now), 21, "/proc", "rw,nosuid,nodev,noexec,relatime");
	assert_int_equal(plan_of("/ ro,relatime\n/proc rw,nosuid,nodev,noexec,relatime\n", now), 0);
	assert_int_equal(plan.n, 1);
	assert_string_equal(plan.v[0].mp, "/");
	assert_int_equal(plan.v[0].flags, MS_RDONLY | MS_RELATIME);
}

/* Equal flags: nothing to do. */
static void test_nothing_when_flags_match(void **state)
{
	(void)state;
	char now[512] = "";
	info_line(now, sizeof(now), 20, "/", "ro,noatime");
	assert_int_equal(plan_of("/ ro,noatime\n", now), 0);
	assert_int_equal(plan.n, 0);
}

/* A ro mount stacked on a rw one at /stk: the top mount is the one a path
 * reaches. It gets its own saved flags (ro), never the lower one's, however
 * the two lines are ordered against the restored mountinfo. */
static void test_stacked_mounts_top_gets_its_own_flags(void **state)
{
	(void)state;
	char now[512] = "";
	info_line(now, sizeof(now), 20, "/", "rw,relatime");
	info_line(now, sizeof(now), 30, "/stk", "rw,relatime");
	info_line(now, sizeof(now), 31, "/stk", "rw,relatime");
	const char *saved = "/ rw,relatime\n/stk rw,relatime\n/stk ro,nosuid,relatime\n";
	assert_int_equal(plan_of(saved, now), 0);
	assert_int_equal(plan.n, 1);
	assert_string_equal(plan.v[0].mp, "/stk");
	assert_int_equal(plan.v[0].flags, MS_RDONLY | MS_NOSUID | MS_RELATIME);

	/* The top came back ro already: the lower line must not make it rw. */
	char now2[512] = "";
	info_line(now2, sizeof(now2), 20, "/", "rw,relatime");
	info_line(now2, sizeof(now2), 30, "/stk", "rw,relatime");
	info_line(now2, sizeof(now2), 31, "/stk", "ro,nosuid,relatime");
	assert_int_equal(plan_of(saved, now2), 0);
	assert_int_equal(plan.n, 0);

	/* rw on top of ro: the top stays rw. */
	char now3[512] = "";
	info_line(now3, sizeof(now3), 30, "/stk", "ro,relatime");
	info_line(now3, sizeof(now3), 31, "/stk", "ro,relatime");
	assert_int_equal(plan_of("/stk ro,relatime\n/stk rw,relatime\n", now3), 0);
	assert_int_equal(plan.n, 1);
	assert_int_equal(plan.v[0].flags, MS_RELATIME);
}

/* Every per-mount flag, nosymfollow included, and the three atime modes:
 * strictatime (no atime word in mountinfo) is asked for by name, since a
 * remount without one keeps the current mode. */
static void test_every_flag_and_atime_mode(void **state)
{
	(void)state;
	char now[1024] = "";
	info_line(now, sizeof(now), 40, "/a", "rw,relatime");
	info_line(now, sizeof(now), 41, "/b", "rw,relatime");
	info_line(now, sizeof(now), 42, "/c", "rw,noatime");
	info_line(now, sizeof(now), 43, "/d", "rw,relatime");
	const char *saved = "/a ro,nosuid,nodev,noexec,nosymfollow,relatime\n"
			    "/b rw,noatime,nodiratime\n"
			    "/c rw\n"
			    "/d rw,nosymfollow,relatime\n";
	assert_int_equal(plan_of(saved, now), 0);
	assert_int_equal(plan.n, 4);
	assert_string_equal(plan.v[0].mp, "/a");
	assert_int_equal(plan.v[0].flags, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC |
						  MS_NOSYMFOLLOW | MS_RELATIME);
	assert_int_equal(plan.v[1].flags, MS_NOATIME | MS_NODIRATIME);
	assert_int_equal(plan.v[2].flags, MS_STRICTATIME);
	assert_int_equal(plan.v[3].flags, MS_NOSYMFOLLOW | MS_RELATIME);
}

/* Mount points are escaped in both texts (\040 a space). */
static void test_escaped_mount_point(void **state)
{
	(void)state;
	char now[512] = "";
	info_line(now, sizeof(now), 50, "/with\\040space", "rw,relatime");
	assert_int_equal(plan_of("/with\\040space ro,relatime\n", now), 0);
	assert_int_equal(plan.n, 1);
	assert_string_equal(plan.v[0].mp, "/with space");
}

/* A mount point longer than the old 255-character buffer is planned. */
static void test_long_mount_point(void **state)
{
	(void)state;
	char mp[1200], saved[1300], now[1400] = "";
	mp[0] = '/';
	memset(mp + 1, 'd', sizeof(mp) - 2);
	mp[sizeof(mp) - 1] = 0;
	snprintf(saved, sizeof(saved), "%s ro,relatime\n", mp);
	info_line(now, sizeof(now), 60, mp, "rw,relatime");
	assert_int_equal(plan_of(saved, now), 0);
	assert_int_equal(plan.n, 1);
	assert_string_equal(plan.v[0].mp, mp);
}

/* More mounts than the bound: a clear error naming it, no partial plan. */
static void test_too_many_mounts_fail_clearly(void **state)
{
	(void)state;
	size_t n = MOUNT_FLAGS_MAX_MOUNTS + 1, size = n * 24 + 1, len = 0;
	char *saved = malloc(size);
	assert_non_null(saved);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(saved + len, size - len, "/m%zu ro\n", i);
	assert_int_equal(plan_of(saved, "20 1 0:20 / /m0 rw - tmpfs tmpfs rw\n"), -E2BIG);
	assert_non_null(strstr(error_msg(err), "more than 65536 mounts"));
	assert_int_equal(plan.n, 0);
	free(saved);
}

/* A line that is not a mount: an error naming the file and the line. */
static void test_bad_line_fails_clearly(void **state)
{
	(void)state;
	assert_int_equal(plan_of("/ ro\njunk\n", "20 1 0:20 / / rw - tmpfs tmpfs rw\n"), -EINVAL);
	assert_non_null(strstr(error_msg(err), "cocoon-mounts: line 2"));
	assert_int_equal(plan_of("/ ro\n", "20 1 0:20\n"), -EINVAL);
	assert_non_null(strstr(error_msg(err), "restored mountinfo"));
}

/* A saved mount the restore does not have is left alone. */
static void test_missing_mount_is_skipped(void **state)
{
	(void)state;
	char now[512] = "";
	info_line(now, sizeof(now), 20, "/", "rw");
	assert_int_equal(plan_of("/gone ro\n/ rw\n", now), 0);
	assert_int_equal(plan.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_readonly_root_is_put_back, teardown),
		cmocka_unit_test_teardown(test_nothing_when_flags_match, teardown),
		cmocka_unit_test_teardown(test_stacked_mounts_top_gets_its_own_flags, teardown),
		cmocka_unit_test_teardown(test_every_flag_and_atime_mode, teardown),
		cmocka_unit_test_teardown(test_escaped_mount_point, teardown),
		cmocka_unit_test_teardown(test_long_mount_point, teardown),
		cmocka_unit_test_teardown(test_too_many_mounts_fail_clearly, teardown),
		cmocka_unit_test_teardown(test_bad_line_fails_clearly, teardown),
		cmocka_unit_test_teardown(test_missing_mount_is_skipped, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
