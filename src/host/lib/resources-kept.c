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

char *resources_kept_lower_only(const char *json, const Cocoon__Resources *bundle, char *dropped,
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
	if (u.set_memory)
		res->memory_limit = r.memory_limit;
	if (u.set_pids)
		res->pids_limit = r.pids_limit;
	if (u.set_cpu_max && !u.keep_cpu_quota)
		res->cpu_quota = r.cpu_quota;
	if (u.set_cpu_max && !u.keep_cpu_period)
		res->cpu_period = r.cpu_period;
	if (u.set_cpu_weight)
		res->cpu_shares = r.cpu_shares;
	return 0;
}
