/* The kernel settings of config.json the guest applies (docs/lifecycle.md,
 * "Kernel settings of the container"): what the host takes from the spec,
 * and that a bad value is an error naming the field and the value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

#include "spec-fixture.h"

#define WITH_PROCESS(extra)                                                                        \
	"{\"ociVersion\": \"1.0.2\", " ROOT ", " LINUX                                             \
	", \"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", " extra "}}"

static void test_oom_score_adj(void **st)
{
	struct oci_bundle b;
	write_spec(WITH_PROCESS("\"oomScoreAdj\": -1000"));
	assert_int_equal(spec_load(bundle, "c1", &b, NULL), 0);
	assert_true(b.spec->process->has_oom_score_adj);
	assert_int_equal(b.spec->process->oom_score_adj, -1000);
	assert_false(warned(&b, "oomScoreAdj"));
	spec_free(&b);
	write_spec(WITH_PROCESS("\"oomScoreAdj\": 0"));
	assert_int_equal(spec_load(bundle, "c1", &b, NULL), 0);
	assert_true(b.spec->process->has_oom_score_adj);
	spec_free(&b);
	write_spec(WITH_PROCESS("\"env\": []"));
	assert_int_equal(spec_load(bundle, "c1", &b, NULL), 0);
	assert_false(b.spec->process->has_oom_score_adj);
	spec_free(&b);
	expect_error(WITH_PROCESS("\"oomScoreAdj\": 1001"),
		     "process.oomScoreAdj 1001 is outside the kernel's range -1000..1000");
	expect_error(WITH_PROCESS("\"oomScoreAdj\": -4294967296"),
		     "process.oomScoreAdj -4294967296");
	expect_error(WITH_PROCESS("\"oomScoreAdj\": 1.5"),
		     "process.oomScoreAdj: expected an integer");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_oom_score_adj, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
