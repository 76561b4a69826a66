/* The keeper: the process that owns a container's VM, apart from the shim
 * whose pid the engine waits on (shim-keeper.c, docs/pods.md "Lifetimes"). */
#pragma once

#include "shim-state.h"

/* Whether this shim's VM gets a keeper: any container that may become a
 * pod's sandbox (podman's infra container carries no mark), which is every
 * container that is not a member, except whole-VM ones (no pod share). */
bool shim_wants_keeper(const struct shim_args *a);

/* Forks the keeper. In the keeper (the child, which goes on to boot the VM
 * and serve the container as a shim always did) it returns 0 with
 * s->keeper set; in the shim (the parent, the engine's pid) it waits for
 * the container's exit status and never returns. A negative errno if the
 * fork failed (then the shim goes on alone). */
int shim_keeper_fork(struct shim *s);

/* The container ended (or its shim was killed) while members still run:
 * its state says stopped, the shim exits with its status, the engine's
 * stdio is let go, and the keeper serves the members on (s->keeping). */
void shim_keeper_hand_off(struct shim *s);

/* The sandbox's shim went away (killed): the container goes too, as if
 * `delete --force` had asked. */
void shim_keeper_lost_shim(struct shim *s);

/* The keeper's end, after the VM is down: tells the shim (when it still
 * waits) and removes the state directory when the container was deleted
 * meanwhile. */
void shim_keeper_end(struct shim *s);
