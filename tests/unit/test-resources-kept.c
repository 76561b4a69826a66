/* resources-kept.h: limits changed by update, kept across checkpoint and
 * restore. */
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

#include "images.h"
#include "resources-kept.h"

static char dir[64];

static int setup(void **st)
{
	(void)st;
	snprintf(dir, sizeof(dir), "/tmp/cocoon-test-kept.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	char p[128];
	snprintf(p, sizeof(p), "%s/" RESOURCES_KEPT_FILE, dir);
	unlink(p);
	rmdir(dir);
	return 0;
}

/* Two updates, then a restore over a bundle's limits: each value the last
 * update set wins, what no update touched stays the bundle's. */
static void test_updates_kept_and_laid_over_the_bundle(void **st)
{
	(void)st;
	assert_null(resources_kept_read(dir));
	Cocoon__UpdateRequest u = COCOON__UPDATE_REQUEST__INIT;
	Cocoon__Resources r = COCOON__RESOURCES__INIT;
	u.set_memory = u.set_cpu_max = u.keep_cpu_period = true;
	r.memory_limit = 200 << 20;
	r.cpu_quota = 30000;
	assert_int_equal(resources_kept_record(dir, &u, &r, NULL), 0);
	Cocoon__UpdateRequest u2 = COCOON__UPDATE_REQUEST__INIT;
	Cocoon__Resources r2 = COCOON__RESOURCES__INIT;
	u2.set_pids = u2.set_memory = true; /* pids lifted, memory 96 MiB */
	r2.memory_limit = 96 << 20;
	assert_int_equal(resources_kept_record(dir, &u2, &r2, NULL), 0);
	char *json = resources_kept_read(dir);
	assert_non_null(json);

	Cocoon__Resources bundle = COCOON__RESOURCES__INIT;
	bundle.memory_limit = 64 << 20;
	bundle.pids_limit = 10;
	bundle.cpu_quota = 50000;
	bundle.cpu_period = 100000;
	bundle.cpu_shares = 512;
	assert_int_equal(resources_kept_apply(json, &bundle, NULL), 0);
	assert_int_equal(bundle.memory_limit, 96 << 20);
	assert_int_equal(bundle.pids_limit, 0); /* lifted: none */
	assert_int_equal(bundle.cpu_quota, 30000);
	assert_int_equal(bundle.cpu_period, 100000); /* kept: no update set it */
	assert_int_equal(bundle.cpu_shares, 512);
	free(json);
}

/* cocoon.json's "resources" comes from a checkpoint directory: untrusted,
 * checked as update --resources is, and carried into the chain. */
static void test_manifest_resources_are_checked(void **st)
{
	(void)st;
	struct images_limits lim = {.max_files = 100, .max_bytes = 1 << 20};
	struct images_meta m;
	struct error *err = NULL;
	char text[512];
#define HEAD "{\"format\": %d, \"version\": \"%s\", \"files\": {}, \"resources\": %s}"
	snprintf(text, sizeof(text), HEAD, IMAGES_FORMAT, COCOON_VERSION,
		 "{\"memory\": {\"limit\": 100663296}, \"pids\": {\"limit\": -1}}");
	if (images_meta_parse(text, strlen(text), &lim, &m, &err) < 0)
		fail_msg("%s", err->msg);
	assert_string_equal(m.resources,
			    "{\"memory\":{\"limit\":100663296},\"pids\":{\"limit\":-1}}");
	images_meta_free(&m);
	static const char *const bad[][2] = {
		{"{\"memory\": {\"limit\": -9}}", "resources.memory.limit: -9 is negative"},
		{"{\"cpu\": {\"quota\": 10}}", "resources.cpu.quota: 10 us is below"},
		{"[1]", "resources: expected an object"},
		{"{\"pids\": \"all\"}", "resources.pids: expected an object"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), HEAD, IMAGES_FORMAT, COCOON_VERSION, bad[i][0]);
		if (images_meta_parse(text, strlen(text), &lim, &m, &err) == 0 || !err ||
		    !strstr(err->msg, bad[i][1]))
			fail_msg("<<%s>>: expected '%s', got %s", bad[i][0], bad[i][1],
				 err ? err->msg : "success");
		error_free(&err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_updates_kept_and_laid_over_the_bundle, setup,
						teardown),
		cmocka_unit_test(test_manifest_resources_are_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
