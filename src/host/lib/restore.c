/* restore (restore.h): a new VM, the image directory shared into it
 * read-only, and CRIU restoring the container there; or, for a whole-VM
 * checkpoint, the saved VM started again; or checkpoint --pod's whole pod,
 * the sandbox first, then its members into the sandbox's VM. */
#include "restore.h"
#include "agent-client.h"
#include "cleanup.h"
#include "criu-config.h"
#include "images.h"
#include "log.h"
#include "paths.h"
#include "pod.h"
#include "pod-record.h"
#include "safefs.h"
#include "spec.h"
#include "vmsnap-zstd.h"
#include "vmsnap.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <json-c/json.h>
#include <limits.h>
#include <string.h>

/* An unnamed file in dir, read-write: O_TMPFILE, else a name unlinked
 * at once. The fd or -errno. */
static int unnamed_file_in(const char *dir)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd >= 0 ? fd : -errno;
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/.cocoon-vm.state.XXXXXX", dir) < 0)
		return -ENOMEM;
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(path);
	return fd;
}

/* vm.state.zst (vmsnap-zstd.h) decompressed for QEMU, which needs a
 * seekable file. Bounded by the memory of the VM it starts in (memory_mib,
 * this host's for the bundle, which vm_shape_matches() found vm.json's key
 * to claim too), plus its device state (vmsnap_state_bound_mib),
 * never more than checkpoint_max_bytes, and done within verify_timeout_ms.
 * Where: beside the image directory (dir; the same filesystem as the
 * checkpoint, on disk under the engines), not in the state root (tmpfs
 * under the engines: host memory); when nothing can be written there
 * (read-only media), in the state root, where it costs at most what the
 * VM that starts from it does. The file has no name (O_TMPFILE, or
 * unlinked at once), so nothing is left behind, not even when the restore
 * is killed. Returns a read-only fd of it, for QEMU, or -errno. */
static int unpack_state(struct global_opts *g, const char *dir, int fd, const char *name,
			const struct vmsnap_meta *m, int memory_mib, struct error **err)
{
	struct vmsnap_limits lim = {.max_bytes = (uint64_t)g->cfg.checkpoint_max_bytes,
				    .verify_ms = (uint64_t)g->cfg.verify_timeout_ms,
				    .max_memory_mib = g->cfg.max_memory_mib};
	char what[256];
	struct vmsnap_zstd_bounds b = {.max_what = what, .max_ms = lim.verify_ms};
	int r = vmsnap_state_bound_mib(memory_mib, &lim, &b.max_bytes, what, sizeof(what), err);
	if (r < 0)
		return error_wrap(err, "%s", name);
	_cleanup_free_ char *beside = strdup(dir);
	if (!beside)
		return error_set(err, ENOMEM, "restore");
	char *slash = strrchr(beside, '/');
	if (slash)
		slash[slash == beside ? 1 : 0] = 0;
	const char *where = beside;
	_cleanup_close_ int out = unnamed_file_in(where);
	if (out == -EROFS || out == -EACCES || out == -EPERM) {
		log_warning("%s: %s is not writable (%s): decompressing into the state root %s",
			    name, where, strerror(-out), g->root);
		if ((r = mkdir_p(g->root, 0700, err)) < 0)
			return r;
		where = g->root;
		out = unnamed_file_in(where);
	}
	if (out < 0)
		return error_set(err, -out, "a file for the decompressed %s in %s", name, where);
	if ((r = vmsnap_zstd_unpack(fd, out, name, m->raw_size, &b, err)) < 0)
		return where == g->root ? r : error_wrap(err, "decompressing into %s", where);
	/* Read-only: QEMU takes a descriptor of its open mode. */
	char self[64];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", out);
	int ro = open(self, O_RDONLY | O_CLOEXEC);
	return ro >= 0 ? ro : error_set(err, errno, "reopen the decompressed %s", name);
}

/* Before anything of a whole-VM checkpoint is read at length or
 * decompressed: that this host can start one at all (vmsnap_require), and
 * that the VM the bundle gives here (pod_vm_size, as the shim sizes it) has
 * the memory vm.json's key claims. The key is the untrusted directory's
 * word: the shim compares the whole of it with its own only once the state
 * is unpacked, and bounding by its claim let a foreign key of the host's
 * RAM have that much decompressed for a VM of 512 MiB (rev11b F4). The
 * key's other lines (vCPUs, image, versions) are the shim's to compare.
 * *memory_mib gets this host's size, the one that bounds. */
