/* CRIU's dump command line (src/guest/dump-argv.c), built from a container
 * and a request as checkpoint.c hands them over: the options cocoon always
 * gives, a pre-dump's and an incremental dump's, the externals (bind
 * mounts, terminals), the streaming route's page server, and a line too
 * long to build. Linked with the agent's code (guest_core_src). */
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
#include "dump-argv.h"

static struct agent a;
static struct agent_container c;
static struct ckpt_ctx x;
static Cocoon__ContainerSpec spec;
static Cocoon__CheckpointRequest req;
static Cocoon__CriuOptions criu;
static char dir[] = "/tmp/cocoon-test-dump-argv.XXXXXX";

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
	snprintf(conf, sizeof(conf), "%s/criu-c1.conf", dir);
	unlink(conf);
	rmdir(dir);
	return 0;
}

/* A running container as the agent holds it, its images to go to /ckpt/ck1,
 * and a plain dump request. */
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
	c.spec = &spec;
	c.procs[0].pid = getpid();
	x.a = &a;
	x.shm_watch = -1;
	snprintf(x.img, sizeof(x.img), "/ckpt/ck1");
	cocoon__checkpoint_request__init(&req);
	cocoon__criu_options__init(&criu);
	req.id = (char *)"c1";
	req.checkpoint_id = (char *)"ck1";
	req.criu = &criu;
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

static void dump_has_cocoons_options(void **state)
{
	(void)state;
	fresh();
	char pid[16];
	snprintf(pid, sizeof(pid), "%d", getpid());
	struct argv av = ARGV_EMPTY;
	assert_int_equal(dump_criu_argv(&av, &x, &c, &req), 0);
	assert_string_equal(av.args[0], "/opt/criu");
	assert_string_equal(av.args[1], "dump");
	assert_null(av.args[av.n]);
	assert_pair(&av, "-t", pid);
	assert_pair(&av, "-D", "/ckpt/ck1");
	assert_pair(&av, "-o", "dump.log");
	assert_true(find(&av, "-v2") > 0);
	assert_pair(&av, "--freeze-cgroup", "/sys/fs/cgroup/c1");
	assert_true(find(&av, "--manage-cgroups=ignore") > 0);
	assert_true(find(&av, "--track-mem") > 0);
	assert_pair(&av, "--network-lock", "iptables");
	assert_true(find(&av, "--leave-running") > 0);
	/* Nothing the request did not ask for. */
	assert_int_equal(find(&av, "--prev-images-dir"), -1);
	assert_int_equal(find(&av, "--page-server"), -1);
	assert_int_equal(find(&av, "--external"), -1);
	assert_int_equal(find(&av, "--tcp-established"), -1);
	/* The spec's part: a config file in the checkpoint directory. */
	char conf[128];
	snprintf(conf, sizeof(conf), "%s/criu-c1.conf", dir);
	assert_pair(&av, "--config", conf);
	assert_int_equal(access(conf, R_OK), 0);
	argv_free(&av);
}

static void established_tcp_locks_with_nftables_and_debug_is_v4(void **state)
{
	(void)state;
	fresh();
	criu.tcp_established = true;
	criu.debug = true;
	struct argv av = ARGV_EMPTY;
	assert_int_equal(dump_criu_argv(&av, &x, &c, &req), 0);
	assert_pair(&av, "--network-lock", "nftables");
	assert_true(find(&av, "--tcp-established") > 0);
	assert_true(find(&av, "-v4") > 0);
	assert_int_equal(find(&av, "-v2"), -1);
	argv_free(&av);
}

/* The user's "verbosity" reaches CRIU on the command line, whose -vN wins
 * over the config file: raised, never below cocoon's 2, at most 4. */
