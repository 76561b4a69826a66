/* The OCI spec reader's limits: linux.resources and the VM size they make,
 * `update`'s resources file, the values the kernel would refuse (rlimits,
 * cpu.max, hostname...), linux.cgroupsPath (spec-resources.c) and the cgroup
 * files the shim shows the engines (cgroup-mirror-render.c). */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/mount.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup-mirror.h"
#include "config.h"
#include "paths.h"
#include "pod.h"
#include "resources.h"
#include "spec.h"

#include "spec-fixture.h"

static void test_resources_and_vm_size(void **st)
{
	struct oci_bundle b;
	struct cocoon_config cfg;
	int mem, cpus;
	config_init_defaults(&cfg);
	cfg.max_memory_mib = 4096;
	cfg.max_vcpus = 4;
	write_spec(
		"{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS
		", \"linux\": {\"namespaces\": [{\"type\": \"network\"}], \"resources\": {\"memory\": {\"limit\": 268435456}, \"pids\": {\"limit\": 10},\"cpu\": {\"quota\": 250000, \"period\": 100000, \"shares\": 512, \"cpus\": \"0-1\"},\"blockIO\": {}}}}");
	assert_int_equal(spec_load(bundle, "c1", &b, NULL), 0);
	assert_int_equal(b.spec->resources->memory_limit, 256 << 20);
	assert_int_equal(b.spec->resources->pids_limit, 10);
	assert_int_equal(b.spec->resources->cpu_shares, 512);
	assert_int_equal(b.cpuset_cpus, 2);
	assert_non_null(strstr(b.warnings[0], "linux.resources.blockIO"));
	assert_int_equal(
		resources_vm_size(&cfg, b.spec->resources, b.cpuset_cpus, &mem, &cpus, NULL), 0);
	assert_int_equal(mem, 256 + RESOURCES_GUEST_OVERHEAD_MIB + 256);
	assert_int_equal(cpus, 3);
	b.spec->resources->cpu_quota = 0;
	assert_int_equal(
		resources_vm_size(&cfg, b.spec->resources, b.cpuset_cpus, &mem, &cpus, NULL), 0);
	assert_int_equal(cpus, 2);
	b.spec->resources->memory_limit = 8ULL << 30;
	struct error *err = NULL;
	assert_int_not_equal(resources_vm_size(&cfg, b.spec->resources, 0, &mem, &cpus, &err), 0);
	assert_non_null(strstr(err->msg, "vm.max_memory_mib = 4096"));
	error_free(&err);
	assert_int_equal(resources_vm_size(&cfg, NULL, 0, &mem, &cpus, NULL), 0);
	assert_int_equal(mem, 512);
	assert_int_equal(cpus, 1);
	assert_int_equal(spec_cpuset_count("0-3,6"), 5);
	assert_int_equal(spec_cpuset_count("3-1"), -1);
	assert_int_equal(spec_cpuset_count("x"), -1);
	spec_free(&b);
	config_free(&cfg);
}