static int vm_shape_matches(struct global_opts *g, const char *id, const char *state,
			    const struct create_options *o, const struct vmsnap_meta *m,
			    int *memory_mib, struct error **err)
{
	struct vmsnap_caps caps;
	struct oci_bundle b;
	int vcpus = 0;
	*memory_mib = 0;
	int r = vmsnap_require(&g->cfg, &caps, err);
	if (r < 0)
		return r;
	r = spec_load(o->bundle ? o->bundle : ".", id, &b, err);
	if (r == 0)
		r = pod_vm_size(&g->cfg, &b, "/sys/fs/cgroup", memory_mib, &vcpus, NULL, err);
	spec_free(&b);
	if (r < 0)
		return r;
	int claimed = vmsnap_key_memory_mib(m->key);
	if (claimed < 0)
		return error_setx(err, EINVAL,
				  "%s: vm.json's key gives the VM no memory size (no -m N in its "
				  "qemu-command-line)",
				  state);
	if (claimed != *memory_mib)
		return error_setx(
			err, EINVAL,
			"%s: the whole-VM checkpoint was taken of another image or VM shape, so it cannot start here: vm.json's key says the saved VM has %d MiB of memory, and the VM this bundle gets here has %d MiB (nothing of it was read)",
			state, claimed, *memory_mib);
	return 0;
}

/* A whole-VM checkpoint (vm.json in the image directory, vmsnap.h): the
 * VM starts from the saved state, no boot and no CRIU. It holds the
 * container under the ID it was saved with (the agent's state and the
 * container's cgroup in the guest are named after it, and nothing renames
 * them in a loaded VM), so only that ID restores it: another one (podman's
 * `restore --import --name`) is refused here, before anything is made. */
static int vmsnap_restore(struct global_opts *g, const char *id, const char *dir,
			  const struct vmsnap_meta *m, struct create_options *o, pid_t *shim,
			  struct error **err)
{
	_cleanup_free_ char *state = NULL;
	struct stat st;
	if (strcmp(m->container_id, id) != 0)
		return error_setx(
			err, EINVAL,
			"%s holds the whole VM of container %s, which a loaded VM cannot rename (the "
			"agent's state and the container's cgroup in the guest are named after it): "
			"restore it as %s (podman: restore --import without --name)",
			dir, m->container_id, m->container_id);
	if (asprintf(&state, "%s/%s", dir, m->zstd ? VMSNAP_STATE_ZST : VMSNAP_STATE) < 0)
		return error_set(err, ENOMEM, "restore");
	/* A regular file here, within the limits, looked at before it is
	 * opened (a FIFO would hang the open); QEMU loads this descriptor. */
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return error_set(err, errno, "image directory %s", dir);
	_cleanup_close_ int fd = safefs_open_regular(dfd, m->zstd ? VMSNAP_STATE_ZST : VMSNAP_STATE,
						     UINT64_MAX, &st, err);
	if (fd < 0)
		return error_wrap(err, "image directory %s", dir);
	if (st.st_size == 0 || (uint64_t)st.st_blocks * 512 > (uint64_t)g->cfg.checkpoint_max_bytes)
		return error_setx(err, EINVAL, "%s: empty, or larger than checkpoint_max_bytes",
				  state);
	int memory_mib;
	int r = vm_shape_matches(g, id, state, o, m, &memory_mib, err);
	if (r < 0)
		return r;
	/* Nor larger than the VM it starts in (vmsnap_state_bound_mib; its
	 * allocated bytes are checkpoint_max_bytes' above): QEMU would parse a
	 * sparse giant until the restore's time runs out. */
	struct vmsnap_limits blim = {.max_bytes = UINT64_MAX,
				     .max_memory_mib = g->cfg.max_memory_mib};
	char what[256];
	uint64_t bound;
	if (!m->zstd &&
	    vmsnap_state_bound_mib(memory_mib, &blim, &bound, what, sizeof(what), err) < 0)
		return error_wrap(err, "%s", state);
	if (!m->zstd && (uint64_t)st.st_size > bound)
		return error_setx(err, EFBIG, "%s is %llu bytes, over %s", state,
				  (unsigned long long)st.st_size, what);
	/* vm.state as published: its size and checksum (vm.json); zstd's
	 * frame carries its own, checked as it is decompressed. */
	struct vmsnap_limits lim = {.max_bytes = (uint64_t)g->cfg.checkpoint_max_bytes,
				    .verify_ms = (uint64_t)g->cfg.verify_timeout_ms};
	int v = m->zstd ? 0 : vmsnap_state_verify(fd, state, m, &lim, err);
	if (v < 0)
		return v;
	_cleanup_close_ int raw_fd =
		m->zstd ? unpack_state(g, dir, fd, state, m, memory_mib, err) : -1;
	if (m->zstd && raw_fd < 0)
		return raw_fd;
	/* The shim is a fork of this process and lives as long as the
	 * container: it keeps only the descriptor QEMU loads. */
	if (m->zstd) {
		closep(&fd);
		fd = -1;
	}
	closep(&dfd);
	dfd = -1;
	/* The shim inherits the descriptor this checked (or decompressed),
	 * and QEMU loads from it (vmsnap_load): a file swapped in at the path
	 * meanwhile is not what starts. The path only names it in messages. */
	o->vmsnap_state = state;
	o->vmsnap_state_fd = m->zstd ? raw_fd : fd;
	o->vmsnap_key = m->key;
	r = container_create(g, id, o, shim, err);
	o->vmsnap_state = NULL;
	o->vmsnap_state_fd = -1;
	o->vmsnap_key = NULL;
	return r;
}

