/* update.h and stats.h: runc update's options and --resources into one
 * request, and the guest's figures into runc's stats event. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cleanup.h"
#include "unit-file.h"
#include "stats.h"
#include "update.h"

static void test_sizes(void **st)
{
	(void)st;
	static const struct {
		const char *in;
		int64_t want;
	} ok[] = {{"0", 0},	      {"-1", -1},
		  {"4096", 4096},     {"4096b", 4096},
		  {"2k", 2048},	      {"2K", 2048},
		  {"3m", 3 << 20},    {"1gb", 1LL << 30},
		  {"64MB", 64 << 20}, {"8589934591g", 8589934591LL << 30}};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int64_t v = 7;
		assert_int_equal(update_parse_size(ok[i].in, &v), 0);
		assert_true(v == ok[i].want);
	}
	static const char *const bad[] = {"",	 "m",	"-2",	       "1t",
					  "1kk", "1 m", "8589934592g", "99999999999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t v = 7;
		assert_int_equal(update_parse_size(bad[i], &v), -EINVAL);
		assert_true(v == 7);
	}
}

/* Each option's value rule, and what it sets: 0 leaves a limit, -1 lifts
 * it; the half of cpu.max not given is kept. */
static void test_options(void **st)
{
	(void)st;
	_cleanup_error_ struct error *err = NULL;
	struct update_request u;
	update_init(&u);
	assert_int_equal(update_set(&u, UPDATE_MEMORY, "memory", "0", &err), 0);
	assert_false(u.ur.set_memory);
	assert_int_equal(update_set(&u, UPDATE_MEMORY, "memory", "256m", &err), 0);
	assert_true(u.ur.set_memory);
	assert_true(u.res.memory_limit == 256 << 20);
	assert_int_equal(update_set(&u, UPDATE_PIDS, "pids-limit", "-1", &err), 0);
	assert_true(u.ur.set_pids);
	assert_true(u.res.pids_limit == 0);
	assert_int_equal(update_set(&u, UPDATE_CPU_QUOTA, "cpu-quota", "50000", &err), 0);
	assert_true(u.ur.set_cpu_max);
	assert_true(u.ur.keep_cpu_period);
	assert_false(u.ur.keep_cpu_quota);
	assert_int_equal(update_set(&u, UPDATE_CPU_PERIOD, "cpu-period", "100000", &err), 0);
	assert_false(u.ur.keep_cpu_period); /* both given now */
	assert_false(u.ur.keep_cpu_quota);
	assert_true(u.res.cpu_period == 100000);
	assert_int_equal(update_set(&u, UPDATE_CPU_SHARES, "cpu-share", "1024", &err), 0);
	assert_true(u.ur.set_cpu_weight);
	assert_null(err);

	struct update_request p;
	update_init(&p);
	assert_int_equal(update_set(&p, UPDATE_CPU_PERIOD, "cpu-period", "20000", &err), 0);
	assert_true(p.ur.keep_cpu_quota);
	assert_false(p.ur.keep_cpu_period);

	static const struct {
		enum update_field f;
		const char *name, *arg, *needle;
	} bad[] = {
		{UPDATE_MEMORY, "memory", "lots", "--memory 'lots': expected bytes"},
		{UPDATE_PIDS, "pids-limit", "-2", "--pids-limit '-2': expected a number"},
		{UPDATE_CPU_QUOTA, "cpu-quota", "999", "below the kernel's 1000 us"},
		{UPDATE_CPU_PERIOD, "cpu-period", "1000001", "expected 1000 .. 1000000 us"},
		{UPDATE_CPU_SHARES, "cpu-share", "1", "expected 2 .. 262144"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(update_set(&p, bad[i].f, bad[i].name, bad[i].arg, &err), -EINVAL);
		assert_non_null(err);
		if (!strstr(err->msg, bad[i].needle))
			fail_msg("%s: '%s' lacks '%s'", bad[i].name, err->msg, bad[i].needle);
		error_free(&err);
	}
	assert_false(p.ur.set_memory || p.ur.set_pids || p.ur.set_cpu_weight);
}

/* Options the VM does not apply are listed once each, comma-separated; a
 * list too long for the buffer ends in "...". */
static void test_ignored(void **st)
{
	(void)st;
	struct update_request u;
	update_init(&u);
	update_ignore(&u, "memory-swap");
	update_ignore(&u, "cpuset-cpus");
	assert_string_equal(u.ignored, "--memory-swap, --cpuset-cpus");
	for (int i = 0; i < 100; i++)
		update_ignore(&u, "blkio-weight");
	assert_int_equal(strlen(u.ignored), sizeof(u.ignored) - 1);
	assert_string_equal(u.ignored + sizeof(u.ignored) - 4, "...");
}

/* --resources: the JSON's limits over the options', what the VM does not
 * apply added to the list; a missing file is named. */
static void test_resources_file(void **st)
{
	(void)st;
	_cleanup_error_ struct error *err = NULL;
	char dir[] = "/tmp/cocoon-test-update.XXXXXX", file[64];
	unit_file(dir, "r.json",
		  "{\"memory\": {\"limit\": 134217728, \"swap\": 268435456},"
		  " \"cpu\": {\"quota\": 20000}}",
		  file, sizeof(file));
	struct update_request u;
	update_init(&u);
	update_ignore(&u, "blkio-weight");
	assert_int_equal(update_read_resources(&u, file, &err), 0);
	assert_true(u.ur.set_memory);
	assert_true(u.res.memory_limit == 128 << 20);
	assert_true(u.ur.set_cpu_max);
	assert_true(u.ur.keep_cpu_period);
	assert_string_equal(u.ignored, "--blkio-weight, swap");

	unlink(file);
	assert_true(update_read_resources(&u, file, &err) < 0);
	assert_non_null(strstr(err->msg, "--resources"));
	assert_non_null(strstr(err->msg, file));
	rmdir(dir);
}

/* The stats event: ns from the guest's us, the VM's memory as the limit
 * when there is no memory.max, and a memory.stat key that is not a plain
 * name (or repeats one) dropped. */
static void test_stats_event(void **st)
{
	(void)st;
	Cocoon__StatsReply s = COCOON__STATS_REPLY__INIT;
	Cocoon__StatEntry e[4], *ep[4];
	static const char *const keys[] = {"anon", "bad\"key", "file_mapped", "anon"};
	for (int i = 0; i < 4; i++) {
		cocoon__stat_entry__init(&e[i]);
		e[i].key = (char *)keys[i];
		e[i].value = (uint64_t)(i + 1);
		ep[i] = &e[i];
	}
	s.memory_stat = ep;
	s.n_memory_stat = 4;
	s.cpu_usage_usec = 5;
	s.guest_memory_total = 1 << 30;
	s.pids_current = 3;
	json_object *o = stats_json("c1", &s);
	assert_non_null(o);
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	assert_non_null(strstr(text, "\"type\":\"stats\",\"id\":\"c1\""));
	assert_non_null(strstr(text, "\"usage\":{\"total\":5000,"));
	assert_non_null(strstr(text, "\"limit\":1073741824"));
	assert_non_null(strstr(text, "\"raw\":{\"anon\":1,\"file_mapped\":3}"));
	assert_null(strstr(text, "bad"));
	assert_non_null(strstr(text, "\"pids\":{\"current\":3,"));
	json_object_put(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),	    cmocka_unit_test(test_options),
		cmocka_unit_test(test_ignored),	    cmocka_unit_test(test_resources_file),
		cmocka_unit_test(test_stats_event),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
