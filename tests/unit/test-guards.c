/* The host's smaller guards against a hostile guest: its text reaching a
 * terminal, events hiding behind a reply, and the console log's cap. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "agent-client.h"
#include "guard.h"
#include "paths.h"

static void sanitized(const char *in, const char *want)
{
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", in);
	agent_text_sanitize(buf);
	assert_string_equal(buf, want);
}

static void test_text_sanitize(void **st)
{
	sanitized("plain text", "plain text");
	sanitized("a\x1b[31mred\x07\n", "a [31mred  ");
	sanitized("del\x7f", "del ");
	/* C1 controls in UTF-8 (CSI is U+009B), and raw C1 bytes. */
	sanitized("x\xc2\x9b"
		  "31m",
		  "x 31m");
	sanitized("raw\x9b"
		  "31m",
		  "raw?31m");
	sanitized("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x88",
		  "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x88");
	sanitized("\xc0\x80\xe0\x80\x80\xed\xa0\x80", "????????");
	sanitized("cut \xe2\x82", "cut ??");
	sanitized("nbsp\xc2\xa0ok", "nbsp\xc2\xa0ok");
}

static void send_frame(int fd, const Cocoon__Response *resp)
{
	uint8_t *buf;
	size_t len;
	assert_int_equal(proto_frame_response(resp, &buf, &len, NULL), 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	free(buf);
}

static void count_event(void *ud, const Cocoon__Response *ev)
{
	(*(int *)ud)++;
}

/* The agent's reply and an output event arrive in one read: the event must
 * be delivered without waiting for more bytes (the shim drains). */
static void test_event_behind_reply(void **st)
{
	int sv[2], events = 0;
	struct agent_client c;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(agent_client_init(&c, sv[0], NULL), 0);
	c.on_event = count_event;
	c.event_userdata = &events;

	Cocoon__Response reply = COCOON__RESPONSE__INIT, ev = COCOON__RESPONSE__INIT;
	Cocoon__Pong pong = COCOON__PONG__INIT;
	Cocoon__OutputEvent out = COCOON__OUTPUT_EVENT__INIT;
	reply.id = 1;
	reply.body_case = COCOON__RESPONSE__BODY_PONG;
	reply.pong = &pong;
	out.stream = COCOON__OUTPUT_STREAM__OUTPUT_STDOUT;
	out.data.data = (uint8_t *)"first line\n";
	out.data.len = 11;
	ev.body_case = COCOON__RESPONSE__BODY_OUTPUT;
	ev.output = &out;
	send_frame(sv[1], &reply);
	send_frame(sv[1], &ev);

	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__Ping ping = COCOON__PING__INIT;
	Cocoon__Response *resp = NULL;
	req.body_case = COCOON__REQUEST__BODY_PING;
	req.ping = &ping;
	assert_int_equal(agent_call(&c, &req, &resp, 2000, NULL), 0);
	cocoon__response__free_unpacked(resp, NULL);
	/* Both frames came in one read; no further bytes will come. */
	assert_int_equal(agent_client_drain(&c, NULL), 0);
	assert_int_equal(events, 1);
	agent_client_close(&c);
	close(sv[1]);
}

static void test_console_cap(void **st)
{
	char dir[] = "/tmp/cocoon-test-console.XXXXXX", path[64], old[80];
	struct sandbox_guard g;
	struct stat sb;
	char line[100];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/console.log", dir);
	snprintf(old, sizeof(old), "%s.1", path);
	int qemu = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600); /* as QEMU's append=on */
	assert_true(qemu >= 0);
	struct guard_opts o = {.console_path = path, .console_cap = 8192};
	assert_int_equal(guard_start(&g, &o, NULL), 0);
	atomic_store(&g.stop, true); /* the thread ends; checks are made by hand */
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\n';
	for (int i = 0; i < 100; i++)
		assert_int_equal(write(qemu, line, sizeof(line)), (ssize_t)sizeof(line));
	guard_check_console(&g);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, 0);
	assert_int_equal(stat(old, &sb), 0);
	assert_int_equal(sb.st_size, 4096);
	assert_int_equal(write(qemu, "next\n", 5), 5);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, 5); /* appended at the new end, not sparse */
	guard_stop(&g);
	close(qemu);
	remove_tree(dir, NULL);
}