/* The images in DIR (resolved) verified, then container ID restored from
 * them in a fresh VM as O says (o->criu set). */
static int restore_images(struct global_opts *g, const char *id, const char *dir,
			  struct create_options *o, pid_t *shim, struct error **err)
{
	struct images_chain chain = {0};
	struct images_limits lim;
	images_limits_from_config(&g->cfg, &lim);
	int r = images_verify(dir, &lim, &chain, err);
	if (r == 0) {
		o->restore = &chain;
		o->shim_drops = chain.fds; /* the shim shares dirs[] */
		o->n_shim_drops = chain.n;
		r = container_create(g, id, o, shim, err);
		o->restore = NULL;
		o->shim_drops = NULL;
		o->n_shim_drops = 0;
	}
	images_chain_free(&chain);
	return r;
}

/* CRIU's route, with the bundle's CRIU settings over the command line's. */
static int criu_restore(struct global_opts *g, const char *id, const char *dir,
			struct create_options *o, Cocoon__CriuOptions *criu, pid_t *shim,
			struct error **err)
{
	int r = criu_config_collect(g->cfg.criu_config, o->bundle ? o->bundle : ".", criu, err);
	if (r == 0) {
		o->criu = criu;
		r = restore_images(g, id, dir, o, shim, err);
	}
	criu_config_free(criu);
	return r;
}

/* The ID checked before the images are read (it names the state
 * directory), and the image directory resolved into RESOLVED (PATH_MAX). */
static int restore_resolve(const char *id, const char *image_path, char *resolved,
			   struct error **err)
{
	if (validate_id("container", id, err) < 0)
		return error_wrap(err, "restore");
	if (!realpath(image_path, resolved))
		return error_set(err, errno, "restore %s: image path %s", id, image_path);
	return 0;
}

/* --print-stats: the shim's restore-stats.json as one line, with the whole
 * restore's wall time since T0, into *LINE (NULL when there is none). */
static void restore_stats_line(struct global_opts *g, const char *id, long long t0, char **line)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	*line = NULL;
	if (asprintf(&path, "%s/%s/" RESTORE_STATS_FILE, g->root, id) >= 0 &&
	    read_file_bounded(path, 4096, &text, NULL, NULL) == 0) {
		text[strcspn(text, "\n")] = 0;
		/* The same line, with the whole command's wall time. */
		if (asprintf(line, "stats: {\"total_ms\": %lld, %s\n", now_ms() - t0, text + 1) < 0)
			*line = NULL;
	}
}

int container_restore(struct global_opts *g, const char *id, const char *image_path,
		      struct create_options *o, Cocoon__CriuOptions *criu, pid_t *shim_pid,
		      struct error **err)
{
	long long t0 = now_ms();
	char resolved[PATH_MAX];
	struct vmsnap_meta meta;
	bool whole_vm = false;
	int r = restore_resolve(id, image_path, resolved, err);

