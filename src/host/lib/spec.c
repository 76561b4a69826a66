#include "spec.h"
#include "spec-confine.h"
#include "spec-json.h"
#include "spec-kernel.h"
#include "spec-namespaces.h"
#include "spec-pod.h"
#include "spec-process.h"
#include "spec-resources.h"
#include "spec-userns.h"
#include "cleanup.h"
#include "log.h"
#include "paths.h"
#include "safefs.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

/* Filesystems that live on a block device (the kernel's FS_REQUIRES_DEV;
 * /proc/filesystems lists them without "nodev"): the device is the
 * host's, and the guest's kernel has no such device. The host's
 * /proc/filesystems is asked too, for types not named here. */
static const char *const block_fs[] = {
	"ext2",	   "ext3",  "ext4",	"xfs",	 "btrfs", "vfat",     "exfat",	  "ntfs", "ntfs3",
	"iso9660", "udf",   "squashfs", "erofs", "f2fs",  "jfs",      "reiserfs", "hfs",  "hfsplus",
	"fuseblk", "minix", "nilfs2",	"gfs2",	 "ocfs2", "bcachefs", "zfs",	  NULL};

/* The types the host's /proc/filesystems lists without "nodev" ("\text4",
 * not "nodev\tproc"), each NUL-terminated, the list ending with an empty
 * one; read once per process (pthread_once), not once per mount: a
 * config.json with ten mounts read the file ten times (some 60 us each,
 * most of fuzz-spec's time). A module the kernel loads later is not seen by
 * a command already running. */
static char host_block_fs[4096];
static pthread_once_t host_block_fs_once = PTHREAD_ONCE_INIT;

static void read_host_block_fs(void)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/filesystems", "re");
	char line[128];
	size_t n = 0;
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		size_t len = strlen(line);
		if (strncmp(line, "nodev", 5) == 0 || line[0] != '\t' || len < 2)
			continue;
		if (n + len + 1 > sizeof(host_block_fs))
			break; /* the list above still names the usual ones */
		memcpy(host_block_fs + n, line + 1, len); /* the name and its NUL */
		n += len;
	}
	host_block_fs[n] = 0;
}

static bool host_lists_as_block_fs(const char *type)
{
	pthread_once(&host_block_fs_once, read_host_block_fs);
	for (const char *t = host_block_fs; *t; t += strlen(t) + 1)
		if (strcmp(t, type) == 0)
			return true;
	return false;
}

/* A mount of a filesystem the guest's kernel makes (docs/lifecycle.md,
 * "Filesystems"): anything but one on a block device, which cannot cross
 * the VM boundary. What the guest's kernel lacks, it names at create. */
static int check_fs_type(const Cocoon__Mount *mnt, size_t i, struct error **err)
{
	struct stat st;
	bool block = host_lists_as_block_fs(mnt->type);
	for (const char *const *t = block_fs; *t && !block; t++)
		block = strcmp(*t, mnt->type) == 0;
	if (block)
		return error_setx(
			err, EOPNOTSUPP,
			"config.json: mounts[%zu] (%s): filesystem type '%s' lives on a block device, which cannot cross the VM boundary: the guest's kernel has no host devices. Mount it on the host and bind-mount the directory instead",
			i, mnt->destination, mnt->type);
	/* Looked at, never opened: a source path that names a host device. */
	if (mnt->source && mnt->source[0] == '/' && stat(mnt->source, &st) == 0 &&
	    (S_ISBLK(st.st_mode) || S_ISCHR(st.st_mode)))
		return error_setx(
			err, EOPNOTSUPP,
			"config.json: mounts[%zu] (%s): source %s is a host device, which cannot cross the VM boundary: the guest's kernel has no host devices",
			i, mnt->destination, mnt->source);
	if (strcmp(mnt->type, "overlay") == 0)
		return error_setx(
			err, EOPNOTSUPP,
			"config.json: mounts[%zu] (%s): an overlay mount's lowerdir, upperdir and workdir are host directories, which are not shared into the VM yet (docs/lifecycle.md); bind-mount a directory the host has assembled instead",
			i, mnt->destination);
	return 0;
}

