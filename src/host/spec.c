#include "spec.h"
#include "resources.h"
#include "cleanup.h"
#include "cgroup-mirror.h"
#include "log.h"
#include "paths.h"
#include "pod.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

/* json-c objects are freed through the root. */
static void json_putp(json_object **o)
{
	if (*o)
		json_object_put(*o);
}
#define _cleanup_json_ __attribute__((cleanup(json_putp)))

void spec_warn(struct oci_bundle *b, const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	char **grown = msg ? realloc(b->warnings, (b->n_warnings + 1) * sizeof(char *)) : NULL;
	if (!grown) {
		free(msg);
		return;
	}
	b->warnings = grown;
	b->warnings[b->n_warnings++] = msg;
}

static json_object *member(json_object *o, const char *key)
{
	json_object *v = NULL;
	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static int want_type(json_object *v, json_type t, const char *field, struct error **err)
{
	if (v && !json_object_is_type(v, t))
		return error_setx(err, EINVAL, "config.json: %s: expected %s", field,
				  json_type_to_name(t));
	return 0;
}

static int get_string(json_object *o, const char *key, const char *field, bool required, char **out,
		      struct error **err)
{
	json_object *v = member(o, key);
	*out = NULL;
	if (!v) {
		if (required)
			return error_setx(err, EINVAL, "config.json: %s is required", field);
		return 0;
	}
	int r = want_type(v, json_type_string, field, err);
	if (r < 0)
		return r;
	*out = strdup(json_object_get_string(v));
	return *out ? 0 : error_set(err, ENOMEM, "config.json");
}

static int get_string_array(json_object *o, const char *key, const char *field, char ***out,
			    size_t *n, struct error **err)
{
	json_object *v = member(o, key);
	*out = NULL;
	*n = 0;
	if (!v)
		return 0;
	int r = want_type(v, json_type_array, field, err);
	if (r < 0)
		return r;
	size_t len = json_object_array_length(v);
	if (len > SPEC_MAX_STRINGS)
		return error_setx(err, E2BIG, "config.json: %s has %zu entries; the limit is %d",
				  field, len, SPEC_MAX_STRINGS);
	*out = calloc(len + 1, sizeof(char *));
	if (!*out)
		return error_set(err, ENOMEM, "config.json");
	for (size_t i = 0; i < len; i++) {
		json_object *e = json_object_array_get_idx(v, i);
		if (!json_object_is_type(e, json_type_string))
			return error_setx(err, EINVAL, "config.json: %s[%zu]: expected string",
					  field, i);
		(*out)[i] = strdup(json_object_get_string(e));
		*n = i + 1;
	}
	return 0;
}

static int get_uint(json_object *o, const char *key, const char *field, uint64_t max, uint64_t *out,
		    struct error **err)
{
	json_object *v = member(o, key);
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return error_setx(err, EINVAL, "config.json: %s: expected an integer", field);
	int64_t n = json_object_get_int64(v);
	if (n < 0 || (uint64_t)n > max)
		return error_setx(err, ERANGE, "config.json: %s: %lld is out of range", field,
				  (long long)n);
	*out = (uint64_t)n;
	return 0;
}

static int get_bool(json_object *o, const char *key, const char *field, protobuf_c_boolean *out,
		    struct error **err)
{
	json_object *v = member(o, key);
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return error_setx(err, EINVAL, "config.json: %s: expected a boolean", field);
	*out = json_object_get_boolean(v);
	return 0;
}

/* A string field that parsing never reached still holds protobuf-c's
 * static empty string: found by fuzz-spec (a mount with a bad destination
 * crashed spec_free). */
static void free_pb_string(char *s)
{
	if (s != protobuf_c_empty_string)
		free(s);
}

void spec_process_free(Cocoon__ProcessSpec *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_args; i++)
		free(p->args[i]);
	free(p->args);
	for (size_t i = 0; i < p->n_env; i++)
		free(p->env[i]);
	free(p->env);
	free_pb_string(p->cwd);
	free(p->additional_gids);
	for (size_t i = 0; i < p->n_rlimits; i++) {
		free_pb_string(p->rlimits[i]->type);
		free(p->rlimits[i]);
	}
	free(p->rlimits);
	free(p->capabilities);
	free(p->console_size);
	free(p);
}

