/* A whole-VM checkpoint on the host's side after the save: vm.json written
 * and read, the state file published at --image-path (vmsnap.h). */
#include "vmsnap.h"
#include "cleanup.h"
#include "paths.h"
#include "qmp.h"
#include "safefs.h"
#include "vmsnap-zstd.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <xxhash.h>

/* vmsnap_state_hash's unit: a page of guest memory. */
#define HASH_BLOCK 4096
#define HASH_CHUNK (1 << 20)

int vmsnap_meta_write(int dirfd, const struct vmsnap_meta *m, long long frozen_ms,
		      long long save_ms, struct error **err)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "format", json_object_new_string(VMSNAP_KEY_FORMAT));
	json_object_object_add(o, "container_id", json_object_new_string(m->container_id));
	json_object_object_add(o, "state",
			       json_object_new_string(m->zstd ? VMSNAP_STATE_ZST : VMSNAP_STATE));
	json_object_object_add(o, "state_bytes", json_object_new_int64((int64_t)m->state_bytes));
	if (m->zstd)
		json_object_object_add(o, "raw_size", json_object_new_int64((int64_t)m->raw_size));
	else {
		json_object_object_add(o, "state_size",
				       json_object_new_int64((int64_t)m->state_size));
		json_object_object_add(o, "xxh3", json_object_new_string(m->xxh3));
	}
	json_object_object_add(o, "frozen_ms", json_object_new_int64(frozen_ms));
	json_object_object_add(o, "save_ms", json_object_new_int64(save_ms));
	json_object_object_add(o, "key", json_object_new_string(m->key));
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
	int r = 0;
	_cleanup_close_ int fd = openat(dirfd, VMSNAP_META,
					O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	size_t len = strlen(text);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1 ||
	    fsync(fd) < 0)
		r = error_set(err, errno ? errno : EIO, "write " VMSNAP_META);
	json_object_put(o);
	return r;
}

void vmsnap_meta_free(struct vmsnap_meta *m)
{
	free(m->key);
	memset(m, 0, sizeof(*m));
}

int vmsnap_meta_read(const char *dir, struct vmsnap_meta *m, bool *found, struct error **err)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	memset(m, 0, sizeof(*m));
	*found = false;
	if (dfd < 0)
		return error_set(err, errno, "image directory %s", dir);
	/* The directory is untrusted: a FIFO or a device named vm.json is
	 * looked at, never opened (safefs_open_regular). */
	size_t len = 0;
	int r = safefs_read(dfd, VMSNAP_META, VMSNAP_META_MAX, &text, &len, err);
	if (r == -ENOENT) {
		error_free(err);
		return 0;
	}
	*found = true;
	if (r < 0)
		return error_wrap(err, "image directory %s", dir);
	if (len == 0)
		return error_setx(err, EINVAL, "%s/" VMSNAP_META ": empty", dir);
	json_object *o = json_tokener_parse(text), *v;
	const char *fmt = NULL, *id = NULL, *key = NULL, *state = NULL;
	if (o && json_object_object_get_ex(o, "format", &v) &&
	    json_object_is_type(v, json_type_string))
		fmt = json_object_get_string(v);
	if (o && json_object_object_get_ex(o, "container_id", &v) &&
	    json_object_is_type(v, json_type_string))
		id = json_object_get_string(v);
	if (o && json_object_object_get_ex(o, "key", &v) &&
	    json_object_is_type(v, json_type_string))
		key = json_object_get_string(v);
	if (o && json_object_object_get_ex(o, "state", &v) &&
	    json_object_is_type(v, json_type_string))
		state = json_object_get_string(v);
	if (o && json_object_object_get_ex(o, "state_bytes", &v) &&
	    json_object_is_type(v, json_type_int))
		m->state_bytes = (uint64_t)json_object_get_int64(v);
	/* zstd: what vm.state.zst must decompress to, exactly (a negative
	 * or missing one is 0, which vmsnap_zstd_unpack refuses). */
	if (o && json_object_object_get_ex(o, "raw_size", &v) &&
	    json_object_is_type(v, json_type_int) && json_object_get_int64(v) > 0)
		m->raw_size = (uint64_t)json_object_get_int64(v);
	if (o && json_object_object_get_ex(o, "state_size", &v) &&
	    json_object_is_type(v, json_type_int) && json_object_get_int64(v) > 0)
		m->state_size = (uint64_t)json_object_get_int64(v);
	/* vm.state's checksum: 16 hex digits, or none (refused for vm.state
	 * by vmsnap_state_verify). */
	const char *xxh3 = NULL;
	if (o && json_object_object_get_ex(o, "xxh3", &v) &&
	    json_object_is_type(v, json_type_string))
		xxh3 = json_object_get_string(v);
	if (!fmt || strcmp(fmt, VMSNAP_KEY_FORMAT) != 0)
		r = error_setx(err, EINVAL, "%s/" VMSNAP_META ": not a \"%s\" description", dir,
			       VMSNAP_KEY_FORMAT);
	else if (!id || strlen(id) >= sizeof(m->container_id) || !key ||
		 strlen(key) >= VMSNAP_KEY_MAX || !state ||
		 (strcmp(state, VMSNAP_STATE) != 0 && strcmp(state, VMSNAP_STATE_ZST) != 0))
		r = error_setx(
			err, EINVAL,
			"%s/" VMSNAP_META ": container_id, key or state missing or malformed", dir);
	else if (!cocoon_id_valid(id))
		r = error_setx(err, EINVAL,
			       "%s/" VMSNAP_META ": container_id is not a container ID", dir);
	else if (xxh3 && !xxh3_text_valid(xxh3))
		r = error_setx(err, EINVAL, "%s/" VMSNAP_META ": xxh3 is not 16 hex digits", dir);
	if (r == 0) {
		if (xxh3)
			snprintf(m->xxh3, sizeof(m->xxh3), "%s", xxh3);
		snprintf(m->container_id, sizeof(m->container_id), "%s", id);
		m->zstd = strcmp(state, VMSNAP_STATE_ZST) == 0;
		m->key = strdup(key);
		if (!m->key)
			r = error_set(err, ENOMEM, "vm.json");
	}
	if (o)
		json_object_put(o);
	return r;
}

