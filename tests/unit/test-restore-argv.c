/* CRIU's restore command line (src/guest/restore-argv.c), built from a
 * container and a restore as restore.c hands them over: the options cocoon
 * always gives, the staged pages' --auto-dedup, the user's CRIU options,
 * the bind mounts and fresh /dev and /dev/shm as external, and the spec's
 * config file. Linked with the agent's code (guest_core_src). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "container.h"
#include "restore-argv.h"

static struct agent a;
static struct agent_container c;
static struct restore_ctx x;
static Cocoon__ContainerSpec spec;
static char dir[] = "/tmp/cocoon-test-restore-argv.XXXXXX";

static int setup(void **state)
{
	(void)state;
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char conf[128];
	snprintf(conf, sizeof(conf), "%s/criu.conf", dir);
	unlink(conf);
	rmdir(dir);
	return 0;
}

/* A container made from its spec without a process, as restore_handle
 * makes it, and a restore of the images in /ckpt/images0 with the
 * temporary directory as its work directory. */
static void fresh(void)
{
	memset(&a, 0, sizeof(a));
	memset(&c, 0, sizeof(c));
	memset(&x, 0, sizeof(x));
	snprintf(a.criu_path, sizeof(a.criu_path), "/opt/criu");
	snprintf(a.ckpt_dir, sizeof(a.ckpt_dir), "%s", dir);
	cocoon__container_spec__init(&spec);
	snprintf(c.id, sizeof(c.id), "c1");
	snprintf(c.cgroup, sizeof(c.cgroup), "/sys/fs/cgroup/c1");
	snprintf(c.rootfs, sizeof(c.rootfs), "/run/cocoon/c/c1/rootfs");
	c.spec = &spec;
	x.a = &a;
	snprintf(x.cid, sizeof(x.cid), "c1");
	snprintf(x.images, sizeof(x.images), "/ckpt/images0");
	snprintf(x.work, sizeof(x.work), "%s", dir);
	cocoon__criu_options__init(&x.criu);
}

/* The index of S in AV's arguments, -1 when it is not there. */
static int find(const struct argv *av, const char *s)
{
	for (size_t i = 0; i < av->n; i++)
		if (strcmp(av->args[i], s) == 0)
			return (int)i;
	return -1;
}

/* S is in AV, followed by NEXT. */
static void assert_pair(const struct argv *av, const char *s, const char *next)
{
	int i = find(av, s);
	assert_true(i >= 0);
	assert_true((size_t)i + 1 < av->n);
	assert_string_equal(av->args[i + 1], next);
}

static size_t count(const struct argv *av, const char *s)
{
	size_t n = 0;
	for (size_t i = 0; i < av->n; i++)
		n += strcmp(av->args[i], s) == 0;
	return n;
}

static void restore_has_cocoons_options(void **state)
{
	(void)state;
	fresh();
	struct argv av = ARGV_EMPTY;
	restore_criu_argv(&x, &c, &av);
	assert_int_equal(argv_finish(&av), 0);
	assert_string_equal(av.args[0], "/opt/criu");
	assert_string_equal(av.args[1], "restore");
	assert_null(av.args[av.n]);
	assert_pair(&av, "-D", "/ckpt/images0");
	assert_pair(&av, "-W", dir);
	assert_pair(&av, "-o", COCOON_RESTORE_LOG);
	assert_true(find(&av, "-v2") > 0);
	assert_pair(&av, "--root", "/run/cocoon/c/c1/rootfs");
	assert_true(find(&av, "--restore-detached") > 0);
	char pidfile[128];
	snprintf(pidfile, sizeof(pidfile), "%s/pidfile", dir);
	assert_pair(&av, "--pidfile", pidfile);
	assert_true(find(&av, "--manage-cgroups=ignore") > 0);
	/* Nothing the restore did not ask for. */
	assert_int_equal(find(&av, "--auto-dedup"), -1);
	assert_int_equal(find(&av, "--external"), -1);
	assert_int_equal(find(&av, "--tcp-established"), -1);
	assert_int_equal(find(&av, "--file-locks"), -1);
	/* The spec's part: a config file in the work directory. */
	char conf[128];
	snprintf(conf, sizeof(conf), "%s/criu.conf", dir);
	assert_pair(&av, "--config", conf);
	assert_int_equal(access(conf, R_OK), 0);
	argv_free(&av);
}

