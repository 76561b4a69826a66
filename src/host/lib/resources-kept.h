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
 * container's state directory for the next checkpoint.
 *
 * But a checkpoint directory may come from another host and is untrusted
 * (docs/security.md): its "resources" must not raise a limit the restoring
 * host's bundle sets (nor size the VM past it). So the restoring host's
 * own word wins. A checkpoint also leaves a note on this host, in
 * host_checkpoint_dir (0700), of the limits it carried, under the image
 * directory's real path (resources_kept_note). A restore lays the
 * checkpoint's limits over the bundle's as they are only when that note
 * matches them (this host's update set them); otherwise each limit is
 * taken only where it lowers the bundle's and does not size the VM past
 * what the bundle alone gives (resources_kept_lower_only), and the others
 * are named in a warning and dropped, also from what the restored
 * container keeps for its next checkpoint. */
#pragma once

#include "config.h"
#include "error.h"
#include "proto.h"

#include <stdbool.h>
#include <stddef.h>

#define RESOURCES_KEPT_FILE "resources.json"
#define RESOURCES_KEPT_MAX 4096	    /* bytes */
#define RESOURCES_KEPT_NOTES "kept" /* in host_checkpoint_dir */

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

/* Notes that the checkpoint in image_dir (which must exist) carries json
 * (cocoon.json's "resources", NULL for none: an earlier note for the same
 * real path is removed) in <host_checkpoint_dir>/kept/<hash of its real
 * path>.json, mode 0600. */
int resources_kept_note(const struct cocoon_config *cfg, const char *image_dir, const char *json,
			struct error **err);

/* true when this host noted json (compared as JSON) for the checkpoint in
 * resolved_dir (a real path, realpath(3)). */
bool resources_kept_noted(const struct cocoon_config *cfg, const char *resolved_dir,
			  const char *json);

/* The part of json (update --resources form, from an untrusted checkpoint)
 * that only lowers bundle's limits (bundle may be NULL: none), as JSON of
 * the same form, malloc'd: memory.limit and pids.limit at most the
 * bundle's (any, when it has none; a lifted one only when it has none),
 * cpu.quota / cpu.period at most the bundle's share of a period,
 * cpu.shares at most the bundle's (1024 when unset). And none that sizes
 * the VM (resources_vm_size() with cfg and cpuset_cpus, the bundle's
 * linux.resources.cpu.cpus count) past what the bundle alone gets: a
 * limit where the bundle has none lowers the cgroup but would size the VM
 * from the limit instead of vm.memory_mib / vm.vcpus (cfg NULL: not
 * checked). What is left out is named, comma-separated, in dropped (with
 * the VM's size where that is why; 512 bytes hold all of it). NULL with
 * err on a bad json. */
char *resources_kept_lower_only(const struct cocoon_config *cfg, const char *json,
				const Cocoon__Resources *bundle, int cpuset_cpus, char *dropped,
				size_t size, struct error **err);
