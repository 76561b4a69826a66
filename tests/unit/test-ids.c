#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "contract.h"
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

/* The contract's rule itself, which the agent applies too: each cause,
 * and the limit exactly. */
static void test_contract_rule(void **state)
{
	char id[COCOON_ID_MAX + 2], bad = 0;
	memset(id, 'a', sizeof(id) - 1);
	id[COCOON_ID_MAX] = 0;
	assert_int_equal(cocoon_id_check(id, NULL), COCOON_ID_OK);
	id[COCOON_ID_MAX] = 'a';
	id[COCOON_ID_MAX + 1] = 0;
	assert_int_equal(cocoon_id_check(id, NULL), COCOON_ID_TOO_LONG);
	assert_int_equal(cocoon_id_check(NULL, NULL), COCOON_ID_EMPTY);
	assert_int_equal(cocoon_id_check("", NULL), COCOON_ID_EMPTY);
	/* A start that reads as an option, a hidden file or a path. */
	const char *start[] = {"-rf", "_x", ".x", " x", "/x"};
	for (size_t i = 0; i < sizeof(start) / sizeof(start[0]); i++)
		assert_int_equal(cocoon_id_check(start[i], NULL), COCOON_ID_BAD_START);
	assert_int_equal(cocoon_id_check("a b", &bad), COCOON_ID_BAD_CHAR);
	assert_int_equal(bad, ' ');
	assert_int_equal(cocoon_id_check("a;b", &bad), COCOON_ID_BAD_CHAR);
	assert_int_equal(bad, ';');
	assert_int_equal(cocoon_id_check("caf\xc3\xa9", &bad), COCOON_ID_BAD_CHAR);
	assert_int_equal(cocoon_id_check("a..b", NULL), COCOON_ID_DOTDOT);
	assert_int_equal(cocoon_id_check("ck-20261129-210000-00ff", NULL), COCOON_ID_OK);
	assert_true(cocoon_id_valid("web-1.x_y"));
	assert_false(cocoon_id_valid("a/b"));
}

/* The names both sides build from the contract: the image shares' tags and
 * a restore's files in the shared directory, refused rather than cut. */
static void test_contract_names(void **state)
{
	(void)state;
	char tag[COCOON_TAG_IMAGES_SIZE], name[32];
	cocoon_images_tag(tag, 0);
	assert_string_equal(tag, "images0");
	cocoon_images_tag(tag, COCOON_MAX_CHAIN - 1);
	assert_string_equal(tag, "images3");
	cocoon_images_tag(tag, -2147483647 - 1);
	assert_string_equal(tag, "images-2147483648");
	assert_int_equal(cocoon_restore_file(name, sizeof(name), "web", COCOON_RESTORE_LOG), 0);
	assert_string_equal(name, "restore-web.restore.log");
	assert_int_equal(cocoon_restore_file(name, sizeof(name), "web", COCOON_STATS_RESTORE), 0);
	assert_string_equal(name, "restore-web.stats-restore");
	/* 8 + 16 + 1 + 11 characters do not fit in 32 bytes. */
	assert_int_equal(
		cocoon_restore_file(name, sizeof(name), "0123456789abcdef", COCOON_RESTORE_LOG),
		-ENAMETOOLONG);
}

/* The manifests' and vm.json's checksums, read back untrusted. */
static void test_xxh3_text(void **state)
{
	(void)state;
	assert_true(xxh3_text_valid("0123456789abcdef"));
	assert_false(xxh3_text_valid("0123456789ABCDEF"));
	assert_false(xxh3_text_valid("0123456789abcde"));
	assert_false(xxh3_text_valid("0123456789abcdef0"));
	assert_false(xxh3_text_valid("0123456789abcdeg"));
	assert_false(xxh3_text_valid(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_ids),     cmocka_unit_test(test_invalid_ids),
		cmocka_unit_test(test_contract_rule), cmocka_unit_test(test_contract_names),
		cmocka_unit_test(test_xxh3_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
