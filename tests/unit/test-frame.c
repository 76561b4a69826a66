/* The protocol: framing round trips, truncated, oversized and garbage frames,
 * and a hostile agent as seen by the host client. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent-client.h"
#include "fdio.h"
#include "frame.h"
#include "proto.h"

static struct frame_reader *reader_with(const void *data, size_t len)
{
	struct frame_reader *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	assert_true(len <= frame_reader_room(r));
	memcpy(r->buf, data, len);
	r->len = len;
	return r;
}

static uint8_t *ping_frame(uint64_t id, size_t *len)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__Ping ping = COCOON__PING__INIT;
	uint8_t *buf = NULL;

	ping.nonce = 0xdeadbeef;
	req.protocol = PROTOCOL_VERSION;
	req.id = id;
	req.body_case = COCOON__REQUEST__BODY_PING;
	req.ping = &ping;
	assert_int_equal(proto_frame_request(&req, &buf, len, NULL), 0);
	return buf;
}

static void test_round_trip(void **state)
{
	size_t len, plen;
	const uint8_t *payload;
	uint8_t *buf = ping_frame(42, &len);
	struct frame_reader *r = reader_with(buf, len);

	assert_int_equal(frame_reader_next(r, &payload, &plen), 1);
	assert_int_equal(plen, len - FRAME_HEADER_SIZE);
	Cocoon__Request *req = cocoon__request__unpack(NULL, plen, payload);
	assert_non_null(req);
	assert_int_equal(req->id, 42);
	assert_int_equal(req->body_case, COCOON__REQUEST__BODY_PING);
	assert_int_equal(req->ping->nonce, 0xdeadbeef);
	cocoon__request__free_unpacked(req, NULL);
	frame_reader_consume(r);
	assert_int_equal(r->len, 0);
	free(buf);
	free(r);
}

static void test_truncated_needs_more(void **state)
{
	size_t len, plen;
	const uint8_t *payload;
	uint8_t *buf = ping_frame(1, &len);

	for (size_t cut = 0; cut < len; cut++) {
		struct frame_reader *r = reader_with(buf, cut);
		assert_int_equal(frame_reader_next(r, &payload, &plen), 0);
		free(r);
	}
	free(buf);
}

static void test_oversized_refused(void **state)
{
	uint8_t hdr[FRAME_HEADER_SIZE];
	const uint8_t *payload;
	size_t plen;

	frame_header_encode(hdr, FRAME_MAX_PAYLOAD + 1);
	struct frame_reader *r = reader_with(hdr, sizeof(hdr));
	assert_int_equal(frame_reader_next(r, &payload, &plen), -EMSGSIZE);
	free(r);

	frame_header_encode(hdr, FRAME_MAX_PAYLOAD);
	r = reader_with(hdr, sizeof(hdr));
	assert_int_equal(frame_reader_next(r, &payload, &plen), 0);
	free(r);
}

static void test_garbage_then_resync(void **state)
{
	size_t len, plen;
	const uint8_t *payload;
	uint8_t *ping = ping_frame(7, &len);
	uint8_t data[4096];
	const char junk[] = "this is not a frame CCN";

	memcpy(data, junk, sizeof(junk) - 1);
	memcpy(data + sizeof(junk) - 1, ping, len);
	struct frame_reader *r = reader_with(data, sizeof(junk) - 1 + len);
	assert_int_equal(frame_reader_next(r, &payload, &plen), -EBADMSG);
	int rounds = 0;
	while (frame_reader_next(r, &payload, &plen) < 0) {
		assert_true(frame_reader_resync(r) > 0);
		assert_true(++rounds < 100);
	}
	assert_int_equal(frame_reader_next(r, &payload, &plen), 1);
	Cocoon__Request *req = cocoon__request__unpack(NULL, plen, payload);
	assert_non_null(req);
	assert_int_equal(req->id, 7);
	cocoon__request__free_unpacked(req, NULL);
	free(ping);
	free(r);
}

static void test_garbage_payload_undecodable(void **state)
{
	const uint8_t bad[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
	assert_null(cocoon__request__unpack(NULL, sizeof(bad), bad));
}

/* A hostile or broken agent must produce errors on the host, never crashes. */
static int client_with_reply(struct agent_client *c, const void *reply, size_t len)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(agent_client_init(c, sv[0], NULL), 0);
	if (len)
		assert_int_equal(write(sv[1], reply, len), (ssize_t)len);
	return sv[1];
}

