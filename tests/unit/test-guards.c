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
#include <sys/stat.h>
#include <unistd.h>

#include "agent-client.h"
#include "console.h"
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
	sanitized("x\xc2\x9b" "31m", "x 31m");
	sanitized("raw\x9b" "31m", "raw?31m");
	sanitized("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x88", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x88");
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
	out.stream = 1;
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
	struct console_guard g;
	struct stat sb;
	char line[100];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/console.log", dir);
	snprintf(old, sizeof(old), "%s.1", path);
	int qemu = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600); /* as QEMU's append=on */
	assert_true(qemu >= 0);
	assert_int_equal(console_guard_start(&g, path, 8192, NULL), 0);
	atomic_store(&g.stop, true); /* the thread ends; checks are made by hand */
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\n';
	for (int i = 0; i < 100; i++)
		assert_int_equal(write(qemu, line, sizeof(line)), (ssize_t)sizeof(line));
	console_guard_check(&g);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, 0);
	assert_int_equal(stat(old, &sb), 0);
	assert_int_equal(sb.st_size, 4096);
	assert_int_equal(write(qemu, "next\n", 5), 5);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, 5); /* appended at the new end, not sparse */
	console_guard_stop(&g);
	close(qemu);
	remove_tree(dir, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_sanitize),
		cmocka_unit_test(test_event_behind_reply),
		cmocka_unit_test(test_console_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