static void users_verbosity_raises_the_log_level(void **state)
{
	(void)state;
	static const struct {
		const char *line;
		bool debug;
		const char *want;
	} cases[] = {
		{"verbosity=4", false, "-v4"},	{"verbosity", false, "-v3"},
		{"verbosity=0", false, "-v2"},	{"verbosity=0", true, "-v4"},
		{"verbosity=9", false, "-v4"},	{"verbosity=vv", false, "-v4"},
		{"verbosityx=4", false, "-v2"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fresh();
		char *lines[] = {(char *)"ghost-limit 2M", (char *)cases[i].line};
		criu.config = lines;
		criu.n_config = 2;
		criu.debug = cases[i].debug;
		struct argv av = ARGV_EMPTY;
		assert_int_equal(dump_criu_argv(&av, &x, &c, &req), 0);
		if (find(&av, cases[i].want) < 0)
			fail_msg("'%s' (debug %d): no %s", cases[i].line, cases[i].debug,
				 cases[i].want);
		int levels = 0;
		for (size_t k = 0; k < av.n; k++)
			levels += strncmp(av.args[k], "-v", 2) == 0;
		assert_int_equal(levels, 1);
		argv_free(&av);
	}
	criu.config = NULL;
	criu.n_config = 0;
}

static void pre_dump_keeps_the_tasks_and_names_no_externals(void **state)
{
	(void)state;
	fresh();
	req.pre_dump = true;
	c.dev_tmpfs = true;
	char *dests[] = {(char *)"/data"};
	c.bind_dests[0] = dests[0];
	c.n_binds = 1;
	struct argv av = ARGV_EMPTY;
	assert_int_equal(dump_criu_argv(&av, &x, &c, &req), 0);
	assert_string_equal(av.args[1], "pre-dump");
	assert_int_equal(find(&av, "--leave-running"), -1);
	assert_int_equal(find(&av, "--external"), -1);
	assert_int_equal(find(&av, "--config"), -1);
	argv_free(&av);
}

static void incremental_dump_names_its_parent(void **state)
{
	(void)state;
	fresh();
	req.parent_id = (char *)"ck0";
	struct argv av = ARGV_EMPTY;
	assert_int_equal(dump_criu_argv(&av, &x, &c, &req), 0);
	assert_pair(&av, "--prev-images-dir", "../ck0");
	assert_string_equal(x.parent, "ck0");
	argv_free(&av);
}

static void binds_dev_and_terminal_are_external(void **state)
{
	(void)state;
	fresh();
	c.dev_tmpfs = true;
	c.bind_dests[0] = (char *)"/data";
	c.bind_dests[1] = (char *)"/etc/hosts";
	c.n_binds = 2;
	snprintf(x.tty_args[0], sizeof(x.tty_args[0]), "tty[88:5]");
	x.n_tty = 1;
	struct argv av = ARGV_EMPTY;
	assert_int_equal(dump_criu_argv(&av, &x, &c, &req), 0);
	/* Keyed by destination: an engine may list them in another order. */
	assert_true(find(&av, "mnt[/data]:/data") > 0);
	assert_true(find(&av, "mnt[/etc/hosts]:/etc/hosts") > 0);
	assert_true(find(&av, "mnt[/dev]:cocoon-dev") > 0);
	assert_true(find(&av, "tty[88:5]") > 0);
	size_t externals = 0;
	for (size_t i = 0; i < av.n; i++)
		if (strcmp(av.args[i], "--external") == 0)
			externals++;
	assert_true(externals >= 4);
	argv_free(&av);
}

static void stream_route_gives_the_page_servers_socket(void **state)
{
	(void)state;
	fresh();
	x.stream = true;
	struct argv av = ARGV_EMPTY;
	assert_int_equal(dump_criu_argv(&av, &x, &c, &req), 0);
	assert_true(find(&av, "--page-server") > 0);
	assert_pair(&av, "--ps-socket", "3");
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
		c.n_binds = i + 1;
	}
	struct argv av;
	argv_init(&av, 16);
	assert_int_equal(dump_criu_argv(&av, &x, &c, &req), -E2BIG);
	argv_free(&av);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(dump_has_cocoons_options),
		cmocka_unit_test(established_tcp_locks_with_nftables_and_debug_is_v4),
		cmocka_unit_test(users_verbosity_raises_the_log_level),
		cmocka_unit_test(pre_dump_keeps_the_tasks_and_names_no_externals),
		cmocka_unit_test(incremental_dump_names_its_parent),
		cmocka_unit_test(binds_dev_and_terminal_are_external),
		cmocka_unit_test(stream_route_gives_the_page_servers_socket),
		cmocka_unit_test(too_long_a_line_is_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