static void hash_u64(XXH3_state_t *x, uint64_t v)
{
	uint8_t le[8];
	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t)(v >> (8 * i));
	XXH3_64bits_update(x, le, sizeof(le));
}

/* Hashes the blocks of [at, end) (block-aligned at) that are not all
 * zeros, each after its offset. */
static int hash_range(int fd, const char *name, XXH3_state_t *x, char *buf, off_t at, off_t end,
		      long long deadline, uint64_t max_ms, struct error **err)
{
	static const char zero[HASH_BLOCK];
	while (at < end) {
		size_t want = (size_t)(end - at) < HASH_CHUNK ? (size_t)(end - at) : HASH_CHUNK;
		ssize_t n = pread(fd, buf, want, at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return error_set(err, errno, "read %s", name);
		if (n == 0)
			return error_setx(err, EFBIG, "%s changed size while it was read", name);
		for (ssize_t i = 0; i < n; i += HASH_BLOCK) {
			size_t len = (size_t)(n - i) < HASH_BLOCK ? (size_t)(n - i) : HASH_BLOCK;
			if (memcmp(buf + i, zero, len) == 0)
				continue;
			hash_u64(x, (uint64_t)(at + i));
			XXH3_64bits_update(x, buf + i, len);
		}
		at += n;
		if (now_ms() > deadline)
			return error_setx(
				err, ETIMEDOUT,
				"checking %s took longer than %llu ms (limits.verify_timeout_ms)",
				name, (unsigned long long)max_ms);
	}
	return 0;
}

int vmsnap_state_hash(int fd, const char *name, uint64_t max_ms, uint64_t *size, uint64_t *hash,
		      struct error **err)
{
	struct stat st, again;
	if (fstat(fd, &st) < 0)
		return error_set(err, errno, "%s", name);
	_cleanup_free_ char *buf = malloc(HASH_CHUNK);
	XXH3_state_t *x = XXH3_createState();
	if (!buf || !x) {
		XXH3_freeState(x);
		return error_set(err, ENOMEM, "hash %s", name);
	}
	XXH3_64bits_reset(x);
	long long deadline = now_ms() + (long long)max_ms;
	int r = 0;
	for (off_t pos = 0; r == 0 && pos < st.st_size;) {
		off_t data = lseek(fd, pos, SEEK_DATA);
		if (data < 0) {
			if (errno != ENXIO)
				r = error_set(err, errno, "%s", name);
			break;
		}
		off_t hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0) {
			r = error_set(err, errno, "%s", name);
			break;
		}
		/* Whole blocks, each once: pos is block-aligned, an extent
		 * need not be. */
		off_t from = data & ~(off_t)(HASH_BLOCK - 1), to = hole;
		if (from < pos)
			from = pos;
		if (to % HASH_BLOCK)
			to += HASH_BLOCK - to % HASH_BLOCK;
		if (to > st.st_size)
			to = st.st_size;
		r = hash_range(fd, name, x, buf, from, to, deadline, max_ms, err);
		pos = to;
	}
	if (r == 0 && (fstat(fd, &again) < 0 || again.st_size != st.st_size))
		r = error_setx(err, EFBIG, "%s changed size while it was read", name);
	hash_u64(x, (uint64_t)st.st_size);
	*size = (uint64_t)st.st_size;
	*hash = XXH3_64bits_digest(x);
	XXH3_freeState(x);
	return r;
}

