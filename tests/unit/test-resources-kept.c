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

#include <sys/stat.h>

#include "config.h"
#include "images.h"
#include "resources-kept.h"
#include "resources.h"

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

static Cocoon__Resources bundle_limits(void)
{
	Cocoon__Resources b = COCOON__RESOURCES__INIT;
	b.memory_limit = 64 << 20;
	b.pids_limit = 10;
	b.cpu_quota = 50000;
	b.cpu_period = 100000;
	b.cpu_shares = 512;
	return b;
}

/* A host's [vm] section: 512 MiB and 1 vCPU unless a bundle's limits say
 * otherwise, at most 64 GiB and 64 vCPUs. */
static struct cocoon_config host_cfg(void)
{
	struct cocoon_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.memory_mib = 512;
	cfg.vcpus = 1;
	cfg.max_memory_mib = 65536;
	cfg.max_vcpus = 64;
	cfg.enable_checkpoint = true;
	return cfg;
}

/* The part of json that resources_kept_lower_only takes over bundle b,
 * laid over b; dropped names the rest. */
static Cocoon__Resources lowered(const char *json, Cocoon__Resources b, char *dropped, size_t size)
{
	struct error *err = NULL;
	struct cocoon_config cfg = host_cfg();
	char *taken = resources_kept_lower_only(&cfg, json, &b, 0, dropped, size, &err);
	if (!taken)
		fail_msg("%s", err->msg);
	assert_int_equal(resources_kept_apply(taken, &b, NULL), 0);
	free(taken);
	return b;
}

/* A checkpoint directory is untrusted: its "resources" (what update set)
 * may lower the restoring bundle's limits, never raise or lift them, nor
 * size the VM past them (the VM's size comes from the result). */
static void test_a_foreign_checkpoint_only_lowers(void **st)
{
	(void)st;
	char dropped[128];
	Cocoon__Resources b =
		lowered("{\"memory\": {\"limit\": 125829120}, \"pids\": {\"limit\": -1}, "
			"\"cpu\": {\"quota\": 80000, \"shares\": 2048}}",
			bundle_limits(), dropped, sizeof(dropped));
	assert_string_equal(dropped, "memory.limit, pids.limit, cpu.quota/cpu.period, cpu.shares");
	Cocoon__Resources want = bundle_limits();
	assert_int_equal(b.memory_limit, want.memory_limit);
	assert_int_equal(b.pids_limit, want.pids_limit);
	assert_int_equal(b.cpu_quota, want.cpu_quota);
	assert_int_equal(b.cpu_period, want.cpu_period);
	assert_int_equal(b.cpu_shares, want.cpu_shares);
	/* A shorter period with a quota that looks smaller: 30 of 50 ms is
	 * more than the bundle's 50 of 100. */
	b = lowered("{\"cpu\": {\"quota\": 30000, \"period\": 50000}}", bundle_limits(), dropped,
		    sizeof(dropped));
	assert_string_equal(dropped, "cpu.quota/cpu.period");
	assert_int_equal(b.cpu_quota, 50000);
	/* Lower: all taken. */
	b = lowered("{\"memory\": {\"limit\": 33554432}, \"pids\": {\"limit\": 5}, "
		    "\"cpu\": {\"quota\": 20000, \"period\": 50000, \"shares\": 256}}",
		    bundle_limits(), dropped, sizeof(dropped));
	assert_string_equal(dropped, "");
	assert_int_equal(b.memory_limit, 32 << 20);
	assert_int_equal(b.pids_limit, 5);
	assert_int_equal(b.cpu_quota, 20000);
	assert_int_equal(b.cpu_period, 50000);
	assert_int_equal(b.cpu_shares, 256);
	/* A bundle without limits: any limit lowers it; a lift changes
	 * nothing. */
	Cocoon__Resources none = COCOON__RESOURCES__INIT;
	b = lowered("{\"memory\": {\"limit\": 125829120}, \"pids\": {\"limit\": -1}, "
		    "\"cpu\": {\"quota\": 80000}}",
		    none, dropped, sizeof(dropped));
	assert_string_equal(dropped, "");
	assert_int_equal(b.memory_limit, 120 << 20);
	assert_int_equal(b.pids_limit, 0);
	assert_int_equal(b.cpu_quota, 80000);
	/* Bad JSON is an error, as at create. */
	struct error *err = NULL;
	assert_null(resources_kept_lower_only(NULL, "{\"memory\": {\"limit\": -9}}", &none, 0,
					      dropped, sizeof(dropped), &err));
	assert_non_null(err);
	error_free(&err);
}

/* rev11b F1: a limit where the bundle has none lowers the cgroup, but a
 * VM is sized from it: a foreign checkpoint's 30 GiB and 64 CPUs grew the
 * VM of a bundle without limits (podman run with no -m/--cpus) from 512
 * MiB and 1 vCPU to the host's maxima. The VM never gets past what the
 * bundle alone gives; a small limit still lowers. */
