/* A checkpoint whose init ran in the guest's own namespaces. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* CRIU puts a restored task in the namespaces its images name, and leaves
 * it in CRIU's own for each namespace the task shared with the dumping CRIU
 * (inventory.img's root_ids, CRIU's ids at the dump). In the guest CRIU runs
 * in the agent's namespaces, so images whose init (pstree.img's first task,
 * its ids-PID.img) shares root_ids' pid or mount namespace would come back
 * beside the agent and CRIU: the pid namespace where the agent is PID 1, the
 * mount namespace with the guest's root. Every container cocoon makes has
 * its own of both (the agent's rule), so such images come from elsewhere:
 * refused before any VM starts, naming the namespace. CRIU 3.17 would fail
 * on them too, later and with its own words ("Can't fork for 1: File
 * exists"). The guest checks the restored tree again (restore.c).
 *
 * dirfd: the checkpoint directory (its files are checked against
 * cocoon.json before this). Returns 0, or -EPERM (the refusal) or -EINVAL
 * (a file it needs is missing, larger than IMAGES_NS_MAX_FILE or malformed),
 * naming the file. */
#define IMAGES_NS_MAX_FILE (1u << 20)
int images_check_namespaces(int dirfd, struct error **err);

/* The pid and mount namespace ids of a TaskKobjIdsEntry (criu/images/
 * core.proto: pid_ns_id = 5, mnt_ns_id = 9), from its encoded bytes;
 * false when they are malformed. A field that is absent reads 0. For
 * tests. */
struct images_ns_ids {
	uint64_t pid_ns, mnt_ns;
};
int images_ns_ids_parse(const uint8_t *p, size_t len, struct images_ns_ids *ids);

/* images_check_namespaces() on the images' bytes, for the fuzzer and the
 * tests: the init's pid from inventory.img (checked for its form) and
 * pstree.img, then the check against that task's ids-PID.img. Errors as
 * above. */
int images_ns_init_pid(const uint8_t *inv, size_t inv_len, const uint8_t *tree, size_t tree_len,
		       uint32_t *pid, struct error **err);
int images_ns_check(const uint8_t *inv, size_t inv_len, uint32_t pid, const uint8_t *ids,
		    size_t ids_len, struct error **err);
