/* zstd of a whole-VM state (vmsnap-zstd.h). The state comes back from an
 * image directory the guest or anyone else may have written, so the
 * decoder is bounded in memory (window), in output (max_bytes, before
 * every write) and checked for length and checksum. */
#include "vmsnap-zstd.h"
#include "cleanup.h"
#include "fdio.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#define CHUNK (1 << 20)
/* The decoder's input and output buffers: zstd decodes in blocks of at most
 * 128 KiB anyway, and a restore's decompression takes the same CPU time with
 * 64 KiB as with 1 MiB (0.16 s for 128 MiB either way, measured); smaller
 * buffers stay in the allocator's caches (under ASan, 1 MiB was a new
 * mapping per call: fuzz-vmsnap ran 8 times slower, docs/security.md). */
#define UNPACK_CHUNK (64 << 10)
#define BLOCK 4096

static void free_cctx(ZSTD_CCtx **c)
{
	ZSTD_freeCCtx(*c);
}

static void free_dctx(ZSTD_DCtx **d)
{
	ZSTD_freeDCtx(*d);
}

/* Feeds in to the compressor (end: the last input) and writes what comes
 * out; 0 or -errno (-EIO for a zstd error, named in err). */
static int pack_feed(ZSTD_CCtx *c, int to, const void *data, size_t len, bool end, char *out,
		     uint64_t *written, struct error **err)
{
	ZSTD_inBuffer in = {data, len, 0};
	for (;;) {
		ZSTD_outBuffer o = {out, CHUNK, 0};
		size_t left = ZSTD_compressStream2(c, &o, &in, end ? ZSTD_e_end : ZSTD_e_continue);
		if (ZSTD_isError(left))
			return error_setx(err, EIO, "zstd: %s", ZSTD_getErrorName(left));
		int r = fd_write_all(to, out, o.pos);
		if (r < 0)
			return error_set(err, -r, "write the compressed VM state");
		*written += o.pos;
		if (end ? left == 0 : in.pos == in.size)
			return 0;
	}
}

int vmsnap_zstd_pack(int from, int to, int level, uint64_t *raw_bytes, uint64_t *zst_bytes,
		     struct error **err)
{
	struct stat st;
	*raw_bytes = *zst_bytes = 0;
	if (level < 1 || level > VMSNAP_ZSTD_LEVEL_MAX)
		return error_setx(err, EINVAL, "zstd level %d: not 1 to %d", level,
				  VMSNAP_ZSTD_LEVEL_MAX);
	if (fstat(from, &st) < 0)
		return error_set(err, errno, "the VM state");
	_cleanup_(free_cctx) ZSTD_CCtx *c = ZSTD_createCCtx();
	_cleanup_free_ char *buf = malloc(CHUNK), *out = malloc(CHUNK), *zero = calloc(1, CHUNK);
	if (!c || !buf || !out || !zero)
		return error_set(err, ENOMEM, "zstd");
	if (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(c, (unsigned long long)st.st_size)))
		return error_setx(err, EIO, "zstd: cannot set level %d", level);
	off_t pos = 0;
	while (pos < st.st_size) {
		/* A mapped-ram state is sparse (a page per offset, the unused
		 * ones holes): the holes go in as zeros, never read. */
		off_t data = lseek(from, pos, SEEK_DATA);
		if (data < 0 && errno != ENXIO)
			return error_set(err, errno, "the VM state");
		if (data < 0)
			data = st.st_size;
		for (; pos < data;) {
			size_t n = (size_t)(data - pos) < CHUNK ? (size_t)(data - pos) : CHUNK;
			int r = pack_feed(c, to, zero, n, false, out, zst_bytes, err);
			if (r < 0)
				return r;
			pos += (off_t)n;
		}
		if (pos >= st.st_size)
			break;
		off_t hole = lseek(from, pos, SEEK_HOLE);
		if (hole < 0)
			return error_set(err, errno, "the VM state");
		for (; pos < hole;) {
			size_t want = (size_t)(hole - pos) < CHUNK ? (size_t)(hole - pos) : CHUNK;
			ssize_t n = pread(from, buf, want, pos);
			if (n <= 0)
				return error_set(err, n < 0 ? errno : EIO, "read the VM state");
			int r = pack_feed(c, to, buf, (size_t)n, false, out, zst_bytes, err);
			if (r < 0)
				return r;
			pos += n;
		}
	}
	int r = pack_feed(c, to, NULL, 0, true, out, zst_bytes, err);
	if (r == 0)
		*raw_bytes = (uint64_t)st.st_size;
	return r;
}

static bool all_zero(const char *p, size_t len)
{
	static const char zero[BLOCK];
	return len <= BLOCK && memcmp(p, zero, len) == 0;
}

/* Writes a decompressed piece at offset at: blocks of zeros are skipped
 * (holes; the file is extended to its size at the end). */
static int unpack_write(int to, const char *p, size_t len, uint64_t at)
{
	for (size_t i = 0; i < len;) {
		size_t n = len - i < BLOCK ? len - i : BLOCK;
		if (!all_zero(p + i, n)) {
			ssize_t w = pwrite(to, p + i, n, (off_t)(at + i));
			if (w != (ssize_t)n)
				return w < 0 ? -errno : -EIO;
		}
		i += n;
	}
	return 0;
}

/* The first piece of input: a frame that states its size must state
 * raw_bytes (vmsnap_zstd_pack always states it), so a bomb whose header
 * says more is refused before any output. */
