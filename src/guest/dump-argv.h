/* CRIU's dump command line (dump-argv.c). */
#pragma once

#include "argv.h"
#include "dump-job.h"

/* CRIU's dump (or pre-dump) command line for request REQ on container C
 * into AV, from the context X checkpoint.c made: the images in x->img, its
 * route, parent and terminal keys; the rest comes from the spec
 * (criu-conf.c). Sets x->parent and, when an empty /dev/shm is left out of
 * the dump, x->shm_watch (ckpt_free closes it). Returns 0, or the negative
 * errno of argv_finish (too long a line, out of memory). */
int dump_criu_argv(struct argv *av, struct ckpt_ctx *x, struct agent_container *c,
		   const Cocoon__CheckpointRequest *req);