int vmsnap_state_verify(int fd, const char *name, const struct vmsnap_meta *m,
			const struct vmsnap_limits *lim, struct error **err)
{
	struct stat st;
	uint64_t size = 0, hash = 0;
	char hex[17];
	if (!m->xxh3[0] || !m->state_size)
		return error_setx(
			err, EINVAL,
			"%s: vm.json records no size and checksum for it (state_size, xxh3), so it cannot be checked",
			name);
	if (fstat(fd, &st) < 0)
		return error_set(err, errno, "%s", name);
	if ((uint64_t)st.st_size != m->state_size)
		return error_setx(
			err, EINVAL, "%s is %llu bytes, but vm.json records %llu: cut or damaged",
			name, (unsigned long long)st.st_size, (unsigned long long)m->state_size);
	int r = vmsnap_state_hash(fd, name, lim->verify_ms, &size, &hash, err);
	if (r < 0)
		return r;
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)hash);
	if (size != m->state_size || strcmp(hex, m->xxh3) != 0)
		return error_setx(err, EINVAL, "%s is corrupt (checksum mismatch with vm.json)",
				  name);
	return 0;
}

/* Copies the data extents of from into to (SEEK_DATA/SEEK_HOLE): the holes
 * a mapped-ram file has for the pages the guest never used stay holes. */