/* process.consoleSize {height, width}: the terminal's rows and columns at
 * start (runtime-spec config.md). struct winsize holds unsigned shorts, so
 * a side over 65535 is an error; a zero side means "not set", as runc
 * treats it. */
static int parse_console_size(json_object *proc, Cocoon__ProcessSpec *p, struct error **err)
{
	json_object *box = member(proc, "consoleSize");
	uint64_t h = 0, w = 0;
	int r;
	if (!box)
		return 0;
	if ((r = want_type(box, json_type_object, "process.consoleSize", err)) < 0 ||
	    (r = get_uint(box, "height", "process.consoleSize.height", 65535, &h, err)) < 0 ||
	    (r = get_uint(box, "width", "process.consoleSize.width", 65535, &w, err)) < 0)
		return r;
	if (h == 0 || w == 0)
		return 0;
	if (!(p->console_size = calloc(1, sizeof(*p->console_size))))
		return error_set(err, ENOMEM, "config.json");
	cocoon__console_size__init(p->console_size);
	p->console_size->rows = (uint32_t)h;
	p->console_size->cols = (uint32_t)w;
	return 0;
}

/* The limits getrlimit(2) knows on Linux: the runtime spec makes any other
 * an error ("MUST generate an error for any values which cannot be mapped
 * to a relevant kernel interface"), and so does a type given twice. */
