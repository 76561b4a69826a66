/* exec.h: the process `cocoon exec` runs, built from its options. */
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
#include "exec.h"
#include "spec.h"

static void test_user_forms(void **st)
{
	(void)st;
	uint32_t uid = 7, gid = 7;
	bool has_gid = true;
	assert_int_equal(exec_parse_user("1000", &uid, &gid, &has_gid), 0);
	assert_int_equal(uid, 1000);
	assert_false(has_gid);
	assert_int_equal(gid, 7); /* untouched */
	assert_int_equal(exec_parse_user("0:100", &uid, &gid, &has_gid), 0);
	assert_int_equal(uid, 0);
	assert_true(has_gid);
	assert_int_equal(gid, 100);
	uid = 9;
	assert_int_equal(exec_parse_user("root", &uid, &gid, &has_gid), -EINVAL);
	assert_int_equal(exec_parse_user("", &uid, &gid, &has_gid), -EINVAL);
	assert_int_equal(exec_parse_user(":5", &uid, &gid, &has_gid), -EINVAL);
	assert_int_equal(uid, 9);
}

/* A process as config.json would give it: args, env, cwd, a terminal. */
static Cocoon__ProcessSpec *base(void)
{
	Cocoon__ProcessSpec *p = calloc(1, sizeof(*p));
	assert_non_null(p);
	cocoon__process_spec__init(p);
	p->terminal = true;
	p->n_args = 1;
	p->args = calloc(2, sizeof(char *));
	p->args[0] = strdup("/bin/sh");
	p->n_env = 1;
	p->env = calloc(2, sizeof(char *));
	p->env[0] = strdup("PATH=/bin");
	p->cwd = strdup("/");
	p->uid = 5;
	p->gid = 6;
	return p;
}

/* Without --process: the command replaces args, --env adds, --cwd and
 * --user replace, and the terminal is --tty's, not the container's. */
static void test_apply_over_the_container_process(void **st)
{
	(void)st;
	_cleanup_error_ struct error *err = NULL;
	char *args[] = {"payload", "counter", "3"}, *env[] = {"A=1", "B=2"};
	struct exec_options o = {.args = args,
				 .n_args = 3,
				 .env = env,
				 .n_env = 2,
				 .cwd = "/tmp",
				 .user = "1000:1001"};
	Cocoon__ProcessSpec *p = base();
	assert_int_equal(exec_process_apply(p, &o, &err), 0);
	assert_null(err);
	assert_false(p->terminal);
	assert_int_equal(p->n_args, 3);
	assert_string_equal(p->args[0], "payload");
	assert_string_equal(p->args[2], "3");
	assert_ptr_not_equal(p->args[0], args[0]); /* a copy */
	assert_int_equal(p->n_env, 3);
	assert_string_equal(p->env[0], "PATH=/bin");
	assert_string_equal(p->env[2], "B=2");
	assert_string_equal(p->cwd, "/tmp");
	assert_int_equal(p->uid, 1000);
	assert_int_equal(p->gid, 1001);
	spec_process_free(p);

	/* A uid alone keeps the gid; --tty gives a terminal. */
	o = (struct exec_options){.args = args, .n_args = 1, .user = "42", .tty = true};
	p = base();
	p->terminal = false;
	assert_int_equal(exec_process_apply(p, &o, &err), 0);
	assert_true(p->terminal);
	assert_int_equal(p->uid, 42);
	assert_int_equal(p->gid, 6);
	assert_int_equal(p->n_env, 1);
	assert_string_equal(p->cwd, "/");
	spec_process_free(p);
}

/* With --process the file's args and terminal stand; without it a command
 * is required, and a bad --user is refused naming it. */
static void test_apply_process_file_and_refusals(void **st)
{
	(void)st;
	_cleanup_error_ struct error *err = NULL;
	char *args[] = {"ignored"};
	struct exec_options o = {.process_file = "p.json", .args = args, .n_args = 1};
	Cocoon__ProcessSpec *p = base();
	assert_int_equal(exec_process_apply(p, &o, &err), 0);
	assert_true(p->terminal);
	assert_int_equal(p->n_args, 1);
	assert_string_equal(p->args[0], "/bin/sh");

	o = (struct exec_options){0};
	assert_int_equal(exec_process_apply(p, &o, &err), -EINVAL);
	assert_non_null(strstr(err->msg, "no command"));
	error_free(&err);
	o = (struct exec_options){.args = args, .n_args = 1, .user = "nobody"};
	assert_int_equal(exec_process_apply(p, &o, &err), -EINVAL);
	assert_non_null(strstr(err->msg, "--user 'nobody'"));
	spec_process_free(p);
}

/* --process FILE is read and the options laid over it; a container that
 * does not exist is named. */
static void test_build(void **st)
{
	(void)st;
	_cleanup_error_ struct error *err = NULL;
	char dir[] = "/tmp/cocoon-test-exec.XXXXXX", file[64];
	unit_file(dir, "process.json",
		  "{\"args\": [\"payload\", \"sleep\"], \"cwd\": \"/\", \"env\": [\"X=y\"],"
		  " \"user\": {\"uid\": 0, \"gid\": 0}}",
		  file, sizeof(file));
	char *env[] = {"Z=1"};
	struct global_opts g = {.root = dir};
	struct exec_options o = {.process_file = file, .env = env, .n_env = 1, .cwd = "/srv"};
	Cocoon__ProcessSpec *p = NULL;
	assert_int_equal(exec_process_build(&g, "c1", &o, &p, &err), 0);
	assert_non_null(p);
	assert_string_equal(p->args[1], "sleep");
	assert_int_equal(p->n_env, 2);
	assert_string_equal(p->env[1], "Z=1");
	assert_string_equal(p->cwd, "/srv");
	spec_process_free(p);
	p = NULL;

	char *args[] = {"true"};
	o = (struct exec_options){.args = args, .n_args = 1};
	assert_true(exec_process_build(&g, "nosuch", &o, &p, &err) < 0);
	assert_null(p);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "nosuch"));
	unlink(file);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_user_forms),
		cmocka_unit_test(test_apply_over_the_container_process),
		cmocka_unit_test(test_apply_process_file_and_refusals),
		cmocka_unit_test(test_build),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
