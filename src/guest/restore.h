/* The Restore request (restore.c). */
#pragma once

#include "agent.h"

/* Checks the request, makes the container from its spec, stages the images
 * and starts CRIU's restore as a job; answers request ID when it ends
 * (restore-job.c). */
void restore_handle(struct agent *a, uint64_t id, const Cocoon__RestoreRequest *req);