static bool rlimit_known(const char *type)
{
	static const char *const names[] = {
		"RLIMIT_AS",	 "RLIMIT_CORE",	  "RLIMIT_CPU",	       "RLIMIT_DATA",
		"RLIMIT_FSIZE",	 "RLIMIT_LOCKS",  "RLIMIT_MEMLOCK",    "RLIMIT_MSGQUEUE",
		"RLIMIT_NICE",	 "RLIMIT_NOFILE", "RLIMIT_NPROC",      "RLIMIT_RSS",
		"RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strcmp(type, names[i]) == 0)
			return true;
	return false;
}

static int parse_rlimits(json_object *proc, Cocoon__ProcessSpec *p, struct error **err)
{
	json_object *v = member(proc, "rlimits");
	int r = want_type(v, json_type_array, "process.rlimits", err);
	if (r < 0 || !v)
		return r;
	size_t len = json_object_array_length(v);
	if (len > 32)
		return error_setx(err, E2BIG, "config.json: process.rlimits: too many entries");
	p->rlimits = calloc(len ? len : 1, sizeof(*p->rlimits));
	if (!p->rlimits)
		return error_set(err, ENOMEM, "config.json");
	for (size_t i = 0; i < len; i++) {
		json_object *e = json_object_array_get_idx(v, i);
		char field[64];
		Cocoon__Rlimit *rl = calloc(1, sizeof(*rl));
		if (!rl)
			return error_set(err, ENOMEM, "config.json");
		cocoon__rlimit__init(rl);
		p->rlimits[p->n_rlimits++] = rl;
		snprintf(field, sizeof(field), "process.rlimits[%zu].type", i);
		if ((r = get_string(e, "type", field, true, &rl->type, err)) < 0)
			return r;
		if (!rlimit_known(rl->type))
			return error_setx(err, EINVAL, "config.json: %s: unknown limit '%.64s'",
					  field, rl->type);
		for (size_t j = 0; j < i; j++)
			if (strcmp(p->rlimits[j]->type, rl->type) == 0)
				return error_setx(err, EINVAL,
						  "config.json: %s: %s is set twice (also in "
						  "process.rlimits[%zu])",
						  field, rl->type, j);
		snprintf(field, sizeof(field), "process.rlimits[%zu].hard", i);
		if (!member(e, "hard"))
			return error_setx(err, EINVAL, "config.json: %s is required", field);
		if ((r = get_uint(e, "hard", field, UINT64_MAX, &rl->hard, err)) < 0)
			return r;
		snprintf(field, sizeof(field), "process.rlimits[%zu].soft", i);
		if (!member(e, "soft"))
			return error_setx(err, EINVAL, "config.json: %s is required", field);
		if ((r = get_uint(e, "soft", field, UINT64_MAX, &rl->soft, err)) < 0)
			return r;
		/* setrlimit(2) refuses it (EINVAL): say so before a VM boots. */
		if (rl->soft > rl->hard)
			return error_setx(
				err, EINVAL,
				"config.json: process.rlimits[%zu] (%s): soft %llu is above "
				"hard %llu",
				i, rl->type, (unsigned long long)rl->soft,
				(unsigned long long)rl->hard);
	}
	return 0;
}

static int parse_process(json_object *proc, Cocoon__ProcessSpec **out, struct oci_bundle *b,
			 struct error **err)
{
	Cocoon__ProcessSpec *p = calloc(1, sizeof(*p));
	uint64_t v;
	int r;

	if (!p)
		return error_set(err, ENOMEM, "config.json");
	cocoon__process_spec__init(p);
	*out = p;
	if ((r = want_type(proc, json_type_object, "process", err)) < 0)
		return r;
	if ((r = get_string_array(proc, "args", "process.args", &p->args, &p->n_args, err)) < 0)
		return r;
	if (p->n_args == 0 || !*p->args[0])
		return error_setx(err, EINVAL, "config.json: process.args must not be empty");
	if ((r = get_string_array(proc, "env", "process.env", &p->env, &p->n_env, err)) < 0)
		return r;
	for (size_t i = 0; i < p->n_env; i++)
		if (!strchr(p->env[i], '='))
			return error_setx(err, EINVAL,
					  "config.json: process.env[%zu]: '%s' is not NAME=VALUE",
					  i, p->env[i]);
	if ((r = get_string(proc, "cwd", "process.cwd", false, &p->cwd, err)) < 0)
		return r;
	if (!p->cwd)
		p->cwd = strdup("/");
	if (p->cwd[0] != '/')
		return error_setx(err, EINVAL, "config.json: process.cwd '%s' must be absolute",
				  p->cwd);
	json_object *user = member(proc, "user");
	if ((r = want_type(user, json_type_object, "process.user", err)) < 0)
		return r;
	v = 0;
	if ((r = get_uint(user, "uid", "process.user.uid", UINT32_MAX - 1, &v, err)) < 0)
		return r;
	p->uid = (uint32_t)v;
	v = 0;
	if ((r = get_uint(user, "gid", "process.user.gid", UINT32_MAX - 1, &v, err)) < 0)
		return r;
	p->gid = (uint32_t)v;
	json_object *gids = member(user, "additionalGids");
	if ((r = want_type(gids, json_type_array, "process.user.additionalGids", err)) < 0)
		return r;
	size_t ng = gids ? json_object_array_length(gids) : 0;
	if (ng > 64)
		return error_setx(err, E2BIG,
				  "config.json: process.user.additionalGids: at most 64");
	p->additional_gids = calloc(ng ? ng : 1, sizeof(uint32_t));
	for (size_t i = 0; i < ng && p->additional_gids; i++) {
		json_object *g = json_object_array_get_idx(gids, i);
		if (!json_object_is_type(g, json_type_int) || json_object_get_int64(g) < 0)
			return error_setx(
				err, EINVAL,
				"config.json: process.user.additionalGids[%zu]: expected a gid", i);
		p->additional_gids[p->n_additional_gids++] = (uint32_t)json_object_get_int64(g);
	}
	if (member(user, "username"))
		spec_warn(b, "process.user.username is not supported (Windows only); ignored");
	if ((r = get_bool(proc, "terminal", "process.terminal", &p->terminal, err)) < 0)
		return r;
	if ((r = parse_console_size(proc, p, err)) < 0)
		return r;
	if ((r = get_bool(proc, "noNewPrivileges", "process.noNewPrivileges", &p->no_new_privileges,
			  err)) < 0)
		return r;
	if ((r = parse_rlimits(proc, p, err)) < 0)
		return r;
	if ((r = spec_parse_capabilities(proc, p, b, err)) < 0)
		return r;
	/* Not applied inside the VM. */
	static const char *const unapplied[] = {"apparmorProfile", "selinuxLabel", "oomScoreAdj",
						"ioPriority", "scheduler"};
	for (size_t i = 0; i < ARRAY_SIZE(unapplied); i++)
		if (member(proc, unapplied[i]))
			spec_warn(b, "process.%s is not applied inside the VM; ignored",
				  unapplied[i]);
	return 0;
}

int spec_parse_process_file(const char *path, Cocoon__ProcessSpec **out, struct error **err)
{
	_cleanup_free_ char *text = NULL;
	struct oci_bundle dummy = {0};
	int r = read_file_bounded(path, SPEC_MAX_BYTES, &text, NULL, err);
	if (r < 0)
		return r;
	_cleanup_json_ json_object *root = json_tokener_parse(text);
	if (!root)
		return error_setx(err, EINVAL, "%s: not valid JSON", path);
	r = parse_process(root, out, &dummy, err);
	for (size_t i = 0; i < dummy.n_warnings; i++) {
		log_warning("%s: %s", path, dummy.warnings[i]);
		free(dummy.warnings[i]);
	}
	free(dummy.warnings);
	return r;
}

/* A ".." component, not the two characters: "/a..b" is a plain name. */
static bool has_dotdot_component(const char *path)
{
	for (const char *p = path; *p;) {
		size_t n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return true;
		p += n + (p[n] == '/');
	}
	return false;
}

static const char *const supported_fs[] = {"proc",   "sysfs",	"tmpfs", "devpts", "mqueue",
					   "cgroup", "cgroup2", "bind",	 NULL};

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
	if ((r = get_string(m, "destination", field, true, &mnt->destination, err)) < 0)
		return r;
	if (mnt->destination[0] != '/' || has_dotdot_component(mnt->destination))
		return error_setx(err, EINVAL,
				  "config.json: %s '%s' must be absolute, without '..'", field,
				  mnt->destination);
	snprintf(field, sizeof(field), "mounts[%zu].type", i);
	if ((r = get_string(m, "type", field, false, &mnt->type, err)) < 0)
		return r;
	snprintf(field, sizeof(field), "mounts[%zu].source", i);
	if ((r = get_string(m, "source", field, false, &mnt->source, err)) < 0)
		return r;
	snprintf(field, sizeof(field), "mounts[%zu].options", i);
	if ((r = get_string_array(m, "options", field, &mnt->options, &mnt->n_options, err)) < 0)
		return r;
	bool bind = mnt->type && strcmp(mnt->type, "bind") == 0;
	for (size_t j = 0; j < mnt->n_options; j++)
		bind |= strcmp(mnt->options[j], "bind") == 0 ||
			strcmp(mnt->options[j], "rbind") == 0;
	if (!mnt->type)
		mnt->type = strdup(bind ? "bind" : "none");
	if (!bind) {
		for (const char *const *t = supported_fs; *t; t++)
			if (strcmp(*t, mnt->type) == 0)
				return 0;
		return error_setx(
			err, EOPNOTSUPP,
			"config.json: mounts[%zu] (%s): filesystem type '%s' is not supported in the VM",
			i, mnt->destination, mnt->type);
	}
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
	if (asprintf(&mnt->source, VOLUMES_GUEST_DIR "/%s", v->name) < 0)
		return error_set(err, ENOMEM, "config.json");
	return 0;
}

