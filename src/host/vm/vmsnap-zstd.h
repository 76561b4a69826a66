/* zstd compression of a whole-VM state (vmsnap.h; docs/whole-vm.md
 * "Compressing the VM state"): [vm] snapshot_zstd_level > 0 publishes
 * vm.state.zst instead of vm.state, and a restore decompresses it into a
 * sparse file for QEMU's -incoming, which needs a seekable file (mapped-ram
 * reads each page at its own offset). libzstd (Debian's libzstd-dev). */
#pragma once

#include <stdint.h>

#include "error.h"

/* The decoder's window bound, 2^24 = 16 MiB of decoder memory at most:
 * a frame that asks for more is refused, not allocated. zstd's levels 1 to
 * 19 need at most 2^23 (lib/compress/clevels.h); snapshot_zstd_level stops
 * at 19 for that reason. */
#define VMSNAP_ZSTD_WINDOW_LOG_MAX 24
#define VMSNAP_ZSTD_LEVEL_MAX 19

/* Compresses the whole file from (a VM state; its holes are fed as zeros
 * without reading them) into to, written from its current offset, at level
 * (1 to VMSNAP_ZSTD_LEVEL_MAX), as one frame with its content size and a
 * checksum. *raw_bytes: from's size in bytes; *zst_bytes: bytes written.
 * Errors name what failed; fds stay open (the caller's). */
int vmsnap_zstd_pack(int from, int to, int level, uint64_t *raw_bytes, uint64_t *zst_bytes,
		     struct error **err);

/* What a decompression may cost (cmd-restore.c from vmsnap_state_bound
 * and [limits]). */
struct vmsnap_zstd_bounds {
	uint64_t max_bytes;   /* the decompressed size, checked before each write */
	const char *max_what; /* names max_bytes and where it comes from, for errors */
	uint64_t max_ms;      /* limits.verify_timeout_ms: the whole decompression */
};

/* Decompresses from, an untrusted vm.state.zst (name: for errors), into to,
 * a new empty file: 4 KiB blocks of zeros are left holes, so the file takes
 * what the guest used. Refuses, with -EINVAL and the reason: a raw_bytes
 * (vm.json's raw_size) over b->max_bytes, before anything is read; a frame
 * whose header states another size than raw_bytes, at its first read; a
 * stream that is not zstd, asks for a window over
 * 2^VMSNAP_ZSTD_WINDOW_LOG_MAX, would grow past raw_bytes (checked before
 * each write: a small file that expands to terabytes stops there), ends
 * short, fails its checksum, has data after its one frame, or does not
 * come to exactly raw_bytes. -ETIMEDOUT past b->max_ms, naming
 * limits.verify_timeout_ms. On failure to may hold part of the output: the
 * caller removes it. */
int vmsnap_zstd_unpack(int from, int to, const char *name, uint64_t raw_bytes,
		       const struct vmsnap_zstd_bounds *b, struct error **err);
