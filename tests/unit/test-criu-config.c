/* The user's CRIU settings: what reaches the guest, what is refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "criu-config.h"

static void test_accepted(void **state)
{
	Cocoon__CriuOptions o = COCOON__CRIU_OPTIONS__INIT;
	struct error *err = NULL;
	int r = criu_config_parse(
		"# comment\n\nghost-limit 4M\n--tcp-established\n  skip-in-flight  # why\n"
		"verbosity=4\n",
		"c.conf", &o, &err);
	assert_int_equal(r, 0);
	assert_int_equal(o.n_config, 4);
	assert_string_equal(o.config[0], "ghost-limit 4M");
	assert_string_equal(o.config[1], "tcp-established");
	assert_string_equal(o.config[2], "skip-in-flight");
	/* An optional argument is attached with '=': getopt takes it no
	 * other way. */
	assert_string_equal(o.config[3], "verbosity=4");
	criu_config_free(&o);
}

static void expect_refused(const char *text, const char *needle)
{
	Cocoon__CriuOptions o = COCOON__CRIU_OPTIONS__INIT;
	struct error *err = NULL;
	int r = criu_config_parse(text, "c.conf", &o, &err);
	if (r == 0 || !err || !strstr(err->msg, needle))
		fail_msg("for <<%s>> expected an error containing '%s', got: %s", text, needle,
			 err ? err->msg : "success");
	error_free(&err);
	criu_config_free(&o);
}

static void test_refused(void **state)
{
	expect_refused("page-server\n", "c.conf:1: CRIU option 'page-server' cannot be used");
	expect_refused("ghost-limit 1M\nexternal mnt[a]:b\n", "c.conf:2");
	expect_refused("images-dir /x\n", "--image-path");
	expect_refused("frobnicate\n", "not supported by cocoon");
	/* Names the guest's CRIU does not have: refused before CRIU stops on
	 * them with no line in its log. */
	expect_refused(
		"log-level 4\n",
		"c.conf:1: CRIU option 'log-level' cannot be used with cocoon: the guest's CRIU 3.17 has no such option; use 'verbosity'");
	expect_refused("skip-file-rwx-check\n", "CRIU 4.0");
	expect_refused("ghost-limit \"1M\"\n", "quotes");
	/* CRIU makes every further word of a line an argument of its own: a
	 * second word would smuggle in an option refused above. */
	expect_refused(
		"ghost-limit 1M --skip-file-rwx-check\n",
		"c.conf:1: CRIU option 'ghost-limit' takes one value, not '1M --skip-file-rwx-check'");
	expect_refused("tcp-established --page-server\n",
		       "c.conf:1: CRIU option 'tcp-established' takes no value");
	expect_refused("shell-job\tpage-server\n", "takes no value");
	expect_refused("ext-unix-sk 1 --tree=1\n", "takes one value");
	/* Without its value, CRIU would take the next line's option as it. */
	expect_refused("ghost-limit\ntcp-established\n",
		       "c.conf:1: CRIU option 'ghost-limit' needs a value");
	char big[64 * 20 + 100] = "";
	for (int i = 0; i < 70; i++)
		strcat(big, "shell-job\n");
	expect_refused(big, "at most");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
