/* The confinement part of config.json: process.capabilities, linux.seccomp,
 * linux.maskedPaths and linux.readonlyPaths. The host checks names and ranges
 * here; the agent applies them inside the guest as runc does on a host
 * (src/guest/confine.c). */
#include "spec-confine.h"
#include "spec-bundle.h"
#include "spec-json.h"
#include "cleanup.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <string.h>

static json_object *member(json_object *o, const char *key)
{
	json_object *v = NULL;
	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* linux/capability.h, in bit order; runc accepts exactly these names. */
static const char *const cap_names[] = {
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_DAC_READ_SEARCH",
	"CAP_FOWNER",
	"CAP_FSETID",
	"CAP_KILL",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST",
	"CAP_NET_ADMIN",
	"CAP_NET_RAW",
	"CAP_IPC_LOCK",
	"CAP_IPC_OWNER",
	"CAP_SYS_MODULE",
	"CAP_SYS_RAWIO",
	"CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE",
	"CAP_SYS_PACCT",
	"CAP_SYS_ADMIN",
	"CAP_SYS_BOOT",
	"CAP_SYS_NICE",
	"CAP_SYS_RESOURCE",
	"CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG",
	"CAP_MKNOD",
	"CAP_LEASE",
	"CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL",
	"CAP_SETFCAP",
	"CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN",
	"CAP_SYSLOG",
	"CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND",
	"CAP_AUDIT_READ",
	"CAP_PERFMON",
	"CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
};

int spec_cap_from_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(cap_names); i++)
		if (strcasecmp(cap_names[i], name) == 0)
			return (int)i;
	return -1;
}

static int cap_set(json_object *caps, const char *key, uint64_t *out, struct oci_bundle *b,
		   struct error **err)
{
	json_object *v = member(caps, key);
	*out = 0;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return error_setx(err, EINVAL,
				  "config.json: process.capabilities.%s: expected an array", key);
	size_t len = json_object_array_length(v);
	if (len > 256)
		return error_setx(err, E2BIG,
				  "config.json: process.capabilities.%s: at most 256 entries", key);
	for (size_t i = 0; i < len; i++) {
		json_object *e = json_object_array_get_idx(v, i);
		if (!json_object_is_type(e, json_type_string))
			return error_setx(
				err, EINVAL,
				"config.json: process.capabilities.%s[%zu]: expected a string", key,
				i);
		int cap = spec_cap_from_name(json_object_get_string(e));
		/* runc too warns and goes on: specs name capabilities of newer
		 * kernels. */
		if (cap < 0)
			spec_warn(b, "process.capabilities.%s: unknown capability %s; ignored", key,
				  json_object_get_string(e));
		else
			*out |= 1ULL << cap;
	}
	return 0;
}

int spec_parse_capabilities(json_object *proc, Cocoon__ProcessSpec *p, struct oci_bundle *b,
			    struct error **err)
{
	json_object *caps = member(proc, "capabilities");
	if (!caps)
		return 0;
	if (!json_object_is_type(caps, json_type_object))
		return error_setx(err, EINVAL,
				  "config.json: process.capabilities: expected an object");
	Cocoon__Capabilities *c = calloc(1, sizeof(*c));
	if (!c)
		return error_set(err, ENOMEM, "config.json");
	cocoon__capabilities__init(c);
	p->capabilities = c;
	int r;
	if ((r = cap_set(caps, "bounding", &c->bounding, b, err)) < 0 ||
	    (r = cap_set(caps, "effective", &c->effective, b, err)) < 0 ||
	    (r = cap_set(caps, "permitted", &c->permitted, b, err)) < 0 ||
	    (r = cap_set(caps, "inheritable", &c->inheritable, b, err)) < 0 ||
	    (r = cap_set(caps, "ambient", &c->ambient, b, err)) < 0)
		return r;
	return 0;
}

/* ---- linux.seccomp --------------------------------------------------------- */

