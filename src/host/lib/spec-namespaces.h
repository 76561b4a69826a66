/* linux.namespaces of config.json (spec-namespaces.c), for spec.c's
 * parse_linux. LIN is the json_object of "linux". */
#pragma once

#include "error.h"
#include "proto.h"

struct json_object;
struct oci_bundle;

/* linux.namespaces into b->spec->namespaces; a path joins the pod's
 * namespace (pod_spec_namespace) or, for "network", the engine's, into
 * b->netns_path; any other path, or an unknown type, is refused. Returns 0,
 * or a negative errno with *ERR set. */
int spec_parse_namespaces(struct json_object *lin, struct oci_bundle *b, struct error **err);
/* Refuses a user namespace for a container that joins its pod's
 * namespaces (docs/lifecycle.md). */
int spec_check_user_ns_joins(const Cocoon__ContainerSpec *s, struct error **err);
/* Once all of linux is read: warns of a missing pid or mount namespace and
 * of the linux fields not applied in the VM; refuses a container without a
 * network namespace (host networking). */
int spec_check_namespaces(struct json_object *lin, struct oci_bundle *b, struct error **err);
