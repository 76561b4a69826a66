/* Limits changed by update, kept across checkpoint and restore
 * (resources-kept.h). */
#include "resources-kept.h"
#include "cleanup.h"
#include "host-note.h"
#include "paths.h"
#include "resources.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void put_json(json_object **o)
{
	if (*o)
		json_object_put(*o);
}

/* The member group of o (made when missing). */
static json_object *group(json_object *o, const char *name)
{
	json_object *g = NULL;
	if (json_object_object_get_ex(o, name, &g) && json_object_is_type(g, json_type_object))
		return g;
	g = json_object_new_object();
	json_object_object_add(o, name, g);
	return g;
}

static void set_limit(json_object *g, const char *key, int64_t v)
{
	json_object_object_add(g, key, json_object_new_int64(v));
}

char *resources_kept_read(const char *dir)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/" RESOURCES_KEPT_FILE, dir);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	char *text = calloc(1, RESOURCES_KEPT_MAX + 1);
	ssize_t n = text ? read(fd, text, RESOURCES_KEPT_MAX + 1) : -1;
	if (n <= 0 || n > RESOURCES_KEPT_MAX) {
		free(text);
		return NULL;
	}
	return text;
}

int resources_kept_write(const char *dir, const char *json, struct error **err)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/" RESOURCES_KEPT_FILE, dir);
	return write_file_atomic(path, json, strlen(json), 0600, err);
}

/* What u sets, with r's values, into o (update --resources form). */
static void kept_merge(json_object *o, const Cocoon__UpdateRequest *u, const Cocoon__Resources *r)
{
	/* 0 in r is "no limit" where update set one: -1 in the OCI form. */
	if (u->set_memory)
		set_limit(group(o, "memory"), "limit",
			  r->memory_limit ? (int64_t)r->memory_limit : -1);
	if (u->set_pids)
		set_limit(group(o, "pids"), "limit", r->pids_limit ? r->pids_limit : -1);
	if (u->set_cpu_max && !u->keep_cpu_quota)
		set_limit(group(o, "cpu"), "quota", r->cpu_quota ? r->cpu_quota : -1);
	if (u->set_cpu_max && !u->keep_cpu_period && r->cpu_period)
		set_limit(group(o, "cpu"), "period", (int64_t)r->cpu_period);
	if (u->set_cpu_weight)
		set_limit(group(o, "cpu"), "shares", (int64_t)r->cpu_shares);
}

int resources_kept_record(const char *dir, const Cocoon__UpdateRequest *u,
			  const Cocoon__Resources *r, struct error **err)
{
	_cleanup_free_ char *old = resources_kept_read(dir);
	_cleanup_(put_json) json_object *o = old ? json_tokener_parse(old) : NULL;
	if (!o || !json_object_is_type(o, json_type_object)) {
		put_json(&o);
		o = json_object_new_object();
	}
	kept_merge(o, u, r);
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	return resources_kept_write(dir, text, err);
}

/* ---- this host's record of what its checkpoints carried ------------------ */

int resources_kept_note(const struct cocoon_config *cfg, const char *image_dir, const char *json,
			struct error **err)
{
	_cleanup_(put_json) json_object *kept = json ? json_tokener_parse(json) : NULL;
	if (json && (!kept || !json_object_is_type(kept, json_type_object)))
		return error_setx(err, EINVAL, "the kept limits are not a JSON object");
	/* No json: a checkpoint with none into a directory that had some. */
	return host_checkpoint_note_write(cfg, RESOURCES_KEPT_NOTES, image_dir, "resources", kept,
					  err);
}

bool resources_kept_noted(const struct cocoon_config *cfg, const char *resolved_dir,
			  const char *json)
{
	_cleanup_(put_json) json_object *want = json ? json_tokener_parse(json) : NULL;
	_cleanup_(put_json) json_object *have =
		want ? host_checkpoint_note_read(cfg, RESOURCES_KEPT_NOTES, resolved_dir,
						 "resources", 4 * RESOURCES_KEPT_MAX)
		     : NULL;
	return have && json_object_equal(have, want);
}

/* ---- a checkpoint from elsewhere only lowers ------------------------------ */

#define CPU_PERIOD_DEFAULT 100000 /* us: the kernel's and runc's */
#define CPU_SHARES_DEFAULT 1024	  /* cgroup v1's default weight, runc's */

static void dropped_add(char *dropped, size_t size, const char *what)
{
	size_t len = strlen(dropped);
	snprintf(dropped + len, size - len, "%s%s", len ? ", " : "", what);
}

/* v (0: none) within limit (0: none)? */
static bool within(uint64_t v, uint64_t limit)
{
	return limit == 0 || (v != 0 && v <= limit);
}

/* What u sets, with r's values, laid over res. */
static void lay_over(const Cocoon__UpdateRequest *u, const Cocoon__Resources *r,
		     Cocoon__Resources *res)
{
	if (u->set_memory)
		res->memory_limit = r->memory_limit;
	if (u->set_pids)
		res->pids_limit = r->pids_limit;
	if (u->set_cpu_max && !u->keep_cpu_quota)
		res->cpu_quota = r->cpu_quota;
	if (u->set_cpu_max && !u->keep_cpu_period)
		res->cpu_period = r->cpu_period;
	if (u->set_cpu_weight)
		res->cpu_shares = r->cpu_shares;
}

