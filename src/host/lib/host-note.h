/* This host's notes about its checkpoint directories.
 *
 * A checkpoint directory may come from another host and is as untrusted as
 * the guest (docs/security.md), so what a restore must take on this host's
 * word alone is noted by the checkpoint outside it: in host_checkpoint_dir
 * (the host's, 0700), one JSON file per directory,
 *
 *     <host_checkpoint_dir>/<kind>/<XXH3-64 of the directory's real path>.json
 *     {"image_path": "<the real path>", "<key>": <value>}
 *
 * and a restore believes a note only when its image_path is the directory
 * it restores from (a hash collision or a moved directory reads as none).
 * Kinds: "pods" (pod-record.h, the bundles of a pod checkpoint) and "kept"
 * (resources-kept.h, the limits a checkpoint carried). */
#pragma once

#include <json-c/json.h>
#include <stddef.h>

#include "config.h"
#include "error.h"

/* The note of kind KIND for the directory whose real path is REAL,
 * malloc'd; NULL when out of memory. */
char *host_checkpoint_note_path(const struct cocoon_config *cfg, const char *kind,
				const char *real);

/* Notes VALUE (borrowed; a new reference is taken) under KEY for the
 * existing directory IMAGE_DIR, replacing an earlier note of that kind
 * for it (written to a temporary file and renamed, mode 0600; KIND's
 * folder is made 0700). VALUE NULL removes the note (none is fine).
 * 0, or a negative errno with err set naming the path. */
int host_checkpoint_note_write(const struct cocoon_config *cfg, const char *kind,
			       const char *image_dir, const char *key, json_object *value,
			       struct error **err);

/* KEY's value in the note of kind KIND for RESOLVED_DIR (a real path,
 * realpath(3)): a new reference for the caller to put; NULL when there is
 * no such note, it is over MAX bytes, not JSON, noted for another
 * directory, or has no KEY. */
json_object *host_checkpoint_note_read(const struct cocoon_config *cfg, const char *kind,
				       const char *resolved_dir, const char *key, size_t max);
