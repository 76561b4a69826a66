#pragma once
#include <stdbool.h>
#include <sys/types.h>

#include "proto.h"

struct agent;
struct agent_container;

/* The agent runs itself under this name as CRIU's action script. */
#define CRIU_ACTION_NAME "criu-action"

/* Writes CRIU's --config file for a dump (of the tree of pid) or a restore
 * of container c at path, with the user's settings o->config. Returns 0 or a
 * negative errno. */
int criu_conf_write(const char *path, const struct agent *a, const struct agent_container *c, pid_t pid,
		    const Cocoon__CriuOptions *o, bool dump);
/* At dump: the per-mount flags of every mount of pid, into the images. */
int criu_conf_save_mounts(pid_t pid, const char *img_dir);
/* The action script's main (argv[0] ends in CRIU_ACTION_NAME). */
int criu_action_main(void);