static int parse_mount(json_object *m, size_t i, struct oci_bundle *b, Cocoon__Mount **out,
		       struct error **err)
{
	char field[64];
	int r;
	Cocoon__Mount *mnt = calloc(1, sizeof(*mnt));
	if (!mnt)
		return error_set(err, ENOMEM, "config.json");
	cocoon__mount__init(mnt);
	*out = mnt;
	snprintf(field, sizeof(field), "mounts[%zu].destination", i);
	if ((r = spec_json_string(m, "destination", field, true, &mnt->destination, err)) < 0)
		return r;
	if (mnt->destination[0] != '/' || safefs_has_dotdot(mnt->destination))
		return error_setx(err, EINVAL,
				  "config.json: %s '%s' must be absolute, without '..'", field,
				  mnt->destination);
	snprintf(field, sizeof(field), "mounts[%zu].type", i);
	if ((r = spec_json_string(m, "type", field, false, &mnt->type, err)) < 0)
		return r;
	snprintf(field, sizeof(field), "mounts[%zu].source", i);
	if ((r = spec_json_string(m, "source", field, false, &mnt->source, err)) < 0)
		return r;
	snprintf(field, sizeof(field), "mounts[%zu].options", i);
	if ((r = spec_json_string_array(m, "options", field, &mnt->options, &mnt->n_options, err)) <
	    0)
		return r;
	bool bind = mnt->type && strcmp(mnt->type, "bind") == 0;
	for (size_t j = 0; j < mnt->n_options; j++)
		bind |= strcmp(mnt->options[j], "bind") == 0 ||
			strcmp(mnt->options[j], "rbind") == 0;
	if (!mnt->type)
		mnt->type = strdup(bind ? "bind" : "none");
	if (!bind)
		return check_fs_type(mnt, i, err);
	/* A host path means nothing in the guest: the shim bind-mounts the
	 * source into the sandbox's volumes share, and the guest binds it from
	 * there (volumes.h). */
	/* The runtime spec (config.md, "mounts"): a relative source of a bind
	 * mount is relative to the bundle, never to the caller's directory. */
	if (mnt->source && *mnt->source && mnt->source[0] != '/' && b->bundle) {
		char *abs = NULL;
		if (asprintf(&abs, "%s/%s", b->bundle, mnt->source) < 0)
			return error_set(err, ENOMEM, "config.json: mounts[%zu]", i);
		free(mnt->source);
		mnt->source = abs;
	}
	struct volume *v = &b->volumes[b->n_volumes];
	if (volume_parse(mnt->source, mnt->destination, mnt->options, mnt->n_options, i, v, err) <
	    0)
		return error_wrap(err, "config.json");
	b->n_volumes++;
	free(mnt->type);
	mnt->type = strdup("bind");
	free(mnt->source);
	if (asprintf(&mnt->source, COCOON_GUEST_VOLUMES_DIR "/%s", v->name) < 0)
		return error_set(err, ENOMEM, "config.json");
	return 0;
}

