/* The namespaces config.json joins (spec-pod.c). */
#pragma once

#include "error.h"

struct oci_bundle;

/* spec.c: one linux.namespaces entry with a path. Returns 1 when it joins
 * the pod's namespace (recorded in the bundle), 0 when it is not a pod's
 * (the caller goes on), or a negative errno. */
int pod_spec_namespace(struct oci_bundle *b, const char *field, const char *type, const char *path,
		       struct error **err);
