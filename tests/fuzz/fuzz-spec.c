/* libFuzzer: an OCI bundle's config.json, through spec_parse(), the parser
 * spec_load() runs on the file it reads. The bundle directory (with its
 * rootfs) is made once; each input is parsed from memory. */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spec.h"

static char bundle[PATH_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct oci_bundle b;
	struct error *err = NULL;
	if (!*bundle) {
		char dir[64], rootfs[96];
		snprintf(dir, sizeof(dir), "%s/cocoon-fuzz-spec.XXXXXX",
			 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
		if (!mkdtemp(dir))
			abort();
		snprintf(rootfs, sizeof(rootfs), "%s/rootfs", dir);
		if (mkdir(rootfs, 0700) < 0 || !realpath(dir, bundle))
			abort();
	}
	if (size > SPEC_MAX_BYTES)
		return 0;
	/* As read_file_bounded() hands it over: NUL-terminated. */
	char *text = malloc(size + 1);
	if (!text)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	spec_parse(bundle, "config.json", text, "fuzz", &b, &err);
	spec_free(&b);
	error_free(&err);
	free(text);
	return 0;
}
