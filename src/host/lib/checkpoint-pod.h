/* A whole pod's checkpoint, in the host library (checkpoint-pod.c). */
#pragma once

#include "checkpoint.h"

/* checkpoint --pod SANDBOX: every container of the pod is paused (frozen
 * together: the pod's loopback and IPC stay consistent between them), then
 * dumped into DIR/<id> while paused, members first; only once every image
 * directory is published are they all killed, members first (with
 * o->leave_running, resumed instead: those paused before stay so). A failure
 * resumes them all and removes what was written: the pod runs on. DIR gets
 * pod.json, the order an engine restores them in (docs/pods.md). */
int checkpoint_pod(struct global_opts *g, const char *id, struct checkpoint_options *o,
		   struct error **err);
