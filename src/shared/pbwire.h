/* The protobuf wire format's varint, for the few fields cocoon reads from
 * CRIU's images (stats, pagemap) without carrying CRIU's schemas. Shared by
 * the guest (stats) and the host (pagemap checks). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

static inline bool pbwire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; *p < end && shift < 64; shift += 7) {
		uint8_t b = *(*p)++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return true;
	}
	return false;
}
