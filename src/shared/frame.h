/* Framing for the host <-> agent channel, shared by both sides.
 *
 *   "CCN1" | u32 big-endian payload length | payload (protobuf)
 *
 * The magic lets a reader find the next frame after garbage: a stream channel
 * such as virtio-serial cannot be "closed" by the guest, so the agent resyncs
 * instead of giving up.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_MAGIC "CCN1"
#define FRAME_HEADER_SIZE 8
/* No message in the protocol needs more; a peer cannot make us buffer more. */
#define FRAME_MAX_PAYLOAD (1024 * 1024)

struct frame_reader {
	uint8_t buf[FRAME_HEADER_SIZE + FRAME_MAX_PAYLOAD];
	size_t len;
};

void frame_header_encode(uint8_t hdr[FRAME_HEADER_SIZE], uint32_t payload_len);

/* Space the caller may read() into: buf + len, up to frame_reader_room(). */
size_t frame_reader_room(const struct frame_reader *r);

/* Looks at the buffered bytes.
 *   1        a whole frame is at the start: *payload, *len point into r->buf;
 *            call frame_reader_consume() once done with it.
 *   0        more bytes are needed.
 *  -EBADMSG  the buffer does not start with the magic.
 *  -EMSGSIZE the header announces more than FRAME_MAX_PAYLOAD.
 * After an error, frame_reader_resync() drops bytes up to the next magic. */
int frame_reader_next(struct frame_reader *r, const uint8_t **payload, size_t *len);

void frame_reader_consume(struct frame_reader *r);

/* Drops at least one byte, then everything before the next possible magic.
 * Returns the number of bytes dropped. */
size_t frame_reader_resync(struct frame_reader *r);
