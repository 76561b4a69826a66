#include "frame.h"

#include <errno.h>
#include <string.h>

void frame_header_encode(uint8_t hdr[FRAME_HEADER_SIZE], uint32_t payload_len)
{
	memcpy(hdr, FRAME_MAGIC, 4);
	hdr[4] = (uint8_t)(payload_len >> 24);
	hdr[5] = (uint8_t)(payload_len >> 16);
	hdr[6] = (uint8_t)(payload_len >> 8);
	hdr[7] = (uint8_t)payload_len;
}

size_t frame_reader_room(const struct frame_reader *r)
{
	return sizeof(r->buf) - r->len;
}

static uint32_t header_length(const uint8_t *hdr)
{
	return (uint32_t)hdr[4] << 24 | (uint32_t)hdr[5] << 16 | (uint32_t)hdr[6] << 8 | hdr[7];
}

int frame_reader_next(struct frame_reader *r, const uint8_t **payload, size_t *len)
{
	size_t check = r->len < 4 ? r->len : 4;

	if (memcmp(r->buf, FRAME_MAGIC, check) != 0)
		return -EBADMSG;
	if (r->len < FRAME_HEADER_SIZE)
		return 0;
	uint32_t n = header_length(r->buf);
	if (n > FRAME_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (r->len < FRAME_HEADER_SIZE + n)
		return 0;
	*payload = r->buf + FRAME_HEADER_SIZE;
	*len = n;
	return 1;
}

void frame_reader_consume(struct frame_reader *r)
{
	size_t total = FRAME_HEADER_SIZE + header_length(r->buf);

	if (total > r->len)
		total = r->len;
	memmove(r->buf, r->buf + total, r->len - total);
	r->len -= total;
}

size_t frame_reader_resync(struct frame_reader *r)
{
	size_t skip = 1;

	if (r->len == 0)
		return 0;
	/* A magic may start anywhere, including as a prefix at the very end. */
	for (; skip < r->len; skip++) {
		size_t avail = r->len - skip;
		size_t cmp = avail < 4 ? avail : 4;
		if (memcmp(r->buf + skip, FRAME_MAGIC, cmp) == 0)
			break;
	}
	memmove(r->buf, r->buf + skip, r->len - skip);
	r->len -= skip;
	return skip;
}
