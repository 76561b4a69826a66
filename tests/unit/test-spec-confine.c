/* config.json's confinement fields: process.capabilities, linux.seccomp,
 * maskedPaths, readonlyPaths; what the host passes on, and what it refuses. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spec.h"

static char bundle[] = "/tmp/cocoon-spec-confine-XXXXXX";

static int load(const char *linux_obj, const char *process_extra, struct oci_bundle *b,
		struct error **err)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/config.json", bundle);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f,
		"{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, \"process\": {\"args\": [\"sh\"]%s}, \"linux\": {\"namespaces\": [{\"type\": \"network\"}, {\"type\": \"pid\"}, {\"type\": \"mount\"}]%s%s}",
		process_extra, linux_obj[1] == '}' ? "" : ", ", linux_obj + 1);
	fclose(f);
	return spec_load(bundle, "c1", b, err);
}

static void expect_error(const char *linux_obj, const char *process_extra, const char *needle)
{
	struct oci_bundle b;
	struct error *err = NULL;
	int r = load(linux_obj, process_extra, &b, &err);
	if (r == 0 || !err || !strstr(err->msg, needle))
		fail_msg("expected an error containing '%s', got: %s", needle,
			 err ? err->msg : "success");
	error_free(&err);
	spec_free(&b);
}

static void test_capabilities(void **state)
{
	struct oci_bundle b;
	struct error *err = NULL;
	int r = load(
		"{}",
		", \"capabilities\": {\"bounding\": [\"CAP_KILL\", \"CAP_SYS_ADMIN\", \"CAP_NO_SUCH\"], \"effective\": [\"CAP_KILL\"], \"ambient\": [\"cap_net_bind_service\"]}",
		&b, &err);
	assert_int_equal(r, 0);
	Cocoon__Capabilities *c = b.spec->process->capabilities;
	assert_non_null(c);
	assert_true(c->bounding == ((1ULL << 5) | (1ULL << 21)));
	assert_true(c->effective == (1ULL << 5));
	assert_true(c->permitted == 0 && c->inheritable == 0);
	assert_true(c->ambient == (1ULL << 10));
	/* An unknown name warns, as runc does. */
	assert_int_equal(b.n_warnings, 1);
	assert_non_null(strstr(b.warnings[0], "CAP_NO_SUCH"));
	spec_free(&b);

	/* Absent: the process keeps everything (privileged). */
	assert_int_equal(load("{}", "", &b, &err), 0);
	assert_null(b.spec->process->capabilities);
	spec_free(&b);
	expect_error("{}", ", \"capabilities\": {\"bounding\": \"CAP_KILL\"}", "expected an array");
	expect_error("{}", ", \"capabilities\": [1]", "expected an object");
}

static void test_seccomp(void **state)
{
	struct oci_bundle b;
	struct error *err = NULL;
	int r = load(
		"{\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 38, \"architectures\": [\"SCMP_ARCH_X86_64\", \"SCMP_ARCH_AARCH64\"], \"flags\": [\"SECCOMP_FILTER_FLAG_LOG\"], \"syscalls\": [{\"names\": [\"read\", \"write\"], \"action\": \"SCMP_ACT_ALLOW\"},  {\"names\": [\"personality\"], \"action\": \"SCMP_ACT_ALLOW\",   \"args\": [{\"index\": 0, \"value\": 8, \"valueTwo\": 0, \"op\": \"SCMP_CMP_EQ\"}]}]}, \"maskedPaths\": [\"/proc/kcore\"], \"readonlyPaths\": [\"/proc/sys\", \"/proc/bus\"]}",
		"", &b, &err);
	assert_int_equal(r, 0);
	Cocoon__Seccomp *sc = b.spec->seccomp;
	assert_non_null(sc);
	assert_string_equal(sc->default_action, "SCMP_ACT_ERRNO");
	assert_true(sc->has_default_errno && sc->default_errno_ret == 38);
	/* Another architecture family cannot apply in the x86-64 guest. */
	assert_int_equal(sc->n_architectures, 1);
	assert_int_equal(b.n_warnings, 1);
	assert_int_equal(sc->n_syscalls, 2);
	assert_int_equal(sc->syscalls[0]->n_names, 2);
	assert_int_equal(sc->syscalls[1]->n_args, 1);
	assert_true(sc->syscalls[1]->args[0]->value == 8);
	assert_string_equal(sc->syscalls[1]->args[0]->op, "SCMP_CMP_EQ");
	assert_int_equal(b.spec->n_masked_paths, 1);
	assert_int_equal(b.spec->n_readonly_paths, 2);
	spec_free(&b);
}

static void test_seccomp_errors(void **state)
{
	expect_error("{\"seccomp\": {\"defaultAction\": \"SCMP_ACT_NOTIFY\"}}", "",
		     "not supported");
	expect_error("{\"seccomp\": {}}", "", "defaultAction: expected a string");
	expect_error(
		"{\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"listenerPath\": \"/x\"}}",
		"", "listener");
	expect_error("{\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"flags\": [\"X\"]}}",
		     "", "'X'");
	expect_error(
		"{\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 6, \"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]}]}}",
		"", "index is out of range");
	expect_error(
		"{\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 0, \"value\": 1, \"op\": \"SCMP_CMP_LIKE\"}]}]}}",
		"", "SCMP_CMP_LIKE");
	expect_error(
		"{\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": -1}}",
		"", "out of range");
	expect_error("{\"maskedPaths\": [\"proc/kcore\"]}", "", "must be absolute");
	expect_error("{\"readonlyPaths\": [\"/proc/../etc\"]}", "", "without '..'");
	expect_error("{\"readonlyPaths\": [7]}", "", "expected a short string");
}

static int setup(void **state)
{
	char path[128];
	if (!mkdtemp(bundle))
		return -1;
	snprintf(path, sizeof(path), "%s/rootfs", bundle);
	return mkdir(path, 0755);
}

static int teardown(void **state)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/rootfs", bundle);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/config.json", bundle);
	unlink(path);
	rmdir(bundle);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_capabilities),
		cmocka_unit_test(test_seccomp),
		cmocka_unit_test(test_seccomp_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
