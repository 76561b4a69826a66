/* The agent's answer to a kill of a process that has ended
 * (src/guest/container-ops.c): for the container's init, runc's words
 * "container not running", which containerd's shim reads as "process
 * already finished" (checkKillError, pkg/process/utils.go); "process is
 * not running" it took for an unknown error (review10 3). Linked with the
 * agent's code (guest_core_src). */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agent.h"
#include "container-ops.h"

/* An agent with container c1 whose init has exited, its output still
 * draining (the container is freed after its last byte), and an exec x1
 * that has exited too. */
static struct agent *agent_with_ended_init(void)
{
	struct agent *a = calloc(1, sizeof(*a));
	assert_non_null(a);
	struct agent_container *c = &a->containers[0];
	c->used = true;
	snprintf(c->id, sizeof(c->id), "c1");
	for (int i = 0; i < 2; i++) {
		struct agent_proc *p = &c->procs[i];
		p->used = true;
		p->pid = 42 + i;
		p->phase = PROC_EXITED;
		p->sync_fd = p->start_fd = p->stdin_fd = p->pidfd = -1;
		p->out_fd[0] = p->out_fd[1] = -1;
	}
	snprintf(c->procs[1].exec_id, sizeof(c->procs[1].exec_id), "x1");
	return a;
}

/* The one reply the agent queued: its error and message. */
static void reply_of(struct agent *a, int *error, char *msg, size_t size)
{
	struct frame_reader *r = calloc(1, sizeof(*r));
	const uint8_t *payload;
	size_t len;
	assert_non_null(r);
	assert_true(a->outq_len <= frame_reader_room(r));
	memcpy(r->buf, a->outq, a->outq_len);
	r->len = a->outq_len;
	assert_int_equal(frame_reader_next(r, &payload, &len), 1);
	Cocoon__Response *resp = cocoon__response__unpack(NULL, len, payload);
	assert_non_null(resp);
	*error = resp->error;
	snprintf(msg, size, "%s", resp->message ? resp->message : "");
	cocoon__response__free_unpacked(resp, NULL);
	free(r);
	free(a->outq);
	a->outq = NULL;
	a->outq_len = 0;
}

static void kill_of(struct agent *a, const char *exec_id, bool all, int *error, char *msg,
		    size_t size)
{
	Cocoon__SignalRequest req = COCOON__SIGNAL_REQUEST__INIT;
	req.id = (char *)"c1";
	req.exec_id = (char *)exec_id;
	req.signal = SIGTERM;
	req.all = all;
	container_handle_signal(a, 7, &req);
	reply_of(a, error, msg, size);
}

static void test_kill_of_an_ended_init(void **state)
{
	(void)state;
	struct agent *a = agent_with_ended_init();
	char msg[256];
	int error;
	kill_of(a, "", false, &error, msg, sizeof(msg));
	assert_int_equal(error, -ESRCH);
	assert_string_equal(msg, "kill c1: container not running");
	/* An exec that ended: the process is named. */
	kill_of(a, "x1", false, &error, msg, sizeof(msg));
	assert_int_equal(error, -ESRCH);
	assert_string_equal(msg, "kill c1 exec x1: no such process");
	/* No such container at all: the host's word for a freed one. */
	Cocoon__SignalRequest other = COCOON__SIGNAL_REQUEST__INIT;
	other.id = (char *)"c2";
	other.signal = SIGTERM;
	container_handle_signal(a, 8, &other);
	reply_of(a, &error, msg, sizeof(msg));
	assert_int_equal(error, -ENOENT);
	free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill_of_an_ended_init),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
