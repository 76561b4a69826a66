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
	if (!fmt || strcmp(fmt, VMSNAP_KEY_FORMAT) != 0)
		r = error_setx(err, EINVAL, "%s/" VMSNAP_META ": not a \"%s\" description", dir,
			       VMSNAP_KEY_FORMAT);
	else if (!id || strlen(id) >= sizeof(m->container_id) || !key ||
		 strlen(key) >= VMSNAP_KEY_MAX || !state ||
		 (strcmp(state, VMSNAP_STATE) != 0 && strcmp(state, VMSNAP_STATE_ZST) != 0))
		r = error_setx(
			err, EINVAL,
			"%s/" VMSNAP_META ": container_id, key or state missing or malformed", dir);
	if (r == 0) {
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

int vmsnap_publish(const char *work_state, const char *dest, const struct vmsnap_meta *m,
		   long long frozen_ms, long long save_ms, struct error **err)
{
	_cleanup_free_ char *staging = NULL;
	if (asprintf(&staging, "%s.vmsnap-XXXXXX", dest) < 0)
		return error_set(err, ENOMEM, "publish");
	if (!mkdtemp(staging))
		return error_set(err, errno, "create %s", staging);
	_cleanup_close_ int dirfd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct vmsnap_meta pm = *m;
	int r = dirfd < 0 ? error_set(err, errno, "open %s", staging)
		: m->zstd ? pack_state(work_state, dirfd, &pm, err)
			  : move_state(work_state, dirfd, staging, err);
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
