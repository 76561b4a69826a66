/* A pod's limits in the guest (ContainerSpec.pod_resources, docs/pods.md
 * "The pod's limits in the guest"): the bounds both sides check
 * (cocoon_pod_limits_check, contract.h), and the agent's refusal of a
 * request that breaks them, before it makes any cgroup (guest cgroups.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cgroups.h"
#include "contract.h"

static const char *check(uint64_t memory, int64_t pids, int64_t quota, uint64_t period,
			 uint64_t shares)
{
	return cocoon_pod_limits_check(memory, pids, quota, period, shares);
}

/* Each bound exactly: the last value inside passes, the first outside
 * names its field. */
static void test_bounds(void **st)
{
	(void)st;
	assert_null(check(0, 0, 0, 0, 0));
	assert_null(check(300 << 20, 0, 0, 0, 0));
	assert_null(check(COCOON_POD_MEMORY_MIN, 0, 0, 0, 0));
	assert_null(check(COCOON_POD_MEMORY_MAX, COCOON_POD_PIDS_MAX, 1000, 1000, 0));
	assert_null(check(0, 1, COCOON_POD_CPU_QUOTA_MAX, 1000000, 0));
	assert_null(check(0, 0, 200000, 0, 0)); /* period 0: the kernel's 100000 */
	assert_null(check(0, 0, 0, 100000, 0)); /* a period alone limits nothing */

	const struct {
		uint64_t memory;
		int64_t pids, quota;
		uint64_t period, shares;
		const char *field;
	} bad[] = {
		{COCOON_POD_MEMORY_MIN - 1, 0, 0, 0, 0, "memory_limit below"},
		{COCOON_POD_MEMORY_MAX + 1, 0, 0, 0, 0, "memory_limit above"},
		{UINT64_MAX, 0, 0, 0, 0, "memory_limit above"},
		{0, -1, 0, 0, 0, "pids_limit"},
		{0, COCOON_POD_PIDS_MAX + 1, 0, 0, 0, "pids_limit"},
		{0, INT64_MAX, 0, 0, 0, "pids_limit"},
		{0, 0, -1, 100000, 0, "cpu_quota"},
		{0, 0, 999, 100000, 0, "cpu_quota"},
		{0, 0, COCOON_POD_CPU_QUOTA_MAX + 1, 100000, 0, "cpu_quota"},
		{0, 0, 100000, 999, 0, "cpu_period"},
		{0, 0, 100000, 1000001, 0, "cpu_period"},
		{0, 0, 0, 0, 1024, "cpu_shares"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *why = check(bad[i].memory, bad[i].pids, bad[i].quota, bad[i].period,
					bad[i].shares);
		assert_non_null(why);
		if (!strstr(why, bad[i].field))
			fail_msg("case %zu: '%s' does not name %s", i, why, bad[i].field);
	}
}

/* The agent's side: a request with limits out of bounds, or pod limits on
 * a member, is refused with a message naming the cause, and no cgroup is
 * made for it (the id is one no test or VM uses). */
static void test_agent_refuses_before_making_anything(void **st)
{
	(void)st;
	char cgroup[CGROUPS_PATH_MAX], pod[CGROUPS_POD_PATH_MAX];
	struct error *e = NULL;
	const char *id = "podlimit-unit-never-made";
	char path[256];
	snprintf(path, sizeof(path), CGROUPS_ROOT "/" COCOON_POD_CGROUP_PREFIX "%s", id);

	Cocoon__Resources r = COCOON__RESOURCES__INIT;
	r.memory_limit = 300 << 20;
	r.pids_limit = -5;
	assert_int_equal(cgroups_container_make(id, NULL, &r, NULL, cgroup, pod, &e), -EINVAL);
	assert_non_null(strstr(error_msg(e), "the pod's limits: pids_limit"));
	assert_int_equal(access(path, F_OK), -1);
	error_free(&e);

	r.pids_limit = 0;
	r.cpu_shares = 2;
	assert_int_equal(cgroups_container_make(id, NULL, &r, NULL, cgroup, pod, &e), -EINVAL);
	assert_non_null(strstr(error_msg(e), "cpu_shares"));
	assert_int_equal(access(path, F_OK), -1);
	error_free(&e);

	/* Sound limits, but on a member: only the sandbox's create sets them. */
	r.cpu_shares = 0;
	assert_int_equal(
		cgroups_container_make(id, "sb1", &r, CGROUPS_ROOT "/pod-sb1", cgroup, pod, &e),
		-EINVAL);
	assert_non_null(strstr(error_msg(e), "pod limits on a member of pod sb1"));
	assert_string_equal(cgroup, "");
	assert_string_equal(pod, "");
	assert_int_equal(access(path, F_OK), -1);
	error_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_agent_refuses_before_making_anything),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
