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

#define WITH_SYSCTL(json)                                                                          \
	"{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS                                           \
	", \"linux\": {\"namespaces\": [{\"type\": \"network\"}], \"sysctl\": " json "}}"

static const char *sysctl_value(const struct oci_bundle *b, const char *key)
{
	for (size_t i = 0; i < b->spec->n_sysctl; i++)
		if (strcmp(b->spec->sysctl[i]->key, key) == 0)
			return b->spec->sysctl[i]->value;
	return NULL;
}

/* runc's rule (libcontainer/configs/validate): the sysctls of the
 * container's net, ipc and uts namespaces, nothing of the kernel as a
 * whole; the slash form is the dotted one with "." and "/" swapped. */
static void test_sysctl(void **st)
{
	struct oci_bundle b;
	write_spec(WITH_SYSCTL("{\"net.ipv4.ip_forward\": \"1\", \"kernel.msgmax\": \"9000\", "
			       "\"fs.mqueue.msg_max\": \"20\", \"kernel.domainname\": \"d\", "
			       "\"net/ipv4/conf/eth0.100/rp_filter\": \"2\"}"));
	assert_int_equal(spec_load(bundle, "c1", &b, NULL), 0);
	assert_int_equal(b.spec->n_sysctl, 5);
	assert_string_equal(sysctl_value(&b, "net.ipv4.ip_forward"), "1");
	assert_string_equal(sysctl_value(&b, "kernel.msgmax"), "9000");
	assert_string_equal(sysctl_value(&b, "net.ipv4.conf.eth0/100.rp_filter"), "2");
	assert_false(warned(&b, "sysctl"));
	spec_free(&b);
	expect_error(WITH_SYSCTL("{\"vm.overcommit_memory\": \"1\"}"),
		     "vm.overcommit_memory is not in a kernel namespace of the container");
	expect_error(WITH_SYSCTL("{\"kernel.pid_max\": \"1000\"}"), "kernel.pid_max is not in");
	expect_error(WITH_SYSCTL("{\"kernel.hostname\": \"x\"}"), "spec's hostname field");
	expect_error(WITH_SYSCTL("{\"net.ipv4.ip_forward\": 1}"),
		     "net.ipv4.ip_forward: expected a string value");
	expect_error(WITH_SYSCTL("[]"), "linux.sysctl");
	expect_error(
		WITH_SYSCTL("{\"net.ipv4.ip_forward\": \"1\", \"net/ipv4/ip_forward\": \"0\"}"),
		"net.ipv4.ip_forward is given twice");
	/* Names that would leave /proc/sys, or are no names at all. */
	static const char *const bad[] = {"net..x", "net.//.x", "net./.x",  "net.x.",
					  ".net",   "net.a b",	"net.x\\n", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text), WITH_SYSCTL("{\"%s\": \"1\"}"), bad[i]);
		expect_error(text, "is not a sysctl name");
	}
	char big[2048];
	memset(big, 'x', sizeof(big));
	big[sizeof(big) - 1] = 0;
	char text[4096];
	snprintf(text, sizeof(text), WITH_SYSCTL("{\"net.core.x\": \"%s\"}"), big);
	expect_error(text, "longer than 1024 bytes");
}

#define WITH_DEVICES(json)                                                                            \
	"{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS                                              \
	", \"linux\": {\"namespaces\": [{\"type\": \"network\"}], \"resources\": {\"devices\": " json \
	"}}}"

/* linux.resources.devices in order, runc's defaults after them; absent
 * fields mean all (type "a", any number, "rwm"). */
