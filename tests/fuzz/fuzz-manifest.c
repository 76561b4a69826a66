/* libFuzzer: cocoon.json as a restore directory may carry it. The file
 * limit is 64 (the configuration's default is higher) so that inputs of a few
 * KiB reach it. */
#include <stddef.h>
#include <stdint.h>

#include "images.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct images_limits lim = {
		.max_bytes = 1ULL << 36, .max_files = 64, .verify_ms = 1000};
	struct images_meta m;
	struct error *err = NULL;
	if (images_meta_parse((const char *)data, size, &lim, &m, &err) == 0)
		images_meta_free(&m);
	error_free(&err);
	return 0;
}
