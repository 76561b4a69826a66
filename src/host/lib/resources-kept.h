/* Limits changed by `update`, kept across checkpoint and restore.
 *
 * A container's limits come from config.json at create; `update` changes
 * them inside the running VM. runc does not carry such changes into a
 * restore (it re-applies the bundle's limits), nor does podman 4.3 (its
 * update does not store them). cocoon does: a container raised to 512 MiB
 * and then checkpointed would otherwise come back in a VM sized for the
 * bundle's limit, and be OOM-killed there.
 *
 * What each update set is kept in the container's state directory as
 * resources.json, in the OCI linux.resources form update --resources reads
 * (-1 for a lifted limit). A checkpoint copies it into cocoon.json
 * ("resources"), a restore lays it over the bundle's linux.resources before
 * the VM is sized and the container made, and keeps it in the restored
 * container's state directory for the next checkpoint. */
#pragma once

#include "error.h"
#include "proto.h"

#define RESOURCES_KEPT_FILE "resources.json"
#define RESOURCES_KEPT_MAX 4096 /* bytes */

/* After a successful update of the container whose state directory is dir:
 * merges what u set (with r's values) into dir's resources.json. */
int resources_kept_record(const char *dir, const Cocoon__UpdateRequest *u,
			  const Cocoon__Resources *r, struct error **err);

/* dir's resources.json as text (caller frees), or NULL when no update was
 * made (or the file cannot be read). */
char *resources_kept_read(const char *dir);

/* Writes json (already checked) as dir's resources.json. */
int resources_kept_write(const char *dir, const char *json, struct error **err);

/* Lays json (update --resources form, checked again here: it comes from a
 * checkpoint directory) over res. */
int resources_kept_apply(const char *json, Cocoon__Resources *res, struct error **err);