static void test_device_rules(void **st)
{
	struct oci_bundle b;
	write_spec(WITH_DEVICES(
		"[{\"allow\": false, \"access\": \"rwm\"}, {\"allow\": true, \"type\": "
		"\"c\", \"major\": 1, \"minor\": 11, \"access\": \"w\"}]"));
	assert_int_equal(spec_load(bundle, "c1", &b, NULL), 0);
	assert_true(b.spec->n_device_rules > 2);
	Cocoon__DeviceRule *const *d = b.spec->device_rules;
	assert_false(d[0]->allow);
	assert_string_equal(d[0]->type, "a");
	assert_int_equal(d[0]->major, -1);
	assert_int_equal(d[0]->minor, -1);
	assert_string_equal(d[0]->access, "rwm");
	assert_true(d[1]->allow);
	assert_string_equal(d[1]->type, "c");
	assert_int_equal(d[1]->major, 1);
	assert_int_equal(d[1]->minor, 11);
	assert_string_equal(d[1]->access, "w");
	bool null_allowed = false;
	for (size_t i = 2; i < b.spec->n_device_rules; i++)
		null_allowed |= d[i]->allow && d[i]->major == 1 && d[i]->minor == 3 &&
				strcmp(d[i]->access, "rwm") == 0;
	assert_true(null_allowed);
	assert_false(warned(&b, "devices"));
	spec_free(&b);
	write_spec(WITH_DEVICES("[]"));
	assert_int_equal(spec_load(bundle, "c1", &b, NULL), 0);
	assert_int_equal(b.spec->n_device_rules, 0);
	spec_free(&b);
	expect_error(WITH_DEVICES("[{\"allow\": true, \"type\": \"u\"}]"),
		     "devices[0].type: 'u' is not a device type");
	expect_error(WITH_DEVICES("[{\"allow\": true, \"access\": \"rr\"}]"),
		     "devices[0].access: 'rr' is not an access");
	expect_error(WITH_DEVICES("[{\"allow\": true, \"access\": \"\"}]"),
		     "devices[0].access is empty");
	expect_error(WITH_DEVICES("[{\"type\": \"c\"}]"), "devices[0].allow is required");
	expect_error(WITH_DEVICES("[{\"allow\": true, \"minor\": 4294967296}]"),
		     "devices[0].minor: 4294967296 is not a device number");
	expect_error(WITH_DEVICES("[7]"), "linux.resources.devices[0]");
	expect_error(WITH_DEVICES("{}"), "linux.resources.devices");
}

#define WITH_NS(ns, extra)                                                                         \
	"{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS ", \"linux\": {\"namespaces\": "          \
	"[{\"type\": \"network\"}" ns "]" extra "}}"

static bool has_ns(const struct oci_bundle *b, const char *type)
{
	for (size_t i = 0; i < b->spec->n_namespaces; i++)
		if (strcmp(b->spec->namespaces[i], type) == 0)
			return true;
	return false;
}

/* The cgroup and time namespaces are the container's own in the guest;
 * linux.timeOffsets needs the time one. */
static void test_cgroup_and_time_namespaces(void **st)
{
	struct oci_bundle b;
	write_spec(WITH_NS(", {\"type\": \"cgroup\"}, {\"type\": \"time\"}",
			   ", \"timeOffsets\": {\"monotonic\": {\"secs\": 86400, \"nanosecs\": 5}, "
			   "\"boottime\": {\"secs\": -10}}"));
	assert_int_equal(spec_load(bundle, "c1", &b, NULL), 0);
	assert_true(has_ns(&b, "cgroup"));
	assert_true(has_ns(&b, "time"));
	assert_false(warned(&b, "cgroup namespace"));
	assert_false(warned(&b, "time namespace"));
	assert_non_null(b.spec->time_offsets);
	assert_int_equal(b.spec->time_offsets->monotonic_secs, 86400);
	assert_int_equal(b.spec->time_offsets->monotonic_nanosecs, 5);
	assert_int_equal(b.spec->time_offsets->boottime_secs, -10);
	assert_int_equal(b.spec->time_offsets->boottime_nanosecs, 0);
	spec_free(&b);
	expect_error(WITH_NS("", ", \"timeOffsets\": {\"monotonic\": {\"secs\": 1}}"),
		     "linux.timeOffsets needs a time namespace");
	expect_error(WITH_NS(", {\"type\": \"time\"}",
			     ", \"timeOffsets\": {\"realtime\": {\"secs\": 1}}"),
		     "'realtime' is not a clock of a time namespace");
	expect_error(WITH_NS(", {\"type\": \"time\"}",
			     ", \"timeOffsets\": {\"boottime\": {\"nanosecs\": 1000000000}}"),
		     "linux.timeOffsets.boottime.nanosecs: 1000000000 is not in 0..999999999");
	expect_error(WITH_NS(", {\"type\": \"cgroup\", \"path\": \"/proc/1/ns/cgroup\"}", ""),
		     "joining the cgroup namespace of /proc/1/ns/cgroup is not supported");
}

#define WITH_UNIFIED(json)                                                                            \
	"{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS                                              \
	", \"linux\": {\"namespaces\": [{\"type\": \"network\"}], \"resources\": {\"unified\": " json \
	"}}}"