static int copy_sparse(int from, int to)
{
	struct stat st;
	if (fstat(from, &st) < 0 || ftruncate(to, st.st_size) < 0)
		return -errno;
	static char buf[1 << 20];
	off_t pos = 0;
	for (;;) {
		off_t data = lseek(from, pos, SEEK_DATA);
		if (data < 0)
			return errno == ENXIO ? 0 : -errno;
		off_t hole = lseek(from, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		for (off_t at = data; at < hole;) {
			size_t want = (size_t)(hole - at) < sizeof(buf) ? (size_t)(hole - at)
									: sizeof(buf);
			ssize_t n = pread(from, buf, want, at);
			if (n <= 0)
				return n < 0 ? -errno : -EIO;
			if (pwrite(to, buf, (size_t)n, at) != n)
				return -errno;
			at += n;
		}
		pos = hole;
	}
}

/* vm.state.zst in the staging directory from work_state, which is removed. */
static int pack_state(const char *work_state, int dirfd, struct vmsnap_meta *m, struct error **err)
{
	_cleanup_close_ int in = open(work_state, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_close_ int out =
		openat(dirfd, VMSNAP_STATE_ZST,
		       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	uint64_t zst = 0;
	if (in < 0 || out < 0)
		return error_set(err, errno, "compress %s", work_state);
	int r = vmsnap_zstd_pack(in, out, m->zstd_level, &m->raw_size, &zst, err);
	if (r == 0 && fsync(out) < 0)
		r = error_set(err, errno, "write " VMSNAP_STATE_ZST);
	if (r < 0)
		return error_wrap(err, "compress %s", work_state);
	unlink(work_state);
	return 0;
}

static int move_state(const char *work_state, int dirfd, const char *staging, struct error **err)
{
	_cleanup_free_ char *to = NULL;
	if (asprintf(&to, "%s/" VMSNAP_STATE, staging) < 0)
		return error_set(err, ENOMEM, "publish");
	if (rename(work_state, to) == 0)
		return 0;
	if (errno != EXDEV)
		return error_set(err, errno, "move %s to %s", work_state, to);
	_cleanup_close_ int in = open(work_state, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_close_ int out = openat(
		dirfd, VMSNAP_STATE, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int r = in < 0 || out < 0 ? -errno : copy_sparse(in, out);
	if (r == 0 && fsync(out) < 0)
		r = -errno;
	if (r < 0)
		return error_set(err, -r, "copy %s to %s", work_state, to);
	unlink(work_state);
	return 0;
}

/* The bounds a restore applies (cmd-restore.c), applied before publishing:
 * vm.state's allocated bytes, or for zstd the size it decompresses to. */
static int check_limits(const char *work_state, const struct vmsnap_meta *m,
			const struct vmsnap_limits *lim, struct error **err)
{
	struct stat st;
	if (stat(work_state, &st) < 0)
		return error_set(err, errno, "%s", work_state);
	uint64_t size = m->zstd ? (uint64_t)st.st_size : (uint64_t)st.st_blocks * 512;
	char what[256];
	uint64_t bound;
	/* A restore refuses a state larger than the VM's memory and its device
	 * state (vmsnap_state_bound), and decompresses vm.state.zst only up to
	 * that. */
	struct vmsnap_limits blim = *lim;
	if (!m->zstd)
		blim.max_bytes = UINT64_MAX; /* vm.state: its allocated bytes, below */
	if (vmsnap_state_bound(m->key, &blim, &bound, what, sizeof(what), err) < 0)
		return error_wrap(err, "the saved VM");
	if ((uint64_t)st.st_size > bound)
		return error_setx(
			err, EFBIG,
			"the saved VM is %llu bytes, over %s, so a restore would refuse it; nothing was published",
			(unsigned long long)st.st_size, what);
	if (size > lim->max_bytes)
		return error_setx(
			err, EFBIG,
			"the saved VM takes %llu bytes%s, over limits.checkpoint_max_bytes (%llu), so a restore would refuse it; nothing was published",
			(unsigned long long)size, m->zstd ? " decompressed" : "",
			(unsigned long long)lim->max_bytes);
	return 0;
}

/* vm.json's state_size and xxh3 of the published vm.state. */
static int hash_state(int dirfd, const char *staging, struct vmsnap_meta *pm,
		      const struct vmsnap_limits *lim, struct error **err)
{
	_cleanup_close_ int fd = openat(dirfd, VMSNAP_STATE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	uint64_t hash = 0;
	if (fd < 0)
		return error_set(err, errno, "%s/" VMSNAP_STATE, staging);
	int r = vmsnap_state_hash(fd, VMSNAP_STATE, lim->verify_ms, &pm->state_size, &hash, err);
	snprintf(pm->xxh3, sizeof(pm->xxh3), "%016llx", (unsigned long long)hash);
	return r;
}

int vmsnap_publish(const char *work_state, const char *dest, const struct vmsnap_meta *m,
		   const struct vmsnap_limits *lim, long long frozen_ms, long long save_ms,
		   struct error **err)
{
	_cleanup_free_ char *staging = NULL;
	int r = check_limits(work_state, m, lim, err);
	if (r < 0) {
		unlink(work_state);
		return r;
	}
	if (asprintf(&staging, "%s.vmsnap-XXXXXX", dest) < 0)
		return error_set(err, ENOMEM, "publish");
	if (!mkdtemp(staging))
		return error_set(err, errno, "create %s", staging);
	_cleanup_close_ int dirfd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct vmsnap_meta pm = *m;
	r = dirfd < 0 ? error_set(err, errno, "open %s", staging)
	    : m->zstd ? pack_state(work_state, dirfd, &pm, err)
		      : move_state(work_state, dirfd, staging, err);
	if (r == 0 && !m->zstd)
		r = hash_state(dirfd, staging, &pm, lim, err);
	if (r == 0)
		r = vmsnap_inventory_write(dirfd, err);
	if (r == 0)
		r = vmsnap_meta_write(dirfd, &pm, frozen_ms, save_ms, err);
	if (r == 0 && fsync(dirfd) < 0)
		r = error_set(err, errno, "fsync %s", staging);
	/* dest is absent or an empty directory (the caller checked). */
	if (r == 0 && rename(staging, dest) < 0)
		r = error_set(err, errno, "rename %s to %s", staging, dest);
	if (r < 0) {
		(void)remove_tree(staging, NULL);
		unlink(work_state);
	}
	return r;
}
