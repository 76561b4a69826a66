/* CRIU's restore command line (restore-argv.c). */
#pragma once

#include "argv.h"
#include "restore-job.h"

/* Appends to AV CRIU's restore command line for X into container C, up to
 * its config file: `restore` of the images in x->images with x->work as
 * its work directory and c->rootfs as its root, detached, its pid file in
 * x->work; --auto-dedup when the page images were staged in guest tmpfs;
 * the bind mounts (keyed by destination, as the dump named them) and the
 * fresh /dev and /dev/shm as external; the user's CRIU options; and the
 * spec's part as a config file written to x->work/criu.conf (left out if
 * it cannot be written). The caller adds the stdio, the network namespace
 * and the execs' pipes, then argv_finish()es AV (which reports a line too
 * long or out of memory). */
void restore_criu_argv(struct restore_ctx *x, struct agent_container *c, struct argv *av);
