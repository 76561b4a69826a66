/* The holds and releases of the container's output the shim tells the
 * agent (shim-output.h): told only once sent (review10 8), and a release
 * sent where the guest may hold a stream with no word of it to this shim,
 * after a whole-VM restore (review10 9). The agent is the far end of a
 * socketpair; the shim's state is what shim_output_poll() reads. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "cleanup.h"
#include "frame.h"
#include "shim-state.h"

struct fixture {
	struct global_opts g;
	struct shim_args args;
	struct shim s;
	int peer; /* the agent's end */
	struct frame_reader *rd;
};

static int setup(void **st)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int sv[2];
	assert_non_null(f);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f->g.cfg.channel_send_timeout_ms = 1000;
	f->g.cfg.output_queue_max_bytes = 4 << 20;
	f->args.g = &f->g;
	f->args.id = "c1";
	f->s.args = &f->args;
	assert_int_equal(agent_client_init(&f->s.sb.agent, sv[0], NULL), 0);
	f->s.sb.agent.send_timeout_ms = 100;
	f->peer = sv[1];
	shim_sink_open(&f->s.out_sink, -1, "", COCOON__OUTPUT_STREAM__OUTPUT_STDOUT);
	shim_sink_open(&f->s.err_sink, -1, "", COCOON__OUTPUT_STREAM__OUTPUT_STDERR);
	f->rd = calloc(1, sizeof(*f->rd));
	assert_non_null(f->rd);
	*st = f;
	return 0;
}

static int teardown(void **st)
{
	struct fixture *f = *st;
	shim_sink_close(&f->s.out_sink);
	shim_sink_close(&f->s.err_sink);
	agent_client_close(&f->s.sb.agent);
	close(f->peer);
	free(f->rd);
	free(f);
	return 0;
}

/* One round of the loop's output poll; returns whether it waits for room
 * in the channel. */
static bool poll_once(struct fixture *f)
{
	struct pollfd fds[2 + 2 * SHIM_MAX_EXECS];
	void *tags[ARRAY_SIZE(fds)];
	nfds_t n = 0;
	int timeout = -1;
	bool want_room = true;
	shim_output_poll(&f->s, fds, tags, &n, &timeout, &want_room);
	return want_room;
}

/* The next OutputFlowRequest the agent got: its hold, -1 if none came. */
static int next_flow(struct fixture *f, Cocoon__OutputStream *stream)
{
	const uint8_t *payload;
	size_t len;
	*stream = COCOON__OUTPUT_STREAM__OUTPUT_STDOUT;
	while (frame_reader_next(f->rd, &payload, &len) == 0) {
		ssize_t got = recv(f->peer, f->rd->buf + f->rd->len, frame_reader_room(f->rd),
				   MSG_DONTWAIT);
		if (got <= 0)
			return -1;
		f->rd->len += (size_t)got;
	}
	Cocoon__Request *req = cocoon__request__unpack(NULL, len, payload);
	frame_reader_consume(f->rd);
	assert_non_null(req);
	assert_int_equal(req->body_case, COCOON__REQUEST__BODY_OUTPUT_FLOW);
	assert_string_equal(req->output_flow->id, "c1");
	assert_string_equal(req->output_flow->exec_id, "");
	*stream = req->output_flow->stream;
	int hold = req->output_flow->hold;
	cocoon__request__free_unpacked(req, NULL);
	return hold;
}

/* A hold whose send failed (here the channel broken: EPIPE) is not told:
 * the loop waits for room and sends it then. It was taken as told, and a
 * lost release held the container's writer for good. */
static void test_hold_told_once_sent(void **st)
{
	struct fixture *f = *st;
	Cocoon__OutputStream stream;
	f->s.out_sink.hold_wanted = true;
	f->s.sb.agent.broken = true;
	assert_true(poll_once(f));
	assert_false(f->s.out_sink.hold_told);
	assert_int_equal(next_flow(f, &stream), -1);

	f->s.sb.agent.broken = false;
	assert_false(poll_once(f));
	assert_true(f->s.out_sink.hold_told);
	assert_int_equal(next_flow(f, &stream), 1);
	assert_int_equal(stream, COCOON__OUTPUT_STREAM__OUTPUT_STDOUT);
	assert_int_equal(next_flow(f, &stream), -1); /* told once */

	/* The release, the same way. */
	f->s.out_sink.hold_wanted = false;
	f->s.sb.agent.broken = true;
	assert_true(poll_once(f));
	assert_true(f->s.out_sink.hold_told);
	f->s.sb.agent.broken = false;
	assert_false(poll_once(f));
	assert_false(f->s.out_sink.hold_told);
	assert_int_equal(next_flow(f, &stream), 0);
}

/* After a whole-VM restore the agent may hold the container's streams (its
 * memory was saved with the holds of an engine that did not read): the
 * first poll releases both explicitly, once. Nothing is sent otherwise. */
static void test_unknown_hold_released(void **st)
{
	struct fixture *f = *st;
	Cocoon__OutputStream a, b;
	assert_false(poll_once(f));
	assert_int_equal(next_flow(f, &a), -1); /* a new shim: nothing to tell */

	shim_sink_hold_unknown(&f->s.out_sink);
	shim_sink_hold_unknown(&f->s.err_sink);
	assert_false(poll_once(f));
	assert_int_equal(next_flow(f, &a), 0);
	assert_int_equal(next_flow(f, &b), 0);
	assert_int_not_equal(a, b);
	assert_false(f->s.out_sink.hold_told);
	assert_false(f->s.err_sink.hold_told);
	assert_false(poll_once(f));
	assert_int_equal(next_flow(f, &a), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hold_told_once_sent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_hold_released, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
