/* config.json's kernel settings the guest applies (spec-kernel.h). */
#include "spec-kernel.h"
#include "spec-json.h"
#include "cleanup.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* runc's validator (libcontainer/configs/validate/validator.go, sysctl())
 * takes the slash form too: when the first separator of a key is a "/",
 * dots and slashes swap (convertSysctlVariableToDotsSeparator), the way
 * sysctl(8) reads "net/ipv4/conf/eth0.100/rp_filter". */
static void sysctl_to_dotted(char *key)
{
	size_t first = strcspn(key, "./");
	if (key[first] != '/')
		return;
	for (char *p = key; *p; p++)
		*p = *p == '.' ? '/' : *p == '/' ? '.' : *p;
}

/* The characters of /proc/sys names, and no empty, "." or ".." name: the
 * key becomes a path under /proc/sys in the guest. */
static bool sysctl_key_ok(const char *key)
{
	size_t n = strlen(key);
	if (n == 0 || n > SPEC_SYSCTL_KEY_MAX ||
	    strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-:./") != n)
		return false;
	for (const char *p = key; *p;) {
		size_t len = strcspn(p, ".");
		/* A "/" stands for a "." in a name: "/", "//" alone would be
		 * "." or "..". */
		if (len == 0 || strspn(p, "/") >= len)
			return false;
		p += len + (p[len] == '.');
		if (p[-1] == '.' && !*p)
			return false;
	}
	return true;
}

/* runc's list: the sysctls of the IPC namespace (ipc_sysctl.c,
 * mq_sysctl.c). cocoon gives every container an IPC namespace of its own
 * in the guest (or its pod's), so these are always the container's. */
static bool sysctl_of_ipc(const char *key)
{
	static const char *const ipc[] = {"kernel.msgmax", "kernel.msgmnb",	    "kernel.msgmni",
					  "kernel.sem",	   "kernel.shmall",	    "kernel.shmmax",
					  "kernel.shmmni", "kernel.shm_rmid_forced"};
	for (size_t i = 0; i < ARRAY_SIZE(ipc); i++)
		if (strcmp(key, ipc[i]) == 0)
			return true;
	return strncmp(key, "fs.mqueue.", 10) == 0;
}

static int sysctl_check(const char *key, struct error **err)
{
	if (!sysctl_key_ok(key))
		return error_setx(err, EINVAL,
				  "config.json: linux.sysctl: '%.*s' is not a sysctl name "
				  "(letters, digits, '_', '-', ':', names joined by '.' or '/')",
				  SPEC_SYSCTL_KEY_MAX, key);
	/* A network namespace the container always has: the host refuses a
	 * spec without one (spec.c), and a pod member has its pod's. */
	if (sysctl_of_ipc(key) || strncmp(key, "net.", 4) == 0 ||
	    strcmp(key, "kernel.domainname") == 0)
		return 0;
	if (strcmp(key, "kernel.hostname") == 0)
		return error_setx(err, EINVAL,
				  "config.json: linux.sysctl: kernel.hostname is not allowed: it "
				  "conflicts with the spec's hostname field (as runc says)");
	return error_setx(err, EPERM,
			  "config.json: linux.sysctl: %s is not in a kernel namespace of the "
			  "container: it would set the whole guest kernel, which a pod's "
			  "containers share and the agent and CRIU run on; runc refuses it "
			  "too. Namespaced sysctls: net.*, kernel.msgmax, kernel.msgmnb, "
			  "kernel.msgmni, kernel.sem, kernel.shmall, kernel.shmmax, "
			  "kernel.shmmni, kernel.shm_rmid_forced, fs.mqueue.*, "
			  "kernel.domainname",
			  key);
}

static int sysctl_add(Cocoon__ContainerSpec *s, const char *key, json_object *v, struct error **err)
{
	if (!json_object_is_type(v, json_type_string))
		return error_setx(err, EINVAL,
				  "config.json: linux.sysctl: %.*s: expected a string value",
				  SPEC_SYSCTL_KEY_MAX, key);
	const char *value = json_object_get_string(v);
	if (strlen(value) > SPEC_SYSCTL_VALUE_MAX)
		return error_setx(err, E2BIG,
				  "config.json: linux.sysctl: %.*s: the value is longer than %d "
				  "bytes",
				  SPEC_SYSCTL_KEY_MAX, key, SPEC_SYSCTL_VALUE_MAX);
	Cocoon__Sysctl *e = calloc(1, sizeof(*e));
	if (!e)
		return error_set(err, ENOMEM, "config.json");
	cocoon__sysctl__init(e);
	s->sysctl[s->n_sysctl++] = e;
	e->key = strdup(key);
	e->value = strdup(value);
	if (!e->key || !e->value)
		return error_set(err, ENOMEM, "config.json");
	sysctl_to_dotted(e->key);
	int r = sysctl_check(e->key, err);
	for (size_t i = 0; r == 0 && i + 1 < s->n_sysctl; i++)
		if (strcmp(s->sysctl[i]->key, e->key) == 0)
			r = error_setx(err, EINVAL,
				       "config.json: linux.sysctl: %s is given twice (as '%s')",
				       e->key, key);
	return r;
}

int spec_parse_sysctl(json_object *lin, Cocoon__ContainerSpec *s, struct error **err)
{
	json_object *sys = spec_json_member(lin, "sysctl");
	int r = spec_json_want_type(sys, json_type_object, "linux.sysctl", err);
	if (r < 0 || !sys)
		return r;
	size_t n = (size_t)json_object_object_length(sys);
	if (n > SPEC_SYSCTL_MAX)
		return error_setx(err, E2BIG, "config.json: linux.sysctl: %zu entries, at most %d",
				  n, SPEC_SYSCTL_MAX);
	if (!(s->sysctl = calloc(n ? n : 1, sizeof(*s->sysctl))))
		return error_set(err, ENOMEM, "config.json");
	json_object_object_foreach(sys, key, v)
	{
		if ((r = sysctl_add(s, key, v, err)) < 0)
			return r;
	}
	return 0;
}

static Cocoon__DeviceRule *device_rule_new(Cocoon__ContainerSpec *s)
{
	Cocoon__DeviceRule *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	cocoon__device_rule__init(d);
	s->device_rules[s->n_device_rules++] = d;
	d->major = d->minor = -1;
	return d;
}

/* A major or minor number: absent is any (-1); runc's wildcard -1 is
 * taken too. */
static int device_number(json_object *e, const char *key, const char *field, int64_t *out,
			 struct error **err)
{
	json_object *v = spec_json_member(e, key);
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return error_setx(err, EINVAL, "config.json: %s: expected an integer", field);
	int64_t n = json_object_get_int64(v);
	if (n < -1 || n > UINT32_MAX)
		return error_setx(err, ERANGE,
				  "config.json: %s: %lld is not a device number (0..4294967295, "
				  "or -1 or absent for any)",
				  field, (long long)n);
	*out = n;
	return 0;
}

static int device_rule_parse(json_object *e, size_t i, Cocoon__DeviceRule *d, struct error **err)
{
	char field[64];
	int r;
	snprintf(field, sizeof(field), "linux.resources.devices[%zu]", i);
	if ((r = spec_json_want_type(e, json_type_object, field, err)) < 0)
		return r;
	snprintf(field, sizeof(field), "linux.resources.devices[%zu].allow", i);
	if (!spec_json_member(e, "allow"))
		return error_setx(err, EINVAL, "config.json: %s is required", field);
	if ((r = spec_json_bool(e, "allow", field, &d->allow, err)) < 0)
		return r;
	snprintf(field, sizeof(field), "linux.resources.devices[%zu].type", i);
	if ((r = spec_json_string(e, "type", field, false, &d->type, err)) < 0)
		return r;
	if (!d->type && !(d->type = strdup("a")))
		return error_set(err, ENOMEM, "config.json");
	if (strcmp(d->type, "a") != 0 && strcmp(d->type, "b") != 0 && strcmp(d->type, "c") != 0)
		return error_setx(err, EINVAL,
				  "config.json: %s: '%.16s' is not a device type (a, b or c)",
				  field, d->type);
	snprintf(field, sizeof(field), "linux.resources.devices[%zu].major", i);
	if ((r = device_number(e, "major", field, &d->major, err)) < 0)
		return r;
	snprintf(field, sizeof(field), "linux.resources.devices[%zu].minor", i);
	if ((r = device_number(e, "minor", field, &d->minor, err)) < 0)
		return r;
	snprintf(field, sizeof(field), "linux.resources.devices[%zu].access", i);
	if ((r = spec_json_string(e, "access", field, false, &d->access, err)) < 0)
		return r;
	if (!d->access && !(d->access = strdup("rwm")))
		return error_set(err, ENOMEM, "config.json");
	size_t n = strlen(d->access);
	bool seen[3] = {false, false, false};
	for (size_t k = 0; k < n; k++) {
		const char *at = strchr("rwm", d->access[k]);
		if (!d->access[k] || !at || seen[at - "rwm"])
			return error_setx(err, EINVAL,
					  "config.json: %s: '%.16s' is not an access (each of r, "
					  "w and m at most once)",
					  field, d->access);
		seen[at - "rwm"] = true;
	}
	if (n == 0)
		return error_setx(err, EINVAL, "config.json: %s is empty (r, w and/or m)", field);
	return 0;
}

/* runc's libcontainer/specconv AllowedDevices, which runc appends to every
 * container's device rules. */
static const struct {
	const char *type;
	int64_t major, minor;
} default_devices[] = {
	{"c", -1, -1},		     /* mknod of any device ("m" only, below) */
	{"b", -1, -1},	{"c", 1, 3}, /* /dev/null */
	{"c", 1, 8},		     /* /dev/random */
	{"c", 1, 7},		     /* /dev/full */
	{"c", 5, 0},		     /* /dev/tty */
	{"c", 1, 5},		     /* /dev/zero */
	{"c", 1, 9},		     /* /dev/urandom */
	{"c", 136, -1},		     /* /dev/pts/... */
	{"c", 5, 2},		     /* /dev/ptmx */
	{"c", 10, 200},		     /* /dev/net/tun */
};

int spec_parse_device_rules(json_object *res, Cocoon__ContainerSpec *s, struct error **err)
{
	json_object *v = spec_json_member(res, "devices");
	int r = spec_json_want_type(v, json_type_array, "linux.resources.devices", err);
	if (r < 0 || !v)
		return r;
	size_t n = json_object_array_length(v);
	if (n == 0)
		return 0;
	if (n > SPEC_DEVICE_RULES_MAX)
		return error_setx(err, E2BIG,
				  "config.json: linux.resources.devices: %zu rules, at most %d", n,
				  SPEC_DEVICE_RULES_MAX);
	s->device_rules = calloc(n + ARRAY_SIZE(default_devices), sizeof(*s->device_rules));
	if (!s->device_rules)
		return error_set(err, ENOMEM, "config.json");
	for (size_t i = 0; i < n; i++) {
		Cocoon__DeviceRule *d = device_rule_new(s);
		if (!d)
			return error_set(err, ENOMEM, "config.json");
		if ((r = device_rule_parse(json_object_array_get_idx(v, i), i, d, err)) < 0)
			return r;
	}
	for (size_t i = 0; i < ARRAY_SIZE(default_devices); i++) {
		Cocoon__DeviceRule *d = device_rule_new(s);
		if (!d)
			return error_set(err, ENOMEM, "config.json");
		d->allow = true;
		d->type = strdup(default_devices[i].type);
		d->major = default_devices[i].major;
		d->minor = default_devices[i].minor;
		d->access = strdup(i < 2 ? "m" : "rwm");
		if (!d->type || !d->access)
			return error_set(err, ENOMEM, "config.json");
	}
	return 0;
}

static int time_offset(json_object *offs, const char *clock, int64_t *secs, uint32_t *nanosecs,
		       struct error **err)
{
	char field[64];
	json_object *v = spec_json_member(offs, clock);
	int64_t ns = 0;
	int r;
	snprintf(field, sizeof(field), "linux.timeOffsets.%s", clock);
	if ((r = spec_json_want_type(v, json_type_object, field, err)) < 0 || !v)
		return r;
	snprintf(field, sizeof(field), "linux.timeOffsets.%s.secs", clock);
	if ((r = spec_json_int(v, "secs", field, secs, err)) < 0)
		return r;
	snprintf(field, sizeof(field), "linux.timeOffsets.%s.nanosecs", clock);
	if ((r = spec_json_int(v, "nanosecs", field, &ns, err)) < 0)
		return r;
	if (ns < 0 || ns > 999999999)
		return error_setx(err, ERANGE, "config.json: %s: %lld is not in 0..999999999",
				  field, (long long)ns);
	*nanosecs = (uint32_t)ns;
	return 0;
}

int spec_parse_time_offsets(json_object *lin, Cocoon__ContainerSpec *s, struct error **err)
{
	json_object *offs = spec_json_member(lin, "timeOffsets");
	int r = spec_json_want_type(offs, json_type_object, "linux.timeOffsets", err);
	if (r < 0 || !offs)
		return r;
	bool time_ns = false;
	for (size_t i = 0; i < s->n_namespaces; i++)
		time_ns |= strcmp(s->namespaces[i], "time") == 0;
	if (!time_ns)
		return error_setx(err, EINVAL,
				  "config.json: linux.timeOffsets needs a time namespace in "
				  "linux.namespaces (as with runc)");
	json_object_object_foreach(offs, key, v)
	{
		(void)v;
		if (strcmp(key, "monotonic") != 0 && strcmp(key, "boottime") != 0)
			return error_setx(err, EINVAL,
					  "config.json: linux.timeOffsets: '%.32s' is not a clock "
					  "of a time namespace (monotonic, boottime)",
					  key);
	}
	if (!(s->time_offsets = calloc(1, sizeof(*s->time_offsets))))
		return error_set(err, ENOMEM, "config.json");
	cocoon__time_offsets__init(s->time_offsets);
	Cocoon__TimeOffsets *t = s->time_offsets;
	if ((r = time_offset(offs, "monotonic", &t->monotonic_secs, &t->monotonic_nanosecs, err)) <
		    0 ||
	    (r = time_offset(offs, "boottime", &t->boottime_secs, &t->boottime_nanosecs, err)) < 0)
		return r;
	return 0;
}

static int unified_add(Cocoon__ContainerSpec *s, const char *key, json_object *v,
		       struct error **err)
{
	size_t n = strlen(key), dot = strcspn(key, ".");
	if (n == 0 || n > 64 || dot == 0 || dot == n || key[n - 1] == '.' ||
	    strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.") != n)
		return error_setx(err, EINVAL,
				  "config.json: linux.resources.unified: '%.64s' is not a cgroup "
				  "file name (controller.file, such as memory.high)",
				  key);
	if (strncmp(key, "cgroup.", 7) == 0)
		return error_setx(err, EPERM,
				  "config.json: linux.resources.unified: %s is one of the cgroup's "
				  "own files, which the agent runs (processes, freezer, "
				  "controllers); only controllers' files may be set",
				  key);
	if (!json_object_is_type(v, json_type_string))
		return error_setx(err, EINVAL,
				  "config.json: linux.resources.unified: %s: expected a string "
				  "value",
				  key);
	const char *value = json_object_get_string(v);
	if (strlen(value) > SPEC_SYSCTL_VALUE_MAX)
		return error_setx(err, E2BIG,
				  "config.json: linux.resources.unified: %s: the value is longer "
				  "than %d bytes",
				  key, SPEC_SYSCTL_VALUE_MAX);
	Cocoon__CgroupFile *f = calloc(1, sizeof(*f));
	if (!f)
		return error_set(err, ENOMEM, "config.json");
	cocoon__cgroup_file__init(f);
	s->unified[s->n_unified++] = f;
	f->name = strdup(key);
	f->value = strdup(value);
	return f->name && f->value ? 0 : error_set(err, ENOMEM, "config.json");
}

/* Room for N more entries of s->unified (hugepageLimits, then unified). */
static int unified_grow(Cocoon__ContainerSpec *s, size_t n, struct error **err)
{
	Cocoon__CgroupFile **u = realloc(s->unified, (s->n_unified + n + 1) * sizeof(*u));
	if (!u)
		return error_set(err, ENOMEM, "config.json");
	s->unified = u;
	return 0;
}

static int hugepage_limit(json_object *e, size_t i, Cocoon__ContainerSpec *s, struct error **err)
{
	char field[64], name[32];
	_cleanup_free_ char *size = NULL;
	uint64_t limit = 0;
	int r;
	snprintf(field, sizeof(field), "linux.resources.hugepageLimits[%zu]", i);
	if ((r = spec_json_want_type(e, json_type_object, field, err)) < 0)
		return r;
	snprintf(field, sizeof(field), "linux.resources.hugepageLimits[%zu].pageSize", i);
	if ((r = spec_json_string(e, "pageSize", field, true, &size, err)) < 0)
		return r;
	if (strcmp(size, "2MB") != 0 && strcmp(size, "1GB") != 0)
		return error_setx(err, EINVAL,
				  "config.json: %s: '%.16s' is not a huge page size of the guest "
				  "(x86-64 has 2MB and 1GB)",
				  field, size);
	snprintf(field, sizeof(field), "linux.resources.hugepageLimits[%zu].limit", i);
	if (!spec_json_member(e, "limit"))
		return error_setx(err, EINVAL, "config.json: %s is required", field);
	if ((r = spec_json_uint(e, "limit", field, UINT64_MAX, &limit, err)) < 0)
		return r;
	Cocoon__CgroupFile *f = calloc(1, sizeof(*f));
	if (!f)
		return error_set(err, ENOMEM, "config.json");
	cocoon__cgroup_file__init(f);
	s->unified[s->n_unified++] = f;
	snprintf(name, sizeof(name), "hugetlb.%s.max", size);
	f->name = strdup(name);
	if (asprintf(&f->value, "%llu", (unsigned long long)limit) < 0)
		f->value = NULL;
	return f->name && f->value ? 0 : error_set(err, ENOMEM, "config.json");
}

int spec_parse_hugepage_limits(json_object *res, Cocoon__ContainerSpec *s, struct error **err)
{
	json_object *v = spec_json_member(res, "hugepageLimits");
	int r = spec_json_want_type(v, json_type_array, "linux.resources.hugepageLimits", err);
	if (r < 0 || !v)
		return r;
	size_t n = json_object_array_length(v);
	if (n > 2)
		return error_setx(err, E2BIG,
				  "config.json: linux.resources.hugepageLimits: %zu entries, the "
				  "guest has 2 huge page sizes",
				  n);
	if ((r = unified_grow(s, n, err)) < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if ((r = hugepage_limit(json_object_array_get_idx(v, i), i, s, err)) < 0)
			return r;
	return 0;
}

int spec_parse_unified(json_object *res, Cocoon__ContainerSpec *s, struct error **err)
{
	json_object *u = spec_json_member(res, "unified");
	int r = spec_json_want_type(u, json_type_object, "linux.resources.unified", err);
	if (r < 0 || !u)
		return r;
	size_t n = (size_t)json_object_object_length(u);
	if (n > SPEC_UNIFIED_MAX)
		return error_setx(err, E2BIG,
				  "config.json: linux.resources.unified: %zu entries, at most %d",
				  n, SPEC_UNIFIED_MAX);
	if ((r = unified_grow(s, n, err)) < 0)
		return r;
	json_object_object_foreach(u, key, v)
	{
		if ((r = unified_add(s, key, v, err)) < 0)
			return r;
	}
	return 0;
}

void spec_free_kernel(Cocoon__ContainerSpec *s)
{
	for (size_t i = 0; i < s->n_unified; i++) {
		spec_free_pb_string(s->unified[i]->name);
		spec_free_pb_string(s->unified[i]->value);
		free(s->unified[i]);
	}
	free(s->unified);
	s->unified = NULL;
	s->n_unified = 0;
	free(s->time_offsets);
	s->time_offsets = NULL;
	for (size_t i = 0; i < s->n_device_rules; i++) {
		spec_free_pb_string(s->device_rules[i]->type);
		spec_free_pb_string(s->device_rules[i]->access);
		free(s->device_rules[i]);
	}
	free(s->device_rules);
	s->device_rules = NULL;
	s->n_device_rules = 0;
	for (size_t i = 0; i < s->n_sysctl; i++) {
		spec_free_pb_string(s->sysctl[i]->key);
		spec_free_pb_string(s->sysctl[i]->value);
		free(s->sysctl[i]);
	}
	free(s->sysctl);
	s->sysctl = NULL;
	s->n_sysctl = 0;
}
