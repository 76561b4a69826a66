/* config.json's kernel settings the guest applies (spec-kernel.h). */
#include "spec-kernel.h"
#include "spec-json.h"
#include "cleanup.h"

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

void spec_free_kernel(Cocoon__ContainerSpec *s)
{
	for (size_t i = 0; i < s->n_sysctl; i++) {
		spec_free_pb_string(s->sysctl[i]->key);
		spec_free_pb_string(s->sysctl[i]->value);
		free(s->sysctl[i]);
	}
	free(s->sysctl);
	s->sysctl = NULL;
	s->n_sysctl = 0;
}