static int check_frame_size(const char *in, size_t n, const char *name, uint64_t raw_bytes,
			    struct error **err)
{
	unsigned long long said = ZSTD_getFrameContentSize(in, n);
	if (said == ZSTD_CONTENTSIZE_ERROR || said == ZSTD_CONTENTSIZE_UNKNOWN || said == raw_bytes)
		return 0; /* not zstd is said by the decoder, with its reason */
	return error_setx(err, EINVAL,
			  "%s: its zstd frame says it holds %llu bytes, vm.json's raw_size %llu",
			  name, said, (unsigned long long)raw_bytes);
}

static int past_deadline(long long deadline, const char *name, uint64_t done, uint64_t raw_bytes,
			 const struct vmsnap_zstd_bounds *b, struct error **err)
{
	if (now_ms() < deadline)
		return 0;
	return error_setx(
		err, ETIMEDOUT,
		"%s: decompressing took longer than %llu ms (limits.verify_timeout_ms), stopped at %llu of %llu bytes",
		name, (unsigned long long)b->max_ms, (unsigned long long)done,
		(unsigned long long)raw_bytes);
}

/* Where a decompression stands (vmsnap_zstd_unpack). */
struct unpack {
	ZSTD_DCtx *d;
	int to;
	const char *name;
	uint64_t raw_bytes, done;
	size_t last; /* 0 once the frame is complete */
	bool any;    /* input was fed */
	long long deadline;
	const struct vmsnap_zstd_bounds *b;
	char *out;
};

/* Feeds ib to the decoder and writes what comes out, until ib is used up
 * and, at the end (ib empty), until the decoder has nothing more to give. */
static int unpack_feed(struct unpack *u, ZSTD_inBuffer *ib, struct error **err)
{
	for (;;) {
		/* One frame, as vmsnap_zstd_pack writes: a second would start
		 * over from an empty window. */
		if (u->any && u->last == 0 && ib->pos < ib->size)
			return error_setx(err, EINVAL, "%s: data after its zstd frame", u->name);
		if (ib->pos == ib->size && (ib->size != 0 || (u->any && u->last == 0)))
			return 0;
		u->any |= ib->size != 0;
		ZSTD_outBuffer ob = {u->out, UNPACK_CHUNK, 0};
		u->last = ZSTD_decompressStream(u->d, &ob, ib);
		if (ZSTD_isError(u->last))
			return error_setx(err, EINVAL,
					  "%s: not a valid zstd stream within a %u KiB window: %s",
					  u->name, (1u << VMSNAP_ZSTD_WINDOW_LOG_MAX) >> 10,
					  ZSTD_getErrorName(u->last));
		if (ob.pos > u->raw_bytes - u->done)
			return error_setx(err, EINVAL,
					  "%s decompresses to more than its raw_size of %llu bytes",
					  u->name, (unsigned long long)u->raw_bytes);
		int r = unpack_write(u->to, u->out, ob.pos, u->done);
		if (r < 0)
			return error_set(err, -r, "write the decompressed %s", u->name);
		u->done += ob.pos;
		if ((r = past_deadline(u->deadline, u->name, u->done, u->raw_bytes, u->b, err)) < 0)
			return r;
		if (ib->size == 0 && (ob.pos == 0 || u->last == 0))
			return 0; /* the end: nothing more comes out */
	}
}

int vmsnap_zstd_unpack(int from, int to, const char *name, uint64_t raw_bytes,
		       const struct vmsnap_zstd_bounds *b, struct error **err)
{
	_cleanup_(free_dctx) ZSTD_DCtx *d = ZSTD_createDCtx();
	_cleanup_free_ char *in = malloc(UNPACK_CHUNK), *out = malloc(UNPACK_CHUNK);
	if (!d || !in || !out)
		return error_set(err, ENOMEM, "zstd");
	if (raw_bytes == 0 || raw_bytes > b->max_bytes)
		return error_setx(
			err, EINVAL,
			"%s: vm.json's raw_size of %llu bytes is 0 or over %s; not decompressed",
			name, (unsigned long long)raw_bytes, b->max_what);
	if (ZSTD_isError(
		    ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, VMSNAP_ZSTD_WINDOW_LOG_MAX)))
		return error_setx(err, EIO, "zstd: cannot bound the window");
	struct unpack u = {.d = d,
			   .to = to,
			   .name = name,
			   .raw_bytes = raw_bytes,
			   .deadline = now_ms() + (long long)b->max_ms,
			   .b = b,
			   .out = out};
	for (;;) {
		ssize_t n = fd_read(from, in, UNPACK_CHUNK);
		if (n < 0)
			return error_set(err, (int)-n, "read %s", name);
		if (n > 0 && !u.any && check_frame_size(in, (size_t)n, name, raw_bytes, err) < 0)
			return -EINVAL;
		ZSTD_inBuffer ib = {in, (size_t)n, 0};
		int r = unpack_feed(&u, &ib, err);
		if (r < 0)
			return r;
		if (n == 0)
			break;
	}
	if (!u.any || u.last != 0)
		return error_setx(err, EINVAL, "%s: the zstd stream ends short (%s)", name,
				  u.any ? "a frame is cut" : "empty");
	if (u.done != raw_bytes)
		return error_setx(err, EINVAL,
				  "%s decompresses to %llu bytes, not its raw_size of %llu", name,
				  (unsigned long long)u.done, (unsigned long long)raw_bytes);
	if (ftruncate(to, (off_t)u.done) < 0)
		return error_set(err, errno, "size the decompressed %s", name);
	return 0;
}
