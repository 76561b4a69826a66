/* libFuzzer: CRIU's pagemap image, as the host reads it before a restore. */
#include <stddef.h>
#include <stdint.h>

#include "images.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t id, pages;
	struct error *err = NULL;
	if (images_pagemap_pages(data, size, &id, &pages, &err) == 0 && pages > UINT64_MAX / 4096)
		__builtin_trap(); /* the count must never wrap */
	error_free(&err);
	return 0;
}