static int parse_mounts(json_object *root, struct oci_bundle *b, struct error **err)
{
	json_object *v = member(root, "mounts");
	Cocoon__ContainerSpec *s = b->spec;
	int r = want_type(v, json_type_array, "mounts", err);
	if (r < 0 || !v)
		return r;
	size_t len = json_object_array_length(v);
	if (len > SPEC_MAX_MOUNTS)
		return error_setx(err, E2BIG, "config.json: mounts: at most %d", SPEC_MAX_MOUNTS);
	s->mounts = calloc(len ? len : 1, sizeof(*s->mounts));
	if (!s->mounts)
		return error_set(err, ENOMEM, "config.json");
	for (size_t i = 0; i < len; i++) {
		json_object *m = json_object_array_get_idx(v, i);
		if ((r = want_type(m, json_type_object, "mounts[]", err)) < 0)
			return r;
		r = parse_mount(m, i, b, &s->mounts[s->n_mounts++], err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* A network namespace to join must exist, be one, and not be the runtime's
 * own. The path is looked at before it is opened: opening a device node or
 * a FIFO has effects of its own (a FIFO blocks; /dev/watchdog arms the
 * watchdog), and an nsfs file is a regular file on NSFS_MAGIC. The runtime's
 * own namespace is the host's network: the shim would redirect the host's
 * interfaces into the VM. Kata refuses it the same way
 * (katautils' hostNetworkingRequested). */
static int check_netns_path(const char *field, const char *path, struct error **err)
{
	struct stat st, own;
	struct statfs fs;
	if (path[0] != '/')
		return error_setx(err, EINVAL, "config.json: %s '%s' must be absolute", field,
				  path);
	if (stat(path, &st) < 0 || statfs(path, &fs) < 0)
		return error_set(err, errno, "config.json: %s: network namespace %s", field, path);
	if (!S_ISREG(st.st_mode) || fs.f_type != NSFS_MAGIC)
		return error_setx(err, EINVAL, "config.json: %s: %s is not a network namespace",
				  field, path);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return error_set(err, errno, "config.json: %s: network namespace %s", field, path);
	if (ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET)
		return error_setx(err, EINVAL, "config.json: %s: %s is not a network namespace",
				  field, path);
	if (fstat(fd, &st) < 0 || stat("/proc/self/ns/net", &own) < 0)
		return error_set(err, errno, "config.json: %s: network namespace %s", field, path);
	if (st.st_dev == own.st_dev && st.st_ino == own.st_ino)
		return error_setx(
			err, EOPNOTSUPP,
			"config.json: %s: %s is the host's network namespace (the runtime's own), which asks for host networking: a container in a VM cannot share the host's network stack (docs/networking.md)",
			field, path);
	return 0;
}

static int get_int(json_object *o, const char *key, const char *field, int64_t *out,
		   struct error **err)
{
	json_object *v = member(o, key);
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return error_setx(err, EINVAL, "config.json: %s: expected an integer", field);
	*out = json_object_get_int64(v);
	return 0;
}

/* An int64 limit where -1 means none: below -1 is refused. */
static int get_int_unlimited(json_object *o, const char *key, const char *field, int64_t *out,
			     struct error **err)
{
	int r = get_int(o, key, field, out, err);
	if (r == 0 && *out < -1)
		return error_setx(err, ERANGE,
				  "config.json: %s: %lld is negative (-1 means no limit)", field,
				  (long long)*out);
	return r;
}

/* The CPUs a cpuset string names ("0-3,6"), or -1 when it is malformed. */
int spec_cpuset_count(const char *cpus)
{
	int n = 0;
	const char *p = cpus;
	while (*p) {
		char *end;
		long a = strtol(p, &end, 10), z = a;
		if (end == p || a < 0)
			return -1;
		if (*end == '-') {
			p = end + 1;
			z = strtol(p, &end, 10);
			if (end == p || z < a)
				return -1;
		}
		if (z - a >= 4096)
			return -1;
		n += (int)(z - a + 1);
		if (*end == ',')
			end++;
		else if (*end)
			return -1;
		p = end;
	}
	return n;
}

/* linux.resources: memory, pids and CPU become the container's cgroup
 * limits in the guest and size the VM (resources.c); the rest is named. */
static int parse_resources(json_object *res, struct oci_bundle *b, struct error **err)
{
	int r = want_type(res, json_type_object, "linux.resources", err);
	if (r < 0 || !res)
		return r;
	/* The rules update --resources shares. */
	if ((r = resources_check_json(res, "config.json: ", "linux.resources.", false, err)) < 0)
		return r;
	Cocoon__Resources *rs = calloc(1, sizeof(*rs));
	if (!rs)
		return error_set(err, ENOMEM, "config.json");
	cocoon__resources__init(rs);
	b->spec->resources = rs;
	json_object *mem = member(res, "memory"), *pids = member(res, "pids"),
		    *cpu = member(res, "cpu");
	int64_t v = 0;
	if ((r = want_type(mem, json_type_object, "linux.resources.memory", err)) < 0 ||
	    (r = want_type(pids, json_type_object, "linux.resources.pids", err)) < 0 ||
	    (r = want_type(cpu, json_type_object, "linux.resources.cpu", err)) < 0)
		return r;
	/* -1 is "no limit" (the runtime spec); any other negative value
	 * would have been taken as none without a word. */
	if ((r = get_int_unlimited(mem, "limit", "linux.resources.memory.limit", &v, err)) < 0)
		return r;
	rs->memory_limit = v > 0 ? (uint64_t)v : 0;
	v = 0;
	if ((r = get_int_unlimited(pids, "limit", "linux.resources.pids.limit", &v, err)) < 0)
		return r;
	rs->pids_limit = v > 0 ? v : 0;
	v = 0;
	if ((r = get_int_unlimited(cpu, "quota", "linux.resources.cpu.quota", &v, err)) < 0)
		return r;
	rs->cpu_quota = v > 0 ? v : 0;
	if ((r = get_uint(cpu, "period", "linux.resources.cpu.period", 1000000, &rs->cpu_period,
			  err)) < 0 ||
	    (r = get_uint(cpu, "shares", "linux.resources.cpu.shares", 262144, &rs->cpu_shares,
			  err)) < 0)
		return r;
	_cleanup_free_ char *cpus = NULL;
	if ((r = get_string(cpu, "cpus", "linux.resources.cpu.cpus", false, &cpus, err)) < 0)
		return r;
	if (cpus && *cpus && (b->cpuset_cpus = spec_cpuset_count(cpus)) < 0)
		return error_setx(err, EINVAL,
				  "config.json: linux.resources.cpu.cpus: '%s' is not a CPU list",
				  cpus);
	static const char *const mem_unapplied[] = {"reservation", "swap", "kernel", "kernelTCP",
						    "swappiness"};
	for (size_t i = 0; i < ARRAY_SIZE(mem_unapplied); i++)
		if (member(mem, mem_unapplied[i]))
			spec_warn(b,
				  "linux.resources.memory.%s is not applied inside the VM; ignored",
				  mem_unapplied[i]);
	static const char *const unapplied[] = {"blockIO", "hugepageLimits", "network",
						"rdma",	   "unified",	     "devices"};
	for (size_t i = 0; i < ARRAY_SIZE(unapplied); i++)
		if (member(res, unapplied[i]))
			spec_warn(b, "linux.resources.%s is not applied inside the VM; ignored",
				  unapplied[i]);
	return 0;
}

/* linux.cgroupsPath: where the shim shows the engines the container's
 * figures (cgroup-mirror.h). */
static int parse_cgroups_path(json_object *lin, struct oci_bundle *b, struct error **err)
{
	_cleanup_free_ char *raw = NULL;
	char path[CGMIRROR_PATH_MAX];
	int r = get_string(lin, "cgroupsPath", "linux.cgroupsPath", false, &raw, err);
	if (r < 0 || !raw || !*raw)
		return r;
	if ((r = cgmirror_path(raw, path, sizeof(path), err)) < 0)
		return r;
	b->cgroup = strdup(path);
	return b->cgroup ? 0 : error_set(err, ENOMEM, "config.json");
}

static int parse_linux(json_object *root, struct oci_bundle *b, struct error **err)
{
	json_object *lin = member(root, "linux");
	Cocoon__ContainerSpec *s = b->spec;
	int r = want_type(lin, json_type_object, "linux", err);
	if (r < 0)
		return r;
	json_object *nss = member(lin, "namespaces");
	if ((r = want_type(nss, json_type_array, "linux.namespaces", err)) < 0)
		return r;
	size_t len = nss ? json_object_array_length(nss) : 0;
	s->namespaces = calloc(len + 1, sizeof(char *));
	for (size_t i = 0; i < len && s->namespaces; i++) {
		json_object *ns = json_object_array_get_idx(nss, i);
		char field[64], *type = NULL, *path = NULL;
		snprintf(field, sizeof(field), "linux.namespaces[%zu].type", i);
		if ((r = get_string(ns, "type", field, true, &type, err)) < 0)
			return r;
		snprintf(field, sizeof(field), "linux.namespaces[%zu].path", i);
		if ((r = get_string(ns, "path", field, false, &path, err)) < 0) {
			free(type);
			return r;
		}
		/* Pods: the namespaces of the pod's sandbox (pod.c). */
		if (path && (r = pod_spec_namespace(b, field, type, path, err)) != 0) {
			free(path);
			free(type);
			if (r < 0)
				return r;
			continue;
		}
		if (path && strcmp(type, "network") == 0) {
			/* The engine's network: the shim carries it into the VM. */
			r = check_netns_path(field, path, err);
			if (r < 0) {
				free(path);
				free(type);
				return r;
			}
			free(b->netns_path);
			b->netns_path = path;
			path = NULL;
		}
		if (path) {
			free(path);
			r = error_setx(
				err, EOPNOTSUPP,
				"config.json: %s: joining an existing %s namespace is not supported: each container has its own VM",
				field, type);
			free(type);
			return r;
		}
		if (strcmp(type, "pid") == 0 || strcmp(type, "mount") == 0 ||
		    strcmp(type, "uts") == 0 || strcmp(type, "ipc") == 0 ||
		    strcmp(type, "network") == 0) {
			s->namespaces[s->n_namespaces++] = type;
		} else if (strcmp(type, "cgroup") == 0 || strcmp(type, "user") == 0 ||
			   strcmp(type, "time") == 0) {
			spec_warn(
				b,
				"linux.namespaces: %s namespace is not created inside the VM; ignored",
				type);
			free(type);
		} else {
			r = error_setx(err, EINVAL,
				       "config.json: linux.namespaces[%zu]: unknown type '%s'", i,
				       type);
			free(type);
			return r;
		}
	}
	if ((r = parse_resources(member(lin, "resources"), b, err)) < 0)
		return r;
	if ((r = parse_cgroups_path(lin, b, err)) < 0)
		return r;
	/* The engine's cgroup for the container: its parent may be the pod's,
	 * with the pod's limits (pod-size.c). */
	if ((r = get_string(lin, "cgroupsPath", "linux.cgroupsPath", false, &b->pod.cgroups_path,
			    err)) < 0)
		return r;
	if ((r = spec_parse_seccomp(lin, s, b, err)) < 0 || (r = spec_parse_paths(lin, s, err)) < 0)
		return r;
	/* The agent gives every container its own pid, mount, IPC and UTS
	 * namespaces (src/guest/container.c): the guest's own hold CRIU and
	 * the agent. Left out, the first two change what the process sees. */
	static const char *const own[] = {"pid", "mount"};
	for (size_t i = 0; i < ARRAY_SIZE(own); i++) {
		bool has = false;
		for (size_t j = 0; j < s->n_namespaces; j++)
			has |= strcmp(s->namespaces[j], own[i]) == 0;
		if (!has)
			spec_warn(
				b,
				"linux.namespaces has no %s namespace: the container gets a new one inside the VM, as no container shares the guest's (docs/confinement.md)",
				own[i]);
	}
	/* No network namespace means the host's network stack, which a VM
	 * cannot share. Kata refuses it too. */
	bool netns = false;
	for (size_t i = 0; i < s->n_namespaces; i++)
		netns |= strcmp(s->namespaces[i], "network") == 0;
	for (size_t i = 0; i < s->n_join_namespaces; i++)
		netns |= strcmp(s->join_namespaces[i], "network") == 0; /* the pod's */
	if (!netns)
		return error_setx(
			err, EOPNOTSUPP,
			"config.json: linux.namespaces has no network namespace, which asks for host networking: a container in a VM cannot share the host's network stack (docs/networking.md). Give it a network namespace (podman: not --network=host)");
	static const char *const unapplied[] = {"devices",     "sysctl",     "uidMappings",
						"gidMappings", "mountLabel", "personality",
						"intelRdt"};
	for (size_t i = 0; i < ARRAY_SIZE(unapplied); i++)
		if (member(lin, unapplied[i]))
			spec_warn(b, "linux.%s is not applied inside the VM; ignored",
				  unapplied[i]);
	return 0;
}

/* One of CRI's pod-level limit annotations: a decimal string ("0": none). */
static int pod_limit_annotation(json_object *ann, const char *key, uint64_t max, uint64_t *out,
				struct error **err)
{
	json_object *v = member(ann, key);
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
	json_object *ann = member(root, "annotations");
	int r = want_type(ann, json_type_object, "annotations", err);
	if (r < 0 || !ann)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		json_object *type = member(ann, keys[i][0]), *sandbox = member(ann, keys[i][1]);
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
	free_pb_string(s->id);
	spec_process_free(s->process);
	free_pb_string(s->hostname);
	for (size_t i = 0; i < s->n_mounts; i++) {
		Cocoon__Mount *m = s->mounts[i];
		free_pb_string(m->destination);
		free_pb_string(m->type);
		free_pb_string(m->source);
		for (size_t j = 0; j < m->n_options; j++)
			free(m->options[j]);
		free(m->options);
		free(m);
	}
	free(s->mounts);
	for (size_t i = 0; i < s->n_namespaces; i++)
		free(s->namespaces[i]);
	free(s->namespaces);
	free_pb_string(s->rootfs_tag);
	spec_free_confinement(s);
	free(s->resources);
	free_pb_string(s->rootfs_path);
	free_pb_string(s->join_container);
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
	free(b->netns_path);
	free(b->cgroup);
	memset(b, 0, sizeof(*b));
}

static int parse_root(json_object *root, struct oci_bundle *b, struct error **err)
{
	json_object *r_obj = member(root, "root");
	_cleanup_free_ char *path = NULL, *joined = NULL;
	int r = want_type(r_obj, json_type_object, "root", err);
	if (r < 0)
		return r;
	if ((r = get_string(r_obj, "path", "root.path", true, &path, err)) < 0)
		return r;
	if ((r = get_bool(r_obj, "readonly", "root.readonly", &b->spec->readonly_rootfs, err)) < 0)
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
	if (!member(root, "ociVersion"))
		return error_setx(err, EINVAL, "config.json: ociVersion is required");
	if ((r = want_type(member(root, "ociVersion"), json_type_string, "ociVersion", err)) < 0)
		return r;
	if ((r = parse_root(root, b, err)) < 0)
		return r;
	if (!member(root, "process"))
		return error_setx(err, EINVAL, "config.json: process is required");
	if ((r = parse_process(member(root, "process"), &b->spec->process, b, err)) < 0)
		return r;
	if ((r = get_string(root, "hostname", "hostname", false, &b->spec->hostname, err)) < 0)
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
	if (member(root, "hooks"))
		spec_warn(b, "hooks are not run by cocoon; ignored");
	return 0;
}
