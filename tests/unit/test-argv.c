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

/* Like a spec with many bind mounts: two arguments each, well past the
 * fixed array CRIU's argv used to be built in. */
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
