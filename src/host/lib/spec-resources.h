/* config.json's linux.resources and linux.cgroupsPath, for spec.c's
 * parse_linux. */
#pragma once

#include "error.h"

#include <json-c/json.h>

struct oci_bundle;

/* linux.resources (RES may be NULL): memory, pids and CPU become the
 * container's cgroup limits in the guest and size the VM (resources.c);
 * the rest is named in b's warnings. Returns 0 or a negative errno. */
int spec_parse_resources(json_object *res, struct oci_bundle *b, struct error **err);

/* linux.cgroupsPath of LIN into b->cgroup as a cgroupfs path
 * (cgmirror_path), where the shim shows the engines the container's
 * figures (cgroup-mirror.h). Absent or empty: b->cgroup stays NULL. */
int spec_parse_cgroups_path(json_object *lin, struct oci_bundle *b, struct error **err);

/* The number of CPUs a cpuset list ("0-3,6") names, -1 when malformed. */
int spec_cpuset_count(const char *cpus);
