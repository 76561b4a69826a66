/* The host end of the agent channel. Everything read from it comes from the
 * guest and is treated as hostile: frames are bounded, replies are checked
 * for id and type, and any violation closes the channel. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "frame.h"
#include "proto.h"

struct agent_client {
	int fd;
	uint64_t next_id;
	bool broken;
	struct frame_reader *reader;
};

int agent_client_init(struct agent_client *c, int fd, struct error **err);
void agent_client_close(struct agent_client *c);

/* Sends req (protocol and id are filled in) and waits for its reply.
 * A reply carrying an error becomes a negative return with the agent's
 * message; a reply of the wrong type is a protocol violation. */
int agent_call(struct agent_client *c, Cocoon__Request *req, Cocoon__Response **resp,
	       int timeout_ms, struct error **err);

/* Sends raw bytes (tests of the agent's frame handling). */
int agent_send_raw(struct agent_client *c, const void *buf, size_t len, struct error **err);

/* Reads the next reply of any id. */
int agent_read_response(struct agent_client *c, Cocoon__Response **resp, int timeout_ms,
			struct error **err);
