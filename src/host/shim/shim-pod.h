/* Pods: the sandbox's shim serves its members' shims (shim-pod.c). */
#pragma once

#include "shim-state.h"

/* update: memory up to what this VM can give (resources.h). A member's own
 * shim has no VM (memory_mib 0): the pod's shim checks. */
int shim_update_check(struct shim *s, struct shim_client *c, const Cocoon__Request *req,
		      struct error **err);

/* A request from member shim C, forwarded to the agent for its container. */
void shim_handle_member_request(struct shim *s, struct shim_client *c, Cocoon__Request *req);
