/* Typed readers of config.json's members, shared by spec.c, spec-process.c
 * and (its own few) spec-confine.c; and the spec's warnings. */
#pragma once

#include "error.h"
#include "proto.h"

#include <json-c/json.h>
#include <stdbool.h>

struct oci_bundle;

/* json-c objects are freed through the root. */
static inline void spec_json_putp(json_object **o)
{
	if (*o)
		json_object_put(*o);
}
#define _cleanup_json_ __attribute__((cleanup(spec_json_putp)))

/* A warning about the spec, kept for the caller to print. */
void spec_warn(struct oci_bundle *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The member KEY of object O, or NULL (also when O is NULL). */
json_object *spec_json_member(json_object *o, const char *key);

/* 0 when V has type T, else -EINVAL naming FIELD. */
int spec_json_want_type(json_object *v, json_type t, const char *field, struct error **err);

/* The readers below: KEY of O into *OUT (a copy the caller frees), FIELD
 * naming it in errors; a missing KEY is 0 and leaves *OUT, unless REQUIRED.
 * Each returns 0 or a negative errno with *ERR set. */
int spec_json_string(json_object *o, const char *key, const char *field, bool required, char **out,
		     struct error **err);

int spec_json_string_array(json_object *o, const char *key, const char *field, char ***out,
			   size_t *n, struct error **err);

int spec_json_uint(json_object *o, const char *key, const char *field, uint64_t max, uint64_t *out,
		   struct error **err);

int spec_json_bool(json_object *o, const char *key, const char *field, protobuf_c_boolean *out,
		   struct error **err);

/* A string field that parsing never reached still holds protobuf-c's
 * static empty string, which must not be freed (a mount with a bad
 * destination leaves its other fields so). */
void spec_free_pb_string(char *s);

int spec_json_int(json_object *o, const char *key, const char *field, int64_t *out,
		  struct error **err);

/* An int64 limit where -1 means none: below -1 is refused (ERANGE). */
int spec_json_int_unlimited(json_object *o, const char *key, const char *field, int64_t *out,
			    struct error **err);