/* linux.resources.unified: files of controllers only, by name. */
static void test_unified(void **st)
{
	struct oci_bundle b;
	write_spec(WITH_UNIFIED("{\"memory.high\": \"50000000\", \"pids.max\": \"15\"}"));
	assert_int_equal(spec_load(bundle, "c1", &b, NULL), 0);
	assert_int_equal(b.spec->n_unified, 2);
	assert_string_equal(b.spec->unified[0]->name, "memory.high");
	assert_string_equal(b.spec->unified[0]->value, "50000000");
	assert_false(warned(&b, "unified"));
	spec_free(&b);
	expect_error(WITH_UNIFIED("{\"cgroup.procs\": \"1\"}"),
		     "cgroup.procs is one of the cgroup's own files");
	expect_error(WITH_UNIFIED("{\"cgroup.freeze\": \"1\"}"), "cgroup.freeze is one of");
	expect_error(WITH_UNIFIED("{\"../x.y\": \"1\"}"), "'../x.y' is not a cgroup file name");
	expect_error(WITH_UNIFIED("{\"memory\": \"1\"}"), "'memory' is not a cgroup file name");
	expect_error(WITH_UNIFIED("{\"memory.high\": 5}"), "memory.high: expected a string value");
	expect_error(WITH_UNIFIED("[]"), "linux.resources.unified");
}

#define WITH_HUGE(json)                                                                            \
	"{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS                                           \
	", \"linux\": {\"namespaces\": [{\"type\": \"network\"}], \"resources\": " json "}}"

/* hugepageLimits become hugetlb.<size>.max files, before unified's. */
static void test_hugepage_limits(void **st)
{
	struct oci_bundle b;
	write_spec(WITH_HUGE("{\"hugepageLimits\": [{\"pageSize\": \"2MB\", \"limit\": 4194304}], "
			     "\"unified\": {\"hugetlb.2MB.max\": \"0\"}}"));
	assert_int_equal(spec_load(bundle, "c1", &b, NULL), 0);
	assert_int_equal(b.spec->n_unified, 2);
	assert_string_equal(b.spec->unified[1]->value, "0");
	assert_string_equal(b.spec->unified[0]->name, "hugetlb.2MB.max");
	assert_string_equal(b.spec->unified[0]->value, "4194304");
	assert_false(warned(&b, "hugepageLimits"));
	spec_free(&b);
	expect_error(WITH_HUGE("{\"hugepageLimits\": [{\"pageSize\": \"4MB\", \"limit\": 1}]}"),
		     "pageSize: '4MB' is not a huge page size of the guest");
	expect_error(WITH_HUGE("{\"hugepageLimits\": [{\"pageSize\": \"2MB\"}]}"),
		     "hugepageLimits[0].limit is required");
}

#define WITH_USERNS(ns, maps)                                                                      \
	"{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS                                           \
	", \"linux\": {\"namespaces\": [{\"type\": \"network\"}" ns "]" maps "}}"
#define USER_NS ", {\"type\": \"user\"}"
#define MAP(c, h, n) "{\"containerID\": " #c ", \"hostID\": " #h ", \"size\": " #n "}"

/* linux.uidMappings/gidMappings: runc's validator (both with a user
 * namespace, neither without), and what the kernel would refuse
 * (overlaps, ranges past the last id, more than 340 lines). */
