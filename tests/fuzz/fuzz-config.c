/* libFuzzer: the configuration file parser. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	struct cocoon_config c;
	struct error *err = NULL;
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	config_init_defaults(&c);
	config_parse_string(&c, "fuzz.toml", text, &err);
	error_free(&err);
	config_free(&c);
	free(text);
	return 0;
}