static int parse_mounts(json_object *root, struct oci_bundle *b, struct error **err)
{
	json_object *v = spec_json_member(root, "mounts");
	Cocoon__ContainerSpec *s = b->spec;
	int r = spec_json_want_type(v, json_type_array, "mounts", err);
	if (r < 0 || !v)
		return r;
	size_t len = json_object_array_length(v);
	if (len > COCOON_MAX_BINDS)
		return error_setx(err, E2BIG, "config.json: mounts: at most %d", COCOON_MAX_BINDS);
	s->mounts = calloc(len ? len : 1, sizeof(*s->mounts));
	if (!s->mounts)
		return error_set(err, ENOMEM, "config.json");
	for (size_t i = 0; i < len; i++) {
		json_object *m = json_object_array_get_idx(v, i);
		if ((r = spec_json_want_type(m, json_type_object, "mounts[]", err)) < 0)
			return r;
		r = parse_mount(m, i, b, &s->mounts[s->n_mounts++], err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_linux(json_object *root, struct oci_bundle *b, struct error **err)
{
	json_object *lin = spec_json_member(root, "linux");
	Cocoon__ContainerSpec *s = b->spec;
	int r = spec_json_want_type(lin, json_type_object, "linux", err);
	if (r < 0)
		return r;
	if ((r = spec_parse_namespaces(lin, b, err)) < 0)
		return r;
	if ((r = spec_parse_resources(spec_json_member(lin, "resources"), b, err)) < 0)
		return r;
	if ((r = spec_parse_cgroups_path(lin, b, err)) < 0)
		return r;
	/* The engine's cgroup for the container: its parent may be the pod's,
	 * with the pod's limits (pod-size.c). */
	if ((r = spec_json_string(lin, "cgroupsPath", "linux.cgroupsPath", false,
				  &b->pod.cgroups_path, err)) < 0)
		return r;
	if ((r = spec_parse_seccomp(lin, s, b, err)) < 0 ||
	    (r = spec_parse_paths(lin, s, err)) < 0 || (r = spec_parse_sysctl(lin, s, err)) < 0 ||
	    (r = spec_parse_time_offsets(lin, s, err)) < 0 ||
	    (r = spec_parse_device_rules(spec_json_member(lin, "resources"), s, err)) < 0 ||
	    (r = spec_parse_hugepage_limits(spec_json_member(lin, "resources"), s, err)) < 0 ||
	    (r = spec_parse_unified(spec_json_member(lin, "resources"), s, err)) < 0 ||
	    (r = spec_parse_id_mappings(lin, s, err)) < 0 ||
	    (r = spec_check_user_ns_joins(s, err)) < 0)
		return r;
	return spec_check_namespaces(lin, b, err);
}

bool spec_wants_new_netns(const struct oci_bundle *b)
{
	const Cocoon__ContainerSpec *s = b->spec;
	if (!s || b->netns_path)
		return false;
	for (size_t i = 0; i < s->n_join_namespaces; i++)
		if (strcmp(s->join_namespaces[i], "network") == 0)
			return false; /* the pod's */
	for (size_t i = 0; i < s->n_namespaces; i++)
		if (strcmp(s->namespaces[i], "network") == 0)
			return true;
	return false;
}

bool spec_wants_late_network(const struct oci_bundle *b)
{
	if (!spec_wants_new_netns(b))
		return false;
	for (size_t i = 0; i < b->spec->n_namespaces; i++)
		if (strcmp(b->spec->namespaces[i], "user") == 0)
			return true;
	return false;
}

/* One of CRI's pod-level limit annotations: a decimal string ("0": none). */
static int pod_limit_annotation(json_object *ann, const char *key, uint64_t max, uint64_t *out,
				struct error **err)
{
	json_object *v = spec_json_member(ann, key);
	if (!v)
		return 0;
	const char *text =
		json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
	char *end;
	errno = 0;
	unsigned long long n = strtoull(text, &end, 10);
	if (!*text || *end || text[0] == '-' || errno || n > max)
		return error_setx(err, EINVAL,
				  "config.json: annotations: %s: expected a number of at most %llu "
				  "as a string",
				  key, (unsigned long long)max);
	*out = n;
	return 0;
}

/* containerd's pod-level limits on a sandbox (pod.h struct spec_pod). */
static int parse_pod_limits(json_object *ann, struct pod_limits *l, struct error **err)
{
	uint64_t quota = 0;
	int r;
	if ((r = pod_limit_annotation(ann, "io.kubernetes.cri.sandbox-memory", UINT64_C(1) << 50,
				      &l->memory, err)) < 0 ||
	    (r = pod_limit_annotation(ann, "io.kubernetes.cri.sandbox-cpu-quota", 1u << 31, &quota,
				      err)) < 0 ||
	    (r = pod_limit_annotation(ann, "io.kubernetes.cri.sandbox-cpu-period", 1000000,
				      &l->cpu_period, err)) < 0)
		return r;
	l->cpu_quota = (int64_t)quota;
	if (l->memory || (l->cpu_quota && l->cpu_period))
		snprintf(l->source, sizeof(l->source),
			 "the annotations io.kubernetes.cri.sandbox-*");
	return 0;
}

/* The pod a container belongs to, as CRI (containerd) and CRI-O say it. */
static int parse_pod_annotations(json_object *root, struct oci_bundle *b, struct error **err)
{
	static const char *const keys[][2] = {
		{"io.kubernetes.cri.container-type", "io.kubernetes.cri.sandbox-id"},
		{"io.kubernetes.cri-o.ContainerType", "io.kubernetes.cri-o.SandboxID"},
	};
	json_object *ann = spec_json_member(root, "annotations");
	int r = spec_json_want_type(ann, json_type_object, "annotations", err);
	if (r < 0 || !ann)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		json_object *type = spec_json_member(ann, keys[i][0]),
			    *sandbox = spec_json_member(ann, keys[i][1]);
		if (!type || !json_object_is_type(type, json_type_string))
			continue;
		if (strcmp(json_object_get_string(type), "sandbox") == 0) {
			b->pod.sandbox = true;
		} else if (strcmp(json_object_get_string(type), "container") == 0 && sandbox &&
			   json_object_is_type(sandbox, json_type_string) && !b->pod.sandbox_id) {
			if (validate_id("sandbox", json_object_get_string(sandbox), err) < 0)
				return error_wrap(err, "config.json: annotations: %s", keys[i][1]);
			if (!(b->pod.sandbox_id = strdup(json_object_get_string(sandbox))))
				return error_set(err, ENOMEM, "config.json");
		}
	}
	return b->pod.sandbox ? parse_pod_limits(ann, &b->pod.limits, err) : 0;
}

static void spec_free_container(Cocoon__ContainerSpec *s)
{
	if (!s)
		return;
	spec_free_pb_string(s->id);
	spec_process_free(s->process);
	spec_free_pb_string(s->hostname);
	for (size_t i = 0; i < s->n_mounts; i++) {
		Cocoon__Mount *m = s->mounts[i];
		spec_free_pb_string(m->destination);
		spec_free_pb_string(m->type);
		spec_free_pb_string(m->source);
		for (size_t j = 0; j < m->n_options; j++)
			free(m->options[j]);
		free(m->options);
		free(m);
	}
	free(s->mounts);
	for (size_t i = 0; i < s->n_namespaces; i++)
		free(s->namespaces[i]);
	free(s->namespaces);
	spec_free_pb_string(s->rootfs_tag);
	spec_free_confinement(s);
	spec_free_kernel(s);
	spec_free_id_mappings(s);
	free(s->resources);
	free(s->pod_resources);
	spec_free_pb_string(s->rootfs_path);
	spec_free_pb_string(s->join_container);
	for (size_t i = 0; i < s->n_join_namespaces; i++)
		free(s->join_namespaces[i]);
	free(s->join_namespaces);
	free(s);
}

void spec_free(struct oci_bundle *b)
{
	spec_free_container(b->spec);
	for (size_t i = 0; i < b->n_volumes; i++)
		volume_free(&b->volumes[i]);
	for (size_t i = 0; i < b->n_warnings; i++)
		free(b->warnings[i]);
	free(b->warnings);
	free(b->bundle);
	free(b->rootfs);
	free(b->pod.sandbox_id);
	free(b->pod.cgroups_path);
	free(b->pod.netns_path);
	free(b->netns_path);
	free(b->cgroup);
	memset(b, 0, sizeof(*b));
}

static int parse_root(json_object *root, struct oci_bundle *b, struct error **err)
{
	json_object *r_obj = spec_json_member(root, "root");
	_cleanup_free_ char *path = NULL, *joined = NULL;
	int r = spec_json_want_type(r_obj, json_type_object, "root", err);
	if (r < 0)
		return r;
	if ((r = spec_json_string(r_obj, "path", "root.path", true, &path, err)) < 0)
		return r;
	if ((r = spec_json_bool(r_obj, "readonly", "root.readonly", &b->spec->readonly_rootfs,
				err)) < 0)
		return r;
	if (path[0] == '/')
		joined = strdup(path);
	else if (asprintf(&joined, "%s/%s", b->bundle, path) < 0)
		joined = NULL;
	char resolved[PATH_MAX];
	if (!joined || !realpath(joined, resolved))
		return error_set(err, errno, "rootfs %s", joined ? joined : path);
	struct stat st;
	if (stat(resolved, &st) < 0 || !S_ISDIR(st.st_mode))
		return error_setx(err, ENOTDIR, "rootfs %s is not a directory", resolved);
	if (strchr(resolved, ','))
		return error_setx(err, EINVAL,
				  "rootfs %s: paths with ',' cannot be shared with QEMU", resolved);
	b->rootfs = strdup(resolved);
	return 0;
}

int spec_load(const char *bundle, const char *id, struct oci_bundle *b, struct error **err)
{
	char resolved[PATH_MAX];
	_cleanup_free_ char *path = NULL, *text = NULL;
	int r;

	memset(b, 0, sizeof(*b));
	if (!realpath(bundle, resolved))
		return error_set(err, errno, "bundle %s", bundle);
	if (asprintf(&path, "%s/config.json", resolved) < 0)
		return error_set(err, ENOMEM, "bundle");
	if ((r = read_file_bounded(path, SPEC_MAX_BYTES, &text, NULL, err)) < 0) {
		b->bundle = strdup(resolved);
		return r;
	}
	return spec_parse(resolved, path, text, id, b, err);
}

int spec_parse(const char *bundle_dir, const char *source, const char *text, const char *id,
	       struct oci_bundle *b, struct error **err)
{
	int r;

	memset(b, 0, sizeof(*b));
	b->bundle = strdup(bundle_dir);
	if (!b->bundle)
		return error_set(err, ENOMEM, "bundle");
	enum json_tokener_error jerr;
	_cleanup_json_ json_object *root = json_tokener_parse_verbose(text, &jerr);
	if (!root)
		return error_setx(err, EINVAL, "%s: not valid JSON: %s", source,
				  json_tokener_error_desc(jerr));
	if (!json_object_is_type(root, json_type_object))
		return error_setx(err, EINVAL, "%s: expected a JSON object", source);

	b->spec = calloc(1, sizeof(*b->spec));
	if (!b->spec)
		return error_set(err, ENOMEM, "config.json");
	cocoon__container_spec__init(b->spec);
	b->spec->id = strdup(id);
	b->spec->rootfs_tag = strdup(COCOON_TAG_ROOTFS);
	if (!spec_json_member(root, "ociVersion"))
		return error_setx(err, EINVAL, "config.json: ociVersion is required");
	if ((r = spec_json_want_type(spec_json_member(root, "ociVersion"), json_type_string,
				     "ociVersion", err)) < 0)
		return r;
	if ((r = parse_root(root, b, err)) < 0)
		return r;
	if (!spec_json_member(root, "process"))
		return error_setx(err, EINVAL, "config.json: process is required");
	if ((r = spec_parse_process(spec_json_member(root, "process"), &b->spec->process, b, err)) <
	    0)
		return r;
	if ((r = spec_json_string(root, "hostname", "hostname", false, &b->spec->hostname, err)) <
	    0)
		return r;
	if (!b->spec->hostname)
		b->spec->hostname = strdup("");
	/* sethostname(2): at most HOST_NAME_MAX (64) bytes, else EINVAL in
	 * the guest after the boot. */
	if (b->spec->hostname && strlen(b->spec->hostname) > 64)
		return error_setx(err, EINVAL,
				  "config.json: hostname is %zu bytes; the kernel takes at most 64",
				  strlen(b->spec->hostname));
	if ((r = parse_mounts(root, b, err)) < 0)
		return r;
	if ((r = parse_pod_annotations(root, b, err)) < 0 || (r = parse_linux(root, b, err)) < 0)
		return r;
	if (spec_json_member(root, "hooks"))
		spec_warn(b, "hooks are not run by cocoon; ignored");
	return 0;
}
