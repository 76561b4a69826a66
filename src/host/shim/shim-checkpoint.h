/* A checkpoint through the shim (shim-checkpoint.c). */
#pragma once

#include "shim-state.h"

/* Lets the engine's traffic through again after a checkpoint. */
void shim_checkpoint_unhold(struct shim *s);

/* The checkpoint's answer R from the agent, to its client (a late reply to
 * a call that timed out is dropped). */
void shim_checkpoint_reply(struct shim *s, const Cocoon__Response *r);

/* A checkpoint that outlived its time limit is answered, so that the next
 * one is not refused for ever. Returns ms until that limit, or -1. */
int shim_checkpoint_check_deadline(struct shim *s);

/* Forwards client C's checkpoint request REQ to the agent. */
void shim_handle_checkpoint(struct shim *s, struct shim_client *c, Cocoon__Request *req);

/* A whole-VM checkpoint (vmsnap.h): QEMU saves the VM into the state
 * directory for the checkpoint command to publish. */
void shim_handle_vm_checkpoint(struct shim *s, struct shim_client *c, Cocoon__Request *req);
/* The kill or thaw that ends a whole-VM checkpoint (s->vm_stopped): the
 * agent cannot answer while the VM is stopped. */
void shim_vm_stopped_request(struct shim *s, struct shim_client *c, Cocoon__Request *req);
