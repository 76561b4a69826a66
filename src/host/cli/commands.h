/* One file per command (cmd-*.c), each parsing its own options and calling
 * down into the host library. */
#pragma once

#include <stdbool.h>

#include "cli.h"
#include "config.h"
#include "opts.h"

struct command {
	const char *name;
	const char *summary;
	int (*run)(struct global_opts *g, int argc, char **argv);
};

int cmd_check(struct global_opts *g, int argc, char **argv);
int cmd_create(struct global_opts *g, int argc, char **argv);
int cmd_start(struct global_opts *g, int argc, char **argv);
int cmd_run(struct global_opts *g, int argc, char **argv);
int cmd_state(struct global_opts *g, int argc, char **argv);
int cmd_list(struct global_opts *g, int argc, char **argv);
int cmd_kill(struct global_opts *g, int argc, char **argv);
int cmd_pause(struct global_opts *g, int argc, char **argv);
int cmd_resume(struct global_opts *g, int argc, char **argv);
int cmd_exec(struct global_opts *g, int argc, char **argv);
int cmd_ps(struct global_opts *g, int argc, char **argv);
int cmd_delete(struct global_opts *g, int argc, char **argv);
int cmd_spec(struct global_opts *g, int argc, char **argv);
int cmd_features(struct global_opts *g, int argc, char **argv);
int cmd_checkpoint(struct global_opts *g, int argc, char **argv);
int cmd_restore(struct global_opts *g, int argc, char **argv);
int cmd_update(struct global_opts *g, int argc, char **argv);
int cmd_events(struct global_opts *g, int argc, char **argv);
int cmd_image(struct global_opts *g, int argc, char **argv);
