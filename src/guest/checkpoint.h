/* The Checkpoint request (checkpoint.c). */
#pragma once

#include "agent.h"

/* Checks the request, picks the route, starts CRIU's dump as a job and
 * answers request ID when the dump and the copy have ended (dump-job.c). */
void checkpoint_handle(struct agent *a, uint64_t id, const Cocoon__CheckpointRequest *req);