static int call_ping(struct agent_client *c, struct error **err)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__Ping ping = COCOON__PING__INIT;
	Cocoon__Response *resp = NULL;
	req.body_case = COCOON__REQUEST__BODY_PING;
	req.ping = &ping;
	int r = agent_call(c, &req, &resp, 500, err);
	if (r == 0)
		cocoon__response__free_unpacked(resp, NULL);
	return r;
}

static uint8_t *response_frame(uint64_t id, int body, int32_t error, size_t *len)
{
	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	Cocoon__Pong pong = COCOON__PONG__INIT;
	Cocoon__VersionReply ver = COCOON__VERSION_REPLY__INIT;
	uint8_t *buf = NULL;
	resp.id = id;
	resp.error = error;
	resp.message = (char *)"nope\x1b[31m";
	resp.body_case = body;
	if (body == COCOON__RESPONSE__BODY_PONG)
		resp.pong = &pong;
	else if (body == COCOON__RESPONSE__BODY_VERSION)
		resp.version = &ver;
	assert_int_equal(proto_frame_response(&resp, &buf, len, NULL), 0);
	return buf;
}

static void test_client_accepts_good_reply(void **state)
{
	struct agent_client c;
	size_t len;
	uint8_t *f = response_frame(1, COCOON__RESPONSE__BODY_PONG, 0, &len);
	int peer = client_with_reply(&c, f, len);
	assert_int_equal(call_ping(&c, NULL), 0);
	agent_client_close(&c);
	close(peer);
	free(f);
}

static void test_client_wrong_type(void **state)
{
	struct agent_client c;
	struct error *err = NULL;
	size_t len;
	uint8_t *f = response_frame(1, COCOON__RESPONSE__BODY_VERSION, 0, &len);
	int peer = client_with_reply(&c, f, len);
	assert_int_equal(call_ping(&c, &err), -EPROTO);
	assert_non_null(strstr(err->msg, "wrong message type"));
	error_free(&err);
	/* After a violation the channel is not trusted again. */
	assert_int_equal(call_ping(&c, &err), -EPIPE);
	error_free(&err);
	agent_client_close(&c);
	close(peer);
	free(f);
}

static void test_client_error_reply_sanitized(void **state)
{
	struct agent_client c;
	struct error *err = NULL;
	size_t len;
	uint8_t *f = response_frame(1, 0, -ENOENT, &len);
	int peer = client_with_reply(&c, f, len);
	assert_int_equal(call_ping(&c, &err), -ENOENT);
	assert_non_null(strstr(err->msg, "nope"));
	assert_null(strchr(err->msg, '\x1b'));
	error_free(&err);
	agent_client_close(&c);
	close(peer);
	free(f);
}

static void test_client_oversized_and_garbage(void **state)
{
	struct agent_client c;
	struct error *err = NULL;
	uint8_t hdr[FRAME_HEADER_SIZE];
	frame_header_encode(hdr, 0x7fffffff);
	int peer = client_with_reply(&c, hdr, sizeof(hdr));
	assert_int_equal(call_ping(&c, &err), -EPROTO);
	assert_non_null(strstr(err->msg, "size limit"));
	error_free(&err);
	agent_client_close(&c);
	close(peer);

	const char junk[] = "\x01\x02garbage-garbage";
	peer = client_with_reply(&c, junk, sizeof(junk));
	assert_int_equal(call_ping(&c, &err), -EPROTO);
	error_free(&err);
	agent_client_close(&c);
	close(peer);

	/* A well-framed payload that is not a Response. */
	uint8_t bad[FRAME_HEADER_SIZE + 4];
	frame_header_encode(bad, 4);
	memset(bad + FRAME_HEADER_SIZE, 0xff, 4);
	peer = client_with_reply(&c, bad, sizeof(bad));
	assert_int_equal(call_ping(&c, &err), -EPROTO);
	assert_non_null(strstr(err->msg, "undecodable"));
	error_free(&err);
	agent_client_close(&c);
	close(peer);
}

