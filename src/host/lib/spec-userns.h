/* config.json's user namespace (linux.namespaces type "user",
 * linux.uidMappings and linux.gidMappings), for spec.c's parse_linux. The
 * guest makes the namespace and writes its maps (docs/lifecycle.md, "User
 * namespaces"). */
#pragma once

#include "error.h"
#include "proto.h"

#include <json-c/json.h>

/* At most this many lines in each map: the kernel's limit since Linux 4.15
 * (user_namespaces(7), UID_GID_MAP_MAX_EXTENTS). */
#define SPEC_ID_MAP_MAX 340

/* linux.uidMappings and gidMappings of LIN into s->uid_mappings and
 * s->gid_mappings: each {containerID, hostID, size} with size > 0 and
 * neither range past 2^32 - 1 (uint32 ids, and (uid_t)-1 is no id), no
 * two ranges of one map overlapping on either side (the kernel refuses
 * the whole map then). As runc's validator: a user namespace needs both
 * maps, and maps need a user namespace. "hostID" is an id of the guest's
 * kernel, which the shared filesystems carry to the host as it is.
 * Returns 0 or a negative errno naming the field. */
int spec_parse_id_mappings(json_object *lin, Cocoon__ContainerSpec *s, struct error **err);

/* Frees what spec_parse_id_mappings put in s. */
void spec_free_id_mappings(Cocoon__ContainerSpec *s);