/* The shared directory's blocks are counted (a sparse giant costs nothing
 * and counts nothing), and past the cap the VM is killed. */
static pid_t fake_vmm(void)
{
	pid_t vmm = fork();
	if (vmm == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		alarm(20);
		pause();
		_exit(0);
	}
	return vmm;
}

static void assert_killed(pid_t vmm)
{
	int status;
	assert_int_equal(waitpid(vmm, &status, 0), vmm);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void test_shared_cap(void **st)
{
	char dir[] = "/tmp/cocoon-test-shared.XXXXXX", p[128];
	static char block[1 << 20];
	struct sandbox_guard g;
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/sub", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/sub/data", dir);
	int fd = open(p, O_WRONLY | O_CREAT, 0600);
	memset(block, 1, sizeof(block));
	for (int i = 0; i < 3; i++)
		assert_int_equal(write(fd, block, sizeof(block)), (ssize_t)sizeof(block));
	assert_int_equal(ftruncate(fd, 1LL << 40), 0);
	close(fd);
	snprintf(p, sizeof(p), "%s/loop", dir);
	assert_int_equal(symlink(".", p), 0);
	pid_t vmm = fake_vmm();
	snprintf(p, sizeof(p), "%s/console.log", dir);
	struct guard_opts o = {.console_path = p,
			       .console_cap = 1 << 20,
			       .shared_dir = dir,
			       .shared_cap = 4 << 20,
			       .vmm = vmm,
			       .id = "c1"};
	assert_int_equal(guard_start(&g, &o, NULL), 0);
	atomic_store(&g.stop, true);
	bool deep = false;
	uint64_t used = guard_usage(g.shared_fd, 0, UINT64_MAX, &deep);
	assert_false(deep);
	if (used < (3 << 20) || used >= (4 << 20))
		fail_msg("3 MiB written, %llu bytes counted", (unsigned long long)used);
	guard_check_shared(&g);
	assert_false(atomic_load(&g.tripped));
	snprintf(p, sizeof(p), "%s/more", dir);
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	assert_int_equal(write(fd, block, sizeof(block)), (ssize_t)sizeof(block));
	assert_int_equal(write(fd, block, sizeof(block)), (ssize_t)sizeof(block));
	close(fd);
	guard_check_shared(&g);
	assert_true(atomic_load(&g.tripped));
	assert_killed(vmm);
	guard_stop(&g);
	remove_tree(dir, NULL);
}

/* virtiofsd's logs (vfs-TAG.log beside the console log): a guest that
 * owns its kernel can make virtiofsd log an error per malformed request;
 * they had no cap. Only those names are touched, and never through a
 * symlink. */
static void test_vfs_logs_capped(void **st)
{
	char dir[] = "/tmp/cocoon-test-vfs.XXXXXX", p[128], console[128];
	static char block[4096];
	struct sandbox_guard g;
	struct stat sb;
	assert_non_null(mkdtemp(dir));
	snprintf(console, sizeof(console), "%s/console.log", dir);
	snprintf(p, sizeof(p), "%s/vfs-cocoon.log", dir);
	int vfs = open(p, O_WRONLY | O_CREAT | O_APPEND, 0600); /* as virtiofsd's stderr */
	snprintf(p, sizeof(p), "%s/other.log", dir);
	int other = open(p, O_WRONLY | O_CREAT, 0600);
	snprintf(p, sizeof(p), "%s/vfs-link.log", dir);
	assert_int_equal(symlink("other.log", p), 0);
	memset(block, 'v', sizeof(block));
	for (int i = 0; i < 4; i++) {
		assert_int_equal(write(vfs, block, sizeof(block)), (ssize_t)sizeof(block));
		assert_int_equal(write(other, block, sizeof(block)), (ssize_t)sizeof(block));
	}
	struct guard_opts o = {.console_path = console, .console_cap = 8192, .vfs_log_dir = dir};
	assert_int_equal(guard_start(&g, &o, NULL), 0);
	atomic_store(&g.stop, true);
	guard_check_console(&g);
	snprintf(p, sizeof(p), "%s/vfs-cocoon.log", dir);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_size, 0);
	snprintf(p, sizeof(p), "%s/vfs-cocoon.log.1", dir);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_size, 4096);
	snprintf(p, sizeof(p), "%s/other.log", dir);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_size, 4 * 4096); /* not a virtiofsd log, nor through vfs-link.log */
	guard_stop(&g);
	close(vfs);
	close(other);
	remove_tree(dir, NULL);
}

