/* Helpers around the generated protobuf-c code (proto/cocoon.proto). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "cocoon.pb-c.h"
#include "error.h"

/* Bumped when a change would make old peers misread messages. */
#define PROTOCOL_VERSION 1

/* Bounds of a NetworkSpec: the shim refuses a namespace with more, the
 * agent refuses a request with more. */
#define NET_MAX_INTERFACES 4
#define NET_MAX_ADDRESSES 16 /* per interface */
#define NET_MAX_ROUTES 32

/* Serializes msg behind a frame header into a new buffer. */
int proto_frame_request(const Cocoon__Request *req, uint8_t **out, size_t *out_len,
			struct error **err);
int proto_frame_response(const Cocoon__Response *resp, uint8_t **out, size_t *out_len,
			 struct error **err);

/* Name of a request body for messages, e.g. "guest_info". */
const char *proto_request_name(Cocoon__Request__BodyCase body);