static void test_client_timeout_and_stale_ids(void **state)
{
	struct agent_client c;
	struct error *err = NULL;
	size_t len;
	/* A reply to some other id is skipped; then nothing more comes. */
	uint8_t *f = response_frame(99, COCOON__RESPONSE__BODY_PONG, 0, &len);
	int peer = client_with_reply(&c, f, len);
	assert_int_equal(call_ping(&c, &err), -ETIMEDOUT);
	error_free(&err);
	close(peer);
	assert_int_not_equal(call_ping(&c, &err), 0);
	error_free(&err);
	agent_client_close(&c);
	free(f);
}

/* Fills the socket fd until it takes no more; returns the bytes queued. */
static size_t fill_socket(int fd)
{
	static char junk[4096];
	size_t n = 0;
	for (;;) {
		ssize_t w = send(fd, junk, sizeof(junk), MSG_DONTWAIT);
		if (w <= 0)
			return n;
		n += (size_t)w;
	}
}

/* rev11b F3: a peer that reads nothing. A send waited for room for ever;
 * now it fails after send_timeout_ms with an error naming the channel's
 * container and the limit, and later ones fail at once until the peer
 * reads again; a frame cut part-way closes the channel for good. */
static void test_send_has_a_deadline(void **state)
{
	(void)state;
	struct agent_client c;
	struct error *err = NULL;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	int small = 4096;
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	assert_int_equal(agent_client_init(&c, sv[0], NULL), 0);
	c.send_timeout_ms = 200;
	snprintf(c.what, sizeof(c.what), "container c1");
	size_t queued = fill_socket(sv[0]);
	assert_true(queued > 0);

	size_t len;
	uint8_t *ping = ping_frame(1, &len);
	long long t0 = now_ms();
	assert_int_equal(agent_send_raw(&c, ping, len, &err), -ETIMEDOUT);
	long long took = now_ms() - t0;
	assert_true(took >= 190 && took < 2000);
	assert_non_null(strstr(err->msg, "container c1: the agent has not read its channel for"));
	assert_non_null(strstr(err->msg, "limits.channel_send_timeout_ms = 200"));
	assert_non_null(strstr(err->msg, "nothing was sent"));
	error_free(&err);
	assert_false(c.broken);
	/* Stalled: the next send fails at once, as does a call within its
	 * own timeout. */
	t0 = now_ms();
	assert_int_equal(agent_send_raw(&c, ping, len, &err), -ETIMEDOUT);
	assert_true(now_ms() - t0 < 100);
	error_free(&err);
	assert_int_equal(call_ping(&c, &err), -ETIMEDOUT);
	assert_true(now_ms() - t0 < 300);
	error_free(&err);
	/* The peer reads again: sends go through. */
	static char sink[1 << 20];
	while (recv(sv[1], sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
	assert_int_equal(agent_send_raw(&c, ping, len, &err), 0);
	assert_int_equal(c.stalled_since, 0);
	while (recv(sv[1], sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
	/* A frame larger than the buffer: cut part-way, the channel closes. */
	static uint8_t big[256 * 1024];
	assert_int_equal(agent_send_raw(&c, big, sizeof(big), &err), -ETIMEDOUT);
	assert_non_null(strstr(err->msg, "a request was cut short, so the channel is closed"));
	error_free(&err);
	assert_true(c.broken);
	while (recv(sv[1], sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
	assert_int_equal(agent_send_raw(&c, ping, len, &err), -EPIPE);
	error_free(&err);
	free(ping);
	agent_client_close(&c);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_truncated_needs_more),
		cmocka_unit_test(test_oversized_refused),
		cmocka_unit_test(test_garbage_then_resync),
		cmocka_unit_test(test_garbage_payload_undecodable),
		cmocka_unit_test(test_client_accepts_good_reply),
		cmocka_unit_test(test_client_wrong_type),
		cmocka_unit_test(test_client_error_reply_sanitized),
		cmocka_unit_test(test_client_oversized_and_garbage),
		cmocka_unit_test(test_client_timeout_and_stale_ids),
		cmocka_unit_test(test_send_has_a_deadline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