/* runc update --resources: 0 or absent keeps, -1 lifts; the rest is named. */
static void test_update_resources_json(void **st)
{
	Cocoon__UpdateRequest u = COCOON__UPDATE_REQUEST__INIT;
	Cocoon__Resources r = COCOON__RESOURCES__INIT;
	char ignored[256];
	struct error *err = NULL;
	assert_int_equal(
		resources_update_from_json(
			"{\"memory\": {\"limit\": 104857600, \"swap\": 5}, \"pids\": {\"limit\": 0}, \"cpu\": {\"shares\": 512, \"cpus\": \"\"}, \"devices\": [], \"blockIO\": {\"weight\": 10}}",
			&u, &r, ignored, sizeof(ignored), NULL),
		0);
	assert_true(u.set_memory && !u.set_pids && !u.set_cpu_max && u.set_cpu_weight);
	assert_int_equal(r.memory_limit, 100 << 20);
	assert_int_equal(r.cpu_shares, 512);
	assert_string_equal(ignored, "swap, blockIO");
	Cocoon__UpdateRequest u2 = COCOON__UPDATE_REQUEST__INIT;
	Cocoon__Resources r2 = COCOON__RESOURCES__INIT;
	assert_int_equal(
		resources_update_from_json(
			"{\"memory\": {\"limit\": -1}, \"pids\": {\"limit\": -1}, \"cpu\": {\"quota\": -1, \"period\": 200000}}",
			&u2, &r2, ignored, sizeof(ignored), NULL),
		0);
	assert_true(u2.set_memory && u2.set_pids && u2.set_cpu_max);
	assert_int_equal(r2.memory_limit, 0);
	assert_int_equal(r2.pids_limit, 0);
	assert_int_equal(r2.cpu_period, 200000);
	assert_true(!u2.keep_cpu_quota && !u2.keep_cpu_period);
	/* A quota alone keeps the current period (runc update), and the
	 * other way round. */
	Cocoon__UpdateRequest u3 = COCOON__UPDATE_REQUEST__INIT;
	Cocoon__Resources r3 = COCOON__RESOURCES__INIT;
	assert_int_equal(resources_update_from_json("{\"cpu\": {\"quota\": 30000}}", &u3, &r3,
						    ignored, sizeof(ignored), NULL),
			 0);
	assert_true(u3.set_cpu_max && !u3.keep_cpu_quota && u3.keep_cpu_period);
	assert_int_equal(r3.cpu_quota, 30000);
	Cocoon__UpdateRequest u4 = COCOON__UPDATE_REQUEST__INIT;
	assert_int_equal(resources_update_from_json("{\"cpu\": {\"period\": 50000}}", &u4, &r3,
						    ignored, sizeof(ignored), NULL),
			 0);
	assert_true(u4.set_cpu_max && u4.keep_cpu_quota && !u4.keep_cpu_period);
	assert_int_not_equal(
		resources_update_from_json("[1]", &u2, &r2, ignored, sizeof(ignored), &err), 0);
	error_free(&err);
	assert_int_not_equal(resources_update_from_json("{\"pids\": {\"limit\": \"x\"}}", &u2, &r2,
							ignored, sizeof(ignored), &err),
			     0);
	assert_non_null(strstr(err->msg, "pids.limit"));
	error_free(&err);
	/* A VM of 256 MiB gives a container at most 128 MiB. */
	assert_int_equal(resources_update_fits(256, 128 << 20, NULL), 0);
	assert_int_equal(resources_update_fits(256, 0, NULL), 0);
	assert_int_not_equal(resources_update_fits(256, (128 << 20) + 1, &err), 0);
	assert_non_null(strstr(err->msg, "its 256 MiB"));
	error_free(&err);
}

/* Values the guest's kernel would refuse after the boot, or that would be
 * taken as something else without a word: each refused while config.json
 * is read, naming the field. */
#define WITH_PROCESS(extra)                                                                        \
	"{\"ociVersion\": \"1.0.2\", " ROOT ", " LINUX ", \"process\": {\"args\": [\"sh\"], "      \
	"\"cwd\": \"/\", " extra "}}"
#define WITH_RESOURCES(res)                                                                        \
	"{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS ", \"linux\": {\"namespaces\": "          \
	"[{\"type\": \"network\"}], \"resources\": " res "}}"

