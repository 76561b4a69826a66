/* Requests on a container that exists (container-ops.c). */
#pragma once

#include "container.h"

/* Freezes (or thaws) the container's cgroup: 0 or a negative errno. */
int container_freeze(struct agent_container *c, bool freeze);

void container_handle_signal(struct agent *a, uint64_t id, const Cocoon__SignalRequest *req);
void container_handle_pause(struct agent *a, uint64_t id, const Cocoon__PauseRequest *req);
void container_handle_exec(struct agent *a, uint64_t id, const Cocoon__ExecRequest *req);
void container_handle_ps(struct agent *a, uint64_t id, const Cocoon__PsRequest *req);
/* runc update: the limits the request names, in the container's cgroup. */
void container_handle_update(struct agent *a, uint64_t id, const Cocoon__UpdateRequest *req);
/* runc events --stats: the container's cgroup figures (cgroups.h). */
void container_handle_stats(struct agent *a, uint64_t id, const Cocoon__StatsRequest *req);
void container_handle_stdin(struct agent *a, const Cocoon__StdinData *req);
/* ResizeRequest (one-way: no reply). An unknown container or exec, or one
 * without a terminal, is logged and ignored. */
void container_handle_resize(struct agent *a, const Cocoon__ResizeRequest *req);
