/* linux.uidMappings and linux.gidMappings (spec-userns.h). */
#include "spec-userns.h"
#include "spec-json.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool has_user_ns(const Cocoon__ContainerSpec *s)
{
	for (size_t i = 0; i < s->n_namespaces; i++)
		if (strcmp(s->namespaces[i], "user") == 0)
			return true;
	return false;
}

static int parse_one(json_object *m, const char *field, Cocoon__IdMapping *out, struct error **err)
{
	static const char *const keys[] = {"containerID", "hostID", "size"};
	uint64_t v[3];
	char sub[96];
	int r = spec_json_want_type(m, json_type_object, field, err);
	if (r < 0)
		return r;
	for (size_t k = 0; k < 3; k++) {
		snprintf(sub, sizeof(sub), "%s.%s", field, keys[k]);
		if (!spec_json_member(m, keys[k]))
			return error_setx(err, EINVAL, "config.json: %s is required", sub);
		if ((r = spec_json_uint(m, keys[k], sub, UINT32_MAX, &v[k], err)) < 0)
			return r;
	}
	if (v[2] == 0)
		return error_setx(err, EINVAL, "config.json: %s.size: a mapping of no ids", field);
	/* (uid_t)-1 is no id: the kernel refuses a range that reaches it. */
	if (v[0] + v[2] > UINT32_MAX || v[1] + v[2] > UINT32_MAX)
		return error_setx(err, ERANGE,
				  "config.json: %s: %llu ids from %llu (container) or %llu (host) "
				  "pass the last id, 4294967294",
				  field, (unsigned long long)v[2], (unsigned long long)v[0],
				  (unsigned long long)v[1]);
	cocoon__id_mapping__init(out);
	out->container_id = (uint32_t)v[0];
	out->host_id = (uint32_t)v[1];
	out->size = (uint32_t)v[2];
	return 0;
}

static bool overlap(uint32_t a, uint32_t alen, uint32_t b, uint32_t blen)
{
	return (uint64_t)a < (uint64_t)b + blen && (uint64_t)b < (uint64_t)a + alen;
}

static int parse_map(json_object *lin, const char *key, Cocoon__IdMapping ***out, size_t *n_out,
		     struct error **err)
{
	char field[64];
	json_object *arr = spec_json_member(lin, key);
	snprintf(field, sizeof(field), "linux.%s", key);
	int r = spec_json_want_type(arr, json_type_array, field, err);
	if (r < 0 || !arr)
		return r;
	size_t len = json_object_array_length(arr);
	if (len > SPEC_ID_MAP_MAX)
		return error_setx(err, E2BIG,
				  "config.json: %s: %zu lines; the kernel takes at most %d", field,
				  len, SPEC_ID_MAP_MAX);
	if (!(*out = calloc(len ? len : 1, sizeof(**out))))
		return error_set(err, ENOMEM, "config.json");
	for (size_t i = 0; i < len; i++) {
		Cocoon__IdMapping *m = calloc(1, sizeof(*m));
		if (!m)
			return error_set(err, ENOMEM, "config.json");
		(*out)[(*n_out)++] = m;
		snprintf(field, sizeof(field), "linux.%s[%zu]", key, i);
		if ((r = parse_one(json_object_array_get_idx(arr, i), field, m, err)) < 0)
			return r;
		/* The kernel refuses overlapping lines (map_write). */
		for (size_t j = 0; j < i; j++) {
			const Cocoon__IdMapping *o = (*out)[j];
			if (overlap(o->container_id, o->size, m->container_id, m->size) ||
			    overlap(o->host_id, o->size, m->host_id, m->size))
				return error_setx(
					err, EINVAL,
					"config.json: %s overlaps linux.%s[%zu]: the kernel "
					"refuses a map whose ranges overlap",
					field, key, j);
		}
	}
	return 0;
}

int spec_parse_id_mappings(json_object *lin, Cocoon__ContainerSpec *s, struct error **err)
{
	int r;
	if ((r = parse_map(lin, "uidMappings", &s->uid_mappings, &s->n_uid_mappings, err)) < 0 ||
	    (r = parse_map(lin, "gidMappings", &s->gid_mappings, &s->n_gid_mappings, err)) < 0)
		return r;
	bool user = has_user_ns(s), maps = s->n_uid_mappings || s->n_gid_mappings;
	/* runc's validator (configs/validate: usernamespace) says the same. */
	if (user && (!s->n_uid_mappings || !s->n_gid_mappings))
		return error_setx(err, EINVAL,
				  "config.json: linux.namespaces has a user namespace, but "
				  "linux.%s is missing or empty: its ids would map to nothing",
				  s->n_uid_mappings ? "gidMappings" : "uidMappings");
	if (!user && maps)
		return error_setx(
			err, EINVAL,
			"config.json: linux.uidMappings/gidMappings need a user namespace "
			"in linux.namespaces (as with runc)");
	return 0;
}

void spec_free_id_mappings(Cocoon__ContainerSpec *s)
{
	for (size_t i = 0; i < s->n_uid_mappings; i++)
		free(s->uid_mappings[i]);
	free(s->uid_mappings);
	s->uid_mappings = NULL;
	s->n_uid_mappings = 0;
	for (size_t i = 0; i < s->n_gid_mappings; i++)
		free(s->gid_mappings[i]);
	free(s->gid_mappings);
	s->gid_mappings = NULL;
	s->n_gid_mappings = 0;
}
