/* A container's processes as poll() sees them (container-events.c). */
#pragma once

#include "container.h"

/* poll() integration: fds to watch, and what to do when they fire. */
struct pollfd;
size_t container_poll_fds(struct agent *a, struct pollfd *fds, size_t max, void **tags,
			  bool want_output);
void container_poll_event(struct agent *a, void *tag, short revents);
/* True while the reply queue is too full to take more output. */
bool container_output_backlogged(struct agent *a);
/* OutputFlowRequest: holds or lets go one stream of a process (an unknown
 * one is ignored: it may have ended and been freed meanwhile). */
void container_handle_output_flow(struct agent *a, const Cocoon__OutputFlowRequest *req);
/* A child exited (from the SIGCHLD reaper). Returns true if it was ours. */
bool container_child_exited(struct agent *a, pid_t pid, int status);
