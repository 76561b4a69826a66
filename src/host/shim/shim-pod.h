/* Pods: the sandbox's shim serves its members' shims (shim-pod.c). */
#pragma once

#include "shim-state.h"

/* update: memory up to what this VM can give (resources.h). A member's own
 * shim has no VM (memory_mib 0): the pod's shim checks. */
int shim_update_check(struct shim *s, struct shim_client *c, const Cocoon__Request *req,
		      struct error **err);

/* A request from member shim C, forwarded to the agent for its container. */
void shim_handle_member_request(struct shim *s, struct shim_client *c, Cocoon__Request *req);

/* The agent's reply R to member request F (forwarded without waiting), to
 * that member's shim; a failed create or restore unregisters the member. */
void shim_forward_reply(struct shim *s, struct shim_forward *f, const Cocoon__Response *r);

/* Forwards past their time limit, and checkpoints and restores whose guest
 * sent no word of their progress for limits.checkpoint_silence_ms, are
 * answered (ETIMEDOUT) and given up on (shim_abandon); returns ms until
 * the next limit, or -1. */
int shim_forward_check_deadlines(struct shim *s);

/* The late reply R to a member's restore A, given up on: a container it
 * made after all goes (nobody owns it). */
void shim_forward_undo(struct shim *s, const struct shim_abandoned *a, const Cocoon__Response *r);

/* A member's shim went away (its container ended, or delete --force): its
 * container must not outlive it in the VM. */
void shim_member_gone(struct shim *s, const char *id);
