/* Typed readers of config.json's members, and the spec's warnings
 * (spec-json.h). */
#include "spec-json.h"
#include "spec-bundle.h"
#include "cleanup.h"
#include "log.h"
#include "paths.h"

#include <json-c/json.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

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

json_object *spec_json_member(json_object *o, const char *key)
{
	json_object *v = NULL;
	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

int spec_json_want_type(json_object *v, json_type t, const char *field, struct error **err)
{
	if (v && !json_object_is_type(v, t))
		return error_setx(err, EINVAL, "config.json: %s: expected %s", field,
				  json_type_to_name(t));
	return 0;
}

int spec_json_string(json_object *o, const char *key, const char *field, bool required, char **out,
		     struct error **err)
{
	json_object *v = spec_json_member(o, key);
	*out = NULL;
	if (!v) {
		if (required)
			return error_setx(err, EINVAL, "config.json: %s is required", field);
		return 0;
	}
	int r = spec_json_want_type(v, json_type_string, field, err);
	if (r < 0)
		return r;
	*out = strdup(json_object_get_string(v));
	return *out ? 0 : error_set(err, ENOMEM, "config.json");
}

int spec_json_string_array(json_object *o, const char *key, const char *field, char ***out,
			   size_t *n, struct error **err)
{
	json_object *v = spec_json_member(o, key);
	*out = NULL;
	*n = 0;
	if (!v)
		return 0;
	int r = spec_json_want_type(v, json_type_array, field, err);
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

int spec_json_uint(json_object *o, const char *key, const char *field, uint64_t max, uint64_t *out,
		   struct error **err)
{
	json_object *v = spec_json_member(o, key);
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

int spec_json_bool(json_object *o, const char *key, const char *field, protobuf_c_boolean *out,
		   struct error **err)
{
	json_object *v = spec_json_member(o, key);
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return error_setx(err, EINVAL, "config.json: %s: expected a boolean", field);
	*out = json_object_get_boolean(v);
	return 0;
}

/* A string field that parsing never reached still holds protobuf-c's
 * static empty string, which must not be freed (a mount with a bad
 * destination leaves its other fields so). */
void spec_free_pb_string(char *s)
{
	if (s != protobuf_c_empty_string)
		free(s);
}

int spec_json_int(json_object *o, const char *key, const char *field, int64_t *out,
		  struct error **err)
{
	json_object *v = spec_json_member(o, key);
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return error_setx(err, EINVAL, "config.json: %s: expected an integer", field);
	*out = json_object_get_int64(v);
	return 0;
}

int spec_json_int_unlimited(json_object *o, const char *key, const char *field, int64_t *out,
			    struct error **err)
{
	int r = spec_json_int(o, key, field, out, err);
	if (r == 0 && *out < -1)
		return error_setx(err, ERANGE,
				  "config.json: %s: %lld is negative (-1 means no limit)", field,
				  (long long)*out);
	return r;
}
