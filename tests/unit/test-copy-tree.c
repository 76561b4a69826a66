/* The agent's copy helper (`cocoon-agent --copy-tree SRC DST [--follow]`),
 * run as the agent runs it: a child process, fd 3 as the "CRIU finished"
 * signal in --follow mode. The page image grows while it is copied. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static const char *agent_path;

struct dirs {
	char root[64], src[96], dst[96];
};

static void make_dirs(struct dirs *d)
{
	/* tmpfs, as guest_checkpoint_dir is in the guest. */
	snprintf(d->root, sizeof(d->root), "/dev/shm/cocoon-copy-XXXXXX");
	assert_non_null(mkdtemp(d->root));
	snprintf(d->src, sizeof(d->src), "%s/src", d->root);
	snprintf(d->dst, sizeof(d->dst), "%s/dst", d->root);
	assert_int_equal(mkdir(d->src, 0700), 0);
}

static void remove_dirs(struct dirs *d)
{
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->root);
	assert_int_equal(system(cmd), 0);
}

/* Deterministic bytes: position-dependent, so a misplaced block shows. */
static void fill(uint8_t *buf, size_t len, uint64_t off)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)((off + i) * 2654435761u >> 13);
}

static void write_file(const char *dir, const char *name, size_t size)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	uint8_t *buf = malloc(size ? size : 1);
	fill(buf, size, 0);
	assert_int_equal(write(fd, buf, size), (ssize_t)size);
	free(buf);
	close(fd);
}

static void assert_same_file(const char *a_dir, const char *b_dir, const char *name)
{
	char a[256], b[256];
	snprintf(a, sizeof(a), "%s/%s", a_dir, name);
	snprintf(b, sizeof(b), "%s/%s", b_dir, name);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", a, b);
	if (system(cmd) != 0)
		fail_msg("%s differs after the copy", name);
}

static pid_t start_copier(struct dirs *d, int done_fd, bool like_cp)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* dup2() onto itself would keep close-on-exec: clear it then. */
		if (done_fd == 3 && fcntl(3, F_SETFD, 0) < 0)
			_exit(126);
		if (done_fd >= 0 && done_fd != 3 && dup2(done_fd, 3) < 0)
			_exit(126);
		if (like_cp)
			execl(agent_path, agent_path, "--copy-tree-like-cp", d->src, d->dst,
			      (char *)NULL);
		else if (done_fd >= 0)
			execl(agent_path, agent_path, "--copy-tree", d->src, d->dst, "--follow",
			      (char *)NULL);
		else
			execl(agent_path, agent_path, "--copy-tree", d->src, d->dst, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* A --follow copier, as the agent starts it: *done is the pipe's write end,
 * closed to say "CRIU has finished". */
static pid_t start_follower(struct dirs *d, int *done)
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0); /* as the agent makes it */
	pid_t pid = start_copier(d, p[0], false);
	close(p[0]);
	*done = p[1];
	return pid;
}