static void test_a_foreign_checkpoint_does_not_grow_the_vm(void **st)
{
	(void)st;
	struct cocoon_config cfg = host_cfg();
	Cocoon__Resources none = COCOON__RESOURCES__INIT;
	int base_mib = 0, base_cpus = 0, mib = 0, cpus = 0;
	char dropped[512];
	assert_int_equal(resources_vm_size(&cfg, &none, 0, &base_mib, &base_cpus, NULL), 0);
	assert_int_equal(base_mib, 512);
	static const char *const giants[] = {
		/* 30 GiB: 61568 MiB of VM; then one past vm.max_memory_mib. */
		"{\"memory\": {\"limit\": 32212254720}, \"cpu\": {\"quota\": 6400000, \"period\": 100000}}",
		"{\"memory\": {\"limit\": 70368744177664}, \"cpu\": {\"quota\": 200000, \"period\": 100000}}",
		/* 300 MiB: 728 MiB of VM with checkpoints on. */
		"{\"memory\": {\"limit\": 314572800}, \"cpu\": {\"quota\": 150000, \"period\": 100000}}",
	};
	for (size_t i = 0; i < sizeof(giants) / sizeof(giants[0]); i++) {
		Cocoon__Resources b = lowered(giants[i], none, dropped, sizeof(dropped));
		assert_int_equal(resources_vm_size(&cfg, &b, 0, &mib, &cpus, NULL), 0);
		if (mib > base_mib || cpus > base_cpus)
			fail_msg(
				"%s: the bundle alone: %d MiB %d vCPUs; with the checkpoint's limits: %d MiB %d vCPUs (dropped: '%s')",
				giants[i], base_mib, base_cpus, mib, cpus, dropped);
		assert_int_equal(b.memory_limit, 0);
		assert_int_equal(b.cpu_quota, 0);
		assert_non_null(strstr(
			dropped, "memory.limit (it would size the VM past the bundle's 512 MiB)"));
		assert_non_null(strstr(dropped, "cpu.quota/cpu.period ("));
	}
	/* Within the VM the bundle gives: taken, the VM no larger. */
	Cocoon__Resources b =
		lowered("{\"memory\": {\"limit\": 104857600}, \"cpu\": {\"quota\": 50000}}", none,
			dropped, sizeof(dropped));
	assert_string_equal(dropped, "");
	assert_int_equal(b.memory_limit, 100 << 20);
	assert_int_equal(b.cpu_quota, 50000);
	assert_int_equal(resources_vm_size(&cfg, &b, 0, &mib, &cpus, NULL), 0);
	assert_true(mib <= base_mib && cpus <= base_cpus);
	/* A bundle with a cpuset of 4 CPUs: 4 vCPUs; a quota of 3 lowers it,
	 * one of 8 would grow it. */
	struct error *err = NULL;
	char *taken = resources_kept_lower_only(
		&cfg, "{\"cpu\": {\"quota\": 300000, \"period\": 100000}}", &none, 4, dropped,
		sizeof(dropped), &err);
	assert_non_null(taken);
	assert_string_equal(dropped, "");
	free(taken);
	taken = resources_kept_lower_only(&cfg,
					  "{\"cpu\": {\"quota\": 800000, \"period\": 100000}}",
					  &none, 4, dropped, sizeof(dropped), &err);
	assert_non_null(taken);
	assert_string_equal(taken, "{}");
	assert_string_equal(dropped, "cpu.quota/cpu.period (8 vCPUs, past the bundle's 4)");
	free(taken);
}

/* This host's note of what a checkpoint carried: the same limits (as
 * JSON, in any order) under the same real path, nothing else. */
static void test_host_note_vouches_for_its_own_checkpoints_only(void **st)
{
	(void)st;
	char ck[128], other[128], notes[128];
	struct cocoon_config cfg = {0};
	snprintf(notes, sizeof(notes), "%s/host", dir);
	cfg.host_checkpoint_dir = notes;
	snprintf(ck, sizeof(ck), "%s/ck", dir);
	snprintf(other, sizeof(other), "%s/other", dir);
	assert_int_equal(mkdir(ck, 0700), 0);
	assert_int_equal(mkdir(other, 0700), 0);
	const char *kept = "{\"memory\":{\"limit\":125829120},\"pids\":{\"limit\":-1}}";
	assert_false(resources_kept_noted(&cfg, ck, kept));
	assert_int_equal(resources_kept_note(&cfg, ck, kept, NULL), 0);
	assert_true(resources_kept_noted(
		&cfg, ck, "{ \"pids\": {\"limit\": -1}, \"memory\": {\"limit\": 125829120} }"));
	assert_false(resources_kept_noted(&cfg, ck, "{\"memory\":{\"limit\":125829121}}"));
	assert_false(resources_kept_noted(&cfg, other, kept));
	assert_false(resources_kept_noted(&cfg, ck, NULL));
	/* A later checkpoint there without limits takes the note back. */
	assert_int_equal(resources_kept_note(&cfg, ck, NULL, NULL), 0);
	assert_false(resources_kept_noted(&cfg, ck, kept));
	char p[512];
	snprintf(p, sizeof(p), "rm -rf '%s' '%s' '%s'", notes, ck, other);
	assert_int_equal(system(p), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_updates_kept_and_laid_over_the_bundle, setup,
						teardown),
		cmocka_unit_test(test_manifest_resources_are_checked),
		cmocka_unit_test(test_a_foreign_checkpoint_only_lowers),
		cmocka_unit_test(test_a_foreign_checkpoint_does_not_grow_the_vm),
		cmocka_unit_test_setup_teardown(test_host_note_vouches_for_its_own_checkpoints_only,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