	if (r < 0)
		return r;
	criu->debug = g->cfg.enable_debug;
	r = vmsnap_meta_read(resolved, &meta, &whole_vm, err);
	if (r == 0 && whole_vm) {
		r = vmsnap_restore(g, id, resolved, &meta, o, shim_pid, err);
		vmsnap_meta_free(&meta);
	} else if (r == 0) {
		r = criu_restore(g, id, resolved, o, criu, shim_pid, err);
	}
	if (r < 0)
		return error_wrap(err, "restore %s", id);
	if (o->stats_line)
		restore_stats_line(g, id, t0, o->stats_line);
	return 0;
}

/* ---- the whole pod ------------------------------------------------------------ */

enum { POD_RESTORE_MAX = POD_MAX_MEMBERS + 1 }; /* checkpoint --pod's members and the sandbox */

/* DIR/pod.json as checkpoint --pod wrote it: ids[0] the sandbox, then the
 * members; bundles[i] as this host recorded it (pod-record.h; NULL when it
 * recorded none): pod.json's own "bundles" are the untrusted directory's
 * word, and name no path the host follows. */
struct pod_manifest {
	char ids[POD_RESTORE_MAX][COCOON_ID_MAX + 1];
	char *bundles[POD_RESTORE_MAX];
	int n;
};

static void pod_manifest_free(struct pod_manifest *m)
{
	for (int i = 0; i < m->n; i++)
		free(m->bundles[i]);
}

static int pod_manifest_add(struct global_opts *g, const char *dir, struct pod_manifest *m,
			    json_object *id, struct error **err)
{
	const char *s = json_object_is_type(id, json_type_string) ? json_object_get_string(id) : "";
	if (m->n == POD_RESTORE_MAX)
		return error_setx(err, E2BIG, "pod.json: more than %d containers", POD_RESTORE_MAX);
	if (validate_id("container", s, err) < 0)
		return error_wrap(err, POD_CHECKPOINT_FILE);
	for (int i = 0; i < m->n; i++)
		if (strcmp(m->ids[i], s) == 0)
			return error_setx(err, EINVAL, "pod.json: %s is listed twice", s);
	snprintf(m->ids[m->n], sizeof(m->ids[0]), "%s", s);
	m->bundles[m->n] = pod_record_bundle(&g->cfg, dir, s);
	m->n++;
	return 0;
}

static int pod_manifest_read(struct global_opts *g, const char *dir, struct pod_manifest *m,
			     struct error **err)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	json_object *root, *sb, *members;
	int r;

	memset(m, 0, sizeof(*m));
	if (asprintf(&path, "%s/" POD_CHECKPOINT_FILE, dir) < 0)
		return error_set(err, ENOMEM, POD_CHECKPOINT_FILE);
	/* Untrusted: looked at before it is opened (safefs.h). */
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return error_set(err, errno, "image directory %s", dir);
	if (safefs_read(dfd, POD_CHECKPOINT_FILE, 256 * 1024, &text, NULL, err) < 0)
		return error_wrap(err, "%s: not a checkpoint of a whole pod (checkpoint --pod)",
				  dir);
	if (!(root = json_tokener_parse(text)))
		return error_setx(err, EINVAL, "%s: not JSON", path);
	if (!json_object_object_get_ex(root, "sandbox", &sb) ||
	    !json_object_object_get_ex(root, "members", &members) ||
	    !json_object_is_type(members, json_type_array)) {
		json_object_put(root);
		return error_setx(err, EINVAL, "%s: expected \"sandbox\" and \"members\"", path);
	}
	r = pod_manifest_add(g, dir, m, sb, err);
	for (size_t i = 0; r == 0 && i < json_object_array_length(members); i++)
		r = pod_manifest_add(g, dir, m, json_object_array_get_idx(members, i), err);
	json_object_put(root);
	return r;
}

/* The pod's loopback held (or released) in the restored sandbox's VM. */
static int pod_loopback_hold(struct global_opts *g, const char *sandbox, bool hold,
			     struct error **err)
{
	Cocoon__Request req;
	Cocoon__LoopbackHoldRequest lh;
	agent_loopback_hold_request(&req, &lh, sandbox, hold);
	return container_request(g, sandbox, &req, err);
}

