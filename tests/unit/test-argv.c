/* The argument vector builder (src/shared/argv.c) that QEMU's and CRIU's
 * command lines go through. Under make asan a write past the end fails. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "argv.h"
#include "vm-qemu.h"

static void test_in_order_and_terminated(void **state)
{
	struct argv a;
	argv_init(&a, 0);
	argv_add(&a, "criu");
	argv_add_pair(&a, "-D", "/tmp/img");
	argv_addf(&a, "fd[%d]:%s", 3, "pipe:[42]");
	assert_int_equal(argv_finish(&a), 0);
	assert_int_equal(a.n, 4);
	assert_string_equal(a.args[0], "criu");
	assert_string_equal(a.args[1], "-D");
	assert_string_equal(a.args[2], "/tmp/img");
	assert_string_equal(a.args[3], "fd[3]:pipe:[42]");
	assert_null(a.args[4]);
	argv_free(&a);
	assert_int_equal(a.n, 0);
	assert_null(a.args);
}

static void test_copies_its_arguments(void **state)
{
	char buf[16] = "first";
	struct argv a;
	argv_init(&a, 0);
	argv_add(&a, buf);
	snprintf(buf, sizeof(buf), "changed");
	assert_int_equal(argv_finish(&a), 0);
	assert_string_equal(a.args[0], "first");
	argv_free(&a);
}

static void test_empty_vector_is_terminated(void **state)
{
	struct argv a;
	argv_init(&a, 0);
	assert_int_equal(argv_finish(&a), 0);
	assert_non_null(a.args);
	assert_null(a.args[0]);
	argv_free(&a);
}

/* Exactly max fits; one more is -E2BIG, and nothing after it is taken. */
static void test_bound_is_checked(void **state)
{
	struct argv a;
	argv_init(&a, 3);
	argv_add(&a, "1");
	argv_add(&a, "2");
	argv_add(&a, "3");
	assert_int_equal(argv_finish(&a), 0);
	assert_null(a.args[3]);
	argv_add(&a, "4");
	argv_addf(&a, "%d", 5);
	assert_int_equal(argv_finish(&a), -E2BIG);
	assert_int_equal(a.n, 3);
	assert_null(a.args[3]);
	argv_free(&a);
}

/* Like a spec with many bind mounts: two arguments each, well past 64. */
static void test_grows_to_many_arguments(void **state)
{
	struct argv a;
	argv_init(&a, 0);
	for (int i = 0; i < ARGV_MAX_DEFAULT / 2; i++) {
		argv_add(&a, "--external");
		argv_addf(&a, "mnt[/m%d]:/m%d", i, i);
	}
	assert_int_equal(argv_finish(&a), 0);
	assert_int_equal(a.n, ARGV_MAX_DEFAULT);
	assert_string_equal(a.args[ARGV_MAX_DEFAULT - 1], "mnt[/m255]:/m255");
	assert_null(a.args[ARGV_MAX_DEFAULT]);
	argv_add(&a, "one too many");
	assert_int_equal(argv_finish(&a), -E2BIG);
	argv_free(&a);
}

/* A NULL argument is the caller's bug: refused, and the first error is the
 * one reported. */
static void test_first_error_is_kept(void **state)
{
	struct argv a;
	argv_init(&a, 1);
	argv_add(&a, NULL);
	argv_add(&a, "x");
	argv_add(&a, "y");
	assert_int_equal(argv_finish(&a), -EINVAL);
	assert_int_equal(a.n, 0);
	argv_free(&a);
}

/* A vector can be built again after argv_free(), with the same bound. */
static void test_reused_after_free(void **state)
{
	struct argv a;
	argv_init(&a, 2);
	argv_add(&a, "a");
	argv_add(&a, "b");
	argv_add(&a, "c");
	assert_int_equal(argv_finish(&a), -E2BIG);
	argv_free(&a);
	argv_add(&a, "d");
	assert_int_equal(argv_finish(&a), 0);
	assert_int_equal(a.n, 1);
	assert_string_equal(a.args[0], "d");
	argv_free(&a);
}

