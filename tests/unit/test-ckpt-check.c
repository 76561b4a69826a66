/* The checkpoint's refusals and explanations (src/guest/ckpt-check.c) that
 * need no container: the ghost-file limit a dump runs under, and CRIU's
 * "Can't dump ghost file" turned into a message naming the file, its size,
 * that limit and the setting that raises it. Linked with the agent's code
 * (guest_core_src). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "ckpt-check.h"

static const char *ghost_line =
	"(00.123456) Error (criu/files-reg.c:918): Can't dump ghost file /scratch/big of 2097152 size, increase limit";

static void limit_of(const char *const *lines, size_t n, char *out, size_t size)
{
	Cocoon__CriuOptions o;
	cocoon__criu_options__init(&o);
	o.config = (char **)lines;
	o.n_config = n;
	ckpt_ghost_limit(&o, out, size);
}

/* Nothing set: CRIU's default, 1 MiB. */
static void test_default_limit(void **state)
{
	(void)state;
	char limit[96], out[1024];
	ckpt_ghost_limit(NULL, limit, sizeof(limit));
	assert_string_equal(limit, "1048576 bytes, CRIU's default of 1 MiB");
	const char *other[] = {"tcp-established"};
	limit_of(other, 1, limit, sizeof(limit));
	assert_string_equal(limit, "1048576 bytes, CRIU's default of 1 MiB");
	assert_true(ckpt_explain_criu_error(ghost_line, limit, out, sizeof(out)));
	assert_non_null(strstr(out, "/scratch/big (2097152 bytes)"));
	assert_non_null(strstr(out, "limit in force (1048576 bytes, CRIU's default of 1 MiB)"));
	assert_non_null(strstr(out, "ghost-limit"));
	assert_non_null(strstr(out, "org.criu.config"));
}

/* The user's line, read as CRIU reads it: K, M, G anywhere in the value
 * (uppercase only), the last line wins. */
static void test_user_limit(void **state)
{
	(void)state;
	char limit[96], out[1024];
	const char *one[] = {"ghost-limit 1500K"};
	limit_of(one, 1, limit, sizeof(limit));
	assert_string_equal(limit, "1536000 bytes, the 'ghost-limit 1500K' of the CRIU config");
	assert_true(ckpt_explain_criu_error(ghost_line, limit, out, sizeof(out)));
	assert_non_null(strstr(out, "(1536000 bytes, the 'ghost-limit 1500K' of the CRIU config)"));
	const char *two[] = {"ghost-limit 8M", "tcp-close", "ghost-limit 3G"};
	limit_of(two, 3, limit, sizeof(limit));
	assert_string_equal(limit, "3221225472 bytes, the 'ghost-limit 3G' of the CRIU config");
	/* Lowercase m is no suffix to CRIU: 8 bytes, and the message shows it. */
	const char *lower[] = {"ghost-limit 8m"};
	limit_of(lower, 1, limit, sizeof(limit));
	assert_string_equal(limit, "8 bytes, the 'ghost-limit 8m' of the CRIU config");
	const char *plain[] = {"ghost-limit 4194304"};
	limit_of(plain, 1, limit, sizeof(limit));
	assert_string_equal(limit, "4194304 bytes, the 'ghost-limit 4194304' of the CRIU config");
}

/* Other CRIU errors are left as they are. */
static void test_other_errors_untouched(void **state)
{
	(void)state;
	char out[256] = "";
	assert_false(ckpt_explain_criu_error("Error (criu/files.c:382): Can't statfs fd 19", "x",
					     out, sizeof(out)));
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_limit),
		cmocka_unit_test(test_user_limit),
		cmocka_unit_test(test_other_errors_untouched),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