static void test_user_namespace(void **st)
{
	struct oci_bundle b;
	write_spec(WITH_USERNS(
		USER_NS, ", \"uidMappings\": [" MAP(0, 100000, 65536) ", " MAP(
				 65536, 300000, 1) "], \"gidMappings\": [" MAP(0, 200000, 10) "]"));
	assert_int_equal(spec_load(bundle, "c1", &b, NULL), 0);
	bool user = false;
	for (size_t i = 0; i < b.spec->n_namespaces; i++)
		user |= strcmp(b.spec->namespaces[i], "user") == 0;
	assert_true(user);
	/* podman --uidmap: the VM reserves a NIC for what the engine
	 * configures after create (docs/networking.md). */
	assert_true(spec_wants_late_network(&b));
	assert_int_equal(b.spec->n_uid_mappings, 2);
	assert_int_equal(b.spec->uid_mappings[0]->host_id, 100000);
	assert_int_equal(b.spec->uid_mappings[1]->container_id, 65536);
	assert_int_equal(b.spec->n_gid_mappings, 1);
	assert_int_equal(b.spec->gid_mappings[0]->size, 10);
	assert_false(warned(&b, "user"));
	assert_false(warned(&b, "Mappings"));
	spec_free(&b);
	expect_error(WITH_USERNS(USER_NS, ""), "linux.uidMappings is missing or empty");
	expect_error(WITH_USERNS(USER_NS, ", \"uidMappings\": [" MAP(0, 1, 1) "]"),
		     "linux.gidMappings is missing or empty");
	expect_error(WITH_USERNS("", ", \"uidMappings\": [" MAP(0, 1, 1) "]"),
		     "need a user namespace");
	expect_error(WITH_USERNS(USER_NS, ", \"uidMappings\": [" MAP(
						  0, 1, 0) "], "
							   "\"gidMappings\": [" MAP(0, 1, 1) "]"),
		     "linux.uidMappings[0].size: a mapping of no ids");
	expect_error(WITH_USERNS(USER_NS,
				 ", \"uidMappings\": [" MAP(
					 0, 4294967295, 1) "], "
							   "\"gidMappings\": [" MAP(0, 1, 1) "]"),
		     "pass the last id");
	expect_error(WITH_USERNS(USER_NS, ", \"uidMappings\": [" MAP(0, 4294967296, 1) "]"),
		     "linux.uidMappings[0].hostID: 4294967296 is out of range");
	expect_error(WITH_USERNS(USER_NS,
				 ", \"uidMappings\": [" MAP(
					 0, 1, 1) "], "
						  "\"gidMappings\": [" MAP(0, 1000, 10) ", " MAP(
							  20, 1005, 1) "]"),
		     "linux.gidMappings[1] overlaps linux.gidMappings[0]");
	expect_error(WITH_USERNS(USER_NS, ", \"uidMappings\": [{\"containerID\": 0, \"size\": 1}]"),
		     "linux.uidMappings[0].hostID is required");
	expect_error(WITH_USERNS(", {\"type\": \"user\", \"path\": \"/proc/1/ns/user\"}", ""),
		     "user namespace of /proc/1/ns/user is not supported");
	/* 341 lines: one more than the kernel takes. */
	char *text = NULL, *maps = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&maps, &len);
	for (int i = 0; i < 341; i++)
		fprintf(f, "%s{\"containerID\": %d, \"hostID\": %d, \"size\": 1}", i ? ", " : "", i,
			100000 + i);
	fclose(f);
	assert_true(asprintf(&text,
			     "{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS
			     ", \"linux\": {\"namespaces\": [{\"type\": \"network\"}" USER_NS
			     "], \"uidMappings\": [%s], \"gidMappings\": [%s]}}",
			     maps, maps) > 0);
	expect_error(text, "linux.uidMappings: 341 lines; the kernel takes at most 340");
	free(text);
	free(maps);
}

/* Filesystems: the guest's kernel mounts what it has; one on a block
 * device is refused on the host, naming why. */
static void test_filesystem_types(void **st)
{
	struct oci_bundle b;
	write_spec("{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS ", " LINUX
		   ", \"mounts\": [{\"destination\": \"/r\", \"type\": \"ramfs\"}, "
		   "{\"destination\": \"/h\", \"type\": \"hugetlbfs\", \"source\": \"none\"}]}");
	assert_int_equal(spec_load(bundle, "c1", &b, NULL), 0);
	assert_int_equal(b.spec->n_mounts, 2);
	assert_string_equal(b.spec->mounts[1]->type, "hugetlbfs");
	spec_free(&b);
	expect_error("{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS ", " LINUX
		     ", \"mounts\": [{\"destination\": \"/d\", \"type\": \"ext4\", \"source\": "
		     "\"/dev/sdz1\"}]}",
		     "mounts[0] (/d): filesystem type 'ext4' lives on a block device, which cannot "
		     "cross the VM boundary");
	expect_error("{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS ", " LINUX
		     ", \"mounts\": [{\"destination\": \"/d\", \"type\": \"ramfs\", \"source\": "
		     "\"/dev/null\"}]}",
		     "source /dev/null is a host device");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_oom_score_adj, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sysctl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cgroup_and_time_namespaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unified, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hugepage_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_namespace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_filesystem_types, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