/* Two ways past a guard that adds up the blocks of the files it finds: the
 * data nested deeper than its walk goes (it went 16 levels down and no
 * further, so 8 MiB at level 20 counted nothing), and entries that store
 * no block (each costs tmpfs an inode and a dentry). Both stop the VM. */
/* The guard's state for checks made here, without its thread (whose
 * walk would share the directory offset with ours). */
static void guard_watch(struct sandbox_guard *g, const struct guard_opts *o)
{
	memset(g, 0, sizeof(*g));
	g->o = *o;
	g->console_fd = g->vmm_log_fd = g->vfs_dir_fd = -1;
	g->shared_fd = open(o->shared_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(g->shared_fd >= 0);
}

static void test_shared_cap_deep_and_many(void **st)
{
	char dir[] = "/tmp/cocoon-test-shared.XXXXXX", p[1024];
	static char block[1 << 20];
	struct sandbox_guard g;
	assert_non_null(mkdtemp(dir));
	size_t n = (size_t)snprintf(p, sizeof(p), "%s", dir);
	for (int i = 0; i < 20; i++) {
		n += (size_t)snprintf(p + n, sizeof(p) - n, "/d");
		assert_int_equal(mkdir(p, 0700), 0);
	}
	snprintf(p + n, sizeof(p) - n, "/junk");
	int fd = open(p, O_WRONLY | O_CREAT, 0600);
	memset(block, 1, sizeof(block));
	for (int i = 0; i < 8; i++)
		assert_int_equal(write(fd, block, sizeof(block)), (ssize_t)sizeof(block));
	close(fd);
	pid_t vmm = fake_vmm();
	struct guard_opts o = {.shared_dir = dir, .shared_cap = 4 << 20, .vmm = vmm, .id = "c1"};
	guard_watch(&g, &o);
	guard_check_shared(&g);
	assert_true(atomic_load(&g.tripped));
	assert_killed(vmm);
	close(g.shared_fd);
	remove_tree(dir, NULL);

	/* 2000 empty files: no block, 2000 inodes. */
	assert_non_null(mkdtemp(strcpy(dir, "/tmp/cocoon-test-shared.XXXXXX")));
	for (int i = 0; i < 2000; i++) {
		snprintf(p, sizeof(p), "%s/e%d", dir, i);
		fd = open(p, O_WRONLY | O_CREAT, 0600);
		assert_true(fd >= 0);
		close(fd);
	}
	vmm = fake_vmm();
	o.shared_dir = dir;
	o.vmm = vmm;
	guard_watch(&g, &o);
	bool deep = false;
	uint64_t used = guard_usage(g.shared_fd, 0, UINT64_MAX, &deep);
	assert_false(deep);
	if (used < 2000ULL * GUARD_ENTRY_MIN_BYTES)
		fail_msg("2000 empty files counted as %llu bytes", (unsigned long long)used);
	/* A walk stops once past what it is asked about: 101 entries of the
	 * 2000 for a cap of 100 (the guest's count does not make it longer). */
	used = guard_usage(g.shared_fd, 0, 100 * GUARD_ENTRY_MIN_BYTES, &deep);
	if (used != 101ULL * GUARD_ENTRY_MIN_BYTES)
		fail_msg("a walk for a cap of 100 entries counted %llu bytes, not 101 entries",
			 (unsigned long long)used);
	guard_check_shared(&g);
	assert_true(atomic_load(&g.tripped));
	assert_killed(vmm);
	close(g.shared_fd);
	remove_tree(dir, NULL);
}

/* Extended attributes count: a file and the directory itself with a
 * user.* attribute each (2000 bytes: one fits beside an ext4 inode) count
 * their names and values, and a file of a FIFO is never opened. */
static void test_shared_cap_xattrs(void **st)
{
	(void)st;
	char dir[64], p[128];
	static char value[2000];
	assert_non_null(mkdtemp(strcpy(dir, "/tmp/cocoon-test-shared.XXXXXX")));
	snprintf(p, sizeof(p), "%s/x", dir);
	int fd = open(p, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(p, sizeof(p), "%s/fifo", dir);
	assert_int_equal(mkfifo(p, 0600), 0);
	memset(value, 'v', sizeof(value));
	snprintf(p, sizeof(p), "%s/x", dir);
	if (setxattr(p, "user.fill", value, sizeof(value), 0) < 0 ||
	    setxattr(dir, "user.top", value, sizeof(value), 0) < 0) {
		int e = errno;
		remove_tree(dir, NULL);
		if (e == ENOTSUP) {
			print_message("skipped: /tmp's filesystem keeps no user.* attributes\n");
			skip();
		}
		fail_msg("setxattr: %s", strerror(e));
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	bool deep = false;
	uint64_t used = guard_usage(dfd, 0, UINT64_MAX, &deep);
	uint64_t want = 2 * GUARD_ENTRY_MIN_BYTES + 2 * (sizeof(value) + GUARD_XATTR_OVERHEAD) +
			sizeof("user.fill") + sizeof("user.top");
	if (used != want)
		fail_msg(
			"an empty file, a FIFO and 2 attributes of %zu bytes counted as %llu bytes, not %llu",
			sizeof(value), (unsigned long long)used, (unsigned long long)want);
	close(dfd);
	remove_tree(dir, NULL);
}

/* Files removed from the shared directory that a process still holds open
 * count; one held O_PATH only, or one that was never below it, does not. */
static void test_shared_cap_held_open(void **st)
{
	(void)st;
	char dir[64], p[128];
	static char data[100 * 1024];
	assert_non_null(mkdtemp(strcpy(dir, "/tmp/cocoon-test-shared.XXXXXX")));
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	assert_int_equal(guard_held_usage(getpid(), dfd, UINT64_MAX), 0);
	snprintf(p, sizeof(p), "%s/held", dir);
	int held = open(p, O_RDWR | O_CREAT, 0600);
	assert_true(held >= 0);
	assert_int_equal(write(held, data, sizeof(data)), (int)sizeof(data));
	snprintf(p, sizeof(p), "%s/path-only", dir);
	int w = open(p, O_WRONLY | O_CREAT, 0600);
	assert_true(w >= 0);
	assert_int_equal(write(w, data, sizeof(data)), (int)sizeof(data));
	close(w);
	int path_only = open(p, O_PATH);
	assert_true(path_only >= 0);
	/* Beside the directory, not in it. */
	char outside[96];
	snprintf(outside, sizeof(outside), "%s-outside", dir);
	int out = open(outside, O_RDWR | O_CREAT, 0600);
	assert_true(out >= 0);
	assert_int_equal(write(out, data, sizeof(data)), (int)sizeof(data));
	/* Linked, nothing counts: the walk counts them. */
	assert_int_equal(guard_held_usage(getpid(), dfd, UINT64_MAX), 0);
	snprintf(p, sizeof(p), "%s/held", dir);
	assert_int_equal(unlink(p), 0);
	snprintf(p, sizeof(p), "%s/path-only", dir);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(unlink(outside), 0);
	uint64_t used = guard_held_usage(getpid(), dfd, UINT64_MAX);
	if (used < sizeof(data) || used >= 2 * sizeof(data))
		fail_msg("one removed file of %zu bytes held open counted as %llu bytes",
			 sizeof(data), (unsigned long long)used);
	assert_int_equal(guard_held_usage(0, dfd, UINT64_MAX), 0);
	close(held);
	close(path_only);
	close(out);
	assert_int_equal(guard_held_usage(getpid(), dfd, UINT64_MAX), 0);
	close(dfd);
	remove_tree(dir, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_sanitize),
		cmocka_unit_test(test_event_behind_reply),
		cmocka_unit_test(test_console_cap),
		cmocka_unit_test(test_shared_cap),
		cmocka_unit_test(test_shared_cap_deep_and_many),
		cmocka_unit_test(test_shared_cap_xattrs),
		cmocka_unit_test(test_shared_cap_held_open),
		cmocka_unit_test(test_vfs_logs_capped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
