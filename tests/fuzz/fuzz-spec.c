/* libFuzzer: an OCI bundle's config.json, through spec_load() itself (it
 * reads the file from a bundle directory, so each input is written there). */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spec.h"

static char bundle[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[128];
	struct oci_bundle b;
	struct error *err = NULL;
	if (!*bundle) {
		/* tmpfs when there is one: a file is written per input. */
		snprintf(bundle, sizeof(bundle), "%s/cocoon-fuzz-spec.XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
		if (!mkdtemp(bundle))
			abort();
		snprintf(path, sizeof(path), "%s/rootfs", bundle);
		mkdir(path, 0700);
	}
	snprintf(path, sizeof(path), "%s/config.json", bundle);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	spec_load(bundle, "fuzz", &b, &err);
	spec_free(&b);
	error_free(&err);
	return 0;
}
