/* A checkpoint through the shim (shim-checkpoint.c). */
#pragma once

#include "shim-state.h"

/* Lets the engine's traffic through again after a checkpoint. */
void shim_checkpoint_unhold(struct shim *s);

/* The checkpoint's answer R from the agent, to its client (a late reply to
 * a call that timed out is dropped). */
void shim_checkpoint_reply(struct shim *s, const Cocoon__Response *r);

/* A checkpoint that outlived its time limit (SHIM_CHECKPOINT_TIMEOUT_MS),
 * or whose guest sent no word of its progress for
 * limits.checkpoint_silence_ms, is answered at once with an error, so that
 * its client is not held and the next one is not refused for ever; its
 * late reply is undone (shim_checkpoint_undo). Returns ms until the
 * nearer limit, or -1. */
int shim_checkpoint_check_deadline(struct shim *s);

/* ms until a checkpoint of progress P and deadline DEADLINE_MS (now_ms())
 * is given up on: the nearer of the deadline and the silence bound. */
long long shim_checkpoint_left(const struct shim *s, const struct agent_progress *p,
			       long long deadline_ms);

/* The error of a checkpoint given up on (P, DEADLINE_MS as above): it
 * names the limit reached and its setting, the last stage heard, and what
 * becomes of the images and the container (the command's context names
 * the container: "checkpoint c1: no word from the guest ..."). Returns
 * -ETIMEDOUT. */
int shim_checkpoint_given_up(struct shim *s, const struct agent_progress *p, long long deadline_ms,
			     struct error **err);

/* The late reply R to checkpoint A, given up on: its images are removed
 * from the shared directory, never published, and a container that the
 * checkpoint left frozen is thawed (left_frozen), so it is as it was. */
void shim_checkpoint_undo(struct shim *s, const struct shim_abandoned *a,
			  const Cocoon__Response *r);

/* Forwards client C's checkpoint request REQ to the agent. */
void shim_handle_checkpoint(struct shim *s, struct shim_client *c, Cocoon__Request *req);

/* A whole-VM checkpoint (vmsnap.h): QEMU saves the VM into the state
 * directory for the checkpoint command to publish. */
void shim_handle_vm_checkpoint(struct shim *s, struct shim_client *c, Cocoon__Request *req);
/* The kill or thaw that ends a whole-VM checkpoint (s->vm_stopped): the
 * agent cannot answer while the VM is stopped. */
void shim_vm_stopped_request(struct shim *s, struct shim_client *c, Cocoon__Request *req);
