#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "paths.h"

static void expect_bad(const char *id, const char *why)
{
	struct error *err = NULL;
	assert_int_equal(validate_id("container", id, &err), -EINVAL);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, why));
	error_free(&err);
}

static void test_valid_ids(void **state)
{
	const char *ok[] = {"a", "abc", "web-1", "x_y.z", "0123456789abcdef"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		assert_int_equal(validate_id("container", ok[i], NULL), 0);
}

static void test_invalid_ids(void **state)
{
	char longid[100];
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = 0;
	expect_bad("", "empty");
	expect_bad("a/b", "contains '/'");
	expect_bad("..", "must start");
	expect_bad("a..b", "'..'");
	expect_bad(".hidden", "must start");
	expect_bad("-flag", "must start");
	expect_bad("sp ace", "contains ' '");
	expect_bad(longid, "the limit is 64");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_ids),
		cmocka_unit_test(test_invalid_ids),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
