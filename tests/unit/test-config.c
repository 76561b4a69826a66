/* The config parser: the accepted subset, and every error path naming
 * file:line and the key. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static void expect_error(const char *text, const char *needle)
{
	struct cocoon_config c;
	struct error *err = NULL;
	config_init_defaults(&c);
	int r = config_parse_string(&c, "test.toml", text, &err);
	if (r == 0 || !err || !strstr(err->msg, needle))
		fail_msg("for input <<%s>> expected an error containing '%s', got: %s", text,
			 needle, err ? err->msg : "success");
	error_free(&err);
	config_free(&c);
}

static void test_defaults(void **state)
{
	struct cocoon_config c;
	config_init_defaults(&c);
	assert_true(c.enable_checkpoint);
	assert_false(c.enable_debug);
	assert_string_equal(c.guest_criu_path, "/usr/sbin/criu");
	assert_string_equal(c.accel, "auto");
	assert_string_equal(c.shared_fs, "9p");
	assert_string_equal(c.rootfs_fs, "9p");
	assert_int_equal(c.memory_mib, 512);
	assert_int_equal(c.checkpoint_silence_ms, 30000);
	assert_int_equal(c.output_queue_max_bytes, 16 << 20);
	config_free(&c);
}

static void test_full_config(void **state)
{
	const char *text = "# cocoon\n"
			   "[runtime]\n"
			   "enable_checkpoint = false   # off\n"
			   "enable_debug = true\n"
			   "guest_criu_path = \"/opt/criu/criu\"\n"
			   "guest_checkpoint_dir = \"/run/x\"\n"
			   "host_checkpoint_dir = \"/var/lib/x\"\n"
			   "\n"
			   "[vm]\n"
			   "kernel = \"/k\"\n"
			   "initrd = \"/i\"\n"
			   "qemu = \"/usr/bin/qemu-system-x86_64\"\n"
			   "accel = \"tcg\"\n"
			   "shared_fs = \"9p\"\n"
			   "rootfs_fs = \"virtiofs\"\n"
			   "memory_mib = 1024\n"
			   "vcpus = 2\n"
			   "boot_timeout_ms = 9000\n"
			   "[limits]\n"
			   "checkpoint_silence_ms = 5000\n"
			   "output_queue_max_bytes = 4194304\n"
			   "  [ runtime ]  \n"
			   "\n";
	struct cocoon_config c;
	struct error *err = NULL;
	config_init_defaults(&c);
	assert_int_equal(config_parse_string(&c, "t", text, &err), 0);
	assert_false(c.enable_checkpoint);
	assert_true(c.enable_debug);
	assert_string_equal(c.guest_criu_path, "/opt/criu/criu");
	assert_string_equal(c.guest_checkpoint_dir, "/run/x");
	assert_string_equal(c.host_checkpoint_dir, "/var/lib/x");
	assert_string_equal(c.kernel, "/k");
	assert_string_equal(c.initrd, "/i");
	assert_string_equal(c.accel, "tcg");
	assert_string_equal(c.rootfs_fs, "virtiofs");
	assert_int_equal(c.memory_mib, 1024);
	assert_int_equal(c.vcpus, 2);
	assert_int_equal(c.boot_timeout_ms, 9000);
	assert_int_equal(c.checkpoint_silence_ms, 5000);
	assert_int_equal(c.output_queue_max_bytes, 4 << 20);
	config_free(&c);
}

static void test_string_escapes(void **state)
{
	struct cocoon_config c;
	config_init_defaults(&c);
	assert_int_equal(
		config_parse_string(&c, "t", "[vm]\nkernel = \"a\\\"b\\\\c # not\"\n", NULL), 0);
	assert_string_equal(c.kernel, "a\"b\\c # not");
	config_free(&c);
}

static void test_errors(void **state)
{
	expect_error("[runtime]\nenable_checkpoint = true\nenable_chekpoint = true\n",
		     "test.toml:3: unknown key 'runtime.enable_chekpoint'");
	expect_error("[vm]\nmemory_mib = \"lots\"\n",
		     "test.toml:2: vm.memory_mib: expected an integer");
	expect_error("[vm]\nmemory_mib = 12x\n", "test.toml:2: vm.memory_mib: expected an integer");
	expect_error("[vm]\nmemory_mib = 1\n", "test.toml:2: vm.memory_mib: 1 is out of range");
	/* Below three of the agent's one-second beats: a healthy guest fails. */
	expect_error("[limits]\ncheckpoint_silence_ms = 2000\n",
		     "test.toml:2: limits.checkpoint_silence_ms: 2000 is out of range");
	/* Not above the shim's high-water mark with room for what is on its
	 * way: an obedient guest would lose output. */
	expect_error("[limits]\noutput_queue_max_bytes = 1048576\n",
		     "test.toml:2: limits.output_queue_max_bytes: 1048576 is out of range");
	/* Not so large that a shim's 34 queues could take tens of GiB. */
	expect_error("[limits]\noutput_queue_max_bytes = 67108865\n",
		     "test.toml:2: limits.output_queue_max_bytes: 67108865 is out of range");
	expect_error("[runtime]\nenable_debug = yes\n",
		     "test.toml:2: runtime.enable_debug: expected a boolean");
	expect_error("[vm]\nkernel = /boot/vmlinuz\n", "test.toml:2: vm.kernel: expected a string");
	expect_error("[vm]\nkernel = \"/boot\n", "test.toml:2: vm.kernel: unterminated string");
	expect_error("[vm]\nkernel = \"/boot\" junk\n", "test.toml:2: vm.kernel: unexpected text");
	expect_error("[vm]\nkernel = \"\\x\"\n", "test.toml:2: vm.kernel: unsupported escape");
	expect_error("[vm]\naccel = \"hvf\"\n", "test.toml:2: vm.accel: \"hvf\" is not one of");
	expect_error("[vm]\nrootfs_fs = \"nfs\"\n",
		     "test.toml:2: vm.rootfs_fs: \"nfs\" is not one of");
	expect_error("\n\n[hypervisor]\n", "test.toml:3: unknown section [hypervisor]");
	expect_error("[vm\n", "test.toml:1: malformed section header");
	expect_error("enable_debug = true\n", "test.toml:1: key 'enable_debug' outside a section");
	expect_error("[vm]\njust words\n", "test.toml:2: expected 'key = value'");
	expect_error("[vm]\n = 3\n", "test.toml:2: missing key");
	expect_error("[vm]\nvcpus =\n", "test.toml:2: vm.vcpus: missing value");
	expect_error("[vm]\nvcpus = 1\nvcpus = 2\n", "test.toml:3: duplicate key 'vm.vcpus'");
}

static void test_load_paths(void **state)
{
	struct cocoon_config c;
	struct error *err = NULL;
	char path[] = "/tmp/cocoon-test-config.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *text = "[vm]\nvcpus = 3\n";
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);

	unsetenv(CONFIG_ENV);
	assert_int_equal(config_load(&c, path, &err), 0);
	assert_int_equal(c.vcpus, 3);
	assert_string_equal(c.source, path);
	config_free(&c);

	setenv(CONFIG_ENV, path, 1);
	assert_int_equal(config_load(&c, NULL, &err), 0);
	assert_int_equal(c.vcpus, 3);
	config_free(&c);

	/* An explicitly named file must exist. */
	unlink(path);
	assert_int_equal(config_load(&c, NULL, &err), -ENOENT);
	assert_non_null(strstr(err->msg, path));
	error_free(&err);
	config_free(&c);
	unsetenv(CONFIG_ENV);
	assert_int_equal(config_load(&c, "/nonexistent/cocoon.toml", &err), -ENOENT);
	error_free(&err);
	config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),       cmocka_unit_test(test_full_config),
		cmocka_unit_test(test_string_escapes), cmocka_unit_test(test_errors),
		cmocka_unit_test(test_load_paths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
