/* libFuzzer: a whole-VM checkpoint's vm.state.zst as a restore decompresses
 * it (vmsnap_zstd_unpack), and the VM memory its vm.json key claims
 * (vmsnap_key_memory_mib), both from an untrusted directory.
 *
 * Input: one byte that picks the reader; for the decoder, 3 bytes of the
 * raw_size vm.json claims (at most 16 MiB, so a run stays quick) and then
 * the stream. The stream is served from a memfd, the output goes to another
 * (truncated for each input); the output must never pass raw_size. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmsnap-zstd.h"
#include "vmsnap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int in = -1, out = -1;
	static char key[4096];
	struct error *err = NULL;
	if (size < 1)
		return 0;
	if (data[0] & 1) {
		size_t n = size - 1 < sizeof(key) - 1 ? size - 1 : sizeof(key) - 1;
		memcpy(key, data + 1, n);
		key[n] = 0;
		int mib = vmsnap_key_memory_mib(key);
		if (mib == 0 || mib > 999999999)
			__builtin_trap(); /* -EINVAL or 1..9 digits */
		return 0;
	}
	if (size < 4)
		return 0;
	if (in < 0 && ((in = memfd_create("fuzz-in", MFD_CLOEXEC)) < 0 ||
		       (out = memfd_create("fuzz-out", MFD_CLOEXEC)) < 0))
		__builtin_trap();
	uint64_t raw = (uint64_t)data[1] | (uint64_t)data[2] << 8 | (uint64_t)data[3] << 16;
	if (ftruncate(in, 0) < 0 || ftruncate(out, 0) < 0 ||
	    pwrite(in, data + 4, size - 4, 0) != (ssize_t)(size - 4) || lseek(in, 0, SEEK_SET) != 0)
		__builtin_trap();
	struct vmsnap_zstd_bounds b = {
		.max_bytes = 16 << 20, .max_what = "the bound", .max_ms = 10000};
	int r = vmsnap_zstd_unpack(in, out, "vm.state.zst", raw, &b, &err);
	struct stat st;
	if (fstat(out, &st) < 0 || (uint64_t)st.st_size > raw ||
	    (r == 0 && (uint64_t)st.st_size != raw))
		__builtin_trap(); /* never past raw_size; exactly it on success */
	error_free(&err);
	return 0;
}
