/* libFuzzer: a whole-VM checkpoint's vm.state.zst as a restore decompresses
 * it (vmsnap_zstd_unpack), and the VM memory its vm.json key claims
 * (vmsnap_key_memory_mib), both from an untrusted directory.
 *
 * Input: one byte that picks the reader; for the decoder, 3 bytes of the
 * raw_size vm.json claims (at most 16 MiB, so a run stays quick) and then
 * the stream. The stream is served from a memfd, the output goes to another
 * (truncated for each input); the output must never pass raw_size.
 *
 * One decoder context serves every input: the target is linked with
 * -Wl,--wrap for ZSTD_createDCtx and ZSTD_freeDCtx (meson.build), whose
 * wrappers hand out the same context, reset with
 * ZSTD_reset_session_and_parameters (as new: the decoder sets its window
 * bound again), and keep it. A context made and freed per input is some
 * 100 KiB plus its stream buffers, each a fresh mapping under ASan, and was
 * most of the time of an input (1,300 to 1,700 a second). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "vmsnap-zstd.h"
#include "vmsnap.h"

ZSTD_DCtx *__real_ZSTD_createDCtx(void);
size_t __real_ZSTD_freeDCtx(ZSTD_DCtx *d);
ZSTD_DCtx *__wrap_ZSTD_createDCtx(void);
size_t __wrap_ZSTD_freeDCtx(ZSTD_DCtx *d);

static ZSTD_DCtx *kept;

ZSTD_DCtx *__wrap_ZSTD_createDCtx(void)
{
	if (!kept)
		return kept = __real_ZSTD_createDCtx();
	if (ZSTD_isError(ZSTD_DCtx_reset(kept, ZSTD_reset_session_and_parameters)))
		__builtin_trap();
	return kept;
}

size_t __wrap_ZSTD_freeDCtx(ZSTD_DCtx *d)
{
	return d && d == kept ? 0 : __real_ZSTD_freeDCtx(d);
}

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