/* One container's directory of the pod, DFD's ID: opened once, by fd
 * (a directory of the pod's own, never a symlink to a checkpoint elsewhere
 * on this host, whose images would be shared into the restored VM), and
 * verified through that fd within the pod's deadline. With SHARE_FDS its
 * shares are made from the fd too (images_chain_share_fds): nothing walks
 * DIR/ID again, so a directory swapped in after the check is not what the
 * VM gets. Not for the sandbox's VM on virtiofs: the C
 * virtiofsd mounts a /proc of its own pid namespace, where this process's
 * fds are not; there the path is used (pod_still_verified checks it just
 * before). A member's images always go through the pod share, by fd.
 * *ST: what was verified, its device and inode. */
static int pod_verify_one(struct global_opts *g, int dfd, const char *dir, const char *id,
			  long long deadline, bool share_fds, struct images_chain *chain,
			  struct stat *st, struct error **err)
{
	_cleanup_free_ char *images = NULL;
	struct images_limits lim;
	struct stat ls;

	images_limits_from_config(&g->cfg, &lim);
	if (asprintf(&images, "%s/%s", dir, id) < 0)
		return error_set(err, ENOMEM, "restore %s", id);
	_cleanup_close_ int fd =
		openat(dfd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && (errno == ELOOP || errno == ENOTDIR) &&
	    fstatat(dfd, id, &ls, AT_SYMLINK_NOFOLLOW) == 0)
		return error_setx(err, EINVAL, "restore %s: %s is %s, not a directory of the pod's",
				  id, images,
				  S_ISLNK(ls.st_mode) ? "a symlink" : "not a directory");
	if (fd < 0 || fstat(fd, st) < 0)
		return error_set(err, errno, "restore %s: image path %s", id, images);
	int r = images_verify_at(fd, images, &lim, deadline, chain, err);
	if (r == 0 && share_fds)
		r = images_chain_share_fds(chain, err);
	if (r < 0 && (*err)->code == ETIMEDOUT)
		error_wrap(err, "the whole pod's images are checked within one budget");
	return r < 0 ? error_wrap(err, "restore %s", id) : 0;
}

/* DFD's ID is still the directory that was verified (ST). Not needed for
 * what the VM gets (the shares are the verified fds), but a swap is an
 * attack or a mistake: it fails the restore, naming it. */
