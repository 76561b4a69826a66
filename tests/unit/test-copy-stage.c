/* A restore's staging directory (src/guest/copy-tree.c, copy_tree_stage):
 * links to the page images for the guest's root; for a user namespace's
 * root (docs/checkpoint.md, "A container with a user namespace") the pages
 * copied too and everything chowned to it, the share untouched. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>

#include "copy-tree.h"

struct dirs {
	char root[64], share[96], stage[96];
};

static void put(const char *dir, const char *name, const char *text)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static int setup(void **state)
{
	struct dirs *d = calloc(1, sizeof(*d));
	snprintf(d->root, sizeof(d->root), "/tmp/cocoon-stage-XXXXXX");
	assert_non_null(mkdtemp(d->root));
	snprintf(d->share, sizeof(d->share), "%s/share", d->root);
	snprintf(d->stage, sizeof(d->stage), "%s/stage", d->root);
	assert_int_equal(mkdir(d->share, 0700), 0);
	put(d->share, "core-1.img", "core");
	put(d->share, "pages-1.img", "pages of task 1");
	char link[160];
	snprintf(link, sizeof(link), "%s/parent", d->share);
	assert_int_equal(symlink("../pre", link), 0);
	*state = d;
	return 0;
}

static int teardown(void **state)
{
	struct dirs *d = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", d->root);
	(void)system(cmd);
	free(d);
	return 0;
}

static void test_pages_are_links_for_the_guests_root(void **state)
{
	struct dirs *d = *state;
	struct stat st;
	char p[256], target[256];
	assert_int_equal(copy_tree_stage(d->share, "../share", d->stage, NULL), 0);
	snprintf(p, sizeof(p), "%s/pages-1.img", d->stage);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	ssize_t n = readlink(p, target, sizeof(target) - 1);
	assert_true(n > 0);
	target[n] = 0;
	assert_string_equal(target, "../share/pages-1.img");
	snprintf(p, sizeof(p), "%s/core-1.img", d->stage);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
}

static void test_a_user_namespaces_root_gets_everything_copied_and_owned(void **state)
{
	struct dirs *d = *state;
	if (geteuid() != 0) {
		printf("# skip: chown needs root\n");
		skip();
	}
	const struct copy_tree_owner own = {.uid = 100000, .gid = 100001};
	struct stat st;
	char p[256], buf[64] = "";
	assert_int_equal(copy_tree_stage(d->share, "../share", d->stage, &own), 0);
	assert_int_equal(stat(d->stage, &st), 0);
	assert_true(st.st_uid == 100000 && st.st_gid == 100001);
	assert_int_equal(st.st_mode & 07777, 0700);
	static const char *const files[] = {"core-1.img", "pages-1.img"};
	for (size_t i = 0; i < 2; i++) {
		snprintf(p, sizeof(p), "%s/%s", d->stage, files[i]);
		assert_int_equal(lstat(p, &st), 0);
		assert_true(S_ISREG(st.st_mode));
		assert_true(st.st_uid == 100000 && st.st_gid == 100001);
		assert_int_equal(st.st_mode & 07777, 0600);
	}
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf) - 1), 15);
	close(fd);
	assert_string_equal(buf, "pages of task 1");
	snprintf(p, sizeof(p), "%s/parent", d->stage);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	/* The share's files stay as they were. */
	snprintf(p, sizeof(p), "%s/pages-1.img", d->share);
	assert_int_equal(stat(p, &st), 0);
	assert_true(st.st_uid == 0 && (st.st_mode & 07777) == 0600);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pages_are_links_for_the_guests_root, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_a_user_namespaces_root_gets_everything_copied_and_owned, setup,
			teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
