#include "proto.h"

#include <errno.h>
#include <stdlib.h>

#include "frame.h"

static int frame_packed(size_t n, uint8_t **out, size_t *out_len, struct error **err)
{
	if (n > FRAME_MAX_PAYLOAD)
		return error_setx(err, EMSGSIZE, "message of %zu bytes exceeds the %d byte limit",
				  n, FRAME_MAX_PAYLOAD);
	*out = malloc(FRAME_HEADER_SIZE + n);
	if (!*out)
		return error_set(err, ENOMEM, "frame");
	frame_header_encode(*out, (uint32_t)n);
	*out_len = FRAME_HEADER_SIZE + n;
	return 0;
}

int proto_frame_request(const Cocoon__Request *req, uint8_t **out, size_t *out_len,
			struct error **err)
{
	int r = frame_packed(cocoon__request__get_packed_size(req), out, out_len, err);
	if (r < 0)
		return r;
	cocoon__request__pack(req, *out + FRAME_HEADER_SIZE);
	return 0;
}

int proto_frame_response(const Cocoon__Response *resp, uint8_t **out, size_t *out_len,
			 struct error **err)
{
	int r = frame_packed(cocoon__response__get_packed_size(resp), out, out_len, err);
	if (r < 0)
		return r;
	cocoon__response__pack(resp, *out + FRAME_HEADER_SIZE);
	return 0;
}

const char *proto_request_name(Cocoon__Request__BodyCase body)
{
	switch (body) {
	case COCOON__REQUEST__BODY_PING:
		return "ping";
	case COCOON__REQUEST__BODY_VERSION:
		return "version";
	case COCOON__REQUEST__BODY_GUEST_INFO:
		return "guest_info";
	case COCOON__REQUEST__BODY_SHARED_CHECK:
		return "shared_check";
	case COCOON__REQUEST__BODY_SHUTDOWN:
		return "shutdown";
	case COCOON__REQUEST__BODY_CREATE:
		return "create";
	case COCOON__REQUEST__BODY_START:
		return "start";
	case COCOON__REQUEST__BODY_SIGNAL:
		return "kill";
	case COCOON__REQUEST__BODY_PAUSE:
		return "pause";
	case COCOON__REQUEST__BODY_EXEC:
		return "exec";
	case COCOON__REQUEST__BODY_PS:
		return "ps";
	case COCOON__REQUEST__BODY_STDIN:
		return "stdin";
	case COCOON__REQUEST__BODY_CHECKPOINT:
		return "checkpoint";
	case COCOON__REQUEST__BODY_RESTORE:
		return "restore";
	case COCOON__REQUEST__BODY_RESIZE:
		return "resize";
	case COCOON__REQUEST__BODY_OUTPUT_FLOW:
		return "output_flow";
	case COCOON__REQUEST__BODY_LOOPBACK_HOLD:
		return "loopback_hold";
	default:
		return "unknown";
	}
}