static void staged_pages_are_deduplicated_and_user_options_pass(void **state)
{
	(void)state;
	fresh();
	x.pages_staged = true;
	x.criu.tcp_established = true;
	x.criu.file_locks = true;
	x.criu.debug = true;
	struct argv av = ARGV_EMPTY;
	restore_criu_argv(&x, &c, &av);
	assert_int_equal(argv_finish(&av), 0);
	assert_true(find(&av, "--auto-dedup") > 0);
	assert_true(find(&av, "--tcp-established") > 0);
	assert_true(find(&av, "--file-locks") > 0);
	assert_true(find(&av, "-v4") > 0);
	assert_int_equal(find(&av, "-v2"), -1);
	argv_free(&av);
}

static void the_agents_debug_is_v4(void **state)
{
	(void)state;
	fresh();
	a.debug = true;
	struct argv av = ARGV_EMPTY;
	restore_criu_argv(&x, &c, &av);
	assert_int_equal(argv_finish(&av), 0);
	assert_true(find(&av, "-v4") > 0);
	argv_free(&av);
}

/* The user's "verbosity" from the CRIU config: on the command line, whose
 * -vN wins over the config file in CRIU. */
static void users_verbosity_is_the_log_level(void **state)
{
	(void)state;
	fresh();
	char *lines[] = {(char *)"verbosity=3"};
	x.criu.config = lines;
	x.criu.n_config = 1;
	struct argv av = ARGV_EMPTY;
	restore_criu_argv(&x, &c, &av);
	assert_int_equal(argv_finish(&av), 0);
	assert_true(find(&av, "-v3") > 0);
	assert_int_equal(find(&av, "-v2"), -1);
	argv_free(&av);
	x.criu.config = NULL;
	x.criu.n_config = 0;
}

static void binds_and_fresh_dev_are_external(void **state)
{
	(void)state;
	fresh();
	/* Keyed by the destination the dump named, now at this VM's source. */
	c.bind_dests[0] = (char *)"/data";
	c.bind_sources[0] = (char *)"/run/cocoon/volumes/v0";
	c.bind_dests[1] = (char *)"/etc/hosts";
	c.bind_sources[1] = (char *)"/run/cocoon/volumes/hosts";
	c.n_binds = 2;
	snprintf(x.fresh_args[0], sizeof(x.fresh_args[0]), "mnt[/dev]:/run/cocoon/c/c1/dev");
	struct argv av = ARGV_EMPTY;
	restore_criu_argv(&x, &c, &av);
	assert_int_equal(argv_finish(&av), 0);
	assert_true(find(&av, "mnt[/data]:/run/cocoon/volumes/v0") > 0);
	assert_true(find(&av, "mnt[/etc/hosts]:/run/cocoon/volumes/hosts") > 0);
	assert_true(find(&av, "mnt[/dev]:/run/cocoon/c/c1/dev") > 0);
	/* The empty second fresh mount (/dev/shm archived) is left out. */
	assert_int_equal(count(&av, "--external"), 3);
	argv_free(&av);
}

static void too_long_a_line_is_refused(void **state)
{
	(void)state;
	fresh();
	static char big[64][256];
	for (size_t i = 0; i < 64 && i < COCOON_MAX_BINDS; i++) {
		memset(big[i], 'a', sizeof(big[i]) - 1);
		big[i][0] = '/';
		big[i][sizeof(big[i]) - 1] = 0;
		c.bind_dests[i] = big[i];
		c.bind_sources[i] = big[i];
		c.n_binds = i + 1;
	}
	struct argv av;
	argv_init(&av, 16);
	restore_criu_argv(&x, &c, &av);
	assert_int_equal(argv_finish(&av), -E2BIG);
	argv_free(&av);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(restore_has_cocoons_options),
		cmocka_unit_test(staged_pages_are_deduplicated_and_user_options_pass),
		cmocka_unit_test(the_agents_debug_is_v4),
		cmocka_unit_test(users_verbosity_is_the_log_level),
		cmocka_unit_test(binds_and_fresh_dev_are_external),
		cmocka_unit_test(too_long_a_line_is_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