static const char *const seccomp_actions[] = {
	"SCMP_ACT_KILL",  "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
	"SCMP_ACT_TRAP",  "SCMP_ACT_ERRNO",	   "SCMP_ACT_TRACE",
	"SCMP_ACT_ALLOW", "SCMP_ACT_LOG",	   NULL,
};
static const char *const seccomp_ops[] = {
	"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE",	    "SCMP_CMP_EQ",
	"SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ", NULL,
};
static const char *const seccomp_flags[] = {
	"SECCOMP_FILTER_FLAG_TSYNC",
	"SECCOMP_FILTER_FLAG_LOG",
	"SECCOMP_FILTER_FLAG_SPEC_ALLOW",
	NULL,
};
/* The guest is x86-64: a filter for another architecture family cannot
 * apply there, and is left out with a warning. */
static const char *const seccomp_archs[] = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
					    NULL};

static bool one_of(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

static int want_string(json_object *v, const char *field, const char *const *allowed, char **out,
		       struct error **err)
{
	if (!v || !json_object_is_type(v, json_type_string))
		return error_setx(err, EINVAL, "config.json: %s: expected a string", field);
	const char *s = json_object_get_string(v);
	if (allowed && !one_of(allowed, s))
		return error_setx(err, EOPNOTSUPP, "config.json: %s: '%s' is not supported", field,
				  s);
	*out = strdup(s);
	return *out ? 0 : error_set(err, ENOMEM, "config.json");
}

static int want_u64(json_object *v, const char *field, uint64_t max, uint64_t *out,
		    struct error **err)
{
	if (!v)
		return 0;
	/* JSON numbers above INT64_MAX arrive as json-c's uint64. */
	if (!json_object_is_type(v, json_type_int))
		return error_setx(err, EINVAL, "config.json: %s: expected an integer", field);
	errno = 0;
	uint64_t n = json_object_get_uint64(v);
	if (json_object_get_int64(v) < 0 || n > max)
		return error_setx(err, ERANGE, "config.json: %s is out of range", field);
	*out = n;
	return 0;
}

static int strings(json_object *v, const char *field, size_t max, char ***out, size_t *n,
		   struct error **err)
{
	*n = 0;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return error_setx(err, EINVAL, "config.json: %s: expected an array", field);
	size_t len = json_object_array_length(v);
	if (len > max)
		return error_setx(err, E2BIG, "config.json: %s has %zu entries; the limit is %zu",
				  field, len, max);
	*out = calloc(len + 1, sizeof(char *));
	if (!*out)
		return error_set(err, ENOMEM, "config.json");
	for (size_t i = 0; i < len; i++) {
		json_object *e = json_object_array_get_idx(v, i);
		if (!json_object_is_type(e, json_type_string) ||
		    json_object_get_string_len(e) > 256)
			return error_setx(err, EINVAL,
					  "config.json: %s[%zu]: expected a short string", field,
					  i);
		(*out)[i] = strdup(json_object_get_string(e));
		*n = i + 1;
	}
	return 0;
}

static int parse_arg(json_object *o, const char *field, Cocoon__SeccompArg *a, struct error **err)
{
	char f[128];
	uint64_t index = 0;
	int r;
	snprintf(f, sizeof(f), "%s.index", field);
	if ((r = want_u64(member(o, "index"), f, 5, &index, err)) < 0)
		return r;
	a->index = (uint32_t)index;
	snprintf(f, sizeof(f), "%s.value", field);
	if ((r = want_u64(member(o, "value"), f, UINT64_MAX, &a->value, err)) < 0)
		return r;
	snprintf(f, sizeof(f), "%s.valueTwo", field);
	if ((r = want_u64(member(o, "valueTwo"), f, UINT64_MAX, &a->value_two, err)) < 0)
		return r;
	snprintf(f, sizeof(f), "%s.op", field);
	return want_string(member(o, "op"), f, seccomp_ops, &a->op, err);
}

static int parse_rule(json_object *o, size_t i, Cocoon__SeccompRule *rule, struct error **err)
{
	char f[96];
	uint64_t v = 0;
	int r;
	if (!json_object_is_type(o, json_type_object))
		return error_setx(err, EINVAL,
				  "config.json: linux.seccomp.syscalls[%zu]: expected an object",
				  i);
	snprintf(f, sizeof(f), "linux.seccomp.syscalls[%zu].names", i);
	if ((r = strings(member(o, "names"), f, SPEC_MAX_STRINGS, &rule->names, &rule->n_names,
			 err)) < 0)
		return r;
	snprintf(f, sizeof(f), "linux.seccomp.syscalls[%zu].action", i);
	if ((r = want_string(member(o, "action"), f, seccomp_actions, &rule->action, err)) < 0)
		return r;
	snprintf(f, sizeof(f), "linux.seccomp.syscalls[%zu].errnoRet", i);
	rule->has_errno = member(o, "errnoRet") != NULL;
	if ((r = want_u64(member(o, "errnoRet"), f, 4095, &v, err)) < 0)
		return r;
	rule->errno_ret = (uint32_t)v;
	json_object *args = member(o, "args");
	if (!args)
		return 0;
	if (!json_object_is_type(args, json_type_array) || json_object_array_length(args) > 6)
		return error_setx(err, EINVAL,
				  "config.json: linux.seccomp.syscalls[%zu].args: at most 6", i);
	size_t len = json_object_array_length(args);
	rule->args = calloc(len + 1, sizeof(*rule->args));
	if (!rule->args)
		return error_set(err, ENOMEM, "config.json");
	for (size_t j = 0; j < len; j++) {
		Cocoon__SeccompArg *a = calloc(1, sizeof(*a));
		if (!a)
			return error_set(err, ENOMEM, "config.json");
		cocoon__seccomp_arg__init(a);
		rule->args[rule->n_args++] = a;
		snprintf(f, sizeof(f), "linux.seccomp.syscalls[%zu].args[%zu]", i, j);
		if (!json_object_is_type(json_object_array_get_idx(args, j), json_type_object))
			return error_setx(err, EINVAL, "config.json: %s: expected an object", f);
		if ((r = parse_arg(json_object_array_get_idx(args, j), f, a, err)) < 0)
			return r;
	}
	return 0;
}

int spec_parse_seccomp(json_object *lin, Cocoon__ContainerSpec *s, struct oci_bundle *b,
		       struct error **err)
{
	json_object *o = member(lin, "seccomp");
	uint64_t v = 0;
	int r;
	if (!o)
		return 0;
	if (!json_object_is_type(o, json_type_object))
		return error_setx(err, EINVAL, "config.json: linux.seccomp: expected an object");
	if (member(o, "listenerPath") || member(o, "listenerMetadata"))
		return error_setx(
			err, EOPNOTSUPP,
			"config.json: linux.seccomp.listenerPath: a seccomp notify listener is not supported: the container runs in a VM the host's listener cannot reach");
	Cocoon__Seccomp *sc = calloc(1, sizeof(*sc));
	if (!sc)
		return error_set(err, ENOMEM, "config.json");
	cocoon__seccomp__init(sc);
	s->seccomp = sc;
	if ((r = want_string(member(o, "defaultAction"), "linux.seccomp.defaultAction",
			     seccomp_actions, &sc->default_action, err)) < 0)
		return r;
	sc->has_default_errno = member(o, "defaultErrnoRet") != NULL;
	if ((r = want_u64(member(o, "defaultErrnoRet"), "linux.seccomp.defaultErrnoRet", 4095, &v,
			  err)) < 0)
		return r;
	sc->default_errno_ret = (uint32_t)v;
	char **archs = NULL;
	size_t n_archs = 0;
	r = strings(member(o, "architectures"), "linux.seccomp.architectures", 64, &archs, &n_archs,
		    err);
	sc->architectures = calloc(n_archs + 1, sizeof(char *));
	for (size_t i = 0; i < n_archs; i++) {
		if (r == 0 && sc->architectures && one_of(seccomp_archs, archs[i]))
			sc->architectures[sc->n_architectures++] = TAKE_PTR(archs[i]);
		else if (r == 0)
			spec_warn(
				b,
				"linux.seccomp.architectures: %s does not apply in the x86-64 guest; ignored",
				archs[i]);
		free(archs[i]);
	}
	free(archs);
	if (r < 0)
		return r;
	if ((r = strings(member(o, "flags"), "linux.seccomp.flags", 8, &sc->flags, &sc->n_flags,
			 err)) < 0)
		return r;
	for (size_t i = 0; i < sc->n_flags; i++)
		if (!one_of(seccomp_flags, sc->flags[i]))
			return error_setx(err, EOPNOTSUPP,
					  "config.json: linux.seccomp.flags: '%s' is not supported",
					  sc->flags[i]);
	json_object *rules = member(o, "syscalls");
	if (!rules)
		return 0;
	if (!json_object_is_type(rules, json_type_array))
		return error_setx(err, EINVAL,
				  "config.json: linux.seccomp.syscalls: expected an array");
	size_t len = json_object_array_length(rules);
	if (len > SPEC_MAX_SECCOMP_RULES)
		return error_setx(err, E2BIG,
				  "config.json: linux.seccomp.syscalls: at most %d rules",
				  SPEC_MAX_SECCOMP_RULES);
	sc->syscalls = calloc(len + 1, sizeof(*sc->syscalls));
	if (!sc->syscalls)
		return error_set(err, ENOMEM, "config.json");
	for (size_t i = 0; i < len; i++) {
		Cocoon__SeccompRule *rule = calloc(1, sizeof(*rule));
		if (!rule)
			return error_set(err, ENOMEM, "config.json");
		cocoon__seccomp_rule__init(rule);
		sc->syscalls[sc->n_syscalls++] = rule;
		if ((r = parse_rule(json_object_array_get_idx(rules, i), i, rule, err)) < 0)
			return r;
	}
	return 0;
}

int spec_parse_paths(json_object *lin, Cocoon__ContainerSpec *s, struct error **err)
{
	static const char *const keys[] = {"maskedPaths", "readonlyPaths"};
	char ***lists[] = {&s->masked_paths, &s->readonly_paths};
	size_t *counts[] = {&s->n_masked_paths, &s->n_readonly_paths};
	for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
		char field[64];
		snprintf(field, sizeof(field), "linux.%s", keys[k]);
		int r = strings(member(lin, keys[k]), field, COCOON_MAX_BINDS, lists[k], counts[k],
				err);
		if (r < 0)
			return r;
		for (size_t i = 0; i < *counts[k]; i++) {
			const char *p = (*lists[k])[i];
			if (p[0] != '/' || strstr(p, ".."))
				return error_setx(
					err, EINVAL,
					"config.json: %s[%zu] '%s' must be absolute, without '..'",
					field, i, p);
		}
	}
	return 0;
}

static void free_pb_string(char *s)
{
	if (s != protobuf_c_empty_string)
		free(s);
}

static void free_strings(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void spec_free_confinement(Cocoon__ContainerSpec *s)
{
	free_strings(s->masked_paths, s->n_masked_paths);
	free_strings(s->readonly_paths, s->n_readonly_paths);
	Cocoon__Seccomp *sc = s->seccomp;
	if (!sc)
		return;
	free_pb_string(sc->default_action);
	free_strings(sc->architectures, sc->n_architectures);
	free_strings(sc->flags, sc->n_flags);
	for (size_t i = 0; i < sc->n_syscalls; i++) {
		Cocoon__SeccompRule *rule = sc->syscalls[i];
		free_strings(rule->names, rule->n_names);
		free_pb_string(rule->action);
		for (size_t j = 0; j < rule->n_args; j++) {
			free_pb_string(rule->args[j]->op);
			free(rule->args[j]);
		}
		free(rule->args);
		free(rule);
	}
	free(sc->syscalls);
	free(sc);
}