static void test_values_the_kernel_refuses(void **st)
{
	expect_error(WITH_PROCESS("\"rlimits\": [{\"type\": \"RLIMIT_FOO\", \"hard\": 1, "
				  "\"soft\": 1}]"),
		     "process.rlimits[0].type: unknown limit 'RLIMIT_FOO'");
	expect_error(
		WITH_PROCESS("\"rlimits\": [{\"type\": \"NOFILE\", \"hard\": 1, \"soft\": 1}]"),
		"unknown limit 'NOFILE'");
	expect_error(WITH_PROCESS("\"rlimits\": [{\"type\": \"RLIMIT_NOFILE\", \"hard\": 10, "
				  "\"soft\": 20}]"),
		     "process.rlimits[0] (RLIMIT_NOFILE): soft 20 is above hard 10");
	expect_error(
		WITH_PROCESS(
			"\"rlimits\": [{\"type\": \"RLIMIT_CORE\", \"hard\": 1, "
			"\"soft\": 1}, {\"type\": \"RLIMIT_CORE\", \"hard\": 2, \"soft\": 2}]"),
		"process.rlimits[1].type: RLIMIT_CORE is set twice");
	expect_error(WITH_PROCESS("\"rlimits\": [{\"type\": \"RLIMIT_CORE\", \"soft\": 1}]"),
		     "process.rlimits[0].hard is required");
	expect_error(WITH_PROCESS("\"rlimits\": [{\"type\": \"RLIMIT_CORE\", \"hard\": -1, "
				  "\"soft\": 1}]"),
		     "process.rlimits[0].hard");
	expect_error("{\"ociVersion\": 5, " ROOT ", " PROCESS ", " LINUX "}",
		     "ociVersion: expected string");
	expect_error("{\"ociVersion\": null, " ROOT ", " PROCESS ", " LINUX "}",
		     "ociVersion is required");
	char big[10400];
	int n = snprintf(big, sizeof(big),
			 "{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS ", " LINUX
			 ", \"hostname\": \"");
	memset(big + n, 'h', 10000);
	snprintf(big + n + 10000, sizeof(big) - (size_t)n - 10000, "\"}");
	expect_error(big, "hostname is 10000 bytes; the kernel takes at most 64");
	expect_error(WITH_RESOURCES("{\"memory\": {\"limit\": -5}}"),
		     "linux.resources.memory.limit: -5 is negative (-1 means no limit)");
	expect_error(WITH_RESOURCES("{\"pids\": {\"limit\": -2}}"), "linux.resources.pids.limit");
	expect_error(WITH_RESOURCES("{\"cpu\": {\"quota\": -7}}"), "linux.resources.cpu.quota");
	expect_error(WITH_RESOURCES("{\"cpu\": {\"quota\": 50000, \"period\": 0}}"),
		     "linux.resources.cpu.period: 0 us is below the kernel's 1000 us");
	expect_error(WITH_RESOURCES("{\"cpu\": {\"quota\": 500, \"period\": 100000}}"),
		     "linux.resources.cpu.quota: 500 us is below");
	expect_error(WITH_RESOURCES("{\"memory\": {\"limit\": \"1G\"}}"),
		     "linux.resources.memory.limit: expected an integer");

	/* What stays accepted: -1 for no limit, 64 bytes of hostname, every
	 * RLIMIT_ name, and a destination with ".." inside a name. */
	struct oci_bundle b;
	struct error *err = NULL;
	write_spec(
		"{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS
		", \"hostname\": \"hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh\", "
		"\"mounts\": [{\"destination\": \"/a..b\", \"type\": \"tmpfs\", \"source\": \"tmpfs\"}], "
		"\"linux\": {\"namespaces\": [{\"type\": \"network\"}], \"resources\": {\"memory\": "
		"{\"limit\": -1}, \"pids\": {\"limit\": -1}, \"cpu\": {\"quota\": -1, \"period\": "
		"100000}}}}");
	if (spec_load(bundle, "c1", &b, &err) < 0)
		fail_msg("%s", err->msg);
	assert_int_equal(b.spec->resources->memory_limit, 0);
	assert_int_equal(b.spec->resources->cpu_quota, 0);
	spec_free(&b);
	static const char *const all[] = {
		"AS",	"CORE",	  "CPU",   "DATA", "FSIZE",  "LOCKS",  "MEMLOCK",    "MSGQUEUE",
		"NICE", "NOFILE", "NPROC", "RSS",  "RTPRIO", "RTTIME", "SIGPENDING", "STACK"};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		char text[512];
		snprintf(text, sizeof(text),
			 WITH_PROCESS("\"rlimits\": [{\"type\": \"RLIMIT_%s\", \"hard\": 4, "
				      "\"soft\": 4}]"),
			 all[i]);
		write_spec(text);
		if (spec_load(bundle, "c1", &b, &err) < 0)
			fail_msg("RLIMIT_%s: %s", all[i], err->msg);
		spec_free(&b);
	}
	expect_error("{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS ", " LINUX
		     ", \"mounts\": [{\"destination\": \"/a/../etc\", \"type\": \"tmpfs\"}]}",
		     "without '..'");
}

/* update --resources takes the same values create does: each one config.json
 * refuses is refused by update too, naming the same field (before, update
 * took memory.limit -2 as "no limit", a 500 us quota, a string for an
 * object, 300000 shares). */