static int wait_exit(pid_t pid)
{
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_copy_after_the_dump(void **state)
{
	struct dirs d;
	make_dirs(&d);
	write_file(d.src, "pages-1.img", (9u << 20) + 123); /* not a multiple of anything */
	write_file(d.src, "core-1.img", 777);
	write_file(d.src, "empty.img", 0);
	char link[128], target[64] = {0};
	snprintf(link, sizeof(link), "%s/parent", d.src);
	assert_int_equal(symlink("../parent-dir", link), 0);
	assert_int_equal(wait_exit(start_copier(&d, -1, false)), 0);
	assert_same_file(d.src, d.dst, "pages-1.img");
	assert_same_file(d.src, d.dst, "core-1.img");
	assert_same_file(d.src, d.dst, "empty.img");
	snprintf(link, sizeof(link), "%s/parent", d.dst);
	assert_true(readlink(link, target, sizeof(target) - 1) > 0);
	assert_string_equal(target, "../parent-dir");
	remove_dirs(&d);
}

static void test_copy_like_cp(void **state)
{
	struct dirs d;
	make_dirs(&d);
	write_file(d.src, "pages-1.img", (5u << 20) + 9);
	assert_int_equal(wait_exit(start_copier(&d, -1, true)), 0);
	assert_same_file(d.src, d.dst, "pages-1.img");
	remove_dirs(&d);
}

/* CRIU's part, played here: the page image grows in uneven pieces while
 * the copier follows it; the small images appear at the end. */
static void test_follow_a_growing_page_image(void **state)
{
	struct dirs d;
	int done;
	make_dirs(&d);
	char path[256];
	snprintf(path, sizeof(path), "%s/pages-1.img", d.src);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	pid_t pid = start_follower(&d, &done);
	size_t chunk = (1u << 20) + 4096 * 3, total = 0;
	uint8_t *buf = malloc(chunk);
	for (int i = 0; i < 23; i++) {
		fill(buf, chunk, total);
		assert_int_equal(write(fd, buf, chunk), (ssize_t)chunk);
		total += chunk;
		nanosleep(&(struct timespec){.tv_nsec = 15 * 1000 * 1000}, NULL);
	}
	fill(buf, 1000, total);
	assert_int_equal(write(fd, buf, 1000), 1000);
	free(buf);
	close(fd);
	write_file(d.src, "pstree.img", 64);
	write_file(d.src, "pages-2.img", 12345); /* appeared late: copied at the end */
	close(done);				 /* "CRIU has finished" */
	assert_int_equal(wait_exit(pid), 0);
	assert_same_file(d.src, d.dst, "pages-1.img");
	assert_same_file(d.src, d.dst, "pages-2.img");
	assert_same_file(d.src, d.dst, "pstree.img");
	remove_dirs(&d);
}

/* A failed dump: the agent kills the copier; nothing hangs. */
static void test_follow_killed_midway(void **state)
{
	struct dirs d;
	int done;
	make_dirs(&d);
	write_file(d.src, "pages-1.img", 6u << 20);
	pid_t pid = start_follower(&d, &done);
	nanosleep(&(struct timespec){.tv_nsec = 200 * 1000 * 1000}, NULL);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(wait_exit(pid), 128 + SIGKILL);
	close(done);
	remove_dirs(&d);
}

/* fd 3 missing is a caller's bug, not "CRIU finished": refused. */
static void test_follow_without_fd3_fails(void **state)
{
	struct dirs d;
	make_dirs(&d);
	write_file(d.src, "pages-1.img", 100);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(3);
		execl(agent_path, agent_path, "--copy-tree", d.src, d.dst, "--follow",
		      (char *)NULL);
		_exit(127);
	}
	assert_int_equal(wait_exit(pid), 1);
	remove_dirs(&d);
}

static void test_unwritable_destination_is_named(void **state)
{
	struct dirs d;
	make_dirs(&d);
	snprintf(d.dst, sizeof(d.dst), "%s/missing/dst", d.root);
	write_file(d.src, "pages-1.img", 100);
	/* The helper's stderr is what the agent quotes: check it names both. */
	int err[2];
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(err[1], 2);
		execl(agent_path, agent_path, "--copy-tree", d.src, d.dst, (char *)NULL);
		_exit(127);
	}
	close(err[1]);
	char msg[512] = {0};
	ssize_t n = read(err[0], msg, sizeof(msg) - 1);
	close(err[0]);
	assert_int_equal(wait_exit(pid), 1);
	assert_true(n > 0);
	assert_non_null(strstr(msg, d.dst));
	assert_non_null(strstr(msg, "No such file or directory"));
	remove_dirs(&d);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s PATH-TO-COCOON-AGENT\n", argv[0]);
		return 2;
	}
	agent_path = argv[1];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_copy_after_the_dump),
		cmocka_unit_test(test_copy_like_cp),
		cmocka_unit_test(test_follow_a_growing_page_image),
		cmocka_unit_test(test_follow_killed_midway),
		cmocka_unit_test(test_follow_without_fd3_fails),
		cmocka_unit_test(test_unwritable_destination_is_named),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
