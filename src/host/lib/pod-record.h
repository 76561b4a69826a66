/* Where checkpoint --pod found each container's bundle, kept on this host.
 *
 * restore --pod restores a whole pod in one command, each container with
 * the bundle it had. pod.json names them, but pod.json is part of the
 * checkpoint directory, which may come from another host and is as
 * untrusted as the guest (docs/security.md): a path it names would choose
 * which host bundle (rootfs, volumes, namespaces) the checkpoint's images
 * run with. So checkpoint --pod also records the bundles in
 * host_checkpoint_dir (0700, the host's), under the checkpoint directory's
 * real path, and restore --pod takes them from there only. */
#pragma once

#include <json-c/json.h>

#include "config.h"
#include "error.h"

/* Records BUNDLES (an object, id: bundle path; borrowed) for the pod
 * checkpoint in IMAGE_DIR (which must exist) in
 * <host_checkpoint_dir>/pods/<hash of its real path>.json, mode 0600.
 * Replaces what an earlier checkpoint into the same directory recorded. */
int pod_record_write(const struct cocoon_config *cfg, const char *image_dir, json_object *bundles,
		     struct error **err);

/* The bundle recorded for container ID of the pod checkpoint in
 * RESOLVED_DIR (a real path, realpath(3)), malloc'd; NULL when this host
 * recorded none (a checkpoint from elsewhere, or moved). */
char *pod_record_bundle(const struct cocoon_config *cfg, const char *resolved_dir, const char *id);
