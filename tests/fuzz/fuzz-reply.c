/* libFuzzer: what a hostile agent can send the host. The input is the
 * channel's byte stream; the host makes one call and reads replies and
 * events from it as the shim would: frames, decoding, id and type checks,
 * events dispatched, the guest's error text sanitized. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent-client.h"

static void on_event(void *ud, const Cocoon__Response *ev)
{
	size_t *n = ud;
	if (ev->body_case == COCOON__RESPONSE__BODY_OUTPUT)
		*n += ev->output->data.len + strlen(ev->output->exec_id);
	else if (ev->body_case == COCOON__RESPONSE__BODY_EXIT)
		*n += strlen(ev->exit->exec_id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	int buf = 4 << 20;
	struct agent_client c;
	size_t seen = 0;
	if (size > (1 << 20) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	if (write(sv[1], data, size) != (ssize_t)size || agent_client_init(&c, sv[0], NULL) < 0) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	shutdown(sv[1], SHUT_WR);
	c.on_event = on_event;
	c.event_userdata = &seen;

	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__CheckpointRequest cr = COCOON__CHECKPOINT_REQUEST__INIT;
	Cocoon__Response *resp = NULL;
	struct error *err = NULL;
	cr.id = (char *)"c";
	cr.checkpoint_id = (char *)"ck";
	req.body_case = COCOON__REQUEST__BODY_CHECKPOINT;
	req.checkpoint = &cr;
	c.next_id = 1; /* so that inputs can answer id 1 */
	if (agent_call(&c, &req, &resp, 200, &err) == 0) {
		char named[64];
		snprintf(named, sizeof(named), "%s", resp->checkpoint->shared_path);
		agent_text_sanitize(named);
		cocoon__response__free_unpacked(resp, NULL);
	}
	error_free(&err);
	err = NULL;
	agent_client_drain(&c, &err);
	error_free(&err);
	agent_client_close(&c);
	close(sv[1]);
	return 0;
}