static void test_update_json_gets_the_spec_checks(void **st)
{
	static const struct {
		const char *res, *field, *why;
	} bad[] = {
		{"{\"memory\": {\"limit\": -2}}", "memory.limit",
		 "-2 is negative (-1 means no limit)"},
		{"{\"pids\": {\"limit\": -5}}", "pids.limit", "-5 is negative"},
		{"{\"cpu\": {\"quota\": -7}}", "cpu.quota", "-7 is negative"},
		{"{\"cpu\": {\"quota\": 500}}", "cpu.quota",
		 "500 us is below the kernel's 1000 us"},
		{"{\"cpu\": {\"period\": 999}}", "cpu.period",
		 "999 us is below the kernel's 1000 us"},
		{"{\"cpu\": {\"period\": 2000000}}", "cpu.period", "2000000 is out of range"},
		{"{\"cpu\": {\"shares\": 300000}}", "cpu.shares", "300000 is out of range"},
		{"{\"cpu\": {\"shares\": -1}}", "cpu.shares", "-1 is out of range"},
		{"{\"memory\": \"1G\"}", "memory", "expected an object"},
		{"{\"pids\": [10]}", "pids", "expected an object"},
		{"{\"memory\": {\"limit\": 1.5}}", "memory.limit", "expected an integer"},
		{"{\"cpu\": {\"quota\": \"max\"}}", "cpu.quota", "expected an integer"},
	};
	char spec[1024], want[256], ignored[256];
	(void)st;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(spec, sizeof(spec), WITH_RESOURCES("%s"), bad[i].res);
		snprintf(want, sizeof(want), "config.json: linux.resources.%s: %s", bad[i].field,
			 bad[i].why);
		expect_error(spec, want);
		Cocoon__UpdateRequest u = COCOON__UPDATE_REQUEST__INIT;
		Cocoon__Resources r = COCOON__RESOURCES__INIT;
		struct error *err = NULL;
		snprintf(want, sizeof(want), "--resources: %s: %s", bad[i].field, bad[i].why);
		if (resources_update_from_json(bad[i].res, &u, &r, ignored, sizeof(ignored),
					       &err) == 0 ||
		    !err || strncmp(err->msg, want, strlen(want)) != 0)
			fail_msg("update --resources <<%s>>: expected '%s', got: %s", bad[i].res,
				 want, err ? err->msg : "success");
		/* Nothing half-done: no limit is marked to be set. */
		assert_false(u.set_memory || u.set_pids || u.set_cpu_max || u.set_cpu_weight);
		error_free(&err);
	}
	/* update's own reading stays: 0 leaves a value as it is, so a period of
	 * 0 is no error there (in config.json a given 0 is). */
	Cocoon__UpdateRequest u = COCOON__UPDATE_REQUEST__INIT;
	Cocoon__Resources r = COCOON__RESOURCES__INIT;
	assert_int_equal(resources_update_from_json("{\"cpu\": {\"quota\": 20000, \"period\": 0}}",
						    &u, &r, ignored, sizeof(ignored), NULL),
			 0);
	assert_true(u.set_cpu_max && u.keep_cpu_period && r.cpu_quota == 20000);
	expect_error(WITH_RESOURCES("{\"cpu\": {\"quota\": 20000, \"period\": 0}}"),
		     "config.json: linux.resources.cpu.period: 0 us is below the kernel's 1000 us");
}

/* linux.cgroupsPath as runc's drivers name it (cgroup-mirror.h). */
static void test_cgroups_path(void **st)
{
	char out[CGMIRROR_PATH_MAX];
	struct error *err = NULL;
	assert_int_equal(cgmirror_path("/libpod_parent/libpod-abc", out, sizeof(out), NULL), 0);
	assert_string_equal(out, "/libpod_parent/libpod-abc");
	assert_int_equal(cgmirror_path("default//x/", out, sizeof(out), NULL), 0);
	assert_string_equal(out, "/default/x");
	assert_int_equal(cgmirror_path("machine.slice:libpod:abc", out, sizeof(out), NULL), 0);
	assert_string_equal(out, "/machine.slice/libpod-abc.scope");
	assert_int_equal(cgmirror_path("a-b-c.slice:cri:x", out, sizeof(out), NULL), 0);
	assert_string_equal(out, "/a.slice/a-b.slice/a-b-c.slice/cri-x.scope");
	assert_int_equal(cgmirror_path(":cri:x", out, sizeof(out), NULL), 0);
	assert_string_equal(out, "/system.slice/cri-x.scope");
	static const char *const bad[] = {
		"/", "", "/a/../b", "/a/./b", "..", "a-.slice:p:n", "noslice:p:n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_not_equal(cgmirror_path(bad[i], out, sizeof(out), &err), 0);
		assert_non_null(strstr(err->msg, "linux.cgroupsPath"));
		error_free(&err);
	}
}