/* A limit where the bundle has none lowers the container's cgroup, but
 * sizes its VM from the limit rather than from vm.memory_mib / vm.vcpus:
 * a memory.limit of 60 GiB or a quota of 64 CPUs would grow the VM of a
 * bundle without limits to the host's maxima (rev11b F1). So whatever the
 * VM would get past what the bundle alone gives is dropped too. */
static void drop_vm_growth(const struct cocoon_config *cfg, const Cocoon__Resources *b,
			   int cpuset_cpus, Cocoon__UpdateRequest *u, const Cocoon__Resources *r,
			   char *dropped, size_t size)
{
	int base_mib, base_cpus, mib, cpus;
	char what[160];
	if (!cfg || resources_vm_size(cfg, b, cpuset_cpus, &base_mib, &base_cpus, NULL) < 0)
		return; /* the bundle's own size is refused at create, named there */
	Cocoon__Resources res = *b;
	lay_over(u, r, &res);
	/* Refused: the limit does not fit under vm.max_memory_mib. */
	if (resources_vm_size(cfg, &res, cpuset_cpus, &mib, &cpus, NULL) < 0 || mib > base_mib) {
		u->set_memory = false;
		snprintf(what, sizeof(what),
			 "memory.limit (it would size the VM past the bundle's %d MiB)", base_mib);
		dropped_add(dropped, size, what);
		res.memory_limit = b->memory_limit;
		if (resources_vm_size(cfg, &res, cpuset_cpus, &mib, &cpus, NULL) < 0)
			return; /* cannot be: the bundle's own size fits */
	}
	if (u->set_cpu_max && cpus > base_cpus) {
		u->set_cpu_max = false;
		snprintf(what, sizeof(what),
			 "cpu.quota/cpu.period (%d vCPUs, past the bundle's %d)", cpus, base_cpus);
		dropped_add(dropped, size, what);
	}
}

char *resources_kept_lower_only(const struct cocoon_config *cfg, const char *json,
				const Cocoon__Resources *bundle, int cpuset_cpus, char *dropped,
				size_t size, struct error **err)
{
	static const Cocoon__Resources none = COCOON__RESOURCES__INIT;
	const Cocoon__Resources *b = bundle ? bundle : &none;
	Cocoon__UpdateRequest u = COCOON__UPDATE_REQUEST__INIT;
	Cocoon__Resources r = COCOON__RESOURCES__INIT;
	char ignored[256];
	dropped[0] = 0;
	if (resources_update_from_json(json, &u, &r, ignored, sizeof(ignored), err) < 0)
		return NULL;
	if (u.set_memory && !within(r.memory_limit, b->memory_limit)) {
		u.set_memory = false;
		dropped_add(dropped, size, "memory.limit");
	}
	if (u.set_pids && !within((uint64_t)r.pids_limit, (uint64_t)b->pids_limit)) {
		u.set_pids = false;
		dropped_add(dropped, size, "pids.limit");
	}
	if (u.set_cpu_max) {
		/* CPU time per period: quota / period, no more than the bundle's. */
		int64_t q = u.keep_cpu_quota ? b->cpu_quota : r.cpu_quota;
		uint64_t p = u.keep_cpu_period ? b->cpu_period : r.cpu_period;
		uint64_t bp = b->cpu_period ? b->cpu_period : CPU_PERIOD_DEFAULT;
		p = p ? p : CPU_PERIOD_DEFAULT;
		if (b->cpu_quota > 0 &&
		    (q <= 0 || (unsigned __int128)q * bp > (unsigned __int128)b->cpu_quota * p)) {
			u.set_cpu_max = false;
			dropped_add(dropped, size, "cpu.quota/cpu.period");
		}
	}
	if (u.set_cpu_weight &&
	    r.cpu_shares > (b->cpu_shares ? b->cpu_shares : CPU_SHARES_DEFAULT)) {
		u.set_cpu_weight = false;
		dropped_add(dropped, size, "cpu.shares");
	}
	drop_vm_growth(cfg, b, cpuset_cpus, &u, &r, dropped, size);
	json_object *o = json_object_new_object();
	kept_merge(o, &u, &r);
	char *out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	if (!out)
		error_set(err, ENOMEM, "the checkpoint's limits");
	return out;
}

int resources_kept_apply(const char *json, Cocoon__Resources *res, struct error **err)
{
	Cocoon__UpdateRequest u = COCOON__UPDATE_REQUEST__INIT;
	Cocoon__Resources r = COCOON__RESOURCES__INIT;
	char ignored[256];
	int e = resources_update_from_json(json, &u, &r, ignored, sizeof(ignored), err);
	if (e < 0)
		return e;
	lay_over(&u, &r, res);
	return 0;
}