static int pod_still_verified(int dfd, const char *dir, const char *id, const struct stat *st,
			      struct error **err)
{
	struct stat now;
	if (fstatat(dfd, id, &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_dev == st->st_dev &&
	    now.st_ino == st->st_ino)
		return 0;
	return error_setx(err, ESTALE,
			  "restore %s: %s/%s was replaced after its images were checked: refused",
			  id, dir, id);
}

/* Every container's directory verified, by fd, before anything boots, within
 * ONE limits.verify_timeout_ms for the whole pod (a budget per container,
 * each after the ones before it booted, would let a pod of N take N times
 * the bound). */
static int pod_verify_all(struct global_opts *g, int dfd, const char *dir,
			  const struct pod_manifest *m, struct images_chain *chains,
			  struct stat *sts, struct error **err)
{
	long long deadline = now_ms() + (long long)g->cfg.verify_timeout_ms;
	bool virtiofs = g->cfg.shared_fs && strcmp(g->cfg.shared_fs, "virtiofs") == 0;
	for (int i = 0; i < m->n; i++) {
		int r = pod_verify_one(g, dfd, dir, m->ids[i], deadline, i > 0 || !virtiofs,
				       &chains[i], &sts[i], err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int pod_restore_one(struct global_opts *g, int dfd, const char *dir, const char *id,
			   const struct images_chain *chain, const struct stat *st,
			   struct create_options *o, struct error **err)
{
	pid_t shim;
	int r = pod_still_verified(dfd, dir, id, st, err);
	if (r < 0)
		return r;
	o->restore = chain;
	r = container_create(g, id, o, &shim, err);
	o->restore = NULL;
	return r < 0 ? error_wrap(err, "restore %s", id) : 0;
}

/* restore --pod DIR SANDBOX: checkpoint --pod's pod back, in one command: the
 * sandbox into a fresh VM, then every member into it (their specs may name
 * the old sandbox's shim; they join the new one), with the pod's loopback
 * held meanwhile. Each container gets the CRIU settings of its own bundle
 * (org.criu.config, else cocoon's criu.conf), as a restore of it alone
 * would; they are all read, and every image directory verified, before
 * anything boots. Any failure removes what was restored. */
static int pod_restore(struct global_opts *g, const char *id, const char *dir,
		       const struct create_options *o, const Cocoon__CriuOptions *cli_criu,
		       struct error **err)
{
	struct pod_manifest m;
	Cocoon__CriuOptions criu[POD_RESTORE_MAX];
	struct images_chain chains[POD_RESTORE_MAX];
	struct stat sts[POD_RESTORE_MAX];
	const char *bundle[POD_RESTORE_MAX] = {0};
	int done = 0, collected = 0, r = pod_manifest_read(g, dir, &m, err);
	bool held = false;

	memset(chains, 0, sizeof(chains));
	if (r == 0 && strcmp(m.ids[0], id) != 0)
		r = error_setx(err, EINVAL, "pod.json's sandbox is %s, not %s", m.ids[0], id);
	for (int i = 0; r == 0 && i < m.n; i++) {
		bundle[i] = i == 0 && o->bundle ? o->bundle : m.bundles[i];
		if (!bundle[i]) {
			r = error_setx(
				err, EINVAL,
				"restore %s: this host recorded no bundle for it (checkpoint --pod records each container's in host_checkpoint_dir; pod.json's are not taken: a restore directory names no host path). Give the sandbox's with --bundle; restore a pod checkpointed elsewhere, or moved, container by container (docs/pods.md)",
				m.ids[i]);
			break;
		}
		criu[i] = *cli_criu;
		criu[i].config = NULL;
		criu[i].n_config = 0;
		collected++;
		if ((r = criu_config_collect(g->cfg.criu_config, bundle[i], &criu[i], err)) < 0)
			error_wrap(err, "restore %s (bundle %s)", m.ids[i], bundle[i]);
	}
	_cleanup_close_ int dfd = r == 0 ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (r == 0 && dfd < 0)
		r = error_set(err, errno, "image directory %s", dir);
	if (r == 0)
		r = pod_verify_all(g, dfd, dir, &m, chains, sts, err);
	/* Every container's directories, and the pod's: no shim keeps them
	 * (each uses its own as /proc/<this pid>/fd/N, opened while this
	 * process waits for its report). */
	int drops[POD_RESTORE_MAX * COCOON_MAX_CHAIN + 1], n_drops = 0;
	for (int i = 0; r == 0 && i < m.n; i++)
		for (int k = 0; k < chains[i].n; k++)
			drops[n_drops++] = chains[i].fds[k];
	drops[n_drops++] = dfd;
	for (int i = 0; r == 0 && i < m.n; i++) {
		struct create_options one = *o;
		one.bundle = bundle[i];
		one.criu = &criu[i];
		one.pod_sandbox = i ? id : NULL;
		one.shim_drops = drops;
		one.n_shim_drops = n_drops;
		if ((r = pod_restore_one(g, dfd, dir, m.ids[i], &chains[i], &sts[i], &one, err)) ==
		    0)
			done++;
		if (r == 0 && i == 0 && m.n > 1 && (r = pod_loopback_hold(g, id, true, err)) == 0)
			held = true;
	}
	if (r == 0 && held)
		r = pod_loopback_hold(g, id, false, err);
	if (r < 0) {
		/* Nothing half-done: what came back goes again, members first. */
		for (int i = done - 1; i >= 0; i--) {
			_cleanup_error_ struct error *del_err = NULL;
			if (container_delete(g, m.ids[i], true, &del_err) < 0 && del_err)
				log_warning("restore --pod %s: %s", id, del_err->msg);
		}
	}
	for (int i = 0; i < m.n; i++)
		images_chain_free(&chains[i]);
	for (int i = 0; i < collected; i++)
		criu_config_free(&criu[i]);
	pod_manifest_free(&m);
	return r;
}

int restore_pod(struct global_opts *g, const char *sandbox, const char *image_path,
		const struct create_options *o, const Cocoon__CriuOptions *criu, struct error **err)
{
	Cocoon__CriuOptions cli_criu = *criu;
	char resolved[PATH_MAX];

	int r = restore_resolve(sandbox, image_path, resolved, err);
	if (r < 0)
		return r;
	cli_criu.debug = g->cfg.enable_debug;
	if (pod_restore(g, sandbox, resolved, o, &cli_criu, err) < 0)
		return error_wrap(err, "restore --pod %s", sandbox);
	return 0;
}