/* The figures in the kernel's formats the engines parse. */
static void test_cgroup_mirror_render(void **st)
{
	Cocoon__StatsReply r = COCOON__STATS_REPLY__INIT;
	Cocoon__StatEntry anon = COCOON__STAT_ENTRY__INIT, file = COCOON__STAT_ENTRY__INIT,
			  evil = COCOON__STAT_ENTRY__INIT;
	Cocoon__StatEntry *entries[] = {&anon, &file, &evil};
	char buf[4096];
	anon.key = "anon";
	anon.value = 40 << 20;
	file.key = "file";
	file.value = 4096;
	evil.key = "x\nmemory.usage_in_bytes 1";
	evil.value = 7;
	r.memory_stat = entries;
	r.n_memory_stat = 3;
	r.memory_current = 42 << 20;
	r.memory_peak = 43 << 20;
	r.guest_memory_total = 200 << 20;
	r.cpu_usage_usec = 1500000;
	r.cpu_user_usec = 1000000;
	r.cpu_system_usec = 500000;
	r.pids_current = 2;
	r.pids_max = 10;
	assert_true(cgmirror_render("memory.usage_in_bytes", false, &r, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "44040192\n");
	/* No limit: the VM's memory is the cap. */
	cgmirror_render("memory.limit_in_bytes", false, &r, buf, sizeof(buf));
	assert_string_equal(buf, "209715200\n");
	r.memory_max = 96 << 20;
	cgmirror_render("memory.memsw.limit_in_bytes", false, &r, buf, sizeof(buf));
	assert_string_equal(buf, "100663296\n");
	cgmirror_render("memory.max_usage_in_bytes", false, &r, buf, sizeof(buf));
	assert_string_equal(buf, "45088768\n");
	cgmirror_render("memory.stat", false, &r, buf, sizeof(buf));
	assert_non_null(strstr(buf, "cache 4096\nrss 41943040\n"));
	assert_non_null(strstr(buf, "total_rss 41943040\n"));
	assert_null(strstr(buf, "x\n")); /* the guest's key names never reach the host */
	cgmirror_render("cpuacct.usage", false, &r, buf, sizeof(buf));
	assert_string_equal(buf, "1500000000\n");
	cgmirror_render("cpuacct.stat", false, &r, buf, sizeof(buf));
	assert_string_equal(buf, "user 100\nsystem 50\n");
	cgmirror_render("pids.max", false, &r, buf, sizeof(buf));
	assert_string_equal(buf, "10\n");
	cgmirror_render("memory.stat", true, &r, buf, sizeof(buf));
	assert_string_equal(buf, "anon 41943040\nfile 4096\n");
	cgmirror_render("memory.max", true, &r, buf, sizeof(buf));
	assert_string_equal(buf, "100663296\n");
	cgmirror_render("cpu.stat", true, &r, buf, sizeof(buf));
	assert_non_null(strstr(buf, "usage_usec 1500000\nuser_usec 1000000\n"));
	r.pids_max = 0;
	cgmirror_render("pids.max", true, &r, buf, sizeof(buf));
	assert_string_equal(buf, "max\n");
	assert_int_equal(cgmirror_render("cgroup.procs", false, &r, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(cgmirror_render("memory.stat", false, &r, buf, 8), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_resources_and_vm_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_resources_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_values_the_kernel_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_json_gets_the_spec_checks, setup,
						teardown),
		cmocka_unit_test(test_cgroups_path),
		cmocka_unit_test(test_cgroup_mirror_render),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
