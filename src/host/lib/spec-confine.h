/* The confinement part of config.json (spec-confine.c). */
#pragma once

#include "error.h"
#include "proto.h"

struct json_object;
struct oci_bundle;

/* process.capabilities, linux.seccomp, maskedPaths and
 * readonlyPaths. json is a json_object *. */
int spec_cap_from_name(const char *name);
int spec_parse_capabilities(struct json_object *proc, Cocoon__ProcessSpec *p, struct oci_bundle *b,
			    struct error **err);
int spec_parse_seccomp(struct json_object *lin, Cocoon__ContainerSpec *s, struct oci_bundle *b,
		       struct error **err);
int spec_parse_paths(struct json_object *lin, Cocoon__ContainerSpec *s, struct error **err);
void spec_free_confinement(Cocoon__ContainerSpec *s);
