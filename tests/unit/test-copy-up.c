/* tmpcopyup's copy (src/guest/copy-up.c): the tree of a directory into
 * another, as the guest copies an image's /tmp into the tmpfs over it. */
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

#include "copy-up.h"

struct tree {
	char root[64], src[96], dst[96];
	int from, to;
};

static void path(char *out, size_t size, const char *dir, const char *name)
{
	assert_true(snprintf(out, size, "%s/%s", dir, name) < (int)size);
}

static void write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char p[256];
	path(p, sizeof(p), dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static int setup(void **state)
{
	struct tree *t = calloc(1, sizeof(*t));
	snprintf(t->root, sizeof(t->root), "/tmp/cocoon-copyup-XXXXXX");
	if (!t || !mkdtemp(t->root))
		return -1;
	snprintf(t->src, sizeof(t->src), "%s/src", t->root);
	snprintf(t->dst, sizeof(t->dst), "%s/dst", t->root);
	if (mkdir(t->src, 0755) < 0 || mkdir(t->dst, 0755) < 0)
		return -1;
	t->from = open(t->src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	t->to = open(t->dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*state = t;
	return t->from < 0 || t->to < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	struct tree *t = *state;
	char cmd[128];
	close(t->from);
	close(t->to);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->root);
	int r = system(cmd);
	free(t);
	return r == 0 ? 0 : -1;
}

static void read_file(const char *dir, const char *name, char *out, size_t size)
{
	char p[256];
	path(p, sizeof(p), dir, name);
	int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	assert_true(fd >= 0);
	ssize_t n = read(fd, out, size - 1);
	assert_true(n >= 0);
	out[n] = 0;
	close(fd);
}

static mode_t mode_of(const char *dir, const char *name)
{
	char p[256];
	struct stat st;
	path(p, sizeof(p), dir, name);
	assert_int_equal(lstat(p, &st), 0);
	return st.st_mode;
}

/* Files, a directory, links (never followed) and a FIFO arrive with their
 * contents, modes and times. */
static void test_copies_every_kind_with_modes_and_times(void **state)
{
	struct tree *t = *state;
	char p[256], got[64], sub[128];
	write_file(t->src, "a", "alpha\n", 0640);
	path(sub, sizeof(sub), t->src, "sub");
	assert_int_equal(mkdir(sub, 0700), 0);
	write_file(sub, "b", "beta\n", 0755);
	path(p, sizeof(p), t->src, "to-sub");
	assert_int_equal(symlink("sub", p), 0);
	path(p, sizeof(p), t->src, "away");
	assert_int_equal(symlink("/etc/passwd", p), 0);
	path(p, sizeof(p), t->src, "fifo");
	assert_int_equal(mkfifo(p, 0620), 0);
	assert_int_equal(chmod(p, 0620), 0); /* despite the umask */
	struct timespec old[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
	assert_int_equal(utimensat(t->from, "a", old, 0), 0);

	char what[64] = "x";
	assert_int_equal(copy_up_dir(t->from, t->to, what, sizeof(what)), 0);

	read_file(t->dst, "a", got, sizeof(got));
	assert_string_equal(got, "alpha\n");
	assert_int_equal(mode_of(t->dst, "a"), S_IFREG | 0640);
	struct stat st;
	assert_int_equal(fstatat(t->to, "a", &st, 0), 0);
	assert_int_equal(st.st_mtim.tv_sec, 1000000000);
	assert_int_equal(mode_of(t->dst, "sub"), S_IFDIR | 0700);
	path(sub, sizeof(sub), t->dst, "sub");
	read_file(sub, "b", got, sizeof(got));
	assert_string_equal(got, "beta\n");
	assert_int_equal(mode_of(sub, "b"), S_IFREG | 0755);
	assert_true(S_ISLNK(mode_of(t->dst, "to-sub")));
	assert_true(S_ISLNK(mode_of(t->dst, "away")));
	ssize_t n = readlinkat(t->to, "away", got, sizeof(got) - 1);
	assert_int_equal(n, (ssize_t)strlen("/etc/passwd"));
	got[n] = 0;
	assert_string_equal(got, "/etc/passwd");
	assert_int_equal(mode_of(t->dst, "fifo"), S_IFIFO | 0620);
}

/* A tree deeper than 64 directories stops with ELOOP, naming where. */
static void test_too_deep_is_refused_naming_the_entry(void **state)
{
	struct tree *t = *state;
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", t->src);
	for (int i = 0; i < 66; i++) {
		size_t len = strlen(dir);
		assert_true(len + 3 < sizeof(dir));
		snprintf(dir + len, sizeof(dir) - len, "/d");
		assert_int_equal(mkdir(dir, 0755), 0);
	}
	char what[64] = "";
	assert_int_equal(copy_up_dir(t->from, t->to, what, sizeof(what)), -ELOOP);
	assert_string_equal(what, "d");
}

/* An entry that exists in the target already: EEXIST, named. */
static void test_an_existing_entry_is_an_error_naming_it(void **state)
{
	struct tree *t = *state;
	write_file(t->src, "same", "src\n", 0644);
	write_file(t->dst, "same", "dst\n", 0644);
	char what[64] = "";
	assert_int_equal(copy_up_dir(t->from, t->to, what, sizeof(what)), -EEXIST);
	assert_string_equal(what, "same");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_copies_every_kind_with_modes_and_times, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_too_deep_is_refused_naming_the_entry, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_an_existing_entry_is_an_error_naming_it, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
