/* Limits changed by update, kept across checkpoint and restore
 * (resources-kept.h). */
#include "resources-kept.h"
#include "cleanup.h"
#include "paths.h"
#include "resources.h"

#include <errno.h>
#include <fcntl.h>
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

int resources_kept_record(const char *dir, const Cocoon__UpdateRequest *u,
			  const Cocoon__Resources *r, struct error **err)
{
	_cleanup_free_ char *old = resources_kept_read(dir);
	_cleanup_(put_json) json_object *o = old ? json_tokener_parse(old) : NULL;
	if (!o || !json_object_is_type(o, json_type_object)) {
		put_json(&o);
		o = json_object_new_object();
	}
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
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	return resources_kept_write(dir, text, err);
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