/* Joins av's arguments with spaces, for comparing a whole command line. */
static void joined(const struct argv *av, char *out, size_t size)
{
	size_t n = 0;
	out[0] = 0;
	for (size_t i = 0; i < av->n; i++)
		n += (size_t)snprintf(out + n, size - n, "%s%s", i ? " " : "", av->args[i]);
	assert_true(n < size);
	assert_null(av->args[av->n]);
}

/* virtiofsd's command lines (vm-qemu.c), per kind of share and virtiofsd. */
static void test_virtiofsd_argv(void **state)
{
	(void)state;
	char line[8192];
	struct argv av;
	argv_init(&av, 0);
	assert_int_equal(virtiofsd_argv(&av, NULL, "/s/shared", SHARE_PLAIN), 0);
	joined(&av, line, sizeof(line));
	assert_string_equal(line, "/usr/lib/qemu/virtiofsd --fd=3 -o source=/s/shared -o "
				  "cache=none -o log_level=warn");
	argv_free(&av);
	argv_init(&av, 0);
	assert_int_equal(virtiofsd_argv(&av, NULL, "/v", SHARE_VOLUMES), 0);
	joined(&av, line, sizeof(line));
	assert_string_equal(line, "/usr/lib/qemu/virtiofsd --fd=3 -o source=/v -o cache=auto "
				  "-o log_level=warn -o announce_submounts");
	argv_free(&av);
	argv_init(&av, 0);
	assert_int_equal(virtiofsd_argv(&av, NULL, "/r", SHARE_ROOTFS), 0);
	joined(&av, line, sizeof(line));
	assert_string_equal(line, "/usr/lib/qemu/virtiofsd --fd=3 -o source=/r -o cache=auto "
				  "-o log_level=warn -o xattr");
	argv_free(&av);
	argv_init(&av, 0);
	assert_int_equal(virtiofsd_argv(&av, "/opt/virtiofsd", "/i", SHARE_READONLY), 0);
	joined(&av, line, sizeof(line));
	assert_string_equal(line, "/opt/virtiofsd --fd=3 --shared-dir=/i --cache=always "
				  "--log-level=warn --migration-mode=find-paths "
				  "--migration-on-error=guest-error --no-announce-submounts "
				  "--readonly");
	argv_free(&av);
	argv_init(&av, 0);
	assert_int_equal(virtiofsd_argv(&av, "/opt/virtiofsd", "/s", SHARE_PLAIN), 0);
	joined(&av, line, sizeof(line));
	assert_string_equal(line, "/opt/virtiofsd --fd=3 --shared-dir=/s --cache=never "
				  "--log-level=warn --migration-mode=find-paths "
				  "--migration-on-error=guest-error --no-announce-submounts");
	argv_free(&av);
	/* A directory longer than the fixed 4200-byte buffer that held it is
	 * passed whole, not cut. */
	char dir[5000];
	memset(dir, 'd', sizeof(dir) - 1);
	dir[0] = '/';
	dir[sizeof(dir) - 1] = 0;
	argv_init(&av, 0);
	assert_int_equal(virtiofsd_argv(&av, NULL, dir, SHARE_VOLUMES), 0);
	assert_int_equal(strlen(av.args[3]), strlen("source=") + strlen(dir));
	argv_free(&av);
	/* Past the vector's bound: refused, nothing written past it. */
	argv_init(&av, 4);
	assert_int_equal(virtiofsd_argv(&av, NULL, "/v", SHARE_VOLUMES), -E2BIG);
	argv_free(&av);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_order_and_terminated),
		cmocka_unit_test(test_copies_its_arguments),
		cmocka_unit_test(test_empty_vector_is_terminated),
		cmocka_unit_test(test_bound_is_checked),
		cmocka_unit_test(test_grows_to_many_arguments),
		cmocka_unit_test(test_first_error_is_kept),
		cmocka_unit_test(test_reused_after_free),
		cmocka_unit_test(test_virtiofsd_argv),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
